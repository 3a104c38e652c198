package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/internal/text"
)

// runCLI runs the command line in-process.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// assertNoCrash checks the output has no panic or stack trace.
func assertNoCrash(t *testing.T, outputs ...string) {
	t.Helper()
	for _, s := range outputs {
		for _, bad := range []string{"panic", "goroutine ", ".go:"} {
			if strings.Contains(s, bad) {
				t.Errorf("output contains %q:\n%s", bad, s)
			}
		}
	}
}

// tinyModelConfig writes a tiny 28x28 grey model config and returns its path.
func tinyModelConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.json")
	const cfg = `{"family":"seqresnet-cifar","variant":"b","classes":10,"in_channels":1,"resolution":28,
"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":0.5,"granularity":8,"drop_rate":0}`
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestModelsJSON(t *testing.T) {
	code, out, errOut := runCLI(t, "models", "--json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	var infos []map[string]any
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("models --json: %v\n%s", err, out)
	}
	found := false
	for _, m := range infos {
		for _, k := range []string{"name", "family", "params", "macs", "paper_gflops", "resolution"} {
			if _, ok := m[k]; !ok {
				t.Errorf("model %v lacks %q", m["name"], k)
			}
		}
		if m["name"] == "seqresnet-cifar-demo" {
			found = true
			if m["params"] != 843834.0 || m["resolution"] != 32.0 || m["family"] != "seqresnet-cifar" {
				t.Errorf("seqresnet-cifar-demo: %v", m)
			}
		}
	}
	if !found || len(infos) < 2 {
		t.Errorf("seqresnet-cifar-demo not listed: %s", out)
	}
}

func TestModelsTable(t *testing.T) {
	code, out, errOut := runCLI(t, "models")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(out, "843,834") || !strings.Contains(out, "seqresnet-mnist") {
		t.Errorf("models table:\n%s", out)
	}
	// --classes changes the classifier: the demo model with 100 classes has 874,164 params.
	code, out, _ = runCLI(t, "models", "--classes", "100")
	if code != 0 || !strings.Contains(out, "874,164") {
		t.Errorf("models --classes 100 (exit %d):\n%s", code, out)
	}
}

