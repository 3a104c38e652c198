package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// TestDenseWindowGroups checks that the window denseWindowGroups picks makes every multi-filter
// SeqConv layer dense, as analysis.SeqConvLayers reads it off the weight shapes, and that the
// equivalence has the expected boundary: g'*k must cover the widest sequence C_in + (n-1)*k.
func TestDenseWindowGroups(t *testing.T) {
	backend, err := newBackend(io.Discard, engine.Training)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	mnist, err := models.Get("seqresnet-mnist")
	if err != nil {
		t.Fatal(err)
	}
	mnistK8 := mnist
	mnistK8.Granularity = models.IntList{8}
	demo, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		cfg         models.Config
		window      int // want denseWindowGroups
		minimal     int // the smallest dense window: the widest sequence in groups
		differ      int // layers whose aggregation differs
		maxFilters  int
		totalLayers int
	}{
		// Widths 16/32/64. k=16: Stage2 (2 filters), Downsample2 extension (2), Stage3 (4) differ; the
		// widest sequence is Stage3's 64 + 3*16 = 112 channels = 7 groups.
		{"seqresnet-mnist", mnist, 8, 7, 5, 4, 9},
		// k=8: every layer but the dense Head differs; the widest sequence is 64 + 7*8 = 120 = 15 groups.
		{"seqresnet-mnist k=8", mnistK8, 16, 15, 8, 8, 9},
		// The authors' CIFAR demo: widths 112/224/336, k=16; Stage3's 21 filters read up to 336 + 20*16 = 656
		// channels = 41 groups.
		{"seqresnet-cifar-demo", demo, 42, 41, 8, 21, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := denseWindowGroups(tc.cfg)
			if g != tc.window {
				t.Errorf("denseWindowGroups = %d, want %d", g, tc.window)
			}
			windowed, dense := tc.cfg, tc.cfg
			dense.Window = g
			differ, err := checkVariants(backend, windowed, dense)
			if err != nil {
				t.Fatal(err)
			}
			layers, err := variantLayers(backend, dense)
			if err != nil {
				t.Fatal(err)
			}
			maxFilters := 0
			for _, l := range layers {
				maxFilters = max(maxFilters, l.Filters)
				if l.Filters > 1 && !l.Dense {
					t.Errorf("dense variant: layer %s is not dense: %s", l.Name, l)
				}
			}
			wl, err := variantLayers(backend, windowed)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range wl {
				if l.Name != "Head" && l.Dense {
					t.Errorf("windowed variant: layer %s is dense", l.Name)
				}
			}
			if differ != tc.differ || maxFilters != tc.maxFilters || len(layers) != tc.totalLayers {
				t.Errorf("%d layers differ, at most %d filters, %d layers; want %d, %d, %d", differ, maxFilters,
					len(layers), tc.differ, tc.maxFilters, tc.totalLayers)
			}
			// The smallest dense window is still dense; one group less cuts the widest sequence.
			dense.Window = tc.minimal
			if _, err := checkVariants(backend, windowed, dense); err != nil {
				t.Errorf("window %d (the widest sequence): %v", tc.minimal, err)
			}
			dense.Window = tc.minimal - 1
			if _, err := checkVariants(backend, windowed, dense); err == nil || !strings.Contains(err.Error(), "not dense") {
				t.Errorf("window %d (one group short of the widest sequence): err %v", tc.minimal-1, err)
			}
		})
	}
	// A model whose windowed layers all have one filter (widths 8/16/24, k=8, no block after Stage1) has
	// nothing to compare.
	single, err := models.Get(tinyModelConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	dense := single
	dense.Window = denseWindowGroups(single)
	if _, err := checkVariants(backend, single, dense); err == nil || !strings.Contains(err.Error(), "smaller --granularity") {
		t.Errorf("a model without multi-filter windowed layers: err %v", err)
	}
}

