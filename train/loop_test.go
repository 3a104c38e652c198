package train

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/ml/model"
	gomlxckpt "github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
)

// tinyModelJSON is a very small SeqResNet-B for 8x8 grey images with 4 classes.
const tinyModelJSON = `{"family":"seqresnet-cifar","variant":"b","classes":4,"in_channels":1,"resolution":8,
"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":0.5,"granularity":8,"drop_rate":0}`

func tinyModel(t testing.TB) models.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.json")
	if err := os.WriteFile(path, []byte(tinyModelJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := models.Get(path)
	if err != nil {
		t.Fatalf("tiny model config: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("tiny model config: %v", err)
	}
	return cfg
}

// quadrantSet returns n 8x8 grey noise images whose class (0..3) is the quadrant made brighter.
func quadrantSet(name string, n int, seed uint64) *data.ImageSet {
	const h, w = 8, 8
	rng := rand.New(rand.NewPCG(seed, 7))
	s := &data.ImageSet{Name: name, N: n, H: h, W: w, C: 1, NumClasses: 4,
		Pixels: make([]uint8, n*h*w), Labels: make([]int32, n), Mean: []float32{0.4}, Std: []float32{0.25}}
	for i := range n {
		class := rng.IntN(4)
		s.Labels[i] = int32(class)
		qy, qx := class/2, class%2
		for y := range h {
			for x := range w {
				v := rng.IntN(110)
				if y/4 == qy && x/4 == qx {
					v += 120
				}
				s.Pixels[i*h*w+y*w+x] = uint8(v)
			}
		}
	}
	return s
}

var (
	quadrantOnce             sync.Once
	quadrantTrain, quadValid *data.ImageSet
)

// quadrantSets returns the quadrant training set (augmented with a 1-pixel random crop) and
// validation set.
func quadrantSets() (trainSet, validSet Dataset) {
	quadrantOnce.Do(func() {
		quadrantTrain = quadrantSet("quadrant-train", 256, 1)
		quadValid = quadrantSet("quadrant-valid", 96, 2)
	})
	return ImageSetData(quadrantTrain, data.RandomCrop{Pad: 1}), ImageSetData(quadValid, nil)
}

func tinyConfig(t testing.TB, runDir string) Config {
	return Config{
		Model: tinyModel(t), Epochs: 2, BatchSize: 32, LR: 0.1, Momentum: 0.9, Nesterov: true,
		WeightDecay: 5e-4, NoDecayBNBias: true, Schedule: "multistep", Milestones: []int{1}, Gamma: 0.1,
		Seed: 42, RunDir: runDir, Data: "quadrant", EvalBatchSize: 40, Workers: 1,
	}
}

// readResults reads results.csv of a run directory.
func readResults(t *testing.T, runDir string) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(runDir, ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("reading results.csv: %v", err)
	}
	return rows
}

func parseRow(t *testing.T, row []string) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	for i, name := range ResultsHeader {
		v, err := strconv.ParseFloat(row[i], 64)
		if err != nil {
			t.Fatalf("results.csv %s=%q: %v", name, row[i], err)
		}
		m[name] = v
	}
	return m
}

