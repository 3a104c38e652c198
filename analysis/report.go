package analysis

import (
	"bytes"
	"cmp"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/seqconv/seqconv/internal/text"
)

// Comparison is an experiment section of a report: the utilization and accuracy of runs of one
// architecture with different aggregations, shown before the runs' own sections.
type Comparison struct {
	// Title heads the section; Intro (a paragraph) explains the setting.
	Title, Intro string
	// Command reproduces the experiment.
	Command string
	// Utilization compares the runs' layers; its Variants name the runs.
	Utilization UtilizationComparison
	// Initial, if not nil, is the same comparison for the models before training (a baseline).
	Initial *UtilizationComparison
	// Accuracy[v] is variant v's final top-1 test accuracy in %.
	Accuracy []float64
	// Conclusion (a paragraph) says what the numbers show.
	Conclusion string
}

// ReportData is the content of an HTML report (see WriteReport).
type ReportData struct {
	// Title is the page title (default "SeqConv run report").
	Title string
	// Generated is when the report was made (not shown if zero).
	Generated time.Time
	// Runs are the run directories reported.
	Runs []ReportRun
	// Comparison, if not nil, is shown first.
	Comparison *Comparison
	// Environment describes the machine and software that made the report (see HostEnvironment).
	Environment []KeyValue
}

// reportFigure is a chart of the report: an image (an SVG data: URI) with a title and caption.
type reportFigure struct {
	ID, Title, Caption string
	// Src is the image's src attribute.
	Src template.HTMLAttr
}

// svgSrcAttr renders a figure with draw and returns the src attribute of an image showing it: an SVG
// data: URI.
func svgSrcAttr(draw func(w io.Writer, format string) error) (template.HTMLAttr, error) {
	var b bytes.Buffer
	if err := draw(&b, FormatSVG); err != nil {
		return "", err
	}
	// The attribute is built here from a rendered SVG, and base64 has no character that needs escaping
	// in a quoted attribute, so it is inserted as is (html/template would write each '+' as "&#43;").
	return template.HTMLAttr(`src="data:image/svg+xml;base64,` + base64.StdEncoding.EncodeToString(b.Bytes()) + `"`), nil
}

// reportRunView is a run as the template shows it.
type reportRunView struct {
	ReportRun
	Anchor  string
	Heatmap *reportFigure
}

// summaryRow is a row of the summary table: a field and its value for each run.
type summaryRow struct {
	Field  string
	Values []string
}

// reportView is what the template renders.
type reportView struct {
	ReportData
	Runs       []reportRunView
	Summary    []summaryRow
	Curves     *reportFigure
	CurvesNote string
	Charts     int
	Generated  string
}