func TestBadInputs(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	aFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A run trained on an image folder that is gone since.
	goneRun, goneData := t.TempDir(), filepath.Join(t.TempDir(), "images")
	config := `{"model": {"family": "seqresnet-cifar", "name": "seqresnet-mnist", "variant": "b", "in_channels": 1,
		"classes": 10, "resolution": 28, "stem_stride": 2, "blocks_per_stage": [1, 1, 1], "pyramid_factor": [1, 2, 4],
		"widening": 1, "granularity": [16], "drop_rate": 0}, "data": "` + goneData + `", "augmentation": "crop:2",
		"epochs": 3, "batch_size": 128, "lr": 0.1}`
	if err := os.WriteFile(filepath.Join(goneRun, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	goneWant := "the data recorded in its config.json: the image folder " + goneData + " is gone"
	tests := []struct {
		name     string
		args     []string
		code     int
		want     string // in stderr.
		oneLine  bool   // stderr is a single line.
		hasUsage bool
	}{
		{"unknown model", []string{"train", "--model", "nope", "--run", runDir}, 2, "unknown model", true, false},
		{"missing model file", []string{"train", "--model", "/nonexistent/m.json", "--run", runDir}, 2, "m.json", true, false},
		{"epochs 0", []string{"train", "--epochs", "0", "--run", runDir}, 2, "--epochs", true, false},
		{"batch -1", []string{"train", "--batch", "-1", "--run", runDir}, 2, "--batch", true, false},
		{"lr 0", []string{"train", "--lr", "0", "--run", runDir}, 2, "--lr", true, false},
		{"lr NaN", []string{"train", "--lr", "NaN", "--run", runDir}, 2, "--lr", true, false},
		{"unwritable run", []string{"train", "--run", "/proc/x"}, 2, "/proc/x", true, false},
		{"run is a file", []string{"train", "--run", aFile}, 2, "not a directory", true, false},
		{"cifar with a grey model", []string{"train", "--data", "cifar10", "--run", runDir}, 2, "3-channel", true, false},
		{"cifar100 classes", []string{"train", "--data", "cifar100", "--model", "seqresnet-cifar-demo", "--run", runDir}, 2, "--classes 100", true, false},
		{"folder without train", []string{"train", "--data", t.TempDir(), "--model", "seqresnet-cifar-demo", "--run", runDir}, 2, "no train/ folder", true, false},
		{"unknown recipe", []string{"train", "--recipe", "mnist", "--run", runDir}, 2, "--recipe", true, false},
		{"resume no run", []string{"train", "--resume", filepath.Join(t.TempDir(), "nope")}, 2, "no such directory", true, false},
		{"checkpoint steps", []string{"train", "--checkpoint-every-steps", "-1", "--run", runDir}, 2, "--checkpoint-every-steps", true, false},
		{"eval without run", []string{"eval"}, 2, "--run is required", true, false},
		{"eval missing run", []string{"eval", "--run", filepath.Join(t.TempDir(), "nope")}, 2, "no such directory", true, false},
		{"unknown data", []string{"train", "--data", "svhn", "--run", runDir}, 2, "unknown dataset", true, false},
		{"eval, recorded data gone", []string{"eval", "--run", goneRun}, 2, "--run " + goneRun + ": " + goneWant, true, false},
		{"resume, recorded data gone", []string{"train", "--resume", goneRun}, 2, "--resume " + goneRun + ": " + goneWant, true, false},
		{"bad schedule", []string{"train", "--schedule", "linear", "--run", runDir}, 2, "--schedule", true, false},
		{"bad milestones", []string{"train", "--milestones", "2,x", "--run", runDir}, 2, "--milestones", true, false},
		{"bad augment", []string{"train", "--augment", "rotate", "--run", runDir}, 2, "--augment", true, false},
		{"nesterov without momentum", []string{"train", "--momentum", "0", "--run", runDir}, 2, "--nesterov", true, false},
		{"label smoothing", []string{"train", "--label-smoothing", "1", "--run", runDir}, 2, "--label-smoothing", true, false},
		{"3-channel model", []string{"train", "--model", "seqresnet-cifar-demo", "--run", runDir}, 2, "3-channel", true, false},
		{"unknown flag", []string{"train", "--nope"}, 2, "nope", false, true},
		{"bad flag value", []string{"train", "--epochs", "ten"}, 2, "epochs", false, true},
		{"positional argument", []string{"train", "extra"}, 2, "unexpected argument", false, true},
		{"models bad classes", []string{"models", "--classes", "-3"}, 2, "--classes", true, false},
		{"models unknown flag", []string{"models", "--xml"}, 2, "xml", false, true},
		{"unknown command", []string{"fly"}, 2, "unknown command", false, true},
		{"help unknown command", []string{"help", "fly"}, 2, "unknown command", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr does not mention %q:\n%s", tc.want, errOut)
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if tc.oneLine && (len(lines) != 1 || !strings.HasPrefix(lines[0], "seqconv: ")) {
				t.Errorf("want one line starting with \"seqconv: \", got:\n%s", errOut)
			}
			if tc.hasUsage && !strings.Contains(errOut, "Usage:") {
				t.Errorf("want the usage in stderr, got:\n%s", errOut)
			}
			if tc.code == 2 && out != "" && !tc.hasUsage {
				t.Errorf("unexpected stdout:\n%s", out)
			}
			assertNoCrash(t, out, errOut)
		})
	}
	// Nothing was trained into the run directory.
	if _, err := os.Stat(filepath.Join(runDir, "results.csv")); err == nil {
		t.Errorf("a rejected command wrote results.csv")
	}
}

func TestTrainEndToEnd(t *testing.T) {
	runDir := filepath.Join(t.TempDir(), "run")
	args := []string{"train", "--model", tinyModelConfig(t), "--max-train-images", "256",
		"--max-eval-images", "128", "--epochs", "1", "--batch", "32", "--run", runDir, "--workers", "1"}
	code, out, errOut := runCLI(t, args...)
	t.Logf("stdout:\n%s", out)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	assertNoCrash(t, out, errOut)
	for _, want := range []string{"backend:", "7,498 params", "256 training images", "128 test images",
		"epoch 1/1 train_loss", "test accuracy", "wall time"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	f, err := os.Open(filepath.Join(runDir, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) != 2 || rows[0][0] != "epoch" || rows[1][0] != "1" {
		t.Errorf("results.csv (err %v): %q", err, rows)
	}
	for _, p := range []string{"config.json", "checkpoint", "best"} {
		if _, err := os.Stat(filepath.Join(runDir, p)); err != nil {
			t.Errorf("run directory lacks %s: %v", p, err)
		}
	}

	// The same run directory is refused now that it holds checkpoints.
	code, _, errOut = runCLI(t, args...)
	if code == 0 || !strings.Contains(errOut, "already holds a run") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("reusing the run directory: exit %d, stderr:\n%s", code, errOut)
	}

	// --quiet prints no per-epoch line.
	args[len(args)-3] = filepath.Join(t.TempDir(), "run2")
	code, out, errOut = runCLI(t, append(args, "--quiet")...)
	if code != 0 || strings.Contains(out, "train_loss") || !strings.Contains(out, "test accuracy") {
		t.Errorf("--quiet: exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, want := range []string{"seqconv ", "go      go1.", "gomlx   v"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}, {"--help"}} {
		code, out, errOut := runCLI(t, args...)
		wantCode := exitOK
		if args == nil { // Bare seqconv: the usage on stderr and exit 2, as Go tools do.
			wantCode, out = exitUsage, errOut
		}
		if code != wantCode {
			t.Errorf("%q: exit %d, want %d", args, code, wantCode)
		}
		for _, group := range []string{"\nTraining:\n  train ", "  eval ", "\nModels:\n  models ", "  summary ",
			"\nWeights:\n  import ", "  export ", "  infer ", "\nAnalysis:\n  heatmap "} {
			if !strings.Contains(out, group) {
				t.Errorf("%q: usage lacks %q:\n%s", args, group, out)
			}
		}
		for _, c := range []string{"train", "models", "version", "help"} {
			if !strings.Contains(out, "  "+c+" ") {
				t.Errorf("%q: usage lacks command %q:\n%s", args, c, out)
			}
		}
	}
	// train --help and help train document every flag, on stdout, with exit 0.
	for _, args := range [][]string{{"train", "--help"}, {"train", "-h"}, {"help", "train"}} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 || errOut != "" {
			t.Errorf("%q: exit %d, stderr %s", args, code, errOut)
		}
		newTrainFlags(nil).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "\n  --"+f.Name) || f.Usage == "" {
				t.Errorf("%q: flag --%s not documented", args, f.Name)
			}
		})
		// Flags are written --flag everywhere; the flags allowed with --resume are those the error lists.
		if regexp.MustCompile(`(^|\s)-[a-z]`).MatchString(out) {
			t.Errorf("%q: a flag is written with one dash:\n%s", args, out)
		}
		if !strings.Contains(text.OneLine(out), "only "+resumeFlagList()+" may be given with it") {
			t.Errorf("%q: the help does not list the flags allowed with --resume as %s", args, resumeFlagList())
		}
		for _, f := range resumeFlags[1:] {
			if !strings.Contains(resumeFlagList(), "--"+f) {
				t.Errorf("resumeFlagList() lacks --%s", f)
			}
		}
		if strings.Contains(out, "SPEC") {
			t.Errorf("%q: the help cites SPEC, which the repository does not have", args)
		}
	}
	// The error for a flag that conflicts with --resume lists the same flags.
	code, _, errOut := runCLI(t, "train", "--resume", t.TempDir(), "--epochs", "3")
	if code != exitUsage || !strings.Contains(errOut, "no such directory") && !strings.Contains(errOut, "not a run directory") {
		t.Errorf("train --resume EMPTY: exit %d, %s", code, errOut)
	}
	// --version, and flag errors with --flag.
	code, out, _ := runCLI(t, "--version")
	if code != exitOK || !strings.HasPrefix(out, "seqconv ") {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	code, _, errOut = runCLI(t, "train", "--epochz", "3")
	if code != exitUsage || !strings.HasPrefix(errOut, "seqconv train: flag provided but not defined: --epochz\n") {
		t.Errorf("train --epochz: exit %d, %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "train", "--epochs", "x")
	if code != exitUsage || !strings.Contains(errOut, "for flag --epochs") {
		t.Errorf("train --epochs x: exit %d, %q", code, errOut)
	}
	code, out, _ = runCLI(t, "models", "--help")
	if code != 0 || !strings.Contains(out, "--json") || !strings.Contains(out, "-classes") {
		t.Errorf("models --help: exit %d:\n%s", code, out)
	}
}

func TestHelpers(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 843834: "843,834",
		-1234567: "-1,234,567", 25642696: "25,642,696"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestRecoverPanics checks that a panic inside a command becomes a one-line error.
func TestRecoverPanics(t *testing.T) {
	var errOut bytes.Buffer
	// A writer that panics simulates a panic inside a command.
	code := run([]string{"version"}, panicWriter{}, &errOut)
	if code != 1 || !strings.HasPrefix(errOut.String(), "seqconv: boom") || strings.Count(errOut.String(), "\n") != 1 {
		t.Errorf("panic: exit %d, stderr %q", code, errOut.String())
	}
	assertNoCrash(t, errOut.String())
}

type panicWriter struct{}

func (panicWriter) Write([]byte) (int, error) { panic("boom\nsecond line") }

// TestPackageDocListsCommands checks that the usage in the package doc names every command.
func TestPackageDocListsCommands(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, _, ok := strings.Cut(string(src), "\npackage main")
	if !ok {
		t.Fatal("main.go: no package clause")
	}
	for _, c := range commands() {
		if !strings.Contains(doc, "//\tseqconv "+c.name+" ") {
			t.Errorf("the package doc's usage lacks %q", c.name)
		}
	}
}