// TestRun trains the tiny model twice with the same seed and checks the run directory, the
// results, the checkpoints, that the loss decreases and that the runs are identical.
func TestRun(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	runDirs := []string{filepath.Join(t.TempDir(), "run1"), filepath.Join(t.TempDir(), "run2")}
	var results []*Result
	var out bytes.Buffer
	for i, dir := range runDirs {
		cfg := tinyConfig(t, dir)
		cfg.Progress = i == 0
		res, err := Run(context.Background(), b, cfg, trainSet, validSet, &out)
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		results = append(results, res)
	}
	t.Logf("output:\n%s", out.String())

	// Results.
	res := results[0]
	if res.Epochs != 2 || len(res.History) != 2 || res.TrainImages != 256 || res.ValidImages != 96 {
		t.Errorf("result: %+v", res)
	}
	if res.BestValidError > res.History[0].ValidError || res.BestValidError > res.History[1].ValidError ||
		res.FinalValidError != res.History[1].ValidError || res.BestEpoch < 1 {
		t.Errorf("best/final: %+v", res)
	}

	// results.csv
	rows := readResults(t, runDirs[0])
	if len(rows) != 3 || strings.Join(rows[0], ",") !=
		"epoch,train_loss,train_error,valid_loss,valid_error,valid_top5_error,lr,seconds,images_per_second" {
		t.Fatalf("results.csv: %q", rows)
	}
	var epochs []map[string]float64
	for i, row := range rows[1:] {
		m := parseRow(t, row)
		epochs = append(epochs, m)
		if m["epoch"] != float64(i+1) {
			t.Errorf("row %d: epoch %v", i+1, m["epoch"])
		}
		for _, k := range []string{"train_loss", "valid_loss"} {
			if !(m[k] > 0) || m[k] > 10 {
				t.Errorf("row %d: %s = %v", i+1, k, m[k])
			}
		}
		for _, k := range []string{"train_error", "valid_error", "valid_top5_error"} {
			if m[k] < 0 || m[k] > 100 {
				t.Errorf("row %d: %s = %v", i+1, k, m[k])
			}
		}
		if m["valid_top5_error"] != 0 { // 4 classes < 5.
			t.Errorf("row %d: top-5 error with 4 classes = %v", i+1, m["valid_top5_error"])
		}
		if !(m["seconds"] > 0) || !(m["images_per_second"] > 0) {
			t.Errorf("row %d: seconds %v images/s %v", i+1, m["seconds"], m["images_per_second"])
		}
	}
	if epochs[0]["lr"] != 0.1 || math.Abs(epochs[1]["lr"]-0.01) > 1e-12 {
		t.Errorf("learning rates %v, %v: want 0.1, 0.01 (milestone 1)", epochs[0]["lr"], epochs[1]["lr"])
	}
	// The task is easy: the loss decreases and the model beats chance (75% error) clearly.
	if !(epochs[1]["train_loss"] < epochs[0]["train_loss"]) {
		t.Errorf("train loss did not decrease: %v -> %v", epochs[0]["train_loss"], epochs[1]["train_loss"])
	}
	if res.BestValidError > 40 {
		t.Errorf("best valid error %v%%, want < 40%% on the quadrant task", res.BestValidError)
	}

	// Same seed => identical results (but for timings).
	rows2 := readResults(t, runDirs[1])
	for i := 1; i < len(rows); i++ {
		if got, want := strings.Join(rows2[i][:7], ","), strings.Join(rows[i][:7], ","); got != want {
			t.Errorf("same seed, different results:\n run1 %s\n run2 %s", want, got)
		}
	}

	// Output: one summary line per epoch per run, and the progress line of run 1.
	if n := strings.Count(out.String(), " train_loss "); n != 4 {
		t.Errorf("expected 4 summary lines, output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "step 8/8") || !strings.Contains(out.String(), "img/s") {
		t.Errorf("no progress line in output:\n%q", out.String())
	}

	// config.json
	b1, err := os.ReadFile(filepath.Join(runDirs[0], ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfgFile map[string]any
	if err := json.Unmarshal(b1, &cfgFile); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if m, ok := cfgFile["model"].(map[string]any); !ok || m["family"] != "seqresnet-cifar" ||
		cfgFile["epochs"] != 2.0 || cfgFile["augment"] == "none" {
		t.Errorf("config.json: %s", b1)
	}

	// Checkpoints: the latest (2 kept) and the best (1), loadable into fresh stores.
	for _, c := range []struct {
		dir  string
		want int
	}{{LatestDir, KeepCheckpoints}, {BestDir, 1}} {
		dir := filepath.Join(runDirs[0], c.dir)
		names, err := checkpoint.List(dir)
		if err != nil || len(names) != c.want {
			t.Fatalf("%s: %d checkpoints (err %v), want %d", dir, len(names), err, c.want)
		}
		store := model.NewStore()
		if _, err := gomlxckpt.Load(store).Dir(dir).Immediate().Done(); err != nil {
			t.Fatalf("loading %s: %v", dir, err)
		}
		numTrainable := 0
		for v := range store.IterVariables() {
			if !v.HasValue() {
				t.Errorf("%s: variable %s has no value", dir, v.Path())
			}
			if strings.HasSuffix(v.Path(), "/weight") {
				numTrainable++
			}
		}
		if numTrainable == 0 || store.GetVariable(LearningRatePath) == nil {
			t.Errorf("%s: loaded %d variables, %d weights, learning rate %v", dir, store.NumVariables(),
				numTrainable, store.GetVariable(LearningRatePath))
		}
	}

	// Evaluate the best checkpoint: it matches the best epoch's validation statistics.
	cfg := tinyConfig(t, "")
	ev, err := EvaluateCheckpoint(context.Background(), b, filepath.Join(runDirs[0], BestDir),
		cfg.Model, validSet, 40)
	if err != nil {
		t.Fatal(err)
	}
	loss, top1, top5 := ev.Loss, ev.Top1Error, ev.Top5Error
	best := res.History[res.BestEpoch-1]
	if math.Abs(top1-best.ValidError) > 1e-3 || math.Abs(loss-best.ValidLoss) > 1e-3*math.Max(1, loss) || top5 != 0 {
		t.Errorf("EvaluateCheckpoint(best): loss %v top1 %v top5 %v, want %v %v 0", loss, top1, top5,
			best.ValidLoss, best.ValidError)
	}

	// A second run into the same directory is refused.
	if _, err := Run(context.Background(), b, tinyConfig(t, runDirs[0]), trainSet, validSet, nil); err == nil ||
		!strings.Contains(err.Error(), "already holds checkpoints") {
		t.Errorf("Run into a used run directory: got %v", err)
	}
}

// TestRunNaN checks that a diverging run stops at once with an error naming NaN/Inf, the epoch
// and the step, without saving a checkpoint.
func TestRunNaN(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir)
	cfg.LR = 1e30
	cfg.Epochs = 1
	res, err := Run(context.Background(), b, cfg, trainSet, validSet, nil)
	if err == nil {
		t.Fatalf("Run with LR 1e30 succeeded: %+v", res)
	}
	msg := err.Error()
	t.Logf("error: %s", msg)
	if !errors.Is(err, ErrNonFiniteLoss) || !(strings.Contains(msg, "NaN") || strings.Contains(msg, "Inf")) ||
		!strings.Contains(msg, "step ") || !strings.Contains(msg, "epoch 1/1") {
		t.Errorf("unexpected error: %v", err)
	}
	if res == nil || res.Epochs != 0 {
		t.Errorf("result: %+v", res)
	}
	names, _ := checkpoint.List(filepath.Join(dir, LatestDir))
	bestNames, _ := checkpoint.List(filepath.Join(dir, BestDir))
	if len(names)+len(bestNames) != 0 {
		t.Errorf("checkpoints saved after NaN: %v %v", names, bestNames)
	}
	if rows := readResults(t, dir); len(rows) != 1 {
		t.Errorf("results.csv rows after NaN: %q", rows)
	}
}

// cancelWriter cancels a context when the output contains a marker.
type cancelWriter struct {
	buf    bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.marker) {
		w.cancel()
	}
	return len(p), nil
}

// TestRunCancel cancels the context during the first epoch (after step 2's progress update).
func TestRunCancel(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	saved := ProgressInterval
	ProgressInterval = 0
	defer func() { ProgressInterval = saved }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{marker: "step 2/8", cancel: cancel}
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	cfg.Progress = true
	_, err := Run(ctx, b, cfg, trainSet, validSet, w)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "epoch 1/2, step 2/8") {
		t.Errorf("got error %v, want an interruption at epoch 1/2 step 2/8", err)
	}
}

