package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/train"
)

// The authors' reference case: random weights and BN statistics of seqresnet-cifar-demo, an input batch
// and PyTorch's eval-mode logits.
const (
	demoWeights = "../../interop/testdata/seqresnet-cifar-demo.weights.npz"
	demoInput   = "../../interop/testdata/seqresnet-cifar-demo.input.npy"
	demoLogits  = "../../interop/testdata/seqresnet-cifar-demo.logits.npy"
)

// importDemo imports the reference weights into a new run directory and returns it.
func importDemo(t *testing.T) string {
	t.Helper()
	runDir := filepath.Join(t.TempDir(), "run")
	code, out, errOut := runCLI(t, "import", "--model", "seqresnet-cifar-demo", "--weights", demoWeights, "--out", runDir)
	if code != 0 {
		t.Fatalf("import: exit %d, stderr:\n%s", code, errOut)
	}
	assertNoCrash(t, out, errOut)
	if !strings.Contains(out, "imported 1286 arrays") || !strings.Contains(out, "843,834") {
		t.Errorf("import stdout:\n%s", out)
	}
	return runDir
}

// relL2 returns ||got - want|| / ||want||.
func relL2(got, want []float32) float64 {
	var diff, norm float64
	for i, w := range want {
		d := float64(got[i]) - float64(w)
		diff += d * d
		norm += float64(w) * float64(w)
	}
	return math.Sqrt(diff / norm)
}

// TestImportInferReference imports the authors' weights, checks the run directory, the logits of "infer"
// against PyTorch's and that "export" gives back the imported state_dict bit for bit.
func TestImportInferReference(t *testing.T) {
	runDir := importDemo(t)
	for _, p := range []string{train.ConfigFile, train.LatestDir, train.BestDir} {
		if _, err := os.Stat(filepath.Join(runDir, p)); err != nil {
			t.Errorf("run directory lacks %s: %v", p, err)
		}
	}
	cfg, err := train.ReadRunConfig(runDir)
	if err != nil || cfg.Name != "seqresnet-cifar-demo" || cfg.Classes != 10 || cfg.Resolution != 32 {
		t.Errorf("config.json: %+v, %v", cfg, err)
	}

	want, err := interop.ReadNPYFile(demoLogits)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"latest", nil},
		{"best, batches of 2", []string{"--best", "--batch", "2"}},
	} {
		out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".npy")
		args := append([]string{"infer", "--run", runDir, "--input", demoInput, "--output", out}, tc.args...)
		code, stdout, errOut := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d, stderr:\n%s", tc.name, code, errOut)
		}
		assertNoCrash(t, stdout, errOut)
		got, err := interop.ReadNPYFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType.String() != "Float32" || !slices.Equal(got.Shape, want.Shape) {
			t.Fatalf("%s: logits %s, want %s", tc.name, got, want)
		}
		rel := relL2(got.Data.([]float32), want.Data.([]float32))
		t.Logf("%s: logits %v, relative L2 error %.3g", tc.name, got.Shape, rel)
		if !(rel <= 1e-4) {
			t.Errorf("%s: relative L2 error %.3g > 1e-4", tc.name, rel)
		}
	}

	// A float64 input gives the same logits.
	in, err := interop.ReadNPYFile(demoInput)
	if err != nil {
		t.Fatal(err)
	}
	f64 := make([]float64, len(in.Data.([]float32)))
	for i, x := range in.Data.([]float32) {
		f64[i] = float64(x)
	}
	in64, err := interop.NewArray(f64, in.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	in64Path, out64 := filepath.Join(dir, "input64.npy"), filepath.Join(dir, "logits64.npy")
	if err := interop.WriteNPYFile(in64Path, in64); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "infer", "--run", runDir, "--input", in64Path, "--output", out64); code != 0 {
		t.Fatalf("float64 input: exit %d, stderr:\n%s", code, errOut)
	}
	if got, err := interop.ReadNPYFile(out64); err != nil || relL2(got.Data.([]float32), want.Data.([]float32)) > 1e-4 {
		t.Errorf("float64 input: %v, %v", got, err)
	}

	// Any size the network takes, not only the config's 32x32: [2, 10] finite logits.
	for _, hw := range [][2]int{{28, 28}, {40, 24}, {1, 1}} {
		h, w := hw[0], hw[1]
		x := make([]float32, 2*3*h*w)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		a, err := interop.NewArray(x, 2, 3, h, w)
		if err != nil {
			t.Fatal(err)
		}
		inPath, outPath := filepath.Join(dir, fmt.Sprintf("in%dx%d.npy", h, w)), filepath.Join(dir, "out.npy")
		if err := interop.WriteNPYFile(inPath, a); err != nil {
			t.Fatal(err)
		}
		if code, _, errOut := runCLI(t, "infer", "--run", runDir, "--input", inPath, "--output", outPath); code != 0 {
			t.Fatalf("%dx%d input: exit %d, stderr:\n%s", h, w, code, errOut)
		}
		got, err := interop.ReadNPYFile(outPath)
		if err != nil || !slices.Equal(got.Shape, []int{2, 10}) {
			t.Fatalf("%dx%d input: logits %v, %v", h, w, got, err)
		}
		for _, v := range got.Data.([]float32) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%dx%d input: logits %v", h, w, got.Data)
			}
		}
	}

	// Export gives back the imported state_dict exactly, in the same key order.
	wantW, wantKeys, err := interop.ReadNPZ(demoWeights)
	if err != nil {
		t.Fatal(err)
	}
	for _, best := range []bool{false, true} {
		npz := filepath.Join(dir, "exported.npz")
		args := []string{"export", "--run", runDir, "--out", npz}
		if best {
			args = append(args, "--best")
		}
		code, stdout, errOut := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("export (best=%v): exit %d, stderr:\n%s", best, code, errOut)
		}
		assertNoCrash(t, stdout, errOut)
		got, keys, err := interop.ReadNPZ(npz)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys, wantKeys) {
			t.Errorf("export (best=%v): %d keys, want the %d reference keys in order", best, len(keys), len(wantKeys))
		}
		for _, k := range wantKeys {
			a, b := got[k], wantW[k]
			if a == nil || a.DType != b.DType || !slices.Equal(a.Shape, b.Shape) || !sameBits(a.Data, b.Data) {
				t.Errorf("export (best=%v): %s = %v, want %v bit for bit", best, k, a, b)
			}
		}
	}

	// The run directory now holds checkpoints: a second import into it is refused.
	code, _, errOut := runCLI(t, "import", "--model", "seqresnet-cifar-demo", "--weights", demoWeights, "--out", runDir)
	if code != exitUsage || !strings.Contains(errOut, "already holds a run") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("import into a used run directory: exit %d, stderr:\n%s", code, errOut)
	}
}

