package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(parsedCommand("heatmap", "draw the weight visualization (group utilization) of a run's SeqConv layers",
		newHeatmapFlags, func(o *heatmapOptions, stdout, _ io.Writer) error { return o.execute(stdout) }))
	registerCommand(parsedCommand("plot", "plot the training curves (error, loss, LR drops) of one or more runs",
		newPlotFlags, func(o *plotOptions, stdout, _ io.Writer) error { return o.execute(stdout) }))
}

// Default output files, in the (first) run directory.
const (
	defaultHeatmapFile = "heatmaps.png"
	defaultCurvesFile  = "curves.png"
)

// heatmapOptions are the flags of "seqconv heatmap".
type heatmapOptions struct {
	run, layers, out, csv string
	best                  bool
}

// newHeatmapFlags returns the flags of "seqconv heatmap" bound to o (nil: a throwaway).
func newHeatmapFlags(o *heatmapOptions) *flagSet {
	if o == nil {
		o = &heatmapOptions{}
	}
	fs := newFlagSet("heatmap", "seqconv heatmap --run DIR [flags]", `
Draws the poster's weight visualization of the SeqConv layers of a trained run: for each layer, a
heat map of the L1 norm of each filter's (target group's) first-conv weights over the source groups
it reads (x axis: source group relative to the layer's first new group, negative for the layer
input; y axis: target group), normalized by the layer's maximum, in matplotlib's jet colour map;
grey cells are groups a filter does not read. Each panel's title gives the layer's utilization, the
mean of its normalized values. A table of the layers is printed.`)
	fs.StringVar(&o.run, "run", "", "run directory written by \"seqconv train\" (required)")
	fs.StringVar(&o.layers, "layers", "", "only the layers whose name matches this regular expression (e.g. 'Stage1/.*/LayerB'); default all")
	fs.StringVar(&o.out, "out", "", "output figure, .png or .svg (default <run>/"+defaultHeatmapFile+")")
	fs.StringVar(&o.csv, "csv", "", "also write the matrices to this CSV file (layer, aggregation, k, filter, source_group, l1, normalized)")
	fs.BoolVar(&o.best, "best", false, "use the checkpoint of the best epoch (<run>/"+train.BestDir+") instead of the latest (<run>/"+train.LatestDir+")")
	return fs
}

// figureOutput applies the output-file rule to the figure --out and returns the file to write and its
// format.
func figureOutput(out string) (target, format string, err error) {
	if target, err = outputFile("--out", out, "figure", ".png", ".svg"); err != nil {
		return "", "", err
	}
	if format, err = analysis.FormatFromPath(out); err != nil {
		return "", "", usagef("--out: %v", err)
	}
	return target, format, nil
}