func TestConfigValidate(t *testing.T) {
	m := tinyModel(t)
	good := Config{Model: m, Epochs: 1, BatchSize: 8, LR: 0.1, RunDir: "x"}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	badModel := m
	badModel.Classes = 0
	for _, c := range []struct {
		name, want string
		mod        func(*Config)
	}{
		{"epochs", "epochs", func(c *Config) { c.Epochs = 0 }},
		{"batch", "batch size", func(c *Config) { c.BatchSize = -1 }},
		{"lr", "learning rate", func(c *Config) { c.LR = 0 }},
		{"lr nan", "learning rate", func(c *Config) { c.LR = math.NaN() }},
		{"momentum", "momentum", func(c *Config) { c.Momentum = -1 }},
		{"nesterov", "Nesterov", func(c *Config) { c.Nesterov = true }},
		{"smoothing", "label smoothing", func(c *Config) { c.LabelSmoothing = 1 }},
		{"schedule", "schedule", func(c *Config) { c.Schedule = "linear" }},
		{"run dir", "run directory", func(c *Config) { c.RunDir = "" }},
		{"model", "classes", func(c *Config) { c.Model = badModel }},
		{"max images", "max train images", func(c *Config) { c.MaxTrainImages = -1 }},
	} {
		cfg := good
		c.mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
}

// TestRunRejectsBadSets checks the data checks done before any training.
func TestRunRejectsBadSets(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	cfg := tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	cfg.BatchSize = 512
	if _, err := Run(context.Background(), b, cfg, trainSet, validSet, nil); err == nil ||
		!strings.Contains(err.Error(), "fewer than one batch") {
		t.Errorf("batch larger than the set: got %v", err)
	}
	cfg = tinyConfig(t, filepath.Join(t.TempDir(), "run"))
	cfg.Model.InChannels = 3
	if _, err := Run(context.Background(), b, cfg, trainSet, validSet, nil); err == nil ||
		!strings.Contains(err.Error(), "channels") {
		t.Errorf("channel mismatch: got %v", err)
	}
}
