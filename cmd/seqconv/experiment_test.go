package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/experiment"
)

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
	var s experiment.Summary
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
