package train

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/models"
)

// tinyDropoutModelJSON is tinyModelJSON with dropout, so that the training uses the store's random
// number generator, whose state a resumed run must restore.
const tinyDropoutModelJSON = `{"family":"seqresnet-cifar","variant":"b","classes":4,"in_channels":1,"resolution":8,
"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":0.5,"granularity":8,"drop_rate":0.2}`

// resumeConfig is a 3-epoch run of the tiny dropout model with a checkpoint every 3 steps.
func resumeConfig(t *testing.T, runDir string) Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny-dropout.json")
	if err := os.WriteFile(path, []byte(tinyDropoutModelJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := models.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := tinyConfig(t, runDir)
	cfg.Model = m.WithDefaults()
	cfg.Epochs = 3
	cfg.Milestones = []int{2}
	cfg.CheckpointEverySteps = 3
	cfg.Progress = true
	return cfg
}

// checkpointBytes returns the raw bytes of every variable of the latest checkpoint of dir but the
// metric accumulators (reset by every epoch), by path.
func checkpointBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	c, err := latestCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := c.Values()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for path, v := range vals {
		if strings.HasPrefix(path, "/metrics/") {
			continue
		}
		if err := v.ConstBytes(func(b []byte) { out[path] = bytes.Clone(b) }); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// sameRuns checks two run directories have the same results (but for timings, bit for bit in
// results.jsonl) and final checkpoints (bit for bit).
func sameRuns(t *testing.T, want, got string) {
	t.Helper()
	wantRows, gotRows := readResults(t, want), readResults(t, got)
	if len(wantRows) != len(gotRows) {
		t.Fatalf("results.csv: %d rows, want %d:\n%q\n%q", len(gotRows), len(wantRows), gotRows, wantRows)
	}
	for i := range wantRows {
		if w, g := strings.Join(wantRows[i][:7], ","), strings.Join(gotRows[i][:7], ","); w != g {
			t.Errorf("results.csv row %d:\n got  %s\n want %s", i, g, w)
		}
	}
	wantJSON, err := ReadResults(want)
	if err != nil {
		t.Fatal(err)
	}
	gotJSON, err := ReadResults(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(wantJSON) != len(gotJSON) {
		t.Fatalf("results.jsonl: %d lines, want %d", len(gotJSON), len(wantJSON))
	}
	for i := range wantJSON {
		w, g := wantJSON[i], gotJSON[i]
		w.Seconds, w.ImagesPerSecond, g.Seconds, g.ImagesPerSecond = 0, 0, 0, 0
		if w != g {
			t.Errorf("results.jsonl epoch %d:\n got  %+v\n want %+v", i+1, g, w)
		}
	}
	wantVars := checkpointBytes(t, filepath.Join(want, LatestDir))
	gotVars := checkpointBytes(t, filepath.Join(got, LatestDir))
	if len(wantVars) < 10 || len(wantVars) != len(gotVars) {
		t.Fatalf("final checkpoints: %d and %d variables", len(wantVars), len(gotVars))
	}
	for path, w := range wantVars {
		if g, ok := gotVars[path]; !ok || !bytes.Equal(w, g) {
			t.Errorf("final variable %s differs (present: %v)", path, ok)
		}
	}
	for _, p := range []string{"#rngState", "global_step", "_momentum", "running_var"} {
		if !slices.ContainsFunc(slices.Collect(mapsKeys(wantVars)), func(k string) bool { return strings.Contains(k, p) }) {
			t.Errorf("the checkpoint has no variable %q", p)
		}
	}
}

func mapsKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// interruptedRun runs cfg until the progress output contains marker, and checks it stopped with
// a cancellation error.
func interruptedRun(t *testing.T, cfg Config, marker string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trainSet, validSet := quadrantSets()
	w := &cancelWriter{marker: marker, cancel: cancel}
	_, err := Run(ctx, testBackend(t), cfg, trainSet, validSet, w)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: got error %v, want a cancellation", err)
	}
}

// TestResumeExact trains 3 epochs straight, and interrupted then resumed in several ways (in the
// middle of an epoch, between epochs, with a corrupt newest checkpoint), and checks that every
// resumed run ends with the same results and weights, bit for bit.
func TestResumeExact(t *testing.T) {
	b := testBackend(t)
	saved := ProgressInterval
	ProgressInterval = 0
	defer func() { ProgressInterval = saved }()
	trainSet, validSet := quadrantSets()

	straight := filepath.Join(t.TempDir(), "straight")
	if _, err := Run(context.Background(), b, resumeConfig(t, straight), trainSet, validSet, nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, marker string
		corrupt      bool // truncate the newest checkpoint before resuming.
		wantEpoch    int  // position of the checkpoint resumed from.
		wantStep     int
	}{
		{"mid-epoch", "epoch 2/3 step 5/8 ", false, 1, 5},
		{"epoch boundary", "epoch 1/3 train_loss", false, 1, 0},
		{"last step", "epoch 3/3 step 8/8 ", false, 2, 8},
		{"corrupt newest", "epoch 2/3 step 5/8 ", true, 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			cfg := resumeConfig(t, dir)
			interruptedRun(t, cfg, tc.marker)
			if tc.corrupt {
				c, err := latestCheckpoint(filepath.Join(dir, LatestDir))
				if err != nil {
					t.Fatal(err)
				}
				bin := filepath.Join(dir, LatestDir, c.Name+checkpoint.DataSuffix)
				st, err := os.Stat(bin)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(bin, st.Size()/2); err != nil {
					t.Fatal(err)
				}
			}
			var log bytes.Buffer
			cfg.Log = &log
			cfg.Progress = false
			cfg.Workers = 2 // A runtime setting: it may change.
			res, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil)
			if err != nil {
				t.Fatalf("resume: %v\nlog:\n%s", err, log.String())
			}
			if res.ResumedEpoch != tc.wantEpoch || res.ResumedStep != tc.wantStep || res.Epochs != 3 ||
				len(res.History) != 3 {
				t.Errorf("resumed from epoch %d step %d (%s), %d epochs; want epoch %d step %d",
					res.ResumedEpoch, res.ResumedStep, res.ResumedFrom, res.Epochs, tc.wantEpoch, tc.wantStep)
			}
			if tc.corrupt != strings.Contains(log.String(), "falling back") {
				t.Errorf("warnings:\n%s", log.String())
			}
			if tc.corrupt && !strings.Contains(log.String(), checkpoint.DataSuffix) {
				t.Errorf("the warning does not name the corrupt file:\n%s", log.String())
			}
			sameRuns(t, straight, dir)
			straightRes, _ := ReadResults(straight)
			if res.BestEpoch < 1 || res.BestValidError != minValidError(straightRes) {
				t.Errorf("best: epoch %d error %v", res.BestEpoch, res.BestValidError)
			}
			// The best directory holds the best epoch's checkpoint.
			if names, _ := checkpoint.List(filepath.Join(dir, BestDir)); len(names) != 1 {
				t.Errorf("best/: %v", names)
			}
		})
	}
}