// WriteReport writes r as one self-contained HTML page: a summary table of the runs (model, params,
// MACs, paper FLOPs, dataset, epochs, final and best top-1/top-5 accuracy, throughput, wall time,
// backend and host), the training curves of all runs on one chart, each run's heat maps (the
// poster's weight visualization, jet colour map) with its per-layer utilization table, the model's
// per-component summary and config.json, and the report's environment. Charts are SVG images
// embedded as data: URIs, the style sheet is inline, and nothing is loaded from the network; every
// text is escaped by html/template. Each chart is a <figure> with an <img> whose alt text is its
// title and a <figcaption>; a small script marks figures whose image failed to load and records
// "loaded/total" in the data-charts-loaded attribute of the <html> element.
func WriteReport(w io.Writer, r ReportData) error {
	if len(r.Runs) == 0 {
		return errors.New("report: no run")
	}
	v := reportView{ReportData: r}
	if v.Title == "" {
		v.Title = "SeqConv run report"
	}
	if !r.Generated.IsZero() {
		v.Generated = r.Generated.Format("2006-01-02 15:04:05 MST")
	}
	labels := make([]string, len(r.Runs))
	var curves []RunCurves
	var curveNames []string
	for i, run := range r.Runs {
		labels[i] = run.Label
		if run.Curves != nil && len(run.Curves.Epoch) > 0 {
			c := *run.Curves
			c.Name = run.Label
			curves = append(curves, c)
			curveNames = append(curveNames, run.Label)
		}
	}
	labels = uniqueLabels(labels, r.Runs)
	for i, run := range r.Runs {
		run.Label = labels[i]
		rv := reportRunView{ReportRun: run, Anchor: "run-" + strconv.Itoa(i+1)}
		if len(run.Heatmaps) > 0 {
			src, err := svgSrcAttr(func(w io.Writer, f string) error { return RenderHeatmaps(run.Heatmaps, w, f) })
			if err != nil {
				return fmt.Errorf("report: heat maps of %s: %w", run.Dir, err)
			}
			rv.Heatmap = &reportFigure{
				ID:    rv.Anchor + "-heatmaps",
				Title: "Weight visualization: " + run.Label,
				Caption: fmt.Sprintf("Heat maps of the %d SeqConv layers of %s (%s checkpoint): normalized L1 norm of "+
					"each target group's (filter's) first-conv weights over the source groups it reads, jet colour "+
					"map from 0 (dark blue) to 1 (dark red); grey cells are groups the filter does not read.",
					len(run.Heatmaps), run.Label, run.Checkpoint),
				Src: src,
			}
			v.Charts++
		}
		v.Runs = append(v.Runs, rv)
	}
	if len(curves) > 0 {
		for i := range curves {
			curves[i].Name = uniqueCurveName(curves[i], r.Runs, labels)
		}
		src, err := svgSrcAttr(func(w io.Writer, f string) error { return PlotCurves(curves, w, f) })
		if err != nil {
			return fmt.Errorf("report: training curves: %w", err)
		}
		v.Curves = &reportFigure{ID: "curves-chart", Title: "Training curves",
			Caption: fmt.Sprintf("Top-1 error and loss per epoch of %s: dashed lines are training (model in "+
				"training mode, averaged over the epoch), solid lines test set at the end of each epoch; "+
				"dotted vertical lines mark learning-rate drops.", strings.Join(curveNames, ", ")),
			Src: src}
		v.Charts++
	} else {
		v.CurvesNote = "No run has a results.csv with a completed epoch."
	}
	v.Summary = summaryRows(v.Runs)
	var b bytes.Buffer
	if err := reportTemplate.Execute(&b, v); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// uniqueLabels appends the run directory's base name to labels that several runs share.
func uniqueLabels(labels []string, runs []ReportRun) []string {
	count := map[string]int{}
	for _, l := range labels {
		count[l]++
	}
	out := make([]string, len(labels))
	for i, l := range labels {
		out[i] = l
		if count[l] > 1 {
			out[i] = fmt.Sprintf("%s (%s)", l, filepath.Base(filepath.Clean(runs[i].Dir)))
		}
	}
	return out
}

// uniqueCurveName returns the label of the run whose curves c are.
func uniqueCurveName(c RunCurves, runs []ReportRun, labels []string) string {
	for i, r := range runs {
		if r.Curves != nil && r.Dir == c.Dir {
			return labels[i]
		}
	}
	return c.Name
}

// Formatting helpers of the report.

func fmtFloat(x float64, decimals int) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', decimals, 64)
}

// FormatThousands formats n with "," as the thousands separator (843834 -> "843,834").
func FormatThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// FormatCount formats a large count with a K, M or G suffix and 2 decimals (204360992 -> "204.36M").
func FormatCount(n int64) string {
	x := float64(n)
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.2fK", x/1e3)
	}
	return strconv.FormatInt(n, 10)
}

// runMetrics are the final and best results of a run's curves.
type runMetrics struct {
	epochs                                  int
	finalErr, finalTop5, finalLoss, bestErr float64
	bestTop5                                float64
	bestEpoch                               int
	imagesPerSecond, seconds                float64
}

func metricsOf(c *RunCurves) (runMetrics, bool) {
	if c == nil || len(c.Epoch) == 0 {
		return runMetrics{}, false
	}
	n := len(c.Epoch)
	at := func(xs []float64, i int) float64 {
		if i < len(xs) {
			return xs[i]
		}
		return math.NaN()
	}
	m := runMetrics{epochs: c.Epoch[n-1], finalErr: at(c.ValidError, n-1), finalTop5: at(c.ValidTop5Error, n-1),
		finalLoss: at(c.ValidLoss, n-1), bestErr: math.NaN(), bestTop5: math.NaN()}
	for i := range n {
		e := at(c.ValidError, i)
		if !math.IsNaN(e) && (math.IsNaN(m.bestErr) || e < m.bestErr) {
			m.bestErr, m.bestTop5, m.bestEpoch = e, at(c.ValidTop5Error, i), c.Epoch[i]
		}
	}
	var ips float64
	var k int
	for _, x := range c.ImagesPerSecond {
		if !math.IsNaN(x) && x > 0 {
			ips += x
			k++
		}
	}
	m.imagesPerSecond = math.NaN()
	if k > 0 {
		m.imagesPerSecond = ips / float64(k)
	}
	m.seconds = math.NaN()
	for _, s := range c.Seconds {
		if math.IsNaN(s) {
			continue
		}
		if math.IsNaN(m.seconds) {
			m.seconds = 0
		}
		m.seconds += s
	}
	return m, true
}

