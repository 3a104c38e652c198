package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/seqconv/seqconv/interop"
)

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fileContent returns the content of path ("" if it cannot be read).
func fileContent(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// internalNames are words of this program's insides that no message may show.
var internalNames = []string{"train: ", "analysis: ", "data.Load", "data.ImageLoader", "Loop.RunEpochs",
	"context canceled", "panic", "goroutine "}

// checkMessage checks that stderr is one line "seqconv: ..." containing want, without internal names.
func checkMessage(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "seqconv: ") {
		t.Errorf("want one line starting with \"seqconv: \", got:\n%s", stderr)
	}
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not mention %q:\n%s", want, stderr)
	}
	for _, bad := range internalNames {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr shows %q:\n%s", bad, stderr)
		}
	}
}

// TestCommandsBadInputs runs every command on missing, empty and corrupt inputs: each is refused with one line
// naming what the user gave, the same situation with the same message in every command, and the exit code
// of a usage error (2) for bad arguments or of a failure (1) for bad content.
func TestCommandsBadInputs(t *testing.T) {
	runDir := importDemo(t)
	missing := filepath.Join(t.TempDir(), "nope")
	empty := t.TempDir()
	tmp := t.TempDir()
	corruptRun := filepath.Join(t.TempDir(), "corrupt")
	copyDir(t, runDir, corruptRun)
	writeFile(t, corruptRun, "config.json", `{"model": {`)
	corruptResults := t.TempDir()
	writeFile(t, corruptResults, "config.json", fileContent(filepath.Join(runDir, "config.json")))
	writeFile(t, corruptResults, "results.csv", "epoch,nothing\n1,2,3\n")
	emptyFile := writeFile(t, tmp, "empty.npz", "")
	emptyNPY := writeFile(t, tmp, "empty.npy", "")
	garbageNPZ := writeFile(t, tmp, "garbage.npz", "this is not a zip archive")
	garbageNPY := writeFile(t, tmp, "garbage.npy", "\x93NUMPY garbage")
	trailingJSON := writeFile(t, tmp, "trailing.json", `{"family":"seqresnet-cifar","classes":10,"blocks_per_stage":[1,1,1],`+
		`"pyramid_factor":[1,2,3],"widening":1,"granularity":16,"drop_rate":0}{}`)
	caseJSON := writeFile(t, tmp, "case.json", `{"family":"seqresnet-cifar","Classes":10,"blocks_per_stage":[1,1,1],`+
		`"pyramid_factor":[1,2,3],"widening":1,"granularity":16,"drop_rate":0}`)
	hugeJSON := writeFile(t, tmp, "huge.json", `{"family":"seqresnet-cifar","classes":10,"in_channels":1,"resolution":28,`+
		`"blocks_per_stage":[100000,1,1],"pyramid_factor":[1,2,4],"widening":1,"granularity":16,"drop_rate":0}`)
	zeroJSON := writeFile(t, tmp, "zero.json", `{"family":"seqresnet-cifar","classes":10,"in_channels":0,`+
		`"blocks_per_stage":[1,1,1],"pyramid_factor":[1,2,3],"widening":1,"granularity":16,"drop_rate":0}`)
	emptyJSON := writeFile(t, tmp, "empty.json", "")
	out := func(name string) string { return filepath.Join(t.TempDir(), name) }

	// The same situations read the same in every command.
	noSuchDir := func(flag, dir string) string { return fmt.Sprintf("seqconv: %s %s: no such directory\n", flag, dir) }
	notRunDir := func(flag, dir string) string {
		return fmt.Sprintf("seqconv: %s %s: not a run directory (no config.json)\n", flag, dir)
	}
	runCommands := map[string][]string{
		"eval":    {"eval"},
		"export":  {"export", "--out", out("w.npz")},
		"infer":   {"infer", "--input", demoInput, "--output", out("l.npy")},
		"heatmap": {"heatmap"},
		"plot":    {"plot"},
		"report":  {"report", "--out", out("r.html")},
		"predict": {"predict", writeFile(t, tmp, "image.png", "not decoded: the run is checked first")},
		"serve":   {"serve", "--addr", "127.0.0.1:0"},
	}
	for name, args := range runCommands {
		t.Run(name+" missing and empty run", func(t *testing.T) {
			for dir, want := range map[string]string{missing: noSuchDir("--run", missing), empty: notRunDir("--run", empty)} {
				code, stdout, stderr := runCLI(t, append(cloneArgs(args), "--run", dir)...)
				if code != exitUsage || stderr != want || stdout != "" {
					t.Errorf("%q: exit %d, stderr %q, want exit 2 and %q", args, code, stderr, want)
				}
			}
		})
	}
	t.Run("resume missing and empty run", func(t *testing.T) {
		for dir, want := range map[string]string{missing: noSuchDir("--resume", missing), empty: notRunDir("--resume", empty)} {
			code, _, stderr := runCLI(t, "train", "--resume", dir)
			if code != exitUsage || stderr != want {
				t.Errorf("train --resume %s: exit %d, stderr %q, want %q", dir, code, stderr, want)
			}
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		// Corrupt run directories: the error names the file.
		{"eval corrupt run", []string{"eval", "--run", corruptRun}, 1, "config.json"},
		{"export corrupt run", []string{"export", "--run", corruptRun, "--out", out("w.npz")}, 1, "config.json"},
		{"infer corrupt run", []string{"infer", "--run", corruptRun, "--input", demoInput, "--output", out("l.npy")}, 1, "config.json"},
		{"heatmap corrupt run", []string{"heatmap", "--run", corruptRun, "--out", out("h.png")}, 1, "config.json"},
		{"report corrupt run", []string{"report", "--run", corruptRun, "--out", out("r.html")}, 1, "config.json"},
		{"resume corrupt run", []string{"train", "--resume", corruptRun}, 1, "config.json"},
		{"plot corrupt results", []string{"plot", "--run", corruptResults, "--out", out("c.png")}, 1, "results.csv"},
		// Input files: missing, empty, corrupt.
		{"import missing weights", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", missing + ".npz", "--out", out("r")}, 2, "no such file"},
		{"import empty weights", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", emptyFile, "--out", out("r")}, 1, emptyFile},
		{"import corrupt weights", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", garbageNPZ, "--out", out("r")}, 1, garbageNPZ},
		{"import weights are a directory", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", empty, "--out", out("r")}, 2, "is a directory"},
		{"infer missing input", []string{"infer", "--run", runDir, "--input", missing + ".npy", "--output", out("l.npy")}, 2, "no such file"},
		{"infer empty input", []string{"infer", "--run", runDir, "--input", emptyNPY, "--output", out("l.npy")}, 1, "empty input"},
		{"infer corrupt input", []string{"infer", "--run", runDir, "--input", garbageNPY, "--output", out("l.npy")}, 1, garbageNPY},
		// Model configs: missing, empty, corrupt, not strict, too large.
		{"train missing model", []string{"train", "--model", missing + ".json", "--run", out("r")}, 2, missing + ".json"},
		{"train empty model", []string{"train", "--model", emptyJSON, "--run", out("r")}, 2, "unexpected end of the JSON input"},
		{"train trailing model", []string{"train", "--model", trailingJSON, "--run", out("r")}, 2, "data after the config object"},
		{"summary wrong-case key", []string{"summary", caseJSON}, 2, `did you mean "classes"`},
		{"summary too many blocks", []string{"summary", hugeJSON}, 2, "more than the 1000 blocks"},
		{"models too many blocks", []string{"bench", "--model", hugeJSON}, 2, "max_blocks"},
		{"import zero in_channels", []string{"import", "--model", zeroJSON, "--weights", demoWeights, "--out", out("r")}, 2, "in_channels: want >= 1, got 0"},
		{"experiment trailing model", []string{"experiment", "windowed-vs-dense", "--model", trailingJSON, "--out", out("e")}, 2, "data after"},
		// Data: missing and empty.
		{"train missing folder", []string{"train", "--data", missing, "--model", "seqresnet-cifar-demo", "--run", out("r")}, 2, missing},
		{"train empty folder", []string{"train", "--data", empty, "--model", "seqresnet-cifar-demo", "--run", out("r")}, 2, "no train/ folder"},
		{"eval empty folder", []string{"eval", "--run", runDir, "--data", empty}, 1, "image folder"},
		// Milestones (item 8).
		{"milestones unsorted", []string{"train", "--schedule", "multistep", "--milestones", "5,2", "--epochs", "8", "--run", out("r")}, 2, "want increasing epochs"},
		{"milestones past the end", []string{"train", "--schedule", "multistep", "--milestones", "2,4", "--epochs", "4", "--run", out("r")}, 2, "past the last epoch, 3"},
		{"milestones with cosine", []string{"train", "--schedule", "cosine", "--milestones", "2", "--run", out("r")}, 2, "only for the multistep schedule"},
		{"milestones with the default schedule", []string{"train", "--milestones", "1", "--run", out("r")}, 2, "not cosine"},
		// The rest of the commands.
		{"data unknown", []string{"data", "fetch", "svhn", "--to", empty}, 2, "svhn"},
		{"version argument", []string{"version", "extra"}, 2, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.code == exitUsage && strings.Contains(stderr, "Usage:") {
				return // A flag error prints the usage after its line.
			}
			checkMessage(t, stderr, tc.want)
			assertNoCrash(t, stdout, stderr)
		})
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("the refused commands wrote into %s: %v", empty, entries)
	}
}

// cloneArgs returns a copy of args, so that appending to it leaves args as it is.
func cloneArgs(args []string) []string { return append([]string(nil), args...) }

// TestOutputFiles checks the one rule of the files the commands write (items 1 and 2): symbolic links are
// written through, FIFOs and devices are refused and left as they are, the files of a run directory are
// never written, and the extension must be the format's. Refused commands leave every file as it was.
func TestOutputFiles(t *testing.T) {
	runDir := importDemo(t)
	dir := t.TempDir()
	realNPZ := writeFile(t, dir, "real/target.npz", "old")
	link := filepath.Join(dir, "link.npz")
	if err := os.Symlink("real/target.npz", link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.npz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	fifoPNG := filepath.Join(dir, "fifo.png")
	if err := syscall.Mkfifo(fifoPNG, 0o644); err != nil {
		t.Fatal(err)
	}
	device := filepath.Join(dir, "null.npy")
	if err := os.Symlink(os.DevNull, device); err != nil {
		t.Fatal(err)
	}
	existing := writeFile(t, dir, "existing.npz", "an older export")
	config := filepath.Join(runDir, "config.json")
	results := writeFile(t, runDir, "results.csv", "epoch,train_loss\n")
	before := map[string]string{config: fileContent(config), results: fileContent(results)}

	export := func(out string) []string { return []string{"export", "--run", runDir, "--out", out} }
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"export through a symlink", export(link), 0, ""},
		{"export over an existing file", export(existing), 0, ""},
		{"export to a FIFO", export(fifo), 2, "not a regular file (a FIFO)"},
		{"export over config.json", export(config), 2, "the config.json of run directory"},
		{"export into best/", export(filepath.Join(runDir, "best", "w.npz")), 2, "refusing to write it"},
		{"export to a directory", export(dir), 2, "is a directory"},
		{"infer to a device", []string{"infer", "--run", runDir, "--input", demoInput, "--output", device}, 2, "a character device"},
		{"infer over results.csv", []string{"infer", "--run", runDir, "--input", demoInput, "--output", results}, 2, "the results.csv of run directory"},
		{"heatmap over config.json", []string{"heatmap", "--run", runDir, "--out", config}, 2, "the config.json of run directory"},
		{"heatmap csv over results.csv", []string{"heatmap", "--run", runDir, "--csv", results}, 2, "the results.csv of run directory"},
		{"plot to a FIFO", []string{"plot", "--run", runDir, "--out", fifoPNG}, 2, "a FIFO"},
		{"report over config.json", []string{"report", "--run", runDir, "--out", config}, 2, "the config.json of run directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if tc.code != 0 {
				checkMessage(t, stderr, tc.want)
			}
			assertNoCrash(t, stdout, stderr)
		})
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symbolic link", link)
	}
	if !strings.HasPrefix(fileContent(realNPZ), "PK") {
		t.Errorf("the symbolic link's target was not written: %q", fileContent(realNPZ)[:min(10, len(fileContent(realNPZ)))])
	}
	if !strings.HasPrefix(fileContent(existing), "PK") {
		t.Errorf("the existing file was not replaced, as cp and numpy.save would")
	}
	for _, p := range []string{fifo, fifoPNG} {
		if st, err := os.Lstat(p); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("%s is no longer a FIFO", p)
		}
	}
	if st, err := os.Stat(os.DevNull); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("%s is no longer a device", os.DevNull)
	}
	for p, content := range before {
		if got := fileContent(p); got != content {
			t.Errorf("%s changed: %q, want %q", p, got, content)
		}
	}
	if _, err := os.Stat(filepath.Join(runDir, "best", "w.npz")); err == nil {
		t.Errorf("export wrote into best/")
	}
}

