package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/train"
)

// tiny32ModelConfig writes a tiny SeqResNet-B config for 32x32 RGB images with the given classes
// and dropout, and returns its path.
func tiny32ModelConfig(t *testing.T, classes int, dropRate float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), fmt.Sprintf("tiny32-%d.json", classes))
	cfg := fmt.Sprintf(`{"name":"tiny32","family":"seqresnet-cifar","variant":"b","classes":%d,"in_channels":3,
"resolution":32,"stem_stride":2,"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":0.5,
"granularity":8,"drop_rate":%g}`, classes, dropRate)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// cifarRecord returns one CIFAR record: the label bytes, then the 32x32 red, green and blue planes
// of a noisy image whose brightest channel and quadrant depend on the class.
func cifarRecord(rng *rand.Rand, labels []byte, class int) []byte {
	const plane = 32 * 32
	rec := append([]byte{}, labels...)
	pix := make([]byte, 3*plane)
	for ch := range 3 {
		for y := range 32 {
			for x := range 32 {
				v := 40 + rng.IntN(60)
				if ch == class%3 {
					v += 60
				}
				if (y/16)*2+x/16 == class%4 {
					v += 80
				}
				pix[ch*plane+y*32+x] = byte(v)
			}
		}
	}
	return append(rec, pix...)
}