// sameBits compares float32, float64 and int64 data bit for bit.
func sameBits(a, b any) bool {
	switch x := a.(type) {
	case []float32:
		y, ok := b.([]float32)
		return ok && slices.EqualFunc(x, y, func(p, q float32) bool { return math.Float32bits(p) == math.Float32bits(q) })
	case []float64:
		y, ok := b.([]float64)
		return ok && slices.EqualFunc(x, y, func(p, q float64) bool { return math.Float64bits(p) == math.Float64bits(q) })
	case []int64:
		y, ok := b.([]int64)
		return ok && slices.Equal(x, y)
	}
	return false
}

// TestInteropErrors checks that bad files and flags give one-line errors naming the file, key or shape,
// with a non-zero exit code and no panic.
func TestInteropErrors(t *testing.T) {
	runDir := importDemo(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := write("corrupt.npz", []byte("PK\x03\x04 this is not a zip archive"))
	truncated := write("truncated.npz", func() []byte {
		b, err := os.ReadFile(demoWeights)
		if err != nil {
			t.Fatal(err)
		}
		return b[:len(b)/2]
	}())

	// The reference weights less one key, and with one extra key.
	weights, keys, err := interop.ReadNPZ(demoWeights)
	if err != nil {
		t.Fatal(err)
	}
	const dropped = "Stage2.0.LayerA.Filters.3.BottleneckLayer.LinearLayer.weight"
	if weights[dropped] == nil {
		t.Fatalf("the reference has no key %s", dropped)
	}
	missingKey := filepath.Join(dir, "missing-key.npz")
	kept := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == dropped })
	subset := map[string]*interop.Array{}
	for _, k := range kept {
		subset[k] = weights[k]
	}
	if err := interop.WriteNPZ(missingKey, subset, kept); err != nil {
		t.Fatal(err)
	}
	extra, _ := interop.NewArray([]float32{1, 2}, 2)
	weights["Extra.weight"] = extra
	extraKey := filepath.Join(dir, "extra-key.npz")
	if err := interop.WriteNPZ(extraKey, weights, append(slices.Clone(keys), "Extra.weight")); err != nil {
		t.Fatal(err)
	}

	// Inputs of the wrong shape, rank and dtype.
	arr := func(a *interop.Array, err error) *interop.Array {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	npy := func(name string, a *interop.Array) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := interop.WriteNPYFile(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wrongChannels := npy("grey.npy", arr(interop.NewArray(make([]float32, 2*1*32*32), 2, 1, 32, 32)))
	nhwc := npy("nhwc.npy", arr(interop.NewArray(make([]float32, 2*32*32*3), 2, 32, 32, 3)))
	rank3 := npy("rank3.npy", arr(interop.NewArray(make([]float32, 3*32*32), 3, 32, 32)))
	ints := npy("ints.npy", arr(interop.NewArray(make([]int32, 2*3*32*32), 2, 3, 32, 32)))
	empty := npy("empty.npy", arr(interop.NewArray([]float32{}, 0, 3, 32, 32)))
	corruptNPY := write("corrupt.npy", []byte("\x93NUMPY\x01\x00garbage"))
	logits := filepath.Join(dir, "logits.npy")
	newRun := filepath.Join(dir, "new-run")
	notARun := t.TempDir()

	tests := []struct {
		name string
		args []string
		code int
		want []string // in stderr.
	}{
		{"import missing weights file", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", "/nonexistent/w.npz", "--out", newRun},
			exitUsage, []string{"/nonexistent/w.npz", "no such file"}},
		{"import corrupt npz", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", corrupt, "--out", newRun},
			exitFailure, []string{corrupt, "not a valid zip"}},
		{"import truncated npz", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", truncated, "--out", newRun},
			exitFailure, []string{truncated}},
		{"import missing key", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", missingKey, "--out", newRun},
			exitFailure, []string{missingKey, dropped, "missing"}},
		{"import extra key", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", extraKey, "--out", newRun},
			exitFailure, []string{"Extra.weight", "unexpected key"}},
		{"import wrong classes", []string{"import", "--model", "seqresnet-cifar-demo", "--classes", "100", "--weights", demoWeights, "--out", newRun},
			exitFailure, []string{"Classifier.weight", "shape 10x336, want 100x336"}},
		{"import wrong model", []string{"import", "--model", "seqresnet-mnist", "--weights", demoWeights, "--out", newRun},
			exitFailure, []string{"problems", "and", "more"}},
		{"import unknown model", []string{"import", "--model", "nope", "--weights", demoWeights, "--out", newRun},
			exitUsage, []string{"unknown model"}},
		{"import without flags", []string{"import"}, exitUsage, []string{"--model, --weights, --out are required"}},
		{"import out is a file", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", demoWeights, "--out", demoWeights},
			exitUsage, []string{"--out", "not a directory"}},
		{"export not a run", []string{"export", "--run", notARun, "--out", filepath.Join(dir, "x.npz")},
			exitUsage, []string{notARun, "config.json"}},
		{"export missing run", []string{"export", "--run", "/nonexistent/run", "--out", filepath.Join(dir, "x.npz")},
			exitUsage, []string{"/nonexistent/run"}},
		{"export without out", []string{"export", "--run", runDir}, exitUsage, []string{"--out is required"}},
		{"infer missing input", []string{"infer", "--run", runDir, "--input", "/nonexistent/x.npy", "--output", logits},
			exitUsage, []string{"/nonexistent/x.npy"}},
		{"infer corrupt input", []string{"infer", "--run", runDir, "--input", corruptNPY, "--output", logits},
			exitFailure, []string{corruptNPY}},
		{"infer wrong channels", []string{"infer", "--run", runDir, "--input", wrongChannels, "--output", logits},
			exitFailure, []string{wrongChannels, "[2 1 32 32]", "[N, 3, H, W]", "H, W >= 1", "32x32 by default"}},
		{"infer NHWC input", []string{"infer", "--run", runDir, "--input", nhwc, "--output", logits},
			exitFailure, []string{"[2 32 32 3]", "NCHW"}},
		{"infer rank 3", []string{"infer", "--run", runDir, "--input", rank3, "--output", logits},
			exitFailure, []string{"[3 32 32]", "[N, 3, H, W]"}},
		{"infer int input", []string{"infer", "--run", runDir, "--input", ints, "--output", logits},
			exitFailure, []string{"int32", "float32 or float64"}},
		{"infer no images", []string{"infer", "--run", runDir, "--input", empty, "--output", logits},
			exitFailure, []string{"no images"}},
		{"infer bad batch", []string{"infer", "--run", runDir, "--input", demoInput, "--output", logits, "--batch", "0"},
			exitUsage, []string{"--batch"}},
		{"infer unwritable output", []string{"infer", "--run", runDir, "--input", demoInput, "--output", "/nonexistent/l.npy"},
			exitUsage, []string{"/nonexistent/l.npy"}},
		{"export output is a directory", []string{"export", "--run", runDir, "--out", dir}, exitUsage, []string{dir, "is a directory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, errOut)
				}
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "seqconv: ") {
				t.Errorf("want one line starting with \"seqconv: \", got:\n%s", errOut)
			}
			if out != "" {
				t.Errorf("unexpected stdout:\n%s", out)
			}
			assertNoCrash(t, out, errOut)
		})
	}
	// Nothing was written by the failed imports and inferences.
	for _, p := range []string{newRun, logits} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed command wrote %s", p)
		}
	}
}