func minValidError(rs []EpochResult) float64 {
	m := rs[0].ValidError
	for _, r := range rs {
		m = min(m, r.ValidError)
	}
	return m
}

// TestResumeErrors checks that Resume refuses a changed configuration, a run without
// checkpoints, and one whose checkpoints are all corrupt.
func TestResumeErrors(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir)
	cfg.Epochs = 1
	if _, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil); err == nil ||
		!strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("resume of a missing run: %v", err)
	}
	if _, err := Run(context.Background(), b, cfg, trainSet, validSet, nil); err != nil {
		t.Fatal(err)
	}
	changed := cfg
	changed.LR = 0.2
	changed.Seed = 7
	_, err := Resume(context.Background(), b, changed, trainSet, validSet, nil)
	if err == nil || !strings.Contains(err.Error(), "lr 0.2 (saved: 0.1)") || !strings.Contains(err.Error(), "seed 7") {
		t.Errorf("resume with another lr and seed: %v", err)
	}
	// A complete run resumes to nothing more.
	res, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil)
	if err != nil || res.Epochs != 1 || len(res.History) != 1 {
		t.Errorf("resume of a complete run: %v, %+v", err, res)
	}
	// Every checkpoint corrupt.
	entries, _ := checkpoint.Scan(filepath.Join(dir, LatestDir))
	for _, e := range entries {
		p := filepath.Join(dir, LatestDir, e.Name+checkpoint.MetaSuffix)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log bytes.Buffer
	cfg.Log = &log
	if _, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil); err == nil ||
		!errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), "no good checkpoint") {
		t.Errorf("resume with corrupt checkpoints: %v", err)
	}
	if !strings.Contains(log.String(), "does not match its SHA-256") {
		t.Errorf("warnings: %s", log.String())
	}
	// LoadRun on the best checkpoint still works; on the (set aside) latest ones it fails clearly.
	if _, _, err := LoadRun(b, dir, true); err != nil {
		t.Errorf("LoadRun best: %v", err)
	}
	if _, _, err := LoadRun(b, dir, false); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("LoadRun latest: %v", err)
	}
}