// TestExperimentCommand runs a tiny windowed-vs-dense experiment end to end on the embedded MNIST.
func TestExperimentCommand(t *testing.T) {
	out := filepath.Join(t.TempDir(), "exp")
	args := []string{"experiment", "windowed-vs-dense", "--out", out, "--max-train-images", "128",
		"--max-eval-images", "100", "--seed", "3", "--quiet"}
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr, stdout)
	}
	assertNoCrash(t, stdout, stderr)
	for _, want := range []string{"seqresnet-mnist-k8", "128 training images", "100 test images", "seed 3",
		"window g' = 16 groups", "8 SeqConv layers aggregate differently", "== windowed", "== dense",
		"Stage3/0/LayerB", "Head", "(same)", "mean over the 8 layers that differ", "mean over all 9 SeqConv layers",
		"final top-1 test accuracy", "this run", "wall time", "report.html"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "epoch 1/2") {
		t.Errorf("--quiet printed the epoch lines:\n%s", stdout)
	}
	for _, v := range []string{"windowed", "dense"} {
		checkPNGFile(t, filepath.Join(out, v+"-heatmap.png"), 1000, 800, 50)
		for _, f := range []string{"config.json", "results.csv", "checkpoint", "best"} {
			if _, err := os.Stat(filepath.Join(out, v, f)); err != nil {
				t.Errorf("run directory %s: %v", v, err)
			}
		}
		if b, err := os.ReadFile(filepath.Join(out, v+"-utilization.csv")); err != nil || !strings.HasPrefix(string(b), "layer,") {
			t.Errorf("%s utilization CSV: %v", v, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s experimentSummary
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Experiment != "windowed-vs-dense" || s.ColorMap != "jet" || s.Granularity != 8 || s.TrainImages != 128 ||
		s.TestImages != 100 || s.Seed != 3 || s.Epochs != 2 || s.DenseWindow != 16 || s.DifferingLayers != 8 ||
		len(s.Variants) != 2 || len(s.Layers) != 9 {
		t.Fatalf("summary.json:\n%s", b)
	}
	wantCmd := "seqconv experiment windowed-vs-dense --out " + shellQuote(out) +
		" --epochs 2 --max-train-images 128 --max-eval-images 100 --seed 3"
	if s.Command != wantCmd {
		t.Errorf("command %q, want %q", s.Command, wantCmd)
	}
	w, d := s.Variants[0], s.Variants[1]
	if w.Name != "windowed" || d.Name != "dense" || w.WindowGroups != 0 || d.WindowGroups != 16 || !(d.Params > w.Params) ||
		!(d.MACs > w.MACs) || w.HeatmapFile != "windowed-heatmap.png" {
		t.Errorf("variants: %+v", s.Variants)
	}
	for _, v := range s.Variants {
		if v.TestAccuracy < 0 || v.TestAccuracy > 100 || !(v.MeanUtilization > 0 && v.MeanUtilization <= 1) ||
			!(v.TrainingSeconds > 0) {
			t.Errorf("variant %s: %+v", v.Name, v)
		}
	}
	if l := s.Layers[0]; l.Name != "Head" || l.Differs || l.Aggregation["windowed"] != "dense" {
		t.Errorf("first layer: %+v", l)
	}
	if l := s.Layers[8]; l.Name != "Stage3/0/LayerB" || !l.Differs || l.Filters != 8 ||
		l.Aggregation["windowed"] != "windowed (64 channels)" || l.Aggregation["dense"] != "dense" {
		t.Errorf("last layer: %+v", l)
	}

	b, err = os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`<h2 id="comparison">Windowed vs dense aggregation</h2>`, "<code>" + wantCmd + "</code>",
		"windowed (seqresnet-mnist-k8-windowed)", "dense (seqresnet-mnist-k8-dense)", "windowed (64 ch)", "jet"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	charts := reportCharts(t, page)
	if len(charts) != 3 || charts[0].kind != "curves" || charts[1].kind != "heatmaps" || charts[2].kind != "heatmaps" {
		t.Errorf("report charts: %d", len(charts))
	}

	// The same output directory again: refused before training.
	code, stdout, stderr = runCLI(t, args...)
	if code != 2 || !strings.Contains(stderr, "is not empty") || stdout != "" {
		t.Errorf("rerun into the same --out: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestExperimentBadInputs(t *testing.T) {
	out := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no name", []string{"experiment"}, "want an experiment name"},
		{"flag first", []string{"experiment", "--epochs", "1"}, "want an experiment name"},
		{"unknown", []string{"experiment", "dense-vs-windowed"}, "unknown experiment"},
		{"epochs", []string{"experiment", "windowed-vs-dense", "--out", out, "--epochs", "0"}, "--epochs"},
		{"few images", []string{"experiment", "windowed-vs-dense", "--out", out, "--max-train-images", "100"}, "one batch"},
		{"negative eval", []string{"experiment", "windowed-vs-dense", "--out", out, "--max-eval-images", "-1"}, "--max-eval-images"},
		{"granularity", []string{"experiment", "windowed-vs-dense", "--out", out, "--granularity", "5"}, "--granularity 5"},
		{"negative granularity", []string{"experiment", "windowed-vs-dense", "--out", out, "--granularity", "-1"}, "--granularity"},
		{"unknown model", []string{"experiment", "windowed-vs-dense", "--out", out, "--model", "nope"}, "unknown model"},
		{"baseline", []string{"experiment", "windowed-vs-dense", "--out", out, "--model", "resnet50"}, "baseline"},
		{"rgb model", []string{"experiment", "windowed-vs-dense", "--out", out, "--model", "seqresnet-cifar-demo"}, "3-channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "seqconv: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("want one line starting with \"seqconv: \" mentioning %q, got:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("unexpected stdout:\n%s", stdout)
			}
			assertNoCrash(t, stdout, stderr)
		})
	}
	// Help.
	code, stdout, _ := runCLI(t, "experiment", "--help")
	if code != 0 || !strings.Contains(stdout, "windowed-vs-dense") || !strings.Contains(stdout, "-max-train-images") {
		t.Errorf("help: exit %d:\n%s", code, stdout)
	}
	code, stdout, _ = runCLI(t, "experiment", "windowed-vs-dense", "-h")
	if code != 0 || !strings.Contains(stdout, "-granularity") {
		t.Errorf("help: exit %d:\n%s", code, stdout)
	}
}

// TestConclusion checks the three verdicts: training widened the windowed-minus-dense gap (agrees),
// the gap was there at initialization already (neither), dense is higher (does not agree).
func TestConclusion(t *testing.T) {
	comparison := func(w, d float64) analysis.UtilizationComparison {
		return analysis.UtilizationComparison{
			Variants:      []string{"windowed", "dense"},
			Layers:        []analysis.ComparedLayer{{Name: "L", Differs: true, Utilization: []float64{w, d}}},
			MeanDiffering: []float64{w, d}, MeanAll: []float64{w, d}, Differing: 1,
		}
	}
	w, d := &train.Result{FinalValidError: 2}, &train.Result{FinalValidError: 3.5}
	for _, tc := range []struct {
		trained, initial [2]float64
		want             string
	}{
		{[2]float64{0.80, 0.70}, [2]float64{0.85, 0.84}, "this run agrees"},
		{[2]float64{0.883, 0.878}, [2]float64{0.885, 0.881}, "neither supports nor contradicts"},
		{[2]float64{0.70, 0.75}, [2]float64{0.85, 0.84}, "does not agree"},
	} {
		got := conclusion(comparison(tc.trained[0], tc.trained[1]), comparison(tc.initial[0], tc.initial[1]), w, d)
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "windowed 98.00%, dense 96.50%") {
			t.Errorf("%v after training, %v at initialization: %q, want %q", tc.trained, tc.initial, got, tc.want)
		}
	}
}