// summaryRows builds the summary table: one row per field, one column per run.
func summaryRows(runs []reportRunView) []summaryRow {
	fields := []string{"Run directory", "Model", "Parameters", "MACs / image (conv + FC)", "Paper FLOPs (G)",
		"Dataset", "Training", "Epochs completed", "Final top-1 accuracy", "Final top-5 error",
		"Final test loss", "Best top-1 accuracy", "Top-5 error at best epoch", "Throughput (training)",
		"Wall time (sum of epochs)", "Backend", "Host (config.json)", "Mean SeqConv utilization"}
	rows := make([]summaryRow, len(fields))
	for i, f := range fields {
		rows[i] = summaryRow{Field: f, Values: make([]string, len(runs))}
	}
	for j, r := range runs {
		c := r.Config
		set := func(field int, s string) {
			if s == "" {
				s = "–"
			}
			rows[field].Values[j] = s
		}
		set(0, r.Dir)
		model := r.Label
		if c.Model.Name != "" {
			model = c.Model.Name
		}
		if c.Model.Family != "" {
			model += " (" + c.Model.Family
			if c.Model.Variant != "" {
				model += ", variant " + c.Model.Variant
			}
			model += ")"
		}
		set(1, model)
		if s := r.Stats; s != nil {
			set(2, FormatThousands(s.Params))
			set(3, fmt.Sprintf("%s (%s) at %dx%d", FormatThousands(s.MACs()), FormatCount(s.MACs()), s.Resolution, s.Resolution))
			flops := s.PaperFLOPs()
			if s.PaperGFLOPs < 0.1 {
				flops += fmt.Sprintf(" (%.4g G)", s.PaperGFLOPs)
			}
			set(4, flops)
		}
		dataset := c.Data
		if c.TrainImages > 0 || c.ValidImages > 0 {
			dataset += fmt.Sprintf(": %s training / %s test images", FormatThousands(int64(c.TrainImages)), FormatThousands(int64(c.ValidImages)))
		}
		if aug := cmp.Or(c.Augmentation, c.AugmentDesc); aug != "" {
			dataset += ", augmentation " + aug
		}
		set(5, strings.TrimPrefix(dataset, ": "))
		var tr []string
		if c.Epochs > 0 {
			tr = append(tr, fmt.Sprintf("%s, batch %d", plural(c.Epochs, "epoch"), c.BatchSize))
		}
		if c.Optimizer != "" {
			tr = append(tr, c.Optimizer)
		}
		if c.ScheduleDesc != "" {
			tr = append(tr, "lr "+c.ScheduleDesc)
		}
		if c.Epochs > 0 {
			tr = append(tr, fmt.Sprintf("seed %d", c.Seed))
		}
		set(6, strings.Join(tr, "; "))
		if m, ok := metricsOf(r.Curves); ok {
			set(7, strconv.Itoa(len(r.Curves.Epoch)))
			set(8, accuracy(m.finalErr))
			set(9, pct(m.finalTop5))
			set(10, fmtFloat(m.finalLoss, 4))
			if m.bestEpoch > 0 {
				set(11, fmt.Sprintf("%s (epoch %d)", accuracy(m.bestErr), m.bestEpoch))
			}
			set(12, pct(m.bestTop5))
			if !math.IsNaN(m.imagesPerSecond) {
				set(13, fmtFloat(m.imagesPerSecond, 1)+" images/s (mean over epochs)")
			}
			if !math.IsNaN(m.seconds) {
				set(14, fmtFloat(m.seconds, 1)+" s")
			}
		}
		set(15, text.OneLine(c.Backend))
		var host []string
		for _, kv := range r.HostInfo {
			host = append(host, kv.Key+": "+kv.Value)
		}
		set(16, strings.Join(host, "; "))
		if len(r.Heatmaps) > 0 {
			set(17, fmt.Sprintf("%s over %d layers (%s checkpoint)", fmtFloat(r.MeanUtilization(), 3), len(r.Heatmaps),
				r.Checkpoint))
		}
		for i := range rows {
			if rows[i].Values[j] == "" {
				rows[i].Values[j] = "–"
			}
		}
	}
	return rows
}

// plural formats "1 epoch", "2 epochs".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// accuracy formats a top-1 error (%) as "accuracy% (error e%)".
func accuracy(err float64) string {
	if math.IsNaN(err) {
		return "–"
	}
	return fmt.Sprintf("%.2f%% (error %.2f%%)", 100-err, err)
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f%%", x)
}

var reportFuncs = template.FuncMap{
	"f3":    func(x float64) string { return fmtFloat(x, 3) },
	"f2":    func(x float64) string { return fmtFloat(x, 2) },
	"int":   func(n int64) string { return FormatThousands(n) },
	"count": func(n int64) string { return FormatCount(n) },
	"window": func(h *Heatmap) string {
		if h.Layer.Dense {
			return "–"
		}
		return strconv.Itoa(h.Layer.Window)
	},
	"windowCh": func(ch int) string {
		if ch == 0 {
			return "all"
		}
		return strconv.Itoa(ch)
	},
	"add1": func(i int) int { return i + 1 },
}

var reportTemplate = template.Must(template.New("report").Funcs(reportFuncs).Parse(reportHTML))

// reportHTML is the page template (see WriteReport).
//
//go:embed report.html
var reportHTML string
