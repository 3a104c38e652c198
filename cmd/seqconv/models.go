package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

func init() {
	registerCommand(command{"models", "list the registered models: parameters, MACs and the paper's GFLOPs", runModels,
		flagsUsage(newModelsFlags)})
}

// modelsOptions are the flags of "seqconv models".
type modelsOptions struct {
	json                bool
	classes, resolution int
}

func newModelsFlags(o *modelsOptions) *flagSet {
	if o == nil {
		o = &modelsOptions{}
	}
	fs := newFlagSet("models", "seqconv models [flags]", `
Lists the registered models with their trainable parameters, multiply-accumulates (MACs) per
image and GFLOPs in the paper's convention, at their nominal resolution (or --resolution). They are
counted from the built graph, without compiling it. "seqconv summary MODEL" breaks them down per layer.`)
	fs.BoolVar(&o.json, "json", false, "print a JSON array of {name, family, classes, params, macs, conv_macs, fc_macs, paper_gflops, paper_flops, resolution}")
	fs.IntVar(&o.classes, "classes", 0, "count with this number of classes instead of each model's own (0: the model's)")
	fs.IntVar(&o.resolution, "resolution", 0, "count at this input height and width instead of each model's own (0: the model's)")
	return fs
}

// modelInfo is one model of "seqconv models".
type modelInfo struct {
	Name        string  `json:"name"`
	Family      string  `json:"family"`
	Classes     int     `json:"classes"`
	Params      int64   `json:"params"`
	MACs        int64   `json:"macs"`
	ConvMACs    int64   `json:"conv_macs"` // MACs of the convolutions
	FCMACs      int64   `json:"fc_macs"`   // MACs of the fully connected layers
	PaperGFLOPs float64 `json:"paper_gflops"`
	PaperFLOPs  string  `json:"paper_flops"` // as the paper's table prints it (see models.Stats.PaperFLOPs)
	Resolution  int     `json:"resolution"`
}

// runModels implements "seqconv models".
func runModels(args []string, stdout, stderr io.Writer) int {
	var o modelsOptions
	fs := newModelsFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if o.classes < 0 {
		printError(stderr, usagef("--classes must be >= 0 (0: the model's own), got %d", o.classes))
		return exitUsage
	}
	if o.resolution < 0 {
		printError(stderr, usagef("--resolution must be >= 0 (0: the model's own), got %d", o.resolution))
		return exitUsage
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		printError(stderr, err)
		return exitFailure
	}
	defer backend.Finalize()
	var infos []modelInfo
	for _, name := range models.Names() {
		cfg, err := models.Get(name)
		if err != nil {
			printError(stderr, err)
			return exitFailure
		}
		if o.classes > 0 {
			cfg.Classes = o.classes
		}
		stats, err := models.Inspect(backend, cfg, o.resolution)
		if err != nil {
			printError(stderr, fmt.Errorf("inspecting %s: %w", name, err))
			return exitFailure
		}
		infos = append(infos, modelInfo{Name: name, Family: cfg.Family, Classes: cfg.Classes, Params: stats.Params,
			MACs: stats.MACs(), ConvMACs: stats.ConvMACs, FCMACs: stats.FCMACs, PaperGFLOPs: stats.PaperGFLOPs, PaperFLOPs: stats.PaperFLOPs(), Resolution: stats.Resolution})
	}
	if o.json {
		if err := printJSON(stdout, infos); err != nil {
			printError(stderr, err)
			return exitFailure
		}
		return exitOK
	}
	printModelsTable(stdout, infos)
	return exitOK
}

// printModelsTable prints the models as an aligned table: text columns left-aligned, numbers
// right-aligned.
func printModelsTable(w io.Writer, infos []modelInfo) {
	header := []string{"NAME", "FAMILY", "CLASSES", "RESOLUTION", "PARAMS", "MACS", "PAPER GFLOPS"}
	rightAligned := []bool{false, false, true, true, true, true, true}
	rows := [][]string{header}
	for _, m := range infos {
		rows = append(rows, []string{m.Name, m.Family, fmt.Sprint(m.Classes),
			fmt.Sprintf("%dx%d", m.Resolution, m.Resolution), thousands(m.Params), humanCount(m.MACs),
			m.PaperFLOPs})
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for _, row := range rows {
		var b strings.Builder
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			if rightAligned[i] {
				b.WriteString(pad + cell)
			} else if i < len(row)-1 {
				b.WriteString(cell + pad)
			} else {
				b.WriteString(cell)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}
