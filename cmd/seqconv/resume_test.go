package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/train"
)

// cliChildEnv, when "1", makes the test binary run the seqconv command line of its arguments instead
// of the tests (see TestMain), so that a test can run (and kill) seqconv in a separate process.
const cliChildEnv = "SEQCONV_TEST_CLI_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// checkpointPosition returns the training position (completed epochs, step of the next epoch) of
// the newest complete checkpoint of a run directory, or ok=false when there is none yet.
func checkpointPosition(runDir string) (epoch, step int, ok bool) {
	dir := filepath.Join(runDir, train.LatestDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, false
	}
	for i := len(entries) - 1; i >= 0; i-- {
		name, isManifest := strings.CutSuffix(entries[i].Name(), ".sha256")
		if !isManifest || !strings.HasPrefix(name, "checkpoint-") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name+".state"))
		if err != nil {
			continue
		}
		var st struct{ Epoch, Step int }
		if json.Unmarshal(b, &st) != nil {
			continue
		}
		return st.Epoch, st.Step, true
	}
	return 0, 0, false
}

// runVariables loads the latest checkpoint of a run directory and returns the raw bytes of its model
// variables by path.
func runVariables(t *testing.T, runDir string, best bool) map[string][]byte {
	t.Helper()
	backend, err := newBackend(io.Discard, engine.Training)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	_, store, err := train.LoadRun(backend, runDir, best)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for v := range store.IterVariables() {
		val, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		_ = val.ConstBytes(func(b []byte) { out[v.Path()] = bytes.Clone(b) })
	}
	return out
}

// TestKillAndResume starts a training run with a checkpoint after every step in a separate process,
// kills it with SIGKILL in the middle of its second epoch, resumes it with --resume, and checks that
// the results and the final weights are those of an uninterrupted run with the same seed, exactly.
func TestKillAndResume(t *testing.T) {
	dataDir := t.TempDir()
	writeCIFAR10(t, dataDir, 32, 16) // 160 training images: 20 steps of 8 per epoch.
	model := tiny32ModelConfig(t, 10, 0.1)
	args := func(runDir string) []string {
		return []string{"train", "--data", "cifar10", "--data-dir", dataDir, "--model", model, "--epochs", "3",
			"--batch", "8", "--eval-batch", "16", "--schedule", "multistep", "--milestones", "2", "--seed", "5",
			"--checkpoint-every-steps", "1", "--workers", "1", "--quiet", "--run", runDir}
	}

	// The interrupted run, in a child process killed once a checkpoint in epoch 2 exists.
	killed := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(os.Args[0], args(killed)...)
	cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	var childOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &childOut, &childOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(60 * time.Second)
	var killEpoch, killStep int
poll:
	for {
		select {
		case err := <-done:
			t.Fatalf("the training process ended before it could be killed (%v):\n%s", err, childOut.String())
		case <-deadline:
			_ = cmd.Process.Kill()
			t.Fatalf("no checkpoint in epoch 2 after 60s:\n%s", childOut.String())
		case <-time.After(2 * time.Millisecond):
			if e, s, ok := checkpointPosition(killed); ok && e == 1 && s >= 3 {
				killEpoch, killStep = e, s
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				break poll
			}
		}
	}
	err := <-done
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the training process was not killed by SIGKILL: %v\n%s", err, childOut.String())
	}
	e, s, _ := checkpointPosition(killed)
	t.Logf("killed after the checkpoint of epoch %d step %d (newest complete: epoch %d step %d)", killEpoch+1,
		killStep, e+1, s)
	if rows, _ := train.ReadResults(killed); len(rows) != 1 {
		t.Errorf("the killed run has %d epochs in results.jsonl, want 1", len(rows))
	}

	// Conflicting flags are refused; the same values are accepted.
	code, _, errOut := runCLI(t, "train", "--resume", killed, "--lr", "0.5")
	if code != exitUsage || !strings.Contains(errOut, "--lr 0.5 conflicts") || !strings.Contains(errOut, "(0.1)") {
		t.Errorf("--resume with another --lr: exit %d, %s", code, errOut)
	}
	code, _, errOut = runCLI(t, "train", "--resume", killed, "--run", killed)
	if code != exitUsage || !strings.Contains(errOut, "--run cannot be used with --resume") {
		t.Errorf("--resume with --run: exit %d, %s", code, errOut)
	}

	// Resume, in this process, with a different number of workers.
	code, out, errOut := runCLI(t, "train", "--resume", killed, "--workers", "2", "--batch", "8", "--lr", "1e-1")
	t.Logf("resume stdout:\n%s\nstderr:\n%s", out, errOut)
	if code != 0 {
		t.Fatalf("resume: exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "resuming from checkpoint-") || !strings.Contains(out, "after 3 epochs") {
		t.Errorf("resume stdout:\n%s", out)
	}
	assertNoCrash(t, out, errOut)

	// The uninterrupted run.
	straight := filepath.Join(t.TempDir(), "straight")
	if code, out, errOut := runCLI(t, args(straight)...); code != 0 {
		t.Fatalf("uninterrupted run: exit %d\n%s\n%s", code, out, errOut)
	}

	want, got := readJSONL(t, straight), readJSONL(t, killed)
	if len(want) != 3 || len(got) != 3 {
		t.Fatalf("results.jsonl: %d and %d epochs, want 3", len(want), len(got))
	}
	for i := range want {
		w, g := want[i], got[i]
		w.Seconds, w.ImagesPerSecond, g.Seconds, g.ImagesPerSecond = 0, 0, 0, 0
		if w != g {
			t.Errorf("epoch %d:\n resumed       %+v\n uninterrupted %+v", i+1, g, w)
		}
	}
	csvWant, _ := os.ReadFile(filepath.Join(straight, train.ResultsFile))
	csvGot, _ := os.ReadFile(filepath.Join(killed, train.ResultsFile))
	if stripTimings(string(csvWant)) != stripTimings(string(csvGot)) {
		t.Errorf("results.csv differ:\n%s\n%s", csvGot, csvWant)
	}
	for _, best := range []bool{false, true} {
		wv, gv := runVariables(t, straight, best), runVariables(t, killed, best)
		if len(wv) == 0 || len(wv) != len(gv) {
			t.Fatalf("best=%v: %d and %d variables", best, len(wv), len(gv))
		}
		for path, w := range wv {
			if !bytes.Equal(w, gv[path]) {
				t.Errorf("best=%v: variable %s differs", best, path)
			}
		}
	}
}

// stripTimings removes the seconds and images_per_second columns of results.csv.
func stripTimings(csv string) string {
	var b strings.Builder
	for _, line := range strings.Split(csv, "\n") {
		fields := strings.Split(line, ",")
		if len(fields) > 2 {
			fields = fields[:len(fields)-2]
		}
		b.WriteString(strings.Join(fields, ",") + "\n")
	}
	return b.String()
}
