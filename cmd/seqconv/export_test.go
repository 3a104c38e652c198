package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/train"
)

// Tolerances of the ONNX export tests: max |logit difference| of float32 logits up to ~0.5.
const (
	// nodeVsInferTol bounds the exported file on onnxruntime-node against "seqconv infer" (on the test
	// backend): the bar.
	nodeVsInferTol = 1e-5
	// nodeVsTorchTol bounds the exported demo on onnxruntime-node against PyTorch's logits of the authors'
	// case (1.2e-7 measured).
	nodeVsTorchTol = 1e-5
)

// requireONNXRuntime skips the test when the ONNX Runtime library, which "export --format onnx" needs,
// is not installed.
func requireONNXRuntime(t *testing.T) {
	t.Helper()
	if _, err := engine.FindONNXRuntime(); err != nil {
		t.Skipf("skipping: %v. %s", err, engine.InstallHint)
	}
}

// onnxRuntimeNode returns the node_modules directory holding onnxruntime-node, which
// scripts/install-onnxruntime.sh --node installs (once, checksummed, without its install script) into the
// user cache, where .ci/run installs it too. It skips the test without Node.js or when the package cannot
// be installed.
func onnxRuntimeNode(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("skipping: Node.js (node) is not installed, the independent runtime of this test (apt-get install npm)")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Skipf("skipping: no user cache directory to install onnxruntime-node into: %v", err)
	}
	dir := filepath.Join(cache, "seqconv", "onnxruntime-node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "../../scripts/install-onnxruntime.sh", "--node", dir).CombinedOutput()
	if err != nil {
		t.Skipf("skipping: onnxruntime-node could not be installed into %s (%v): %s", dir, err,
			strings.TrimSpace(string(out)))
	}
	return filepath.Join(dir, "node_modules")
}

// nodeSignature is what scripts/onnx-infer.js prints: the model's inputs and outputs as onnxruntime-node
// reads them.
type nodeSignature struct {
	Runtime         string
	Inputs, Outputs []struct {
		Name, Type string
		Shape      []int
	}
}

// runNode runs model on the images in input with onnxruntime-node (scripts/onnx-infer.js) and returns the
// logits and the signature the runtime saw.
func runNode(t *testing.T, nodeModules, model, input string) (*interop.Array, nodeSignature) {
	t.Helper()
	output := filepath.Join(t.TempDir(), "node-logits.npy")
	cmd := exec.Command("node", "../../scripts/onnx-infer.js", model, input, output)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodeModules)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node scripts/onnx-infer.js %s: %v\n%s", model, err, stderr.String())
	}
	var sig nodeSignature
	if err := json.Unmarshal(out, &sig); err != nil {
		t.Fatalf("onnx-infer.js printed %q: %v", out, err)
	}
	logits, err := interop.ReadNPYFile(output)
	if err != nil {
		t.Fatal(err)
	}
	return logits, sig
}

// checkNodeSignature checks the input and output of an exported model as onnxruntime-node reads them.
func checkNodeSignature(t *testing.T, sig nodeSignature, in, out []int) {
	t.Helper()
	if len(sig.Inputs) != 1 || len(sig.Outputs) != 1 ||
		sig.Inputs[0].Name != interop.ONNXInput || sig.Inputs[0].Type != "float32" || !slices.Equal(sig.Inputs[0].Shape, in) ||
		sig.Outputs[0].Name != interop.ONNXOutput || sig.Outputs[0].Type != "float32" || !slices.Equal(sig.Outputs[0].Shape, out) {
		t.Errorf("%s reads inputs %+v and outputs %+v, want %q float32 %v and %q float32 %v", sig.Runtime, sig.Inputs,
			sig.Outputs, interop.ONNXInput, in, interop.ONNXOutput, out)
	}
}

// maxAbsDiff returns max |got[i] - want[i]| of two float32 arrays of the same shape.
func maxAbsDiff(t *testing.T, got, want *interop.Array) float64 {
	t.Helper()
	if !slices.Equal(got.Shape, want.Shape) {
		t.Fatalf("logits %s, want %s", got, want)
	}
	var m float64
	for i, w := range want.Data.([]float32) {
		m = max(m, math.Abs(float64(got.Data.([]float32)[i])-float64(w)))
	}
	return m
}