// TestRunNaNKeepsCheckpoint makes the loss diverge in the second epoch (the learning rate jumps to
// 1e30): training stops at once, naming the step, and the checkpoint of epoch 1 stays good.
func TestRunNaNKeepsCheckpoint(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir)
	cfg.Gamma = 1e31 // lr 0.1 -> 1e30 at the milestone, epoch 2.
	cfg.CheckpointEverySteps = 1
	res, err := Run(context.Background(), b, cfg, trainSet, validSet, nil)
	if !errors.Is(err, ErrNonFiniteLoss) || !strings.Contains(err.Error(), "epoch 2/2, step ") {
		t.Fatalf("got error %v, want a non-finite loss in epoch 2", err)
	}
	t.Logf("error: %v", err)
	if res == nil || res.Epochs != 1 {
		t.Errorf("result: %+v", res)
	}
	c, err := latestCheckpoint(filepath.Join(dir, LatestDir))
	if err != nil {
		t.Fatalf("the last checkpoint is not good: %v", err)
	}
	// The newest checkpoint is the last step before the divergence: every value finite.
	if c.state.Epoch != 1 {
		t.Errorf("last checkpoint at epoch %d step %d", c.state.Epoch, c.state.Step)
	}
	vals, err := c.Values()
	if err != nil {
		t.Fatal(err)
	}
	for path, v := range vals {
		if v.DType().String() != "Float32" {
			continue
		}
		for _, x := range tensors.MustCopyFlatData[float32](v) {
			if x != x || x > 1e30 || x < -1e30 {
				t.Fatalf("checkpoint variable %s holds %v", path, x)
			}
		}
	}
	if rows := readResults(t, dir); len(rows) != 2 {
		t.Errorf("results.csv: %q", rows)
	}
}

