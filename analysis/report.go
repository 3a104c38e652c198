package analysis

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/internal/text"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// KeyValue is one labelled value of a report (a row of a two-column table).
type KeyValue struct {
	Key, Value string
}

// hostConfigKeys are config.json keys describing the machine or software that ran the training; a
// report shows those present (train.Run may record some of them).
var hostConfigKeys = []string{"host", "hostname", "cpu", "cpus", "num_cpu", "gomaxprocs", "goos", "goarch",
	"go_version", "gomlx_version", "seqconv_version", "version"}

// ReportRun is one run directory of a report (see LoadReportRun).
type ReportRun struct {
	// Label names the run in the report (the model name, see LoadReportRun).
	Label string
	// Dir is the run directory.
	Dir string
	// Config is config.json as parsed (fields missing from the file are zero); ConfigJSON its text,
	// shown verbatim.
	Config     train.RunFile
	ConfigJSON string
	// HostInfo are the host-describing keys of config.json (see hostConfigKeys), if any.
	HostInfo []KeyValue
	// Stats and Components are the model's size and cost (models.Inspect, models.Summarize); Stats
	// is nil when they could not be computed.
	Stats      *models.Stats
	Components []models.LayerSummary
	// Curves are the run's per-epoch results (see ReadResults), nil when it has none.
	Curves *RunCurves
	// Checkpoint says which weights the heat maps show: "latest (checkpoint/)" or "best (best/)".
	Checkpoint string
	// Heatmaps are the weight visualizations of the run's SeqConv layers.
	Heatmaps []*Heatmap
	// Notes say what could not be shown and why (no results.csv, no checkpoint...).
	Notes []string
}