// inferNPY runs "seqconv infer" and returns the logits.
func inferNPY(t *testing.T, args ...string) *interop.Array {
	t.Helper()
	out := filepath.Join(t.TempDir(), "infer-logits.npy")
	args = append([]string{"infer", "--output", out}, args...)
	if code, _, errOut := runCLI(t, args...); code != 0 {
		t.Fatalf("%q: exit %d, stderr:\n%s", args, code, errOut)
	}
	logits, err := interop.ReadNPYFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return logits
}

// TestExportONNX exports the authors' case, imported, as ONNX and runs the file in Node.js with
// onnxruntime-node, a runtime other than the one that wrote it: its logits equal "seqconv infer"'s and
// PyTorch's.
func TestExportONNX(t *testing.T) {
	requireONNXRuntime(t)
	nodeModules := onnxRuntimeNode(t)
	runDir := importDemo(t)
	torch, err := interop.ReadNPYFile(demoLogits)
	if err != nil {
		t.Fatal(err)
	}
	infer := inferNPY(t, "--run", runDir, "--input", demoInput)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		out  string
		args []string
	}{
		{"format from the extension", filepath.Join(dir, "demo.onnx"), nil},
		{"--format onnx, best, a new file in the run directory", filepath.Join(runDir, "demo.onnx"),
			[]string{"--format", "onnx", "--best"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"export", "--run", runDir, "--out", tc.out, "--batch", "3"}, tc.args...)
			start := time.Now()
			code, stdout, errOut := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("export: exit %d, stderr:\n%s", code, errOut)
			}
			assertNoCrash(t, stdout, errOut)
			st, err := os.Stat(tc.out)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("export: %.1f s, %d bytes: %s", time.Since(start).Seconds(), st.Size(), strings.TrimSpace(stdout))
			if !strings.Contains(stdout, `input "images" float32 [3 3 32 32] (NCHW), output "logits" float32 [3 10]`) {
				t.Errorf("export stdout:\n%s", stdout)
			}
			logits, sig := runNode(t, nodeModules, tc.out, demoInput)
			checkNodeSignature(t, sig, []int{3, 3, 32, 32}, []int{3, 10})
			dInfer, dTorch := maxAbsDiff(t, logits, infer), maxAbsDiff(t, logits, torch)
			t.Logf("%s: max |logit difference| with seqconv infer %.3g, with PyTorch %.3g", sig.Runtime, dInfer, dTorch)
			if !(dInfer <= nodeVsInferTol) {
				t.Errorf("max |logit difference| with seqconv infer %.3g > %g", dInfer, nodeVsInferTol)
			}
			if !(dTorch <= nodeVsTorchTol) {
				t.Errorf("max |logit difference| with PyTorch %.3g > %g", dTorch, nodeVsTorchTol)
			}
		})
	}
}

// TestExportONNXTrainedRun exports a run of "seqconv train" (trained batch-norm statistics, one input
// channel) with a batch of 5 and compares onnxruntime-node's logits with "seqconv infer"'s.
func TestExportONNXTrainedRun(t *testing.T) {
	requireONNXRuntime(t)
	nodeModules := onnxRuntimeNode(t)
	runDir := filepath.Join(t.TempDir(), "run")
	// Trained on the Go backend, whatever the test backend: the engine that trained a run does not matter here.
	testBackend := os.Getenv(engine.EnvVar)
	t.Setenv(engine.EnvVar, engine.Go)
	code, _, errOut := runCLI(t, "train", "--model", tinyModelConfig(t), "--max-train-images", "64",
		"--max-eval-images", "32", "--epochs", "1", "--batch", "32", "--eval-batch", "32", "--run", runDir,
		"--workers", "1", "--quiet")
	if code != 0 {
		t.Fatalf("train: exit %d, stderr:\n%s", code, errOut)
	}
	os.Setenv(engine.EnvVar, testBackend) // t.Setenv restores it at the end too.
	dir := t.TempDir()
	images := make([]float32, 5*1*28*28)
	for i := range images {
		images[i] = float32(math.Sin(float64(i) * 0.37))
	}
	in, err := interop.NewArray(images, 5, 1, 28, 28)
	if err != nil {
		t.Fatal(err)
	}
	input := filepath.Join(dir, "x.npy")
	if err := interop.WriteNPYFile(input, in); err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "tiny.onnx")
	if code, out, errOut := runCLI(t, "export", "--run", runDir, "--best", "--batch", "5", "--out", model); code != 0 {
		t.Fatalf("export: exit %d, stderr:\n%s", code, errOut)
	} else {
		assertNoCrash(t, out, errOut)
	}
	logits, sig := runNode(t, nodeModules, model, input)
	checkNodeSignature(t, sig, []int{5, 1, 28, 28}, []int{5, 10})
	d := maxAbsDiff(t, logits, inferNPY(t, "--run", runDir, "--best", "--input", input))
	t.Logf("%s: max |logit difference| with seqconv infer %.3g", sig.Runtime, d)
	if !(d <= nodeVsInferTol) {
		t.Errorf("max |logit difference| with seqconv infer %.3g > %g", d, nodeVsInferTol)
	}
}

