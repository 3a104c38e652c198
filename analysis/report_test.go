package analysis

import (
	"bytes"
	"encoding/base64"
	"html"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/ml/model/checkpoint"
)

// writeTinyRunDir writes a run directory for the tiny model (tinyModelJSON) under the model name
// name: config.json, results.csv (resultsA) and a checkpoint of freshly initialized weights.
func writeTinyRunDir(t *testing.T, dir, name string) {
	t.Helper()
	store, _ := buildTinyModel(t)
	h, err := checkpoint.Build(store).Dir(filepath.Join(dir, "checkpoint")).Done()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Save(); err != nil {
		t.Fatal(err)
	}
	model := strings.Replace(tinyModelJSON, "{", `{"name":`+jsonString(name)+",", 1)
	cfg := `{"model": ` + model + `, "epochs": 6, "batch_size": 32, "lr": 0.1, "seed": 7, "data": "mnist",
"augment": "data.RandomCrop{Pad:2}", "augmentation": "crop:2", "backend": "Go Backend: test", "train_images": 640, "valid_images": 320,
"schedule_desc": "multistep(0.1, [3 5], 0.1)", "optimizer": "SGD(lr=0.1)", "hostname": "testhost", "num_cpu": 2}`
	if err := writeFile(filepath.Join(dir, "config.json"), cfg); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "results.csv"), resultsA); err != nil {
		t.Fatal(err)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// figureRe matches a figure of the report: its data-chart kind, its image's source and alt text and its caption.
var figureRe = regexp.MustCompile(`(?s)<figure id="([^"]+)" data-chart="([^"]+)">\s*<img src="([^"]+)" alt="([^"]+)"[^>]*>\s*<figcaption>(.*?)</figcaption>`)

// reportFigures returns the figures of an HTML report: kind, decoded SVG, alt text and caption.
func reportFigures(t *testing.T, page string) (kinds []string, svgs []string, alts []string) {
	t.Helper()
	for _, m := range figureRe.FindAllStringSubmatch(page, -1) {
		src, ok := strings.CutPrefix(html.UnescapeString(m[3]), "data:image/svg+xml;base64,")
		if !ok {
			t.Errorf("figure %s: image source is not an SVG data URI: %.60s", m[1], m[3])
			continue
		}
		b, err := base64.StdEncoding.DecodeString(src)
		if err != nil {
			t.Errorf("figure %s: %v", m[1], err)
			continue
		}
		kinds = append(kinds, m[2])
		svgs = append(svgs, string(b))
		alts = append(alts, m[4])
		if !strings.Contains(m[5], m[4]) {
			t.Errorf("figure %s: caption %q does not repeat the title %q", m[1], m[5], m[4])
		}
	}
	return
}

func TestLoadReportRunAndWriteReport(t *testing.T) {
	root := t.TempDir()
	dirA, dirB := filepath.Join(root, "a"), filepath.Join(root, "b")
	writeTinyRunDir(t, dirA, "tiny <script>alert(1)</script>")
	writeTinyRunDir(t, dirB, "tiny-b")
	if err := os.Remove(filepath.Join(dirB, "results.csv")); err != nil {
		t.Fatal(err)
	}
	a, err := LoadReportRun(testBackend(), dirA, false)
	if err != nil {
		t.Fatal(err)
	}
	if a.Stats == nil || a.Stats.Params <= 0 || len(a.Components) == 0 || a.Curves == nil || len(a.Heatmaps) != 5 ||
		len(a.Notes) != 0 {
		t.Fatalf("run a: stats %v, %d components, curves %v, %d heat maps, notes %q", a.Stats, len(a.Components),
			a.Curves != nil, len(a.Heatmaps), a.Notes)
	}
	if a.Config.Epochs != 6 || a.Config.Model.Family != "seqresnet-cifar" || a.Config.TrainImages != 640 {
		t.Errorf("config: %+v", a.Config)
	}
	if len(a.HostInfo) != 2 || a.HostInfo[0] != (KeyValue{"hostname", "testhost"}) || a.HostInfo[1] != (KeyValue{"num_cpu", "2"}) {
		t.Errorf("host info: %q", a.HostInfo)
	}
	b, err := LoadReportRun(nil, dirB, true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Stats != nil || b.Curves != nil || len(b.Heatmaps) != 0 || len(b.Notes) != 3 {
		t.Errorf("run b (no backend, no results, no best checkpoint): stats %v, curves %v, %d heat maps, notes %q",
			b.Stats, b.Curves != nil, len(b.Heatmaps), b.Notes)
	}

	var buf bytes.Buffer
	err = WriteReport(&buf, ReportData{Runs: []ReportRun{a, b}, Generated: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Environment: HostEnvironment()})
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"<!DOCTYPE html>", "<title>SeqConv run report</title>", `<h2 id="summary">`,
		`<h2 id="curves">Training curves</h2>`, `<h2 id="heatmaps">`, `id="environment-table"`, "2025-01-02 03:04:05",
		"tiny &lt;script&gt;alert(1)&lt;/script&gt;", "tiny-b", "82.00% (error 18.00%)", "(epoch 6)", "1003.5 images/s",
		"60.8 s", "hostname: testhost", "Go Backend: test", "Stage1/0/LayerB", "augmentation crop:2",
		"multistep(0.1, [3 5], 0.1)", "no training curves", "no heat maps", "model summary not computed"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Errorf("the run name was not escaped")
	}
	for _, bad := range []string{`src="http`, `href="http`, "@import", "url(http", "<link"} {
		if strings.Contains(page, bad) {
			t.Errorf("report is not self-contained: it has %q", bad)
		}
	}
	kinds, svgs, alts := reportFigures(t, page)
	if strings.Join(kinds, ",") != "curves,heatmaps" {
		t.Fatalf("figures %q, want curves and one heat-map figure", kinds)
	}
	if alts[0] != "Training curves" || !strings.HasPrefix(alts[1], "Weight visualization: tiny &lt;script&gt;") {
		t.Errorf("figure titles %q", alts)
	}
	if !strings.Contains(svgs[0], "<svg") || !strings.Contains(svgs[0], "top-1 error") {
		t.Errorf("curves figure is not the curves SVG")
	}
	if !strings.Contains(svgs[1], "Stage1/0/LayerA") || !strings.Contains(svgs[1], "utilization") {
		t.Errorf("heat-map figure is not the heat-map SVG")
	}

	if err := WriteReport(&buf, ReportData{}); err == nil {
		t.Errorf("a report without runs was accepted")
	}
	if _, err := LoadReportRun(nil, filepath.Join(root, "missing"), false); err == nil {
		t.Errorf("a missing run directory was accepted")
	}
	if _, err := LoadReportRun(nil, root, false); err == nil || !strings.Contains(err.Error(), "not a run directory") {
		t.Errorf("a directory without config.json: err %v", err)
	}
}

// fakeHeatmap returns a heat map of a layer with the given utilization.
func fakeHeatmap(name string, k, filters int, dense bool, window int, u float64) *Heatmap {
	return &Heatmap{Layer: LayerInfo{Name: name, K: k, Filters: filters, Dense: dense, Window: window}, Utilization: u}
}

func TestCompareUtilization(t *testing.T) {
	windowed := []*Heatmap{
		fakeHeatmap("Head", 4, 4, true, 0, 0.5),
		fakeHeatmap("L1", 4, 4, false, 16, 0.9),
		fakeHeatmap("L2", 4, 1, false, 16, 0.7),
		fakeHeatmap("L3", 4, 4, false, 16, 0.6),
	}
	dense := []*Heatmap{
		fakeHeatmap("Head", 4, 4, true, 0, 0.6),
		fakeHeatmap("L3", 4, 4, true, 0, 0.5),
		fakeHeatmap("L1", 4, 4, true, 0, 0.7),
		fakeHeatmap("L2", 4, 1, false, 16, 0.8),
	}
	c, err := CompareUtilization([]string{"windowed", "dense"}, [][]*Heatmap{windowed, dense})
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	if c.Differing != 2 || len(c.Layers) != 4 || c.Layers[1].Name != "L1" || !c.Layers[1].Differs || c.Layers[2].Differs ||
		c.Layers[0].Differs || c.Layers[3].Utilization[1] != 0.5 {
		t.Errorf("layers %+v, %d differ", c.Layers, c.Differing)
	}
	if !near(c.MeanDiffering[0], 0.75) || !near(c.MeanDiffering[1], 0.6) || !near(c.MeanAll[0], 0.675) ||
		!near(c.MeanAll[1], 0.65) {
		t.Errorf("means: differing %v, all %v", c.MeanDiffering, c.MeanAll)
	}

	// Nothing differs: NaN means over the differing layers.
	c, err = CompareUtilization([]string{"a", "b"}, [][]*Heatmap{windowed, windowed})
	if err != nil || c.Differing != 0 || !math.IsNaN(c.MeanDiffering[0]) {
		t.Errorf("identical variants: %v, %d differ, %v", err, c.Differing, c.MeanDiffering)
	}

	// Mismatched architectures.
	for name, maps := range map[string][][]*Heatmap{
		"missing layer": {windowed, {dense[0], dense[1], dense[2], fakeHeatmap("L9", 4, 4, true, 0, 1)}},
		"fewer layers":  {windowed, dense[:3]},
		"other k":       {windowed, {dense[0], dense[1], fakeHeatmap("L1", 8, 4, true, 0, 1), dense[3]}},
		"no layer":      {nil, nil},
	} {
		if _, err := CompareUtilization([]string{"a", "b"}, maps); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := CompareUtilization([]string{"a"}, [][]*Heatmap{windowed, dense}); err == nil {
		t.Errorf("names and maps of different lengths accepted")
	}
}

func TestWriteReportComparison(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	writeTinyRunDir(t, dir, "tiny")
	r, err := LoadReportRun(testBackend(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	cmp, err := CompareUtilization([]string{"windowed", "dense"}, [][]*Heatmap{r.Heatmaps, r.Heatmaps})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err = WriteReport(&buf, ReportData{Title: "Experiment & co", Runs: []ReportRun{r, r},
		Comparison: &Comparison{Title: "Windowed vs dense", Intro: "Same model <twice>.", Command: "seqconv experiment x",
			Utilization: cmp, Accuracy: []float64{98.5, 97.25}, Conclusion: "It agrees."}})
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{"<title>Experiment &amp; co</title>", `<h2 id="comparison">Windowed vs dense</h2>`,
		"Same model &lt;twice&gt;.", "<code>seqconv experiment x</code>", "98.50%", "97.25%", "It agrees.",
		`id="comparison-layers"`, "Downsample2/ExtensionLayer", "windowed (16 ch)", "tiny (run)"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if kinds, _, _ := reportFigures(t, page); strings.Join(kinds, ",") != "curves,heatmaps,heatmaps" {
		t.Errorf("figures %q", kinds)
	}
}