// TestLoadRunMismatch checks that a run directory whose config.json does not match its checkpoint is
// reported, not panicking.
func TestLoadRunMismatch(t *testing.T) {
	runDir := importDemo(t)
	path := filepath.Join(runDir, train.ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `"classes": 10`, `"classes": 100`, 1))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "export", "--run", runDir, "--out", filepath.Join(t.TempDir(), "x.npz"))
	if code != exitFailure || !strings.Contains(errOut, "does not fit the model") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
	assertNoCrash(t, out, errOut)
}

// TestExportInferTrainedRun checks that export and infer read the run directories of "seqconv train".
func TestExportInferTrainedRun(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	code, _, errOut := runCLI(t, "train", "--model", tinyModelConfig(t), "--max-train-images", "64",
		"--max-eval-images", "32", "--epochs", "1", "--batch", "32", "--eval-batch", "32", "--run", runDir,
		"--workers", "1", "--quiet")
	if code != 0 {
		t.Fatalf("train: exit %d, stderr:\n%s", code, errOut)
	}
	dir := t.TempDir()
	npz := filepath.Join(dir, "w.npz")
	if code, out, errOut := runCLI(t, "export", "--run", runDir, "--out", npz, "--best"); code != 0 {
		t.Fatalf("export: exit %d, stderr:\n%s", code, errOut)
	} else {
		assertNoCrash(t, out, errOut)
	}
	weights, keys, err := interop.ReadNPZ(npz)
	if err != nil {
		t.Fatal(err)
	}
	if w := weights["Init.LinearLayer.weight"]; w == nil || !slices.Equal(w.Shape, []int{16, 1, 3, 3}) || len(keys) < 10 {
		t.Errorf("exported %d keys, Init.LinearLayer.weight %v", len(keys), w)
	}
	for _, k := range keys {
		if strings.Contains(k, "Optimizer") || strings.Contains(k, "global_step") {
			t.Errorf("exported training state %s", k)
		}
	}
	// Re-importing the export gives the same logits as the trained run.
	reRun := filepath.Join(dir, "reimported")
	if code, _, errOut := runCLI(t, "import", "--model", tinyModelConfig(t), "--weights", npz, "--out", reRun); code != 0 {
		t.Fatalf("import: exit %d, stderr:\n%s", code, errOut)
	}
	images := make([]float32, 5*1*28*28)
	for i := range images {
		images[i] = float32(math.Sin(float64(i)))
	}
	in, err := interop.NewArray(images, 5, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	inPath := filepath.Join(dir, "x.npy")
	if err := interop.WriteNPYFile(inPath, in); err != nil {
		t.Fatal(err)
	}
	var logits [][]float32
	for _, args := range [][]string{{"--run", runDir, "--best"}, {"--run", reRun}} {
		out := filepath.Join(dir, "logits.npy")
		args = append([]string{"infer", "--input", inPath, "--output", out}, args...)
		if code, _, errOut := runCLI(t, args...); code != 0 {
			t.Fatalf("%q: exit %d, stderr:\n%s", args, code, errOut)
		}
		a, err := interop.ReadNPYFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(a.Shape, []int{5, 10}) {
			t.Fatalf("logits %s, want [5 10]", a)
		}
		logits = append(logits, a.Data.([]float32))
	}
	if !slices.Equal(logits[0], logits[1]) {
		t.Errorf("the re-imported run gives other logits: %v vs %v", logits[0][:5], logits[1][:5])
	}
}
