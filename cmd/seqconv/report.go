package main

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(parsedCommand("report", "write a self-contained HTML report of one or more runs (summary, curves, heat maps)",
		newReportFlags, (*reportOptions).execute))
}

// defaultReportFile is the report's file name in the run directory when --out is not given.
const defaultReportFile = "report.html"

// reportOptions are the flags of "seqconv report".
type reportOptions struct {
	runs       runDirsFlag
	out, title string
	best       bool
}

// newReportFlags returns the flags of "seqconv report" bound to o (nil: a throwaway).
func newReportFlags(o *reportOptions) *flagSet {
	if o == nil {
		o = &reportOptions{}
	}
	fs := newFlagSet("report", "seqconv report --run DIR [--run DIR2 ...] [--out FILE.html] [--best]", `
Writes one self-contained HTML page about one or more run directories: a summary table (model,
parameters, MACs, paper FLOPs, dataset, epochs, final and best top-1/top-5 results, training
throughput, wall time, backend), the training curves of all runs on one chart, each run's heat maps
(the poster's weight visualization, jet colour map) with its per-layer utilization, the model's
per-component summary, config.json, and the Go version and CPUs of this machine. Charts are
embedded SVG images and the style sheet is inline: the file opens without network access.`)
	fs.Var(&o.runs, "run", "run directory written by \"seqconv train\" (repeat for several runs; at least one)")
	fs.StringVar(&o.out, "out", "", "output HTML file (default <run>/"+defaultReportFile+" for a single run; required for several)")
	fs.StringVar(&o.title, "title", "", "page title (default \"SeqConv run report\")")
	fs.BoolVar(&o.best, "best", false, "heat maps of the best epoch's checkpoint (<run>/"+train.BestDir+") instead of the latest (<run>/"+train.LatestDir+")")
	return fs
}

func (o *reportOptions) execute(stdout, stderr io.Writer) error {
	if len(o.runs) == 0 {
		return usagef("--run is required")
	}
	for _, dir := range o.runs {
		if err := checkRunDirExists("--run", dir); err != nil {
			return err
		}
	}
	out := o.out
	if out == "" {
		if len(o.runs) > 1 {
			return usagef("--out is required with several --run")
		}
		out = filepath.Join(o.runs[0], defaultReportFile)
	}
	target, err := outputFile("--out", out, "HTML", ".html", ".htm")
	if err != nil {
		return err
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	data := analysis.ReportData{Title: o.title, Generated: time.Now(), Environment: reportEnvironment(backend)}
	for _, dir := range o.runs {
		r, err := analysis.LoadReportRun(backend, dir, o.best)
		if err != nil {
			return err
		}
		data.Runs = append(data.Runs, r)
	}
	if err := writeReportFile(target, data); err != nil {
		return err
	}
	for _, r := range data.Runs {
		fmt.Fprintf(stdout, "%s (%s): %d heat maps", r.Label, r.Dir, len(r.Heatmaps))
		if r.Curves != nil {
			fmt.Fprintf(stdout, ", %s", epochsString(len(r.Curves.Epoch)))
		}
		for _, n := range r.Notes {
			fmt.Fprintf(stdout, "; %s", n)
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "wrote %s\n", out)
	return nil
}

// writeReportFile renders data with analysis.WriteReport into target, a file outputFile returned.
func writeReportFile(target string, data analysis.ReportData) error {
	var b bytes.Buffer
	if err := analysis.WriteReport(&b, data); err != nil {
		return err
	}
	return writeOutput(target, b.Bytes())
}

// reportEnvironment describes this program for a report: seqconv, GoMLX and Go versions, the host's
// CPUs and the compute backend that computed the model summaries.
func reportEnvironment(backend compute.Backend) []analysis.KeyValue {
	s, g, c := versions()
	env := []analysis.KeyValue{{Key: "seqconv", Value: s}, {Key: "GoMLX", Value: g}, {Key: "GoMLX compute", Value: c}}
	env = append(env, analysis.HostEnvironment()...)
	if backend != nil {
		env = append(env, analysis.KeyValue{Key: "report backend", Value: describeBackend(backend)})
	}
	return env
}