// writeCIFAR10 writes a tiny CIFAR-10 binary distribution in dir/cifar-10-batches-bin: perFile
// records in each of data_batch_1..5.bin, test records in test_batch.bin, and batches.meta.txt.
func writeCIFAR10(t *testing.T, dir string, perFile, test int) {
	t.Helper()
	sub := filepath.Join(dir, "cifar-10-batches-bin")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(10, 1))
	write := func(name string, n int) {
		var b []byte
		for range n {
			class := rng.IntN(10)
			b = append(b, cifarRecord(rng, []byte{byte(class)}, class)...)
		}
		if len(b) != n*3073 {
			t.Fatalf("record size")
		}
		if err := os.WriteFile(filepath.Join(sub, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		write(fmt.Sprintf("data_batch_%d.bin", i), perFile)
	}
	write("test_batch.bin", test)
	meta := "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"
	if err := os.WriteFile(filepath.Join(sub, "batches.meta.txt"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeCIFAR100 writes a tiny CIFAR-100 binary distribution in dir/cifar-100-binary: train.bin and
// test.bin with 2 label bytes (coarse, fine) per record.
func writeCIFAR100(t *testing.T, dir string, train, test int) {
	t.Helper()
	sub := filepath.Join(dir, "cifar-100-binary")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(100, 1))
	for _, f := range []struct {
		name string
		n    int
	}{{"train.bin", train}, {"test.bin", test}} {
		var b []byte
		for range f.n {
			fine := rng.IntN(100)
			b = append(b, cifarRecord(rng, []byte{byte(fine / 5), byte(fine)}, fine)...)
		}
		if err := os.WriteFile(filepath.Join(sub, f.name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeImageFolder writes root/train/<class>/*.png and root/val/<class>/*.png: PNG images of
// various sizes whose colour depends on the class.
func writeImageFolder(t *testing.T, root string, classes []string, perTrain, perVal int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	for _, split := range []struct {
		name string
		n    int
	}{{"train", perTrain}, {"val", perVal}} {
		for ci, class := range classes {
			dir := filepath.Join(root, split.name, class)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range split.n {
				w, h := 34+rng.IntN(16), 30+rng.IntN(16)
				img := image.NewNRGBA(image.Rect(0, 0, w, h))
				for y := range h {
					for x := range w {
						c := [3]int{40 + rng.IntN(50), 40 + rng.IntN(50), 40 + rng.IntN(50)}
						c[ci%3] += 120
						img.Set(x, y, color.NRGBA{uint8(c[0]), uint8(c[1]), uint8(c[2]), 255})
					}
				}
				f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%03d.png", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := png.Encode(f, img); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// readJSONL reads a run's results.jsonl.
func readJSONL(t *testing.T, runDir string) []train.EpochResult {
	t.Helper()
	rs, err := train.ReadResults(runDir)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// readRunConfigMap reads a run's config.json as a map.
func readRunConfigMap(t *testing.T, runDir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(runDir, train.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// evalJSON runs "seqconv eval --json" and decodes its result.
func evalJSON(t *testing.T, args ...string) evalResult {
	t.Helper()
	code, out, errOut := runCLI(t, append([]string{"eval", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("eval %q: exit %d, stderr:\n%s", args, code, errOut)
	}
	var r evalResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("eval --json output %q: %v", out, err)
	}
	return r
}

// TestTrainCIFAR10 trains the tiny model on a tiny CIFAR-10 written in the official binary format,
// and evaluates the run.
func TestTrainCIFAR10(t *testing.T) {
	dataDir := t.TempDir()
	writeCIFAR10(t, dataDir, 16, 24)
	runDir := filepath.Join(t.TempDir(), "run")
	model := tiny32ModelConfig(t, 10, 0)
	code, out, errOut := runCLI(t, "train", "--data", "cifar10", "--data-dir", dataDir, "--model", model,
		"--epochs", "2", "--batch", "16", "--eval-batch", "8", "--workers", "1", "--run", runDir)
	t.Logf("stdout:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	assertNoCrash(t, out, errOut)
	for _, want := range []string{"80 training images", "24 test images", "10 classes", "32x32", "augmentation crop:4+flip",
		"epoch 2/2 train_loss", "test accuracy"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	rows := readJSONL(t, runDir)
	if len(rows) != 2 || rows[1].Epoch != 2 || !(rows[1].TrainLoss > 0) || math.IsNaN(rows[1].ValidLoss) {
		t.Fatalf("results.jsonl: %+v", rows)
	}
	cfg := readRunConfigMap(t, runDir)
	if cfg["data"] != "cifar10" || cfg["data_dir"] != dataDir || cfg["augmentation"] != "crop:4+flip" ||
		cfg["train_images"] != 80.0 || cfg["valid_images"] != 24.0 {
		t.Errorf("config.json: %v", cfg)
	}
	classes, err := readClasses(runDir)
	if err != nil || len(classes) != 10 || classes[0] != "airplane" || classes[9] != "truck" {
		t.Errorf("classes.json: %q, %v", classes, err)
	}

	// eval: the latest checkpoint gives the last epoch's validation error, the best the best's.
	latest := evalJSON(t, "--run", runDir, "--batch", "5")
	if latest.Images != 24 || float64(latest.Top1Error) != rows[1].ValidError ||
		math.Abs(float64(latest.Loss)-rows[1].ValidLoss) > 1e-5 || latest.Checkpoint != "latest" {
		t.Errorf("eval latest: %+v, want the errors of epoch 2: %+v", latest, rows[1])
	}
	best := evalJSON(t, "--run", runDir, "--best")
	if float64(best.Top1Error) != min(rows[0].ValidError, rows[1].ValidError) {
		t.Errorf("eval --best: %+v, results %+v", best, rows)
	}
	code, out, errOut = runCLI(t, "eval", "--run", runDir, "--max-images", "8")
	if code != 0 || !strings.Contains(out, "8 test images") || !strings.Contains(out, "top-1 error") ||
		!strings.Contains(out, "top-5 error") {
		t.Errorf("eval: exit %d\n%s\n%s", code, out, errOut)
	}
	// Evaluating on CIFAR-100 (100 classes) is refused clearly.
	writeCIFAR100(t, dataDir, 10, 10)
	code, _, errOut = runCLI(t, "eval", "--run", runDir, "--data", "cifar100", "--data-dir", dataDir)
	if code != exitUsage || !strings.Contains(errOut, "10 classes") || !strings.Contains(errOut, "100 classes") {
		t.Errorf("eval on cifar100: exit %d, %s", code, errOut)
	}
	// Missing data.
	code, _, errOut = runCLI(t, "eval", "--run", runDir, "--data-dir", t.TempDir())
	if code != exitFailure || !strings.Contains(errOut, "no CIFAR-10 data") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("eval without the data: exit %d, %s", code, errOut)
	}
}

// TestTrainCIFAR100 trains on a tiny CIFAR-100 with --classes 100, and checks the class-count
// errors.
func TestTrainCIFAR100(t *testing.T) {
	dataDir := t.TempDir()
	writeCIFAR100(t, dataDir, 48, 20)
	runDir := filepath.Join(t.TempDir(), "run")
	model10 := tiny32ModelConfig(t, 10, 0)
	args := []string{"train", "--data", "cifar-100", "--data-dir", dataDir, "--model", model10,
		"--epochs", "1", "--batch", "16", "--workers", "1", "--run", runDir, "--quiet"}
	code, _, errOut := runCLI(t, args...)
	if code != exitUsage || !strings.Contains(errOut, "has 10 classes, but cifar-100 has 100 classes") ||
		!strings.Contains(errOut, "--classes 100") {
		t.Fatalf("10-class model on cifar100: exit %d, stderr %s", code, errOut)
	}
	code, out, errOut := runCLI(t, append(args, "--classes", "100")...)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "48 training images") || !strings.Contains(out, "100 classes") {
		t.Errorf("stdout:\n%s", out)
	}
	rows := readJSONL(t, runDir)
	if len(rows) != 1 || rows[0].ValidTop5Error > rows[0].ValidError {
		t.Errorf("results: %+v", rows)
	}
	r := evalJSON(t, "--run", runDir)
	if r.Images != 20 || float64(r.Top1Error) != rows[0].ValidError || float64(r.Top5Error) != rows[0].ValidTop5Error {
		t.Errorf("eval: %+v, results %+v", r, rows[0])
	}
	// A truncated data file is a clear error naming it.
	if err := os.Truncate(filepath.Join(dataDir, "cifar-100-binary", "test.bin"), 3074*5+7); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "eval", "--run", runDir)
	if code != exitFailure || !strings.Contains(errOut, "test.bin") {
		t.Errorf("truncated test.bin: exit %d, %s", code, errOut)
	}
	assertNoCrash(t, errOut)
}

// TestTrainImageFolder trains on an image folder with the imagenet recipe (random resized crops,
// colour jitter, lighting) and evaluates it, checking classes.json and the class checks.
func TestTrainImageFolder(t *testing.T) {
	root := filepath.Join(t.TempDir(), "shapes")
	classes := []string{"zebra", "ant", "moth"} // Class folders sort as ant, moth, zebra.
	writeImageFolder(t, root, classes, 8, 3)
	runDir := filepath.Join(t.TempDir(), "run")
	model := tiny32ModelConfig(t, 3, 0)
	code, out, errOut := runCLI(t, "train", "--data", root, "--model", model, "--recipe", "imagenet",
		"--epochs", "2", "--batch", "8", "--eval-batch", "4", "--workers", "2", "--run", runDir)
	t.Logf("stdout:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"shapes: 24 training images, 9 val images, 3 classes, 32x32",
		"augmentation rrc+flip+jitter:0.4+lighting:0.1", "batch 8", "weight decay 0.0001", "recipe imagenet",
		"milestones=[30]", "val accuracy"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	got, err := readClasses(runDir)
	if err != nil || !slices.Equal(got, []string{"ant", "moth", "zebra"}) {
		t.Errorf("classes.json: %q, %v", got, err)
	}
	cfg := readRunConfigMap(t, runDir)
	abs, _ := filepath.Abs(root)
	if cfg["data"] != abs || cfg["recipe"] != "imagenet" || cfg["momentum"] != 0.9 || cfg["nesterov"] != true ||
		cfg["batch_size"] != 8.0 || cfg["epochs"] != 2.0 || !strings.Contains(fmt.Sprint(cfg["augment"]), "RandomResizedCrop") ||
		!strings.Contains(fmt.Sprint(cfg["eval_pipeline"]), "Resize(36)+CenterCrop(32)") {
		t.Errorf("config.json: %v", cfg)
	}
	rows := readJSONL(t, runDir)
	if len(rows) != 2 {
		t.Fatalf("results: %+v", rows)
	}
	r := evalJSON(t, "--run", runDir)
	if r.Images != 9 || float64(r.Top1Error) != rows[1].ValidError {
		t.Errorf("eval: %+v, results %+v", r, rows[1])
	}
	// Evaluating on a folder whose classes differ from classes.json is refused.
	other := filepath.Join(t.TempDir(), "other")
	writeImageFolder(t, other, []string{"ant", "bee", "moth"}, 0, 2)
	code, _, errOut = runCLI(t, "eval", "--run", runDir, "--data", other)
	if code == 0 || !strings.Contains(errOut, "bee") {
		t.Errorf("eval on other classes: exit %d, %s", code, errOut)
	}
	assertNoCrash(t, errOut)
	// A 10-class model on the 3-class folder.
	code, _, errOut = runCLI(t, "train", "--data", root, "--model", tiny32ModelConfig(t, 10, 0), "--epochs", "1",
		"--run", filepath.Join(t.TempDir(), "run2"))
	if code != exitUsage || !strings.Contains(errOut, "10 classes") || !strings.Contains(errOut, "3 classes") {
		t.Errorf("class mismatch: exit %d, %s", code, errOut)
	}
}

// TestTrainRecipeCIFAR checks that --recipe cifar sets the authors' CIFAR settings and that explicit
// flags override them.
func TestTrainRecipeCIFAR(t *testing.T) {
	dataDir := t.TempDir()
	writeCIFAR10(t, dataDir, 8, 8)
	runDir := filepath.Join(t.TempDir(), "run")
	t.Setenv(dataDirEnvVar, dataDir) // --data-dir defaults to $SEQCONV_DATA.
	code, out, errOut := runCLI(t, "train", "--data", "cifar10", "--model", tiny32ModelConfig(t, 10, 0),
		"--recipe", "cifar", "--epochs", "1", "--batch", "20", "--lr", "0.05", "--workers", "1", "--run", runDir, "--quiet")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, errOut, out)
	}
	cfg := readRunConfigMap(t, runDir)
	want := map[string]any{"recipe": "cifar", "lr": 0.05, "batch_size": 20.0, "epochs": 1.0, "momentum": 0.9,
		"nesterov": true, "weight_decay": 0.0001, "schedule": "multistep", "gamma": 0.1, "augmentation": "crop:4+flip",
		"no_decay_bn_bias": false, "label_smoothing": 0.0, "data_dir": dataDir}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("config.json %s = %v, want %v", k, cfg[k], v)
		}
	}
}
