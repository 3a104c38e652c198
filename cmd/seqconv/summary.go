package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/internal/text"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(command{"summary", "print a model's per-layer output shapes, parameters and MACs", runSummary,
		flagsUsage(newSummaryFlags)})
}

// summaryOptions are the flags of "seqconv summary".
type summaryOptions struct {
	resolution, classes, depth int
	json                       bool
}

func newSummaryFlags(o *summaryOptions) *flagSet {
	if o == nil {
		o = &summaryOptions{}
	}
	fs := newFlagSet("summary", "seqconv summary MODEL|CONFIG.json|RUN_DIR [flags]", `
Prints a model's complexity report, one row per component: its name (the scope
path, e.g. Stage1/0/LayerA or Downsample1/ShrinkingLayer), its output shape per image (HxWxC), its
trainable parameters and its conv and FC multiply-accumulates (MACs) per image, then a total row
equal to "seqconv models". MODEL is a registered model name (see "seqconv models"), a JSON model
config or a run directory (its config.json). The counts come from the built graph, not compiled.`)
	fs.IntVar(&o.resolution, "resolution", 0, "input height and width (0: the model's own)")
	fs.IntVar(&o.classes, "classes", 0, "number of classes (0: the model's own)")
	fs.IntVar(&o.depth, "depth", 0, "group the ops by the first D elements of their scope path (0: one row per SeqConv layer, conv unit or other op)")
	fs.BoolVar(&o.json, "json", false, "print a JSON object {model, family, classes, resolution, rows: [{name, out, params, conv_macs, fc_macs, convs, description}], total}")
	return fs
}

// parseFlagsArgs parses args, which may mix flags and positional arguments (flags after a positional
// argument are parsed too), and returns the positional arguments; like parseFlags, done=true means the
// command must stop with code.
func parseFlagsArgs(fs *flagSet, args []string, stdout, stderr io.Writer) (positional []string, code int, done bool) {
	rest := args
	for {
		err := fs.Parse(rest)
		if errors.Is(err, flag.ErrHelp) {
			printFlagsUsage(stdout, fs)
			return nil, exitOK, true
		}
		if err != nil {
			fmt.Fprintf(stderr, "seqconv %s: %s\n", fs.Name(), text.OneLine(err.Error()))
			printFlagsUsage(stderr, fs)
			return nil, exitUsage, true
		}
		if fs.NArg() == 0 {
			return positional, exitOK, false
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
}

// summaryReport is the JSON output of "seqconv summary --json".
type summaryReport struct {
	Model      string                `json:"model"`
	Family     string                `json:"family"`
	Classes    int                   `json:"classes"`
	Resolution int                   `json:"resolution"`
	Depth      int                   `json:"depth"`
	Rows       []models.LayerSummary `json:"rows"`
	Total      models.LayerSummary   `json:"total"`
}

// runSummary implements "seqconv summary".
func runSummary(args []string, stdout, stderr io.Writer) int {
	var o summaryOptions
	fs := newSummaryFlags(&o)
	positional, code, done := parseFlagsArgs(fs, args, stdout, stderr)
	if done {
		return code
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "seqconv summary: want one model (a name, a JSON config or a run directory), got %d arguments\n",
			len(positional))
		printFlagsUsage(stderr, fs)
		return exitUsage
	}
	cfg, err := o.modelConfig(positional[0])
	if err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		printError(stderr, err)
		return exitFailure
	}
	defer backend.Finalize()
	stats, err := models.Inspect(backend, cfg, o.resolution)
	if err != nil {
		err = fmt.Errorf("inspecting %s: %w", cfg.Name, err)
		if o.resolution != 0 {
			err = usagef("--resolution %d: %v", o.resolution, err)
		}
		printError(stderr, err)
		return exitCode(err)
	}
	report := summaryReport{Model: cfg.Name, Family: cfg.Family, Classes: cfg.Classes, Resolution: stats.Resolution,
		Depth: o.depth, Rows: models.Summarize(stats, o.depth), Total: stats.Total()}
	if o.json {
		if err := printJSON(stdout, report); err != nil {
			printError(stderr, err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "%s (%s), %d classes, %dx%d input\n\n", report.Model, report.Family, report.Classes,
		report.Resolution, report.Resolution)
	printSummaryTable(stdout, report.Rows, report.Total)
	return exitOK
}

// modelConfig checks the flags and returns the config of the model argument (a registered name, a JSON
// config or a run directory) with --classes applied.
func (o *summaryOptions) modelConfig(arg string) (models.Config, error) {
	switch {
	case o.resolution < 0:
		return models.Config{}, usagef("--resolution must be >= 0 (0: the model's own), got %d", o.resolution)
	case o.classes < 0:
		return models.Config{}, usagef("--classes must be >= 0 (0: the model's own), got %d", o.classes)
	case o.depth < 0:
		return models.Config{}, usagef("--depth must be >= 0 (0: one row per component), got %d", o.depth)
	}
	var cfg models.Config
	var err error
	if st, statErr := os.Stat(arg); statErr == nil && st.IsDir() {
		if cfg, err = train.ReadRunConfig(arg); err != nil {
			return models.Config{}, usagef("%v", err)
		}
		if cfg.Name == "" {
			cfg.Name = filepath.Base(filepath.Clean(arg))
		}
	} else if cfg, err = models.Get(arg); err != nil {
		return models.Config{}, usagef("%v", err)
	}
	if o.classes > 0 {
		cfg.Classes = o.classes
	}
	return cfg, nil
}

// printSummaryTable prints the rows and the total as an aligned table.
func printSummaryTable(w io.Writer, rows []models.LayerSummary, total models.LayerSummary) {
	header := []string{"NAME", "OUTPUT", "PARAMS", "CONV MACS", "FC MACS", "DESCRIPTION"}
	rightAligned := []bool{false, true, true, true, true, false}
	table := [][]string{header}
	cells := func(r models.LayerSummary, desc string) []string {
		return []string{r.Name, r.OutString(), thousands(r.Params), thousands(r.ConvMACs), thousands(r.FCMACs), desc}
	}
	for _, r := range rows {
		table = append(table, cells(r, r.Description))
	}
	table = append(table, cells(total, fmt.Sprintf("%d convs, %s MACs", total.Convs, humanCount(total.MACs()))))
	widths := make([]int, len(header))
	for _, row := range table {
		for i, cell := range row {
			widths[i] = max(widths[i], len(cell))
		}
	}
	for n, row := range table {
		if n == len(table)-1 {
			var rule []string
			for _, wd := range widths[:len(widths)-1] {
				rule = append(rule, strings.Repeat("-", wd))
			}
			fmt.Fprintln(w, strings.Join(rule, "  "))
		}
		var b strings.Builder
		for i, cell := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-len(cell))
			switch {
			case rightAligned[i]:
				b.WriteString(pad + cell)
			case i < len(row)-1:
				b.WriteString(cell + pad)
			default:
				b.WriteString(cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