func (o *heatmapOptions) execute(stdout io.Writer) error {
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	re, err := regexp.Compile(o.layers)
	if err != nil {
		return usagef("--layers: invalid regular expression: %v", err)
	}
	out := o.out
	if out == "" {
		out = filepath.Join(o.run, defaultHeatmapFile)
	}
	target, format, err := figureOutput(out)
	if err != nil {
		return err
	}
	csvTarget := ""
	if o.csv != "" {
		if csvTarget, err = outputFile("--csv", o.csv, "CSV", ".csv"); err != nil {
			return err
		}
	}
	backend, _, store, err := openRun(io.Discard, o.run, o.best)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	var maps []*analysis.Heatmap
	all := analysis.SeqConvLayers(store)
	for _, layer := range all {
		if !re.MatchString(layer.Name) {
			continue
		}
		h, err := analysis.Utilization(store, layer)
		if err != nil {
			return err
		}
		maps = append(maps, h)
	}
	if len(maps) == 0 {
		if len(all) == 0 {
			return fmt.Errorf("--run %s: the checkpoint has no SeqConv layer", o.run)
		}
		names := make([]string, len(all))
		for i, l := range all {
			names[i] = l.Name
		}
		return usagef("--layers %q matches none of the %d SeqConv layers (%s)", o.layers, len(all),
			strings.Join(names, ", "))
	}
	var fig bytes.Buffer
	if err := analysis.RenderHeatmaps(maps, &fig, format); err != nil {
		return err
	}
	if err := writeOutput(target, fig.Bytes()); err != nil {
		return err
	}
	if o.csv != "" {
		var b bytes.Buffer
		if err := analysis.WriteCSV(maps, &b); err != nil {
			return err
		}
		if err := writeOutput(csvTarget, b.Bytes()); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%-32s %-9s %4s %5s %7s %7s %11s\n", "LAYER", "AGG", "K", "C_IN", "FILTERS", "WINDOW", "UTILIZATION")
	for _, h := range maps {
		l := h.Layer
		window := "-"
		if !l.Dense {
			window = fmt.Sprint(l.Window)
		}
		fmt.Fprintf(stdout, "%-32s %-9s %4d %5d %7d %7s %11.3f\n", l.Name, l.Aggregation(), l.K, l.CIn, l.Filters,
			window, h.Utilization)
	}
	fmt.Fprintf(stdout, "wrote %s", out)
	if o.csv != "" {
		fmt.Fprintf(stdout, " and %s", o.csv)
	}
	fmt.Fprintln(stdout)
	return nil
}

// runDirsFlag is a repeatable string flag.
type runDirsFlag []string

func (l *runDirsFlag) String() string     { return strings.Join(*l, ",") }
func (l *runDirsFlag) Set(s string) error { *l = append(*l, s); return nil }

// plotOptions are the flags of "seqconv plot".
type plotOptions struct {
	runs runDirsFlag
	out  string
}

// newPlotFlags returns the flags of "seqconv plot" bound to o (nil: a throwaway).
func newPlotFlags(o *plotOptions) *flagSet {
	if o == nil {
		o = &plotOptions{}
	}
	fs := newFlagSet("plot", "seqconv plot --run DIR [--run DIR2 ...] [--out FILE]", `
Plots the training curves of one or more runs from their results.csv: top-1 train (dashed) and
validation (solid) error against the epoch, with dotted vertical lines where the learning rate
drops, and a second panel with the train and validation losses; one colour per run, labelled with
the model name of its config.json.`)
	fs.Var(&o.runs, "run", "run directory (repeat for several runs on one chart; at least one)")
	fs.StringVar(&o.out, "out", "", "output figure, .png or .svg (default <run>/"+defaultCurvesFile+" for a single run; required for several)")
	return fs
}

func (o *plotOptions) execute(stdout io.Writer) error {
	if len(o.runs) == 0 {
		return usagef("--run is required")
	}
	for _, dir := range o.runs {
		if err := checkRunDirExists("--run", dir); err != nil && !fileExists(filepath.Join(dir, train.ResultsFile)) {
			return err // plot reads results.csv only: a directory holding one is enough.
		}
	}
	out := o.out
	if out == "" {
		if len(o.runs) > 1 {
			return usagef("--out is required with several --run")
		}
		out = filepath.Join(o.runs[0], defaultCurvesFile)
	}
	target, format, err := figureOutput(out)
	if err != nil {
		return err
	}
	runs := make([]analysis.RunCurves, len(o.runs))
	for i, dir := range o.runs {
		if runs[i], err = analysis.ReadResults(dir); err != nil {
			return err
		}
	}
	var fig bytes.Buffer
	if err := analysis.PlotCurves(runs, &fig, format); err != nil {
		return err
	}
	if err := writeOutput(target, fig.Bytes()); err != nil {
		return err
	}
	for _, r := range runs {
		if n := len(r.Epoch); n > 0 {
			fmt.Fprintf(stdout, "%s (%s): %s, final valid error %.2f%%, best %.2f%%\n", r.Name, r.Dir, epochsString(n),
				r.ValidError[n-1], lowestError(r.ValidError))
		} else {
			fmt.Fprintf(stdout, "%s (%s): no epoch yet\n", r.Name, r.Dir)
		}
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// lowestError returns the smallest value of xs (NaN values are skipped).
func lowestError(xs []float64) float64 {
	m := xs[0]
	for _, x := range xs[1:] {
		if x < m || math.IsNaN(m) {
			m = x
		}
	}
	return m
}
