package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// tinyRunModelJSON is a small SeqResNet-B for 8x8 grey images (k = 4): a dense Head layer, a residual
// block of two windowed layers and two downsampling extension layers.
const tinyRunModelJSON = `{"name":"tiny-8x8","family":"seqresnet-cifar","variant":"b","classes":4,"in_channels":1,
"resolution":8,"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":1,"granularity":4,"drop_rate":0}`

// randomImages returns n 8x8 grey images whose class (0..3) is the brighter quadrant.
func randomImages(name string, n int, seed uint64) *data.ImageSet {
	rng := rand.New(rand.NewPCG(seed, 3))
	s := &data.ImageSet{Name: name, N: n, H: 8, W: 8, C: 1, NumClasses: 4, Pixels: make([]uint8, n*64),
		Labels: make([]int32, n)}
	for i := range n {
		class := rng.IntN(4)
		s.Labels[i] = int32(class)
		for p := range 64 {
			v := rng.IntN(110)
			if (p/8)/4 == class/2 && (p%8)/4 == class%2 {
				v += 120
			}
			s.Pixels[i*64+p] = uint8(v)
		}
	}
	return s
}

// testBackendName is the name of the engine the tests' runs train on (newBackend's choice: $GOMLX_BACKEND, else
// ONNX Runtime where it is installed, else the Go backend).
func testBackendName(t *testing.T) string {
	t.Helper()
	backend, err := newBackend(io.Discard, engine.Training)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	return backend.Name()
}

// trainTinyRun trains the tiny model for 2 epochs (the learning rate drops after the first) on 64 random
// images with train.Run and returns the run directory, in t's temporary directory.
func trainTinyRun(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.json")
	if err := os.WriteFile(path, []byte(tinyRunModelJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := models.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	backend, err := newBackend(io.Discard, engine.Training)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	runDir := filepath.Join(dir, "run")
	_, err = train.Run(context.Background(), backend, train.Config{
		Model: cfg, Epochs: 2, BatchSize: 32, LR: 0.1, Momentum: 0.9, Schedule: "multistep",
		Milestones: []int{1}, Gamma: 0.1, Seed: 1, RunDir: runDir, Data: "random", EvalBatchSize: 32, Workers: 1,
	}, train.ImageSetData(randomImages("train", 64, 1), nil), train.ImageSetData(randomImages("valid", 32, 2), nil), nil)
	if err != nil {
		t.Fatalf("training the tiny run: %v", err)
	}
	return runDir
}

func checkPNGFile(t *testing.T, path string, minW, minH, minColors int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r := img.Bounds()
	colors := map[[4]uint32]bool{}
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			colors[[4]uint32{cr, cg, cb, ca}] = true
		}
	}
	if r.Dx() < minW || r.Dy() < minH || len(colors) < minColors {
		t.Errorf("%s: %dx%d with %d colours, want at least %dx%d and %d colours", path, r.Dx(), r.Dy(),
			len(colors), minW, minH, minColors)
	}
}

func checkSVGFile(t *testing.T, path string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(b, &root); err != nil || root.XMLName.Local != "svg" {
		t.Errorf("%s: not an SVG document (%v, root %q)", path, err, root.XMLName.Local)
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s lacks %q", path, w)
		}
	}
}

// TestAnalysisCommands runs "seqconv heatmap" and "seqconv plot" on a run directory written by train.Run.
func TestAnalysisCommands(t *testing.T) {
	runDir := trainTinyRun(t)
	t.Run("heatmap", func(t *testing.T) { testHeatmapCommand(t, runDir) })
	t.Run("plot", func(t *testing.T) { testPlotCommand(t, runDir) })
	t.Run("bad inputs", func(t *testing.T) { testAnalysisBadInputs(t, runDir) })
}