// TestOutputDirectories checks that train --run, experiment --out and import --out refuse a directory that
// is not empty, leaving its files as they were (item 3).
func TestOutputDirectories(t *testing.T) {
	userDir := t.TempDir()
	files := map[string]string{
		writeFile(t, userDir, "config.json", `{"mine": true}`): `{"mine": true}`,
		writeFile(t, userDir, "results.csv", "my,results\n"):   "my,results\n",
		writeFile(t, userDir, "report.html", "<p>mine</p>"):    "<p>mine</p>",
		writeFile(t, userDir, "summary.json", `{"mine": 1}`):   `{"mine": 1}`,
	}
	for _, args := range [][]string{
		{"train", "--run", userDir, "--epochs", "1"},
		{"experiment", "windowed-vs-dense", "--out", userDir},
		{"import", "--model", "seqresnet-cifar-demo", "--weights", demoWeights, "--out", userDir},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%q: exit %d, want 2; stderr:\n%s", args, code, stderr)
		}
		checkMessage(t, stderr, "is not empty")
	}
	for p, content := range files {
		if got := fileContent(p); got != content {
			t.Errorf("%s changed: %q, want %q", p, got, content)
		}
	}
}

// TestFailedTrainRemovesItsDirectory checks that a train that fails before its first checkpoint removes the
// run directory it created (item 5), and that an explicitly requested backend that cannot be created is an
// error, not a fallback (item 10).
func TestFailedTrainRemovesItsDirectory(t *testing.T) {
	parent := t.TempDir()
	runDir := filepath.Join(parent, "new", "run")
	code, _, stderr := runCLI(t, "train", "--data", "cifar10", "--data-dir", filepath.Join(parent, "nodata"),
		"--model", "seqresnet-cifar-demo", "--run", runDir, "--quiet")
	if code != exitFailure {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	checkMessage(t, stderr, "removed "+runDir)
	if _, err := os.Stat(filepath.Join(parent, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the directories train created are still there: %v", err)
	}

	t.Setenv(backendEnvVar, "bogus")
	emptyDir := t.TempDir()
	code, _, stderr = runCLI(t, "train", "--run", emptyDir, "--quiet")
	if code != exitFailure {
		t.Errorf("%s=bogus: exit %d, want 1; stderr:\n%s", backendEnvVar, code, stderr)
	}
	checkMessage(t, stderr, "bogus")
	if entries, err := os.ReadDir(emptyDir); err != nil || len(entries) != 0 {
		t.Errorf("the empty run directory was not left empty: %v, %v", entries, err)
	}
}

// TestBadValidationImageKeepsEpoch checks that a bad validation image does not lose the trained epoch: its
// checkpoint is saved before the evaluation, and the run resumes with --skip-bad-images (item 4).
func TestBadValidationImageKeepsEpoch(t *testing.T) {
	root := filepath.Join(t.TempDir(), "shapes")
	writeImageFolder(t, root, []string{"a", "b"}, 8, 2)
	bad := writeFile(t, root, "val/b/zz-bad.png", "not a png")
	runDir := filepath.Join(t.TempDir(), "run")
	model := tiny32ModelConfig(t, 2, 0)
	code, _, stderr := runCLI(t, "train", "--data", root, "--model", model, "--epochs", "1", "--batch", "8",
		"--eval-batch", "4", "--workers", "1", "--run", runDir, "--quiet")
	if code != exitFailure {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	checkMessage(t, stderr, bad)
	if !strings.Contains(stderr, "--resume "+runDir+" --skip-bad-images") {
		t.Errorf("the error does not say how to continue:\n%s", stderr)
	}
	if epoch, step, ok := checkpointPosition(runDir); !ok || epoch != 0 || step != 2 {
		t.Errorf("checkpoint at epoch %d step %d (found %v), want the trained first epoch (step 2 of 2)", epoch, step, ok)
	}
	code, stdout, stderr := runCLI(t, "train", "--resume", runDir, "--skip-bad-images", "--quiet")
	if code != 0 {
		t.Fatalf("resume --skip-bad-images: exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "skipping bad image") || !strings.Contains(stdout, "after 1 epoch;") {
		t.Errorf("resume: stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if rows := readJSONL(t, runDir); len(rows) != 1 || !(rows[0].ImagesPerSecond > 0) {
		t.Errorf("results: %+v", rows)
	}
}

// TestNonFinite checks the non-finite and trailing data of item 9.
func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	// infer: trailing bytes after the array, and NaN pixels.
	trailing := writeFile(t, dir, "trailing.npy", fileContent(demoInput)+"extra")
	input, err := interop.ReadNPYFile(demoInput)
	if err != nil {
		t.Fatal(err)
	}
	input.Data.([]float32)[5] = float32(nanValue())
	nanInput := filepath.Join(dir, "nan.npy")
	if err := interop.WriteNPYFile(nanInput, input); err != nil {
		t.Fatal(err)
	}
	// import: a NaN weight.
	arrays, keys, err := interop.ReadNPZ(demoWeights)
	if err != nil {
		t.Fatal(err)
	}
	var biasKey string
	for _, k := range keys {
		if strings.HasSuffix(k, ".bias") && len(arrays[k].Shape) == 1 && arrays[k].Shape[0] == 10 {
			biasKey = k
		}
	}
	if biasKey == "" {
		t.Fatalf("no classifier bias among %d keys", len(keys))
	}
	arrays[biasKey].Data.([]float32)[3] = float32(nanValue())
	nanWeights := filepath.Join(dir, "nan.npz")
	if err := interop.WriteNPZ(nanWeights, arrays, keys); err != nil {
		t.Fatal(err)
	}
	runDir := importDemo(t)
	nanRun := filepath.Join(t.TempDir(), "nan-run")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"infer trailing bytes", []string{"infer", "--run", runDir, "--input", trailing, "--output", filepath.Join(dir, "l.npy")},
			"5 unexpected bytes after the array data"},
		{"infer NaN pixel", []string{"infer", "--run", runDir, "--input", nanInput, "--output", filepath.Join(dir, "l.npy")},
			"image 0 holds NaN at [N C H W] [0 0 0 5]"},
		{"import NaN weight", []string{"import", "--model", "seqresnet-cifar-demo", "--weights", nanWeights, "--out", nanRun},
			fmt.Sprintf("%q holds NaN at [3]", biasKey)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tc.args...)
			if code != exitFailure {
				t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			checkMessage(t, stderr, tc.want)
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "l.npy")); err == nil {
		t.Errorf("a refused infer wrote its output")
	}
	if _, err := os.Stat(nanRun); err == nil {
		t.Errorf("a refused import left its run directory")
	}
	// --allow-non-finite imports them; eval --json then writes the NaN loss as null and says why.
	code, _, stderr := runCLI(t, "import", "--model", "seqresnet-cifar-demo", "--weights", nanWeights, "--out", nanRun,
		"--allow-non-finite")
	if code != 0 {
		t.Fatalf("import --allow-non-finite: exit %d; stderr:\n%s", code, stderr)
	}
	folder := filepath.Join(t.TempDir(), "ten")
	classes := make([]string, 10)
	for i := range classes {
		classes[i] = fmt.Sprintf("c%d", i)
	}
	writeImageFolder(t, folder, classes, 0, 1)
	code, stdout, stderr := runCLI(t, "eval", "--run", nanRun, "--data", folder, "--json")
	if code != 0 {
		t.Fatalf("eval --json: exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, `"loss":null`) || !strings.Contains(stdout, `"non_finite":"loss is NaN`) {
		t.Errorf("eval --json: %s", stdout)
	}
	code, stdout, stderr = runCLI(t, "eval", "--run", nanRun, "--data", folder)
	if code != 0 || !strings.Contains(stdout, "loss NaN") || !strings.Contains(stderr, "warning: loss is NaN") {
		t.Errorf("eval: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// nanValue returns a NaN (a function, so that the compiler does not fold it).
func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

// TestOneVoice checks the messages of an interrupt and of several errors at once (items 6 and 11), and the
// README's quick start (item 13).
func TestOneVoice(t *testing.T) {
	var stderr bytes.Buffer
	code := runInterruptible(&stderr, func(context.Context) error {
		return fmt.Errorf("interrupted at epoch 1/2, step 3/9: %w; continue with: seqconv train --resume R", context.Canceled)
	})
	if code != exitInterrupted || stderr.String() != "seqconv: interrupted at epoch 1/2, step 3/9; continue with: seqconv train --resume R\n" {
		t.Errorf("interrupt: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	printError(&stderr, errors.Join(errors.New("no good checkpoint:"), errors.New("a is corrupt"), errors.New("b is\ncorrupt")))
	if stderr.String() != "seqconv: no good checkpoint:\n  a is corrupt\n  b is corrupt\n" {
		t.Errorf("joined errors: %q", stderr.String())
	}
	if readme := fileContent("../../README.md"); !strings.Contains(readme, "train --epochs 1 --max-train-images") {
		t.Errorf("the README has no quick first run with --max-train-images")
	}
}