// LoadReportRun reads what a report shows of a run directory written by train.Run (or seqconv
// train/import): config.json (required), the model summary (computed on backend with models.Inspect;
// skipped when backend is nil), results.csv, and the heat maps of the latest checkpoint, or of the
// best one with best. A missing results.csv or checkpoint is not an error: the run's Notes say so.
func LoadReportRun(backend compute.Backend, dir string, best bool) (ReportRun, error) {
	r := ReportRun{Dir: dir, Label: filepath.Base(filepath.Clean(dir))}
	fi, err := os.Stat(dir)
	if err != nil {
		return r, fmt.Errorf("run directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return r, fmt.Errorf("run directory %s is not a directory", dir)
	}
	cfgPath := filepath.Join(dir, train.ConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return r, fmt.Errorf("%s is not a run directory: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &r.Config); err != nil {
		return r, fmt.Errorf("%s: %w", cfgPath, err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		r.ConfigJSON = pretty.String()
	} else {
		r.ConfigJSON = string(raw)
	}
	r.HostInfo = hostInfo(raw)
	if r.Config.Model.Name != "" {
		r.Label = r.Config.Model.Name
	}

	if backend == nil {
		r.Notes = append(r.Notes, "model summary not computed (no compute backend)")
	} else if cfg, err := train.ReadRunConfig(dir); err != nil {
		r.Notes = append(r.Notes, "model summary not computed: "+text.OneLine(err.Error()))
	} else if stats, err := models.Inspect(backend, cfg, 0); err != nil {
		r.Notes = append(r.Notes, "model summary not computed: "+text.OneLine(err.Error()))
	} else {
		r.Stats = &stats
		r.Components = models.Summarize(stats, 0)
	}

	if curves, err := ReadResults(dir); err == nil {
		r.Curves = &curves
	} else {
		r.Notes = append(r.Notes, "no training curves: "+text.OneLine(err.Error()))
	}

	r.Checkpoint = "latest (" + train.LatestDir + "/)"
	if best {
		r.Checkpoint = "best (" + train.BestDir + "/)"
	}
	if backend == nil {
		r.Notes = append(r.Notes, "no heat maps (no compute backend to load the model)")
		return r, nil
	}
	_, store, err := train.LoadRun(backend, dir, best)
	if err != nil {
		r.Notes = append(r.Notes, "no heat maps: "+text.OneLine(err.Error()))
		return r, nil
	}
	for _, layer := range SeqConvLayers(store) {
		h, err := Utilization(store, layer)
		if err != nil {
			return r, err
		}
		r.Heatmaps = append(r.Heatmaps, h)
	}
	if len(r.Heatmaps) == 0 {
		r.Notes = append(r.Notes, "no heat maps: the checkpoint has no SeqConv layer")
	}
	return r, nil
}

// hostInfo returns the host-describing keys of a config.json (see hostConfigKeys), values formatted
// as compact JSON unless they are strings.
func hostInfo(raw []byte) []KeyValue {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []KeyValue
	for _, k := range hostConfigKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			var b bytes.Buffer
			if json.Compact(&b, v) != nil {
				continue
			}
			s = b.String()
		}
		out = append(out, KeyValue{k, s})
	}
	return out
}

// oneLine flattens a message to one line.

// MeanUtilization returns the mean utilization of the run's heat maps (NaN without any).
func (r ReportRun) MeanUtilization() float64 { return meanUtilization(r.Heatmaps) }

func meanUtilization(maps []*Heatmap) float64 {
	if len(maps) == 0 {
		return math.NaN()
	}
	var s float64
	for _, h := range maps {
		s += h.Utilization
	}
	return s / float64(len(maps))
}

// ComparedLayer is one SeqConv layer present in every variant of a UtilizationComparison.
type ComparedLayer struct {
	// Name, K and Filters describe the layer (the same in every variant).
	Name    string `json:"name"`
	K       int    `json:"k"`
	Filters int    `json:"filters"`
	// Aggregation[v] is "dense" or "windowed" in variant v.
	Aggregation []string `json:"aggregation"`
	// Window[v] is the window in channels of variant v (0 for dense aggregation).
	Window []int `json:"window"`
	// Utilization[v] is the layer's utilization in variant v.
	Utilization []float64 `json:"utilization"`
	// Differs is true when the variants aggregate differently in this layer.
	Differs bool `json:"differs"`
}

// UtilizationComparison compares the per-layer utilization of runs of the same architecture whose
// SeqConv layers aggregate differently (see CompareUtilization).
type UtilizationComparison struct {
	// Variants names the runs compared.
	Variants []string `json:"variants"`
	// Layers are the SeqConv layers, in the first variant's order.
	Layers []ComparedLayer `json:"layers"`
	// MeanAll[v] is variant v's mean utilization over all Layers; MeanDiffering[v] its mean over the
	// layers whose aggregation differs between the variants (NaN if none does), the layers where the
	// choice of aggregation can show.
	MeanAll       []float64 `json:"mean_all"`
	MeanDiffering []float64 `json:"mean_differing"`
	// Differing is the number of layers whose aggregation differs.
	Differing int `json:"differing_layers"`
}

// CompareUtilization matches the heat maps of several runs of one architecture by layer name
// (maps[v] are variant v's heat maps) and averages their utilization. It fails unless every variant
// has the same layers with the same granularity and number of filters.
func CompareUtilization(variants []string, maps [][]*Heatmap) (UtilizationComparison, error) {
	c := UtilizationComparison{Variants: variants}
	if len(variants) == 0 || len(variants) != len(maps) {
		return c, fmt.Errorf("compare utilization: %d variant names for %d sets of heat maps",
			len(variants), len(maps))
	}
	byName := make([]map[string]*Heatmap, len(maps))
	for v, ms := range maps {
		byName[v] = map[string]*Heatmap{}
		for _, h := range ms {
			byName[v][h.Layer.Name] = h
		}
		if len(ms) != len(maps[0]) {
			return c, fmt.Errorf("compare utilization: %s has %d SeqConv layers, %s has %d",
				variants[v], len(ms), variants[0], len(maps[0]))
		}
	}
	if len(maps[0]) == 0 {
		return c, errors.New("compare utilization: no SeqConv layer")
	}
	n := len(variants)
	c.MeanAll, c.MeanDiffering = make([]float64, n), make([]float64, n)
	for _, h0 := range maps[0] {
		l := ComparedLayer{Name: h0.Layer.Name, K: h0.Layer.K, Filters: h0.Layer.Filters,
			Aggregation: make([]string, n), Window: make([]int, n), Utilization: make([]float64, n)}
		for v := range n {
			h, ok := byName[v][l.Name]
			if !ok {
				return c, fmt.Errorf("compare utilization: %s has no layer %s", variants[v], l.Name)
			}
			if h.Layer.K != l.K || h.Layer.Filters != l.Filters {
				return c, fmt.Errorf("compare utilization: layer %s has k=%d, %d filters in %s but k=%d, %d filters in %s",
					l.Name, l.K, l.Filters, variants[0], h.Layer.K, h.Layer.Filters, variants[v])
			}
			l.Aggregation[v], l.Window[v], l.Utilization[v] = h.Layer.Aggregation(), h.Layer.Window, h.Utilization
			if l.Aggregation[v] != l.Aggregation[0] || l.Window[v] != l.Window[0] {
				l.Differs = true
			}
		}
		for v := range n {
			c.MeanAll[v] += l.Utilization[v]
			if l.Differs {
				c.MeanDiffering[v] += l.Utilization[v]
			}
		}
		if l.Differs {
			c.Differing++
		}
		c.Layers = append(c.Layers, l)
	}
	for v := range n {
		c.MeanAll[v] /= float64(len(c.Layers))
		if c.Differing > 0 {
			c.MeanDiffering[v] /= float64(c.Differing)
		} else {
			c.MeanDiffering[v] = math.NaN()
		}
	}
	return c, nil
}

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

// HostEnvironment describes this process's machine and Go runtime: Go version, OS/architecture,
// logical CPUs, GOMAXPROCS and, on Linux, the CPU model.
func HostEnvironment() []KeyValue {
	env := []KeyValue{
		{"Go", runtime.Version()},
		{"OS/architecture", runtime.GOOS + "/" + runtime.GOARCH},
		{"logical CPUs", strconv.Itoa(runtime.NumCPU())},
		{"GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0))},
	}
	if m := cpuModel(); m != "" {
		env = append(env, KeyValue{"CPU", m})
	}
	return env
}

// cpuModel returns the "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
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
const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; margin: 0 auto; max-width: 1180px; padding: 16px 24px 48px; color: #1b1f24; background: #fff; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 4px; margin-top: 1.8em; }
h3 { margin-top: 1.4em; }
p.meta { color: #57606a; margin-top: 0; }
nav a { margin-right: 1em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d0d7de; padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.differs td { background: #fff8e5; }
figure { margin: 1em 0; padding: 10px; border: 1px solid #d0d7de; border-radius: 6px; background: #fff; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figure.broken { border-color: #cf222e; }
figcaption { color: #3d444d; font-size: 0.92em; margin-top: 8px; }
figcaption strong { color: #1b1f24; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 10px; overflow-x: auto; font-size: 0.85em; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
.note { color: #9a6700; }
.verdict { background: #f6f8fa; border-left: 4px solid #0969da; padding: 8px 12px; }
details summary { cursor: pointer; font-weight: bold; margin: 0.5em 0; }
</style>
</head>
<body>
<h1 id="top">{{.Title}}</h1>
<p class="meta">{{len .Runs}} run{{if ne (len .Runs) 1}}s{{end}}{{if .Generated}}; generated {{.Generated}}{{end}}. Self-contained page: charts are embedded SVG images.</p>
<nav>{{if .Comparison}}<a href="#comparison">Comparison</a>{{end}}<a href="#summary">Summary</a><a href="#curves">Training curves</a><a href="#heatmaps">Heat maps</a><a href="#models">Models</a><a href="#configs">Configurations</a><a href="#environment">Environment</a></nav>
{{with .Comparison}}
<section>
<h2 id="comparison">{{.Title}}</h2>
{{if .Intro}}<p>{{.Intro}}</p>{{end}}
{{if .Command}}<p>Reproduce with: <code>{{.Command}}</code></p>{{end}}
<table id="comparison-table">
<tr><th>variant</th><th class="num">final top-1 test accuracy</th><th class="num">mean utilization, layers that differ ({{.Utilization.Differing}})</th><th class="num">mean utilization, all SeqConv layers ({{len .Utilization.Layers}})</th>{{if .Initial}}<th class="num">at initialization: layers that differ</th><th class="num">at initialization: all layers</th>{{end}}</tr>
{{$c := .}}{{range $i, $name := .Utilization.Variants}}<tr><td>{{$name}}</td><td class="num">{{if lt $i (len $c.Accuracy)}}{{f2 (index $c.Accuracy $i)}}%{{end}}</td><td class="num">{{f3 (index $c.Utilization.MeanDiffering $i)}}</td><td class="num">{{f3 (index $c.Utilization.MeanAll $i)}}</td>{{with $c.Initial}}<td class="num">{{f3 (index .MeanDiffering $i)}}</td><td class="num">{{f3 (index .MeanAll $i)}}</td>{{end}}</tr>
{{end}}</table>
<table id="comparison-layers">
<tr><th>layer</th><th class="num">k</th><th class="num">filters</th>{{range .Utilization.Variants}}<th>{{.}}: aggregation (window)</th><th class="num">{{.}}: utilization</th>{{end}}</tr>
{{range .Utilization.Layers}}{{$l := .}}<tr{{if .Differs}} class="differs"{{end}}><td>{{.Name}}</td><td class="num">{{.K}}</td><td class="num">{{.Filters}}</td>{{range $i, $u := .Utilization}}<td>{{index $l.Aggregation $i}}{{if eq (index $l.Aggregation $i) "windowed"}} ({{windowCh (index $l.Window $i)}} ch){{end}}</td><td class="num">{{f3 $u}}</td>{{end}}</tr>
{{end}}</table>
<p>Highlighted rows are the layers whose aggregation differs between the variants.</p>
{{if .Conclusion}}<p class="verdict">{{.Conclusion}}</p>{{end}}
</section>
{{end}}
<section>
<h2 id="summary">Summary</h2>
<table id="summary-table">
<tr><th></th>{{range .Runs}}<th><a href="#{{.Anchor}}">{{.Label}}</a></th>{{end}}</tr>
{{range .Summary}}<tr><th>{{.Field}}</th>{{range .Values}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table>
{{range .Runs}}{{$r := .}}{{range .Notes}}<p class="note">{{$r.Label}}: {{.}}</p>{{end}}{{end}}
</section>
<section>
<h2 id="curves">Training curves</h2>
{{with .Curves}}<figure id="{{.ID}}" data-chart="curves">
<img {{.Src}} alt="{{.Title}}" title="{{.Title}}">
<figcaption><strong>{{.Title}}.</strong> {{.Caption}}</figcaption>
</figure>{{else}}<p class="note">{{.CurvesNote}}</p>{{end}}
</section>
<section>
<h2 id="heatmaps">Heat maps: weight utilization of the SeqConv layers</h2>
<p>The poster's weight visualization. For each SeqConv layer, row j is the layer's filter (target group) j and
column g a source group it aggregates, numbered relative to the layer's first new group (negative: the layer's
input); the colour is the L1 norm of the weights of filter j's first conv that read group g, divided by the
layer's largest such norm (jet colour map, 0 dark blue to 1 dark red). A layer's utilization is the mean of its
coloured cells: higher means the filters use the groups they aggregate more evenly.</p>
{{range .Runs}}
<h3 id="{{.Anchor}}">{{.Label}}</h3>
{{with .Heatmap}}<figure id="{{.ID}}" data-chart="heatmaps">
<img {{.Src}} alt="{{.Title}}" title="{{.Title}}">
<figcaption><strong>{{.Title}}.</strong> {{.Caption}}</figcaption>
</figure>{{end}}
{{if .Heatmaps}}<table class="utilization">
<tr><th>layer</th><th>aggregation</th><th class="num">k</th><th class="num">C_in</th><th class="num">filters</th><th class="num">window (channels)</th><th class="num">utilization</th></tr>
{{range .Heatmaps}}<tr><td>{{.Layer.Name}}</td><td>{{.Layer.Aggregation}}</td><td class="num">{{.Layer.K}}</td><td class="num">{{.Layer.CIn}}</td><td class="num">{{.Layer.Filters}}</td><td class="num">{{window .}}</td><td class="num">{{f3 .Utilization}}</td></tr>
{{end}}<tr><th colspan="6">mean</th><td class="num">{{f3 .MeanUtilization}}</td></tr>
</table>{{else}}<p class="note">No heat maps for this run.</p>{{end}}
{{end}}
</section>
<section>
<h2 id="models">Models</h2>
{{range .Runs}}
<h3>{{.Label}}</h3>
{{with .Stats}}<p>{{int .Params}} parameters; {{int .ConvMACs}} conv MACs + {{int .FCMACs}} FC MACs = {{count .MACs}} MACs per {{.Resolution}}x{{.Resolution}} image; {{.ConvLayers}} convolutions; paper FLOPs {{.PaperFLOPs}} G (THOP-2019 convention / 2<sup>30</sup>).</p>{{else}}<p class="note">No model summary.</p>{{end}}
{{if .Components}}<details><summary>Per-component summary ({{len .Components}} rows)</summary>
<table>
<tr><th>component</th><th>output</th><th class="num">params</th><th class="num">MACs</th><th>description</th></tr>
{{range .Components}}<tr><td>{{.Name}}</td><td>{{.OutString}}</td><td class="num">{{int .Params}}</td><td class="num">{{int .MACs}}</td><td>{{.Description}}</td></tr>
{{end}}</table>
</details>{{end}}
{{end}}
</section>
<section>
<h2 id="configs">Configurations</h2>
{{range .Runs}}<details><summary>{{.Label}}: {{.Dir}}/config.json</summary>
<pre>{{.ConfigJSON}}</pre>
</details>
{{end}}
</section>
<section>
<h2 id="environment">Environment</h2>
<p>The machine and software that made this report; the training backend of each run is in the summary table.</p>
<table id="environment-table">
{{range .Environment}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}<tr><th>charts</th><td>{{.Charts}}</td></tr>
</table>
</section>
<script>
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("figure img");
  var ok = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (imgs[i].complete && imgs[i].naturalWidth > 0) {
      ok++;
    } else {
      imgs[i].parentNode.className += " broken";
      console.error("seqconv report: chart did not load: " + imgs[i].alt);
    }
  }
  document.documentElement.setAttribute("data-charts-loaded", ok + "/" + imgs.length);
});
</script>
</body>
</html>
`