// TestExportFlags checks the errors of "seqconv export" about the format, its flags and the output file:
// one line, the right exit code, nothing written. It needs no ONNX Runtime.
func TestExportFlags(t *testing.T) {
	runDir := importDemo(t)
	dir := t.TempDir()
	ckpts, err := filepath.Glob(filepath.Join(train.RunCheckpointDir(runDir, false), "*"))
	if err != nil || len(ckpts) == 0 {
		t.Fatalf("no checkpoint files in %s: %v", runDir, err)
	}
	runFiles := map[string][]byte{}
	for _, p := range append(ckpts, filepath.Join(runDir, train.ConfigFile)) {
		if runFiles[p], err = os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
	}
	export := func(out string, args ...string) []string {
		return append([]string{"export", "--run", runDir, "--out", out}, args...)
	}
	npz, onnx := filepath.Join(dir, "w.npz"), filepath.Join(dir, "m.onnx")
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string // in stderr.
	}{
		{"onnx format, .npz file", nil, export(npz, "--format", "onnx"), exitUsage,
			[]string{"--format onnx disagrees with --out " + npz}},
		{"npz format, .onnx file", nil, export(onnx, "--format", "npz"), exitUsage,
			[]string{"--format npz disagrees with --out " + onnx}},
		{"unknown format", nil, export(npz, "--format", "tflite"), exitUsage, []string{`--format must be npz or onnx, got "tflite"`}},
		{"--batch with npz", nil, export(npz, "--batch", "4"), exitUsage, []string{"--batch applies to --format onnx only"}},
		{"--resolution with npz", nil, export(filepath.Join(dir, "w"), "--resolution", "64"), exitUsage,
			[]string{"--resolution applies to --format onnx only"}},
		{"batch 0", nil, export(onnx, "--batch", "0"), exitUsage, []string{"--batch must be >= 1"}},
		{"negative resolution", nil, export(onnx, "--resolution", "-1"), exitUsage, []string{"--resolution must be >= 0"}},
		{"resolution too small", nil, export(onnx, "--resolution", "3"), exitFailure, []string{"resolution: want >= 4"}},
		{"device output", nil, export("/dev/null", "--format", "npz"), exitUsage, []string{"/dev/null", "not a regular file"}},
		{"run config", nil, export(filepath.Join(runDir, train.ConfigFile), "--format", "npz"), exitUsage,
			[]string{"the config.json of run directory " + runDir}},
		{"checkpoint file", nil, export(ckpts[0], "--format", "onnx"), exitUsage,
			[]string{"a file of the checkpoints", "of run directory " + runDir}},
		{"extension of another format", nil, export(filepath.Join(t.TempDir(), "m.npz"), "--format", "onnx"), exitUsage,
			[]string{"--format onnx disagrees with --out"}},
		{"no ONNX Runtime", map[string]string{"HOME": t.TempDir(), engine.LibraryEnvVar: "", engine.EnvVar: "go"},
			export(onnx), exitFailure, []string{"ONNX Runtime is needed", "install-onnxruntime.sh"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if tc.name == "resolution too small" {
				requireONNXRuntime(t)
			}
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, errOut)
				}
			}
			if lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n"); len(lines) != 1 {
				t.Errorf("want one line, got:\n%s", errOut)
			}
			if out != "" {
				t.Errorf("unexpected stdout:\n%s", out)
			}
			assertNoCrash(t, out, errOut)
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("wrote %v", left)
			}
		})
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed exports wrote %v", left)
	}
	for p, b := range runFiles {
		if now, err := os.ReadFile(p); err != nil || string(now) != string(b) {
			t.Errorf("%s changed: %v", p, err)
		}
	}
}