// TestCheckpointFiles checks the files of a checkpoint, atomic copies and the detection of
// truncated, corrupt and incomplete checkpoints.
func TestCheckpointFiles(t *testing.T) {
	store := smallStore(t)
	dir := t.TempDir()
	st := &trainState{Format: stateFormat, Epoch: 0, Step: 2, StepsPerEpoch: 4, GlobalStep: 2}
	name, err := saveCheckpoint(store, dir, st, KeepCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(dir)
	var got []string
	for _, f := range files {
		got = append(got, f.Name())
	}
	want := []string{name + ".bin", name + ".json", name + ".sha256", name + ".state"}
	if !slices.Equal(got, want) {
		t.Errorf("files %q, want %q", got, want)
	}
	manifest, _ := os.ReadFile(filepath.Join(dir, name+checkpoint.ManifestSuffix))
	if n := strings.Count(string(manifest), "\n"); n != 3 {
		t.Errorf("manifest:\n%s", manifest)
	}
	// Loadable by LoadCheckpoint, and its values are the store's.
	loaded := model.NewStore()
	h, err := LoadCheckpoint(loaded, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.LoadedVariables()) != 3 {
		t.Errorf("loaded %d variables", len(h.LoadedVariables()))
	}
	if v := loaded.GetVariable("/layer/weight"); v == nil || tensors.MustCopyFlatData[float32](v.MustValue())[5] != 6 {
		t.Errorf("/layer/weight: %v", v)
	}

	// Keep 2: a third save removes the first.
	for range 2 {
		st.GlobalStep++
		if _, err := saveCheckpoint(store, dir, st, KeepCheckpoints); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := checkpoint.List(dir)
	if len(names) != 2 || names[0] == name {
		t.Errorf("after 3 saves: %v", names)
	}

	corruptions := []struct {
		name   string
		modify func(base string)
		want   string
	}{
		{"truncated data", func(base string) { _ = os.Truncate(base+".bin", 10) }, ".bin (10 bytes) does not match its SHA-256"},
		{"flipped metadata", func(base string) { flip(t, base+".json") }, ".json"},
		{"flipped state", func(base string) { flip(t, base+".state") }, ".state"},
		{"missing data", func(base string) { _ = os.Remove(base + ".bin") }, ".bin is missing"},
		{"bad manifest", func(base string) { _ = os.WriteFile(base+".sha256", []byte("xyz\n"), 0o644) }, "is not"},
	}
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			d := t.TempDir()
			name, err := saveCheckpoint(store, d, st, KeepCheckpoints)
			if err != nil {
				t.Fatal(err)
			}
			c.modify(filepath.Join(d, name))
			_, err = LoadCheckpoint(model.NewStore(), d)
			if !errors.Is(err, checkpoint.ErrCorrupt) || !strings.Contains(err.Error(), c.want) ||
				!strings.Contains(err.Error(), name) {
				t.Errorf("got %v, want an error naming %s and %q", err, name, c.want)
			}
		})
	}
	// An incomplete newer checkpoint (no manifest) is skipped.
	d := t.TempDir()
	first, _ := saveCheckpoint(store, d, st, 0)
	st.GlobalStep++
	second, _ := saveCheckpoint(store, d, st, 0)
	_ = os.Remove(filepath.Join(d, second+checkpoint.ManifestSuffix))
	c, err := latestCheckpoint(d)
	if err != nil || c.Name != first {
		t.Errorf("with an incomplete newest checkpoint: %v, %v", c, err)
	}
	// checkpoint.Copy makes the destination hold exactly that checkpoint, verified.
	st.GlobalStep++
	third, _ := saveCheckpoint(store, d, st, 0)
	best := filepath.Join(d, "best")
	for _, n := range []string{third, first} {
		if err := checkpoint.Copy(d, n, best); err != nil {
			t.Fatal(err)
		}
	}
	if names, _ := checkpoint.List(best); !slices.Equal(names, []string{first}) {
		t.Errorf("best: %v", names)
	}
	if _, err := LoadCheckpoint(model.NewStore(), best); err != nil {
		t.Error(err)
	}
}

// flip flips one bit in the middle of a file.
func flip(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// smallStore returns a store with three variables of different dtypes.
func smallStore(t testing.TB) *model.Store {
	store := model.NewStore()
	for _, v := range []struct {
		path  string
		value any
	}{
		{"/layer/weight", [][]float32{{1, 2, 3}, {4, 5, 6}}},
		{"/global_step", int64(7)},
		{"/layer/bias", []float64{0.5, -0.5}},
	} {
		if _, err := store.CreateVariable(v.path, tensors.MustFromAnyValue(v.value)); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