func testHeatmapCommand(t *testing.T, runDir string) {
	out := t.TempDir()

	// Default output, all layers.
	code, stdout, stderr := runCLI(t, "heatmap", "--run", runDir)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	assertNoCrash(t, stdout, stderr)
	for _, want := range []string{"LAYER", "UTILIZATION", "Head ", "dense", "Stage1/0/LayerA", "windowed",
		"Downsample2/ExtensionLayer", "heatmaps.png"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	checkPNGFile(t, filepath.Join(runDir, "heatmaps.png"), 1000, 800, 50)

	// SVG of the best checkpoint's Stage1 layers, with the CSV.
	svg, csvPath := filepath.Join(out, "stage1.svg"), filepath.Join(out, "stage1.csv")
	code, stdout, stderr = runCLI(t, "heatmap", "--run", runDir, "--best", "--layers", "^Stage1/", "--out", svg,
		"--csv", csvPath)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if strings.Contains(stdout, "Head") || !strings.Contains(stdout, "Stage1/0/LayerB") {
		t.Errorf("--layers ^Stage1/ printed:\n%s", stdout)
	}
	checkSVGFile(t, svg, "Stage1/0/LayerA", "Stage1/0/LayerB", "target group (filter)", "utilization")
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	// Two windowed layers of 4 filters reading 16 channels (4 groups) each: 2*4*4 cells.
	if err != nil || len(rows) != 1+32 || rows[0][0] != "layer" || rows[1][0] != "Stage1/0/LayerA" {
		t.Errorf("CSV (%v): %d rows, %q", err, len(rows), rows)
	}

	// PNG of one layer, upper-case extension.
	one := filepath.Join(out, "head.PNG")
	if code, _, stderr = runCLI(t, "heatmap", "--run", runDir, "--layers", "^Head$", "--out", one); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	checkPNGFile(t, one, 500, 400, 50)
}

func testPlotCommand(t *testing.T, runDir string) {
	code, stdout, stderr := runCLI(t, "plot", "--run", runDir)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	assertNoCrash(t, stdout, stderr)
	if !strings.Contains(stdout, "tiny-8x8") || !strings.Contains(stdout, "2 epochs") {
		t.Errorf("stdout:\n%s", stdout)
	}
	checkPNGFile(t, filepath.Join(runDir, "curves.png"), 600, 600, 20)

	// Two runs on one SVG chart: a second run directory with hand-written results.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	results := "epoch,train_loss,train_error,valid_loss,valid_error,valid_top5_error,lr,seconds,images_per_second\n" +
		"1,1.5,60,1.4,55,10,0.1,1,100\n2,1.0,40,1.1,42,5,0.1,1,100\n3,0.7,30,0.9,35,4,0.01,1,100\n"
	if err := os.WriteFile(filepath.Join(other, "results.csv"), []byte(results), 0o644); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(t.TempDir(), "curves.svg")
	code, stdout, stderr = runCLI(t, "plot", "--run", runDir, "--run", other, "--out", svg)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "other") || !strings.Contains(stdout, "3 epochs") {
		t.Errorf("stdout:\n%s", stdout)
	}
	checkSVGFile(t, svg, "tiny-8x8", "other", "top-1 error")
}

func testAnalysisBadInputs(t *testing.T, runDir string) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := t.TempDir()
	noCheckpoint := t.TempDir() // A run directory with only its config.json.
	if b, err := os.ReadFile(filepath.Join(runDir, "config.json")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(filepath.Join(noCheckpoint, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"heatmap no run", []string{"heatmap"}, 2, "--run is required"},
		{"heatmap missing run", []string{"heatmap", "--run", missing}, 2, "no such directory"},
		{"heatmap empty run", []string{"heatmap", "--run", empty}, 2, "not a run directory (no config.json)"},
		{"heatmap no checkpoint", []string{"heatmap", "--run", noCheckpoint}, 1, "no checkpoint"},
		{"heatmap no layer", []string{"heatmap", "--run", runDir, "--layers", "Nope"}, 2, "matches none"},
		{"heatmap bad regexp", []string{"heatmap", "--run", runDir, "--layers", "("}, 2, "--layers"},
		{"heatmap bad extension", []string{"heatmap", "--run", runDir, "--out", filepath.Join(empty, "x.gif")}, 2, ".gif"},
		{"heatmap no extension", []string{"heatmap", "--run", runDir, "--out", filepath.Join(empty, "x")}, 2, "want a figure file"},
		{"plot no run", []string{"plot"}, 2, "--run is required"},
		{"plot missing run", []string{"plot", "--run", missing}, 2, "no such directory"},
		{"plot empty run", []string{"plot", "--run", empty}, 2, "not a run directory (no config.json)"},
		{"plot no results", []string{"plot", "--run", noCheckpoint}, 1, "results.csv"},
		{"plot two runs no out", []string{"plot", "--run", runDir, "--run", runDir}, 2, "--out is required"},
		{"plot bad extension", []string{"plot", "--run", runDir, "--out", "c.jpg"}, 2, ".jpg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
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
	if _, err := os.Stat(filepath.Join(empty, "checkpoint")); err == nil {
		t.Errorf("heatmap created a checkpoint directory in the run directory")
	}
}
