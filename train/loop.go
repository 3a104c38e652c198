package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/metric"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

// Config configures a training run (see Run). Zero values of Schedule, Gamma and EvalBatchSize
// get defaults (see WithDefaults); every other field is used as given.
type Config struct {
	// Model is the model to train.
	Model models.Config `json:"model"`

	// Epochs is the number of training epochs (>= 1) and BatchSize the training batch size (>= 1).
	// The last incomplete batch of every epoch is dropped.
	Epochs    int `json:"epochs"`
	BatchSize int `json:"batch_size"`

	// LR is the base learning rate (> 0) given to the schedule.
	LR float64 `json:"lr"`
	// Momentum, Nesterov and WeightDecay configure SGD (see SGD); NoDecayBNBias excludes
	// batch-norm parameters and biases from weight decay (see NoDecayForBNAndBias).
	Momentum      float64 `json:"momentum"`
	WeightDecay   float64 `json:"weight_decay"`
	Nesterov      bool    `json:"nesterov"`
	NoDecayBNBias bool    `json:"no_decay_bn_bias"`

	// Schedule is "multistep", "cosine" or "constant" (default: DefaultRecipe's); Milestones, Gamma
	// (default: DefaultRecipe's) and WarmupEpochs are passed to ParseSchedule. The learning rate is set once at
	// the start of every epoch e (counting from 0) to Schedule.LR(e), as PyTorch schedulers
	// stepped once per epoch do.
	Schedule     string  `json:"schedule"`
	Milestones   []int   `json:"milestones,omitempty"`
	Gamma        float64 `json:"gamma"`
	WarmupEpochs float64 `json:"warmup_epochs"`

	// LabelSmoothing in [0, 1) is applied to the training loss only (see CrossEntropyLoss).
	LabelSmoothing float64 `json:"label_smoothing"`

	// Precision is "f32" (the default, also when empty) or "bf16": bfloat16 convolutions with float32
	// accumulation, float32 master weights, batch norm and loss (see layers.PrecisionBF16).
	Precision string `json:"precision,omitempty"`

	// Recompute turns on gradient checkpointing (models.ParamRecompute): less memory, the same results.
	Recompute bool `json:"recompute,omitempty"`

	// Seed seeds the weight initialization, dropout and the data shuffling and augmentation: with
	// the same seed, config and data, runs on a deterministic backend are identical.
	Seed int64 `json:"seed"`

	// RunDir is the directory the run writes (see Run). It is created if needed; for Run it must
	// not already hold a checkpoint, for Resume it must hold one.
	RunDir string `json:"run_dir"`

	// Data names the dataset, DataDir where it was read from, Augmentation the augmentation
	// spec and Recipe the training recipe the command line used: informational (Run uses the sets
	// it is given), recorded in config.json so that a run can be resumed or evaluated on the same
	// data.
	Data         string `json:"data,omitempty"`
	DataDir      string `json:"data_dir,omitempty"`
	Augmentation string `json:"augmentation,omitempty"`
	Recipe       string `json:"recipe,omitempty"`

	// EvalBatchSize is the evaluation batch size; 0 means BatchSize.
	EvalBatchSize int `json:"eval_batch_size"`

	// Progress shows a self-updating progress line while an epoch trains.
	Progress bool `json:"progress"`

	// MaxTrainImages and MaxEvalImages, when > 0, limit training and evaluation to the first
	// images of the sets.
	MaxTrainImages int `json:"max_train_images,omitempty"`
	MaxEvalImages  int `json:"max_eval_images,omitempty"`

	// Workers is the number of data-loading goroutines; 0 means runtime.NumCPU().
	Workers int `json:"workers,omitempty"`

	// CheckpointEverySteps, when > 0, also saves a checkpoint every that many steps within an
	// epoch (a checkpoint is always saved at the end of every epoch), so that Resume loses at
	// most that many steps.
	CheckpointEverySteps int `json:"checkpoint_every_steps,omitempty"`

	// Log receives warnings, such as the checkpoints Resume skips; nil means the out writer of
	// Run or Resume.
	Log io.Writer `json:"-"`
}

// WithDefaults returns c with the defaults applied to zero-valued fields: Schedule and Gamma
// those of DefaultRecipe, EvalBatchSize BatchSize.
func (c Config) WithDefaults() Config {
	d := DefaultRecipe()
	if c.Schedule == "" {
		c.Schedule = d.Schedule
	}
	if c.Gamma == 0 {
		c.Gamma = d.Gamma
	}
	if c.EvalBatchSize == 0 {
		c.EvalBatchSize = c.BatchSize
	}
	return c
}

// Validate checks the configuration (with defaults applied) and returns an error naming the
// offending field. It does not touch the file system.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("model %s: %w", c.Model.Name, err)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if c.Precision != "" {
		if _, err := layers.ParsePrecision(c.Precision); err != nil {
			return fmt.Errorf("precision: %w", err)
		}
	}
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be >= 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be >= 1, got %d", c.BatchSize)
	case c.EvalBatchSize < 1:
		return fmt.Errorf("eval batch size must be >= 1, got %d", c.EvalBatchSize)
	case !(c.LR > 0) || !finite(c.LR):
		return fmt.Errorf("learning rate must be a finite value > 0, got %g", c.LR)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 || !finite(c.LabelSmoothing):
		return fmt.Errorf("label smoothing must be in [0, 1), got %g", c.LabelSmoothing)
	case c.MaxTrainImages < 0:
		return fmt.Errorf("max train images must be >= 0 (0: all), got %d", c.MaxTrainImages)
	case c.MaxEvalImages < 0:
		return fmt.Errorf("max eval images must be >= 0 (0: all), got %d", c.MaxEvalImages)
	case c.Workers < 0:
		return fmt.Errorf("workers must be >= 0 (0: one per CPU), got %d", c.Workers)
	case c.CheckpointEverySteps < 0:
		return fmt.Errorf("checkpoint every steps must be >= 0 (0: at epoch ends only), got %d",
			c.CheckpointEverySteps)
	case c.RunDir == "":
		return errors.New("the run directory is not set")
	}
	if _, err := c.optimizer(c.LR); err != nil {
		return fmt.Errorf("%w", err)
	}
	if _, err := c.schedule(); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}

// schedule returns the learning-rate schedule of c (with defaults applied).
func (c Config) schedule() (Schedule, error) {
	return ParseSchedule(c.Schedule, c.LR, c.Epochs, c.Milestones, c.Gamma, c.WarmupEpochs)
}

// optimizer returns the SGD optimizer of c with the given initial learning rate.
func (c Config) optimizer(lr float64) (*SGDOptimizer, error) {
	sgd := SGD().LearningRate(lr).Momentum(c.Momentum).Nesterov(c.Nesterov).WeightDecay(c.WeightDecay)
	if c.NoDecayBNBias {
		sgd = sgd.WeightDecayFilter(NoDecayForBNAndBias)
	}
	return sgd.Build()
}

// Result summarizes a training run.
type Result struct {
	// BestValidError is the lowest validation top-1 error (%) of all epochs, at BestEpoch
	// (counting from 1; 0 when no epoch completed); its checkpoint is in the run's BestDir.
	BestValidError float64
	BestEpoch      int
	// FinalValidError, FinalTop5Error and FinalValidLoss are those of the last epoch trained.
	FinalValidError, FinalTop5Error, FinalValidLoss float64
	// Epochs is the number of epochs completed (for a resumed run, including those before).
	Epochs int
	// Seconds is the wall time of the run (of this session, for a resumed run).
	Seconds float64
	// History has one entry per completed epoch.
	History []EpochResult
	// RunDir is the run directory.
	RunDir string
	// TrainImages and ValidImages are the numbers of images used (after MaxTrainImages and
	// MaxEvalImages).
	TrainImages, ValidImages int
	// ResumedFrom is the checkpoint a resumed run started from ("" for a new run), at epoch
	// ResumedEpoch (completed epochs) and step ResumedStep of the next one.
	ResumedFrom               string
	ResumedEpoch, ResumedStep int
}

// ErrNonFiniteLoss is wrapped by the error Run returns when the training loss becomes NaN or Inf.
var ErrNonFiniteLoss = errors.New("training loss is not finite")

// Indices of the training metrics of the GoMLX trainer built by Run: GoMLX puts the batch loss and
// its moving average first; then comes the batch's top-1 error.
const (
	trainMetricBatchLoss  = 0
	trainMetricBatchError = 2
)

// runConfigFile is what config.json holds: the Config plus a description of what is not
// serializable and of the data actually used.
type runConfigFile struct {
	Config
	AugmentDesc  string `json:"augment"`
	EvalDesc     string `json:"eval_pipeline,omitempty"`
	Backend      string `json:"backend"`
	TrainData    string `json:"train_data,omitempty"`
	ValidData    string `json:"valid_data,omitempty"`
	TrainImages  int    `json:"train_images"`
	ValidImages  int    `json:"valid_images"`
	ScheduleStr  string `json:"schedule_desc"`
	Optimizer    string `json:"optimizer"`
	StepsPerEpch int    `json:"steps_per_epoch,omitempty"`
}

// runtimeConfigKeys are the keys of config.json that a resumed run may change: they do not change
// the results (but for timings). The free-form descriptions of the data pipelines ("augment",
// "eval_pipeline") are not compared either (they may hold pointers); "augmentation", the
// command line's spec, is.
var runtimeConfigKeys = []string{"run_dir", "progress", "workers", "checkpoint_every_steps", "data_dir", "backend",
	"augment", "eval_pipeline"}

// describeAugmenter describes an augmenter for config.json.
func describeAugmenter(a data.Augmenter) string {
	if a == nil {
		return "none"
	}
	if s, ok := a.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T%+v", a, a)
}

// Run trains cfg.Model on trainData with SGD, evaluating on validData after every epoch, and
// writes the run directory cfg.RunDir:
//
//   - config.json: the Config (with the model config) and a description of the run;
//   - classes.json: the class names of trainData, if it has them;
//   - results.csv: ResultsHeader and one row per epoch, and results.jsonl, one JSON object per
//     epoch with the same keys, each appended and synced after every epoch;
//   - checkpoint/: the checkpoints (weights, batch-norm statistics, momentum buffers, global step,
//     random number generator state and training position) of the last KeepCheckpoints epochs
//     (or steps, see Config.CheckpointEverySteps), each written atomically with a SHA-256
//     manifest (see LoadCheckpoint);
//   - best/: a copy of the checkpoint of the epoch with the lowest validation error.
//
// The model is seeded with cfg.Seed; training batches are shuffled (with cfg.Seed) and augmented by
// trainData's training loaders, and the last incomplete batch of an epoch is dropped; evaluation
// uses all the images in order. The data sets must have the model's number of channels and of
// classes. Summary lines (and, with cfg.Progress, a progress line) are written to out (nil:
// discarded).
//
// Run stops with an error wrapping ErrNonFiniteLoss, naming the epoch and step, as soon as a
// training batch loss is NaN or Inf; that state is not saved, so the last checkpoint is the last
// good state. It stops with an error wrapping ctx.Err() when ctx is cancelled, checked between
// steps, after saving a checkpoint of the state reached, from which Resume continues. On errors
// after training started, the returned Result holds the epochs completed so far.
func Run(ctx context.Context, backend compute.Backend, cfg Config, trainData, validData Dataset,
	out io.Writer) (*Result, error) {
	return run(ctx, backend, cfg, trainData, validData, out, false)
}

// Resume continues the run of cfg.RunDir from its newest good checkpoint, with the same data, and
// appends to its results: the final weights and results (but for timings) are those of an
// uninterrupted run, bit for bit on a deterministic backend. cfg must be the run's configuration,
// as ReadConfig returns it, but for runtime fields that do not change results (Progress, Workers,
// CheckpointEverySteps, DataDir, Log); differences are an error naming them.
//
// Checkpoints newer than the one resumed from are set aside: incomplete ones (interrupted while
// saving) are removed, corrupt ones (checksum mismatch) renamed with the prefix "corrupt-"; each
// is reported with a warning on cfg.Log. results.csv and results.jsonl are rewritten with the
// epochs of the checkpoint, and the training continues at its epoch and step: the model, batch-norm
// statistics, momentum buffers, global step and random number generator state come from the
// checkpoint, the learning rate from the schedule at that epoch, and the data order and
// augmentations from the seed, the epoch and the position in it (an epoch resumed in the middle
// skips the batches already trained). See Run for the rest.
func Resume(ctx context.Context, backend compute.Backend, cfg Config, trainData, validData Dataset,
	out io.Writer) (*Result, error) {
	return run(ctx, backend, cfg, trainData, validData, out, true)
}

func run(ctx context.Context, backend compute.Backend, cfg Config, trainData, validData Dataset,
	out io.Writer, resume bool) (result *Result, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if out == nil {
		out = io.Discard
	}
	if backend == nil {
		return nil, errors.New("nil backend")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sched, err := cfg.schedule()
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	trainData, validData, err = cfg.prepareData(trainData, validData)
	if err != nil {
		return nil, err
	}
	opt, err := cfg.optimizer(sched.LR(0))
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	log := cfg.Log
	if log == nil {
		log = out
	}
	r := &runner{
		ctx: ctx, backend: backend, cfg: cfg, sched: sched, out: out, log: log,
		trainData: trainData, validData: validData,
		latestDir: filepath.Join(cfg.RunDir, LatestDir),
		bestDir:   filepath.Join(cfg.RunDir, BestDir),
		result:    &Result{RunDir: cfg.RunDir, TrainImages: trainData.Len(), ValidImages: validData.Len()},
	}
	r.trainLoader = trainData.NewLoader(LoaderOptions{BatchSize: cfg.BatchSize, Train: true, Seed: cfg.Seed,
		Workers: cfg.Workers})
	r.evalLoader = validData.NewLoader(LoaderOptions{BatchSize: cfg.EvalBatchSize, Workers: cfg.Workers})
	r.steps = r.trainLoader.NumBatches()
	if resume {
		err = r.prepareResume(opt)
	} else {
		err = r.prepareRunDir(opt)
	}
	if err != nil {
		return nil, err
	}
	r.results, err = openResults(cfg.RunDir, r.history)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.results.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	r.result.History = slices.Clone(r.history)
	r.result.Epochs = len(r.history)
	if n := len(r.history); n > 0 {
		last := r.history[n-1]
		r.result.FinalValidError, r.result.FinalTop5Error, r.result.FinalValidLoss =
			last.ValidError, last.ValidTop5Error, last.ValidLoss
	}
	err = catch(func() error { return r.setup(opt) })
	if err != nil {
		return r.result, err
	}
	defer r.evaluator.finalize()
	err = r.run()
	return r.result, err
}

// prepareData validates the data sets against the model and applies MaxTrainImages/MaxEvalImages.
func (c Config) prepareData(trainData, validData Dataset) (Dataset, Dataset, error) {
	for _, s := range []struct {
		name string
		set  Dataset
	}{{"training", trainData}, {"validation", validData}} {
		if s.set == nil {
			return nil, nil, fmt.Errorf("no %s set", s.name)
		}
		if err := s.set.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%s set: %w", s.name, err)
		}
		if s.set.Len() == 0 {
			return nil, nil, fmt.Errorf("%s set %q is empty", s.name, s.set.Name())
		}
		if s.set.Channels() != c.Model.InChannels {
			return nil, nil, fmt.Errorf("%s set %q has %d-channel images but model %s expects %d channels",
				s.name, s.set.Name(), s.set.Channels(), c.Model.Name, c.Model.InChannels)
		}
		if s.set.NumClasses() != c.Model.Classes {
			return nil, nil, fmt.Errorf("%s set %q has %d classes but model %s has %d outputs",
				s.name, s.set.Name(), s.set.NumClasses(), c.Model.Name, c.Model.Classes)
		}
	}
	if c.MaxTrainImages > 0 {
		trainData = trainData.Head(c.MaxTrainImages)
	}
	if c.MaxEvalImages > 0 {
		validData = validData.Head(c.MaxEvalImages)
	}
	if trainData.Len() < c.BatchSize {
		return nil, nil, fmt.Errorf("the training set has %d images, fewer than one batch of %d "+
			"(incomplete batches are dropped)", trainData.Len(), c.BatchSize)
	}
	return trainData, validData, nil
}

// catch runs fn, converting a panic (GoMLX reports errors by panicking) into an error.
func catch(fn func() error) (err error) {
	var fnErr error
	err = exceptions.TryCatch[error](func() { fnErr = fn() })
	if err != nil {
		return fmt.Errorf("%w", err)
	}
	return fnErr
}

// runner holds the state of one Run or Resume.
type runner struct {
	ctx       context.Context
	backend   compute.Backend
	cfg       Config
	sched     Schedule
	out, log  io.Writer
	prog      *progress
	trainData Dataset
	validData Dataset

	latestDir, bestDir string
	results            *resultsWriter

	store       *model.Store
	trainer     *gtrain.Trainer
	loop        *gtrain.Loop
	trainLoader EpochLoader
	evalLoader  EpochLoader
	evaluator   *evaluator
	resumeFrom  *loadedCheckpoint // the checkpoint Resume continues from.

	steps          int // steps per epoch.
	startEpoch     int // epoch (from 0) the run starts at, and the steps of it already done.
	startStep      int
	epoch          int     // current epoch, from 1.
	step           int     // steps done in the current epoch.
	skip           int     // steps of the current epoch done before this session.
	savedStep      int     // step of the current epoch last checkpointed (-1: none).
	lossSum        float64 // sums of the batch losses and errors of the current epoch.
	errSum         float64
	priorTrainTime float64   // training seconds of the current epoch before this session.
	sessionStart   time.Time // start of the current epoch's training in this session.
	stepErr        error     // error raised by the step hook.
	history        []EpochResult
	bestCheckpoint string
	startTime      time.Time
	result         *Result
}

// describe returns config.json's content for the run.
func (r *runner) describe(opt *SGDOptimizer) runConfigFile {
	return runConfigFile{
		Config:       r.cfg,
		AugmentDesc:  r.trainData.Describe(true),
		EvalDesc:     r.validData.Describe(false),
		Backend:      r.backend.Name() + ": " + r.backend.Description(),
		TrainData:    r.trainData.Name(),
		ValidData:    r.validData.Name(),
		TrainImages:  r.trainData.Len(),
		ValidImages:  r.validData.Len(),
		ScheduleStr:  r.sched.String(),
		Optimizer:    opt.String(),
		StepsPerEpch: r.steps,
	}
}

// prepareRunDir creates the run directory, checks it holds no checkpoint, and writes config.json
// and classes.json.
func (r *runner) prepareRunDir(opt *SGDOptimizer) error {
	dir := r.cfg.RunDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating run directory: %w", err)
	}
	for _, d := range []string{r.latestDir, r.bestDir} {
		entries, err := scanCheckpoints(d)
		if err != nil {
			return fmt.Errorf("run directory %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("run directory %s already holds checkpoints in %s: choose a new run directory "+
				"or resume it", dir, d)
		}
	}
	b, err := json.MarshalIndent(r.describe(opt), "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ConfigFile, err)
	}
	if _, err := writeBytesAtomic(dir, ConfigFile, append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", ConfigFile, err)
	}
	if names := r.trainData.ClassNames(); len(names) > 0 {
		b, err := json.MarshalIndent(names, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding %s: %w", ClassesFile, err)
		}
		if _, err := writeBytesAtomic(dir, ClassesFile, append(b, '\n')); err != nil {
			return fmt.Errorf("writing %s: %w", ClassesFile, err)
		}
	}
	r.savedStep = -1
	return nil
}

// compareConfigs lists the differences between a saved config.json and the one a run would write,
// ignoring runtimeConfigKeys.
func compareConfigs(saved, now runConfigFile) ([]string, error) {
	toMap := func(c runConfigFile) (map[string]any, error) {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for _, k := range runtimeConfigKeys {
			delete(m, k)
		}
		return m, nil
	}
	a, err := toMap(saved)
	if err != nil {
		return nil, err
	}
	b, err := toMap(now)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	var diffs []string
	for _, k := range keys {
		if !reflect.DeepEqual(a[k], b[k]) {
			sa, _ := json.Marshal(a[k])
			sb, _ := json.Marshal(b[k])
			diffs = append(diffs, fmt.Sprintf("%s %s (saved: %s)", k, shorten(string(sb)), shorten(string(sa))))
		}
	}
	return diffs, nil
}

// shorten truncates long strings for messages.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// prepareResume checks the run directory's config.json against the run's, finds the newest good
// checkpoint (setting aside incomplete and corrupt newer ones, with warnings) and restores the
// training position from it.
func (r *runner) prepareResume(opt *SGDOptimizer) error {
	dir := r.cfg.RunDir
	saved, err := readRunConfigFile(dir)
	if err != nil {
		return err
	}
	diffs, err := compareConfigs(saved, r.describe(opt))
	if err != nil {
		return fmt.Errorf("resume %s: comparing configurations: %w", dir, err)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("resume %s: the run would differ from its %s: %s", dir, ConfigFile,
			strings.Join(diffs, "; "))
	}
	removeTempFiles(r.latestDir)
	entries, err := scanCheckpoints(r.latestDir)
	if err != nil {
		return fmt.Errorf("resume %s: listing checkpoints: %w", dir, err)
	}
	if len(entries) > 0 && isLegacy(entries) {
		return fmt.Errorf("resume %s: its checkpoints have no manifest and no training state "+
			"(written by an older seqconv): it cannot be resumed", dir)
	}
	var problems []error
	for i := len(entries) - 1; i >= 0 && r.resumeFrom == nil; i-- {
		e := entries[i]
		if !e.complete() {
			r.warnf("checkpoint %s has no manifest (%s): it is incomplete (interrupted while saving?): "+
				"setting it aside as %s* and falling back to the previous checkpoint", e.name,
				e.name+checkpointManifest, incompletePrefix+e.name)
			problems = append(problems, corruptf("%s has no manifest %s: incomplete",
				filepath.Join(r.latestDir, e.name), e.name+checkpointManifest))
			if err := quarantineCheckpoint(r.latestDir, e, incompletePrefix); err != nil {
				return fmt.Errorf("resume %s: %w", dir, err)
			}
			continue
		}
		c, err := readCheckpoint(r.latestDir, e.name, true)
		if err == nil && c.state == nil {
			err = corruptf("%s has no training state", filepath.Join(r.latestDir, e.name+checkpointState))
		}
		if err == nil && c.state.StepsPerEpoch != r.steps {
			err = fmt.Errorf("checkpoint %s has %d steps per epoch, but the data and batch size give %d",
				e.name, c.state.StepsPerEpoch, r.steps)
			return fmt.Errorf("resume %s: %w", dir, err)
		}
		if err != nil {
			problems = append(problems, err)
			r.warnf("%v: setting it aside as %s* and falling back to the previous checkpoint", err, corruptPrefix+e.name)
			if qerr := quarantineCheckpoint(r.latestDir, e, corruptPrefix); qerr != nil {
				return fmt.Errorf("resume %s: %w", dir, qerr)
			}
			continue
		}
		r.resumeFrom = c
	}
	if r.resumeFrom == nil {
		if len(problems) == 0 {
			return fmt.Errorf("resume %s: no checkpoint in %s", dir, r.latestDir)
		}
		return r.noGoodCheckpoint(problems)
	}
	st := r.resumeFrom.state
	if st.Epoch > r.cfg.Epochs || (st.Epoch == r.cfg.Epochs && st.Step > 0) {
		return fmt.Errorf("resume %s: checkpoint %s is at epoch %d, beyond the run's %d epochs",
			dir, r.resumeFrom.name, st.Epoch, r.cfg.Epochs)
	}
	r.history = slices.Clone(st.History)
	r.startEpoch, r.startStep = st.Epoch, st.Step
	r.lossSum, r.errSum, r.priorTrainTime = float64(st.TrainLossSum), float64(st.TrainErrorSum), float64(st.TrainSeconds)
	r.result.BestValidError, r.result.BestEpoch = float64(st.BestValidError), st.BestEpoch
	r.bestCheckpoint = st.BestCheckpoint
	r.savedStep = st.Step
	r.result.ResumedFrom, r.result.ResumedEpoch, r.result.ResumedStep = r.resumeFrom.name, st.Epoch, st.Step
	r.syncBest()
	if st.Step == 0 {
		fmt.Fprintf(r.out, "resuming from %s, after epoch %d/%d\n", r.resumeFrom.name, st.Epoch, r.cfg.Epochs)
	} else {
		fmt.Fprintf(r.out, "resuming from %s, at epoch %d/%d, step %d/%d\n", r.resumeFrom.name, st.Epoch+1,
			r.cfg.Epochs, st.Step, r.steps)
	}
	return nil
}

// noGoodCheckpoint is the error of a resume whose checkpoints are all corrupt or incomplete: an
// errors.Join of a headline, each problem and, when best/ holds an intact checkpoint, how to use it, so
// that each can be printed on its own line.
func (r *runner) noGoodCheckpoint(problems []error) error {
	errs := []error{fmt.Errorf("resume %s: no good checkpoint left in %s (set aside with the prefixes %s and %s):",
		r.cfg.RunDir, r.latestDir, corruptPrefix, incompletePrefix)}
	errs = append(errs, problems...)
	if info, err := LatestCheckpointInfo(r.bestDir); err == nil {
		errs = append(errs, fmt.Errorf("%s holds an intact checkpoint, %s: copy its files into %s to resume from it, "+
			"or use it as it is with --best", r.bestDir, info, r.latestDir))
	}
	return errors.Join(errs...)
}

// syncBest makes the best directory hold the checkpoint the resumed state names as best, when
// it does not (the run was interrupted while copying it, or the resumed checkpoint is older than
// the best copied).
func (r *runner) syncBest() {
	if r.bestCheckpoint == "" {
		return
	}
	if names, _ := listCheckpoints(r.bestDir); len(names) == 1 && names[0] == r.bestCheckpoint {
		return
	}
	entries, _ := scanCheckpoints(r.latestDir)
	for _, e := range entries {
		if e.name == r.bestCheckpoint && e.complete() {
			if err := copyCheckpoint(r.latestDir, e.name, r.bestDir); err != nil {
				r.warnf("restoring the best checkpoint %s: %v", e.name, err)
			}
			return
		}
	}
	r.warnf("%s does not hold the best checkpoint so far (%s, epoch %d), no longer available: "+
		"it will be replaced by the next best epoch", r.bestDir, r.bestCheckpoint, r.result.BestEpoch)
}

// warnf writes a warning line to the log.
func (r *runner) warnf(format string, args ...any) {
	fmt.Fprintf(r.log, "warning: %s\n", fmt.Sprintf(format, args...))
}

// setup creates the store (restoring the resumed checkpoint), trainer and loop.
func (r *runner) setup(opt *SGDOptimizer) error {
	cfg := r.cfg
	r.store = model.NewStore()
	if r.resumeFrom != nil {
		if err := r.resumeFrom.restore(r.store); err != nil {
			return fmt.Errorf("resume: %w", err)
		}
	} else if err := r.store.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return fmt.Errorf("seeding the random number generator: %w", err)
	}
	if cfg.Precision != "" {
		r.store.RootScope().SetParam(layers.ParamPrecision, cfg.Precision)
	}
	r.store.RootScope().SetParam(models.ParamRecompute, cfg.Recompute)
	modelCfg := cfg.Model
	modelFn := func(scope *model.Scope, x *Node) *Node { return modelCfg.Build(scope, x) }
	batchError := metric.NewBaseMetric("Batch Train Error", "batch_err", ErrorMetricType, topKErrorPercentFn(1),
		PrettyPrintPercent)
	r.trainer = gtrain.NewTrainer(r.backend, r.store, modelFn, CrossEntropyLoss(cfg.LabelSmoothing), opt,
		[]metric.Interface{batchError}, nil)
	var err error
	if r.evaluator, err = newEvaluator(r.backend, r.store, cfg.Model); err != nil {
		return fmt.Errorf("building the evaluation graph: %w", err)
	}
	if r.resumeFrom != nil {
		if gs := r.trainer.GlobalStep(); gs != r.resumeFrom.state.GlobalStep {
			return fmt.Errorf("resume: checkpoint %s holds global step %d but its state says %d",
				r.resumeFrom.name, gs, r.resumeFrom.state.GlobalStep)
		}
	}
	r.prog = newProgress(r.out, cfg.Progress, cfg.Epochs)
	r.loop = gtrain.NewLoop(r.trainer)
	r.loop.OnStep("seqconv: check loss, checkpoint, progress, cancellation", 0, r.onStep)
	return nil
}

// onStep is the loop's step hook: it stops on a non-finite loss (saving nothing), accumulates the
// epoch's training loss and error, saves the periodic checkpoints, updates the progress line and
// stops, after saving a checkpoint, when the context is cancelled.
func (r *runner) onStep(_ *gtrain.Loop, metrics []*tensors.Tensor) error {
	r.step++
	batchLoss := scalar(metrics[trainMetricBatchLoss])
	if math.IsNaN(batchLoss) || math.IsInf(batchLoss, 0) {
		r.stepErr = fmt.Errorf("%w: the loss is %v at epoch %d/%d, step %d/%d (global step %d): "+
			"stopping without saving this state, the last checkpoint is the last good one (try a lower learning rate)",
			ErrNonFiniteLoss, nanOrInf(batchLoss), r.epoch, r.cfg.Epochs, r.step, r.steps, r.trainer.GlobalStep())
		return r.stepErr
	}
	r.lossSum += batchLoss
	r.errSum += scalar(metrics[trainMetricBatchError])
	r.prog.step(r.step, (r.step-r.skip)*r.cfg.BatchSize, batchLoss)
	if n := r.cfg.CheckpointEverySteps; n > 0 && r.step%n == 0 && r.step < r.steps {
		if err := r.saveMidEpoch(); err != nil {
			r.stepErr = err
			return err
		}
	}
	if err := r.ctx.Err(); err != nil {
		r.stepErr = fmt.Errorf("interrupted at epoch %d/%d, step %d/%d: %w",
			r.epoch, r.cfg.Epochs, r.step, r.steps, err)
		if serr := r.saveMidEpoch(); serr != nil {
			r.stepErr = fmt.Errorf("%w (and saving a checkpoint failed: %v)", r.stepErr, serr)
		}
		return r.stepErr
	}
	return nil
}

// saveMidEpoch checkpoints the state within the current epoch (unless already saved at this step).
func (r *runner) saveMidEpoch() error {
	if r.savedStep == r.step {
		return nil
	}
	st := r.state(r.epoch-1, r.step)
	st.TrainLossSum, st.TrainErrorSum = jsonFloat(r.lossSum), jsonFloat(r.errSum)
	st.TrainSeconds = jsonFloat(r.priorTrainTime + time.Since(r.sessionStart).Seconds())
	if _, err := r.save(st); err != nil {
		return fmt.Errorf("saving the checkpoint of epoch %d/%d, step %d/%d: %w",
			r.epoch, r.cfg.Epochs, r.step, r.steps, err)
	}
	r.savedStep = r.step
	return nil
}

// state returns the training state at the given completed epochs and step, with the current best
// and history.
func (r *runner) state(epoch, step int) *trainState {
	return &trainState{Format: stateFormat, Epoch: epoch, Step: step, StepsPerEpoch: r.steps,
		GlobalStep: r.trainer.GlobalStep(), BestValidError: jsonFloat(r.result.BestValidError),
		BestEpoch: r.result.BestEpoch, BestCheckpoint: r.bestCheckpoint, History: slices.Clone(r.history)}
}

// save writes a checkpoint of the store with the state st into the latest directory.
func (r *runner) save(st *trainState) (string, error) {
	var name string
	err := catch(func() error {
		var err error
		name, err = saveCheckpoint(r.store, r.latestDir, st, KeepCheckpoints)
		return err
	})
	return name, err
}

// nanOrInf names a non-finite value.
func nanOrInf(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "+Inf"
	default:
		return "-Inf"
	}
}

// run trains the remaining epochs.
func (r *runner) run() error {
	r.startTime = time.Now()
	defer func() { r.result.Seconds = time.Since(r.startTime).Seconds() }()
	for e := r.startEpoch; e < r.cfg.Epochs; e++ {
		skip := 0
		if e == r.startEpoch {
			skip = r.startStep
		} else {
			r.savedStep = -1
		}
		if err := r.ctx.Err(); err != nil && skip == 0 {
			r.prog.clear()
			return fmt.Errorf("interrupted before epoch %d/%d: %w", e+1, r.cfg.Epochs, err)
		}
		er, err := r.runEpoch(e, skip)
		if err != nil {
			r.prog.clear()
			return err
		}
		r.result.History = append(r.result.History, er)
		r.result.Epochs = e + 1
		r.result.FinalValidError = er.ValidError
		r.result.FinalTop5Error = er.ValidTop5Error
		r.result.FinalValidLoss = er.ValidLoss
		r.prog.summary(er, r.cfg.Epochs)
	}
	return nil
}

// runEpoch trains epoch e (from 0), skipping its first skip steps (done before a resume),
// evaluates, writes the results and saves the checkpoints.
func (r *runner) runEpoch(e, skip int) (EpochResult, error) {
	epochStart := time.Now()
	er := EpochResult{Epoch: e + 1, LR: r.sched.LR(float64(e))}
	if err := SetLearningRate(r.store, er.LR); err != nil {
		return er, err
	}
	r.epoch, r.step, r.skip, r.stepErr = e+1, skip, skip, nil
	if skip == 0 {
		r.lossSum, r.errSum, r.priorTrainTime = 0, 0, 0
	}
	r.trainLoader.SetEpoch(e)
	r.prog.startEpoch(e+1, r.steps)
	r.sessionStart = time.Now()
	// Run the epoch even when its steps were all done before a resume: the loop then only updates
	// its bookkeeping variables as an uninterrupted run does.
	var metrics []*tensors.Tensor
	var dataErr error
	err := catch(func() error {
		var err error
		metrics, err = r.loop.RunEpochs(skipBatches{EpochLoader: r.trainLoader, skip: skip, err: &dataErr}, 1)
		return err
	})
	finalizeAll(metrics)
	if r.stepErr != nil {
		return er, r.stepErr
	}
	if dataErr != nil {
		err = fmt.Errorf("reading the training data: %w", dataErr)
	}
	if err != nil {
		return er, fmt.Errorf("epoch %d/%d, step %d: %w", e+1, r.cfg.Epochs, r.step+1, err)
	}
	if r.step != r.steps {
		return er, fmt.Errorf("epoch %d/%d had %d steps, expected %d", e+1, r.cfg.Epochs, r.step, r.steps)
	}
	// The throughput of the whole epoch, over its training time in this and earlier sessions: an epoch
	// resumed after its training (interrupted while evaluating) keeps the throughput it had.
	trainSeconds := r.priorTrainTime
	if skip < r.steps {
		trainSeconds += time.Since(r.sessionStart).Seconds()
	}
	er.TrainLoss = r.lossSum / float64(r.steps)
	er.TrainError = r.errSum / float64(r.steps)
	if trainSeconds > 0 {
		er.ImagesPerSecond = float64(r.steps*r.cfg.BatchSize) / trainSeconds
	}
	// Save the trained epoch before evaluating it: an evaluation that fails (a bad image) or is
	// interrupted does not lose it, and a resume only evaluates it.
	if err := r.saveMidEpoch(); err != nil {
		return er, err
	}

	r.prog.status(fmt.Sprintf("epoch %d/%d evaluating %d images...", e+1, r.cfg.Epochs, r.validData.Len()))
	r.evalLoader.SetEpoch(0)
	er.ValidLoss, er.ValidError, er.ValidTop5Error, err = r.evaluator.evaluate(r.ctx, r.evalLoader, r.validData.Name())
	if err != nil {
		if cerr := r.ctx.Err(); cerr != nil {
			return er, fmt.Errorf("interrupted while evaluating epoch %d/%d (its training is saved): %w",
				e+1, r.cfg.Epochs, cerr)
		}
		return er, fmt.Errorf("evaluating epoch %d/%d (its training is saved): %w", e+1, r.cfg.Epochs, err)
	}
	er.Seconds = time.Since(epochStart).Seconds()

	// Results first: if interrupted before the checkpoint, a resume rewrites them from its own.
	if err := r.results.write(er); err != nil {
		return er, err
	}
	r.history = append(r.history, er)
	newBest := r.result.BestEpoch == 0 || er.ValidError < r.result.BestValidError
	st := r.state(e+1, 0)
	var name string
	err = catch(func() error {
		var err error
		if name, err = nextCheckpointName(r.latestDir, st.GlobalStep); err != nil {
			return err
		}
		if newBest {
			st.BestValidError, st.BestEpoch, st.BestCheckpoint = jsonFloat(er.ValidError), e+1, name
		}
		return writeCheckpoint(r.store, r.latestDir, name, st, KeepCheckpoints)
	})
	if err != nil {
		return er, fmt.Errorf("saving the checkpoint of epoch %d: %w", e+1, err)
	}
	r.savedStep = 0
	if newBest {
		r.result.BestValidError, r.result.BestEpoch, r.bestCheckpoint = er.ValidError, e+1, name
		if err := copyCheckpoint(r.latestDir, name, r.bestDir); err != nil {
			return er, fmt.Errorf("saving the best checkpoint (epoch %d): %w", e+1, err)
		}
	}
	return er, nil
}

// scalar returns the value of a scalar tensor as float64.
func scalar(t *tensors.Tensor) float64 {
	return shapes.ConvertTo[float64](t.Value())
}

// finalizeAll frees the tensors early, without waiting for the garbage collector.
func finalizeAll(ts []*tensors.Tensor) {
	for _, t := range ts {
		if t != nil {
			_ = t.FinalizeAll()
		}
	}
}

// ctxDataset wraps a Dataset so that iteration stops with ctx's error once ctx is cancelled.
type ctxDataset struct {
	gtrain.Dataset
	ctx context.Context
}

// Iter implements gtrain.Dataset.
func (d ctxDataset) Iter() iter.Seq2[gtrain.Batch, error] {
	return func(yield func(gtrain.Batch, error) bool) {
		for batch, err := range d.Dataset.Iter() {
			if err == nil {
				if cerr := d.ctx.Err(); cerr != nil {
					_ = batch.Finalize()
					yield(gtrain.Batch{}, cerr)
					return
				}
			}
			if !yield(batch, err) {
				return
			}
		}
	}
}

// Evaluate computes, in inference mode, the mean cross-entropy loss and the top-1 and top-5 errors
// (in %) of the model modelCfg with the variables of store on ds, in batches of batchSize images
// (in order, the last batch possibly smaller, with ds's evaluation pipeline): exact means over the
// images, as Run's per-epoch validation. Variables without a value are loaded by the store's loader
// (e.g. a checkpoint attached with LoadCheckpoint) or else initialized randomly. The set must have
// the model's channels and classes. It stops with ctx's error when ctx is cancelled.
func Evaluate(ctx context.Context, backend compute.Backend, store *model.Store, modelCfg models.Config,
	ds Dataset, batchSize int) (loss, top1, top5 float64, err error) {
	if err := modelCfg.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: model %s: %w", modelCfg.Name, err)
	}
	if batchSize < 1 {
		return 0, 0, 0, fmt.Errorf("evaluate: batch size must be >= 1, got %d", batchSize)
	}
	if ds == nil {
		return 0, 0, 0, errors.New("evaluate: no data set")
	}
	if err := ds.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	if ds.Channels() != modelCfg.InChannels || ds.NumClasses() != modelCfg.Classes {
		return 0, 0, 0, fmt.Errorf("evaluate: set %q (%d channels, %d classes) does not fit model %s (%d channels, %d classes)",
			ds.Name(), ds.Channels(), ds.NumClasses(), modelCfg.Name, modelCfg.InChannels, modelCfg.Classes)
	}
	ev, err := newEvaluator(backend, store, modelCfg)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	defer ev.finalize()
	loss, top1, top5, err = ev.evaluate(ctx, ds.NewLoader(LoaderOptions{BatchSize: batchSize}), ds.Name())
	if err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	return loss, top1, top5, nil
}

// evaluator computes the summed loss, top-1 and top-5 errors of batches in inference mode.
type evaluator struct {
	exec *model.Exec
}

// newEvaluator returns an evaluator of modelCfg with the variables of store; its graph is compiled
// at the first batch.
func newEvaluator(backend compute.Backend, store *model.Store, modelCfg models.Config) (*evaluator, error) {
	var exec *model.Exec
	err := catch(func() error {
		var err error
		exec, err = model.NewExec(backend, store, func(scope *model.Scope, x, labels *Node) []*Node {
			g := x.Graph()
			scope.Store().SetTraining(g, false)
			// The graph is run again after each epoch's training steps.
			engine.VariablesAsParameters(scope.Store(), g)
			logits := modelCfg.Build(scope, x)
			return []*Node{
				ReduceAllSum(SoftmaxCrossEntropy(logits, labels, 0)),
				ReduceAllSum(TopKError(logits, labels, 1)),
				ReduceAllSum(TopKError(logits, labels, 5)),
			}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &evaluator{exec: exec}, nil
}

// finalize frees the compiled graphs.
func (ev *evaluator) finalize() {
	if ev != nil && ev.exec != nil {
		ev.exec.Finalize()
	}
}

// evaluate runs one epoch of loader and returns the mean loss and the top-1 and top-5 errors (%).
func (ev *evaluator) evaluate(ctx context.Context, loader gtrain.Dataset, name string) (loss, top1, top5 float64, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	var sums [3]float64
	n := 0
	for batch, err := range (ctxDataset{Dataset: loader, ctx: ctx}).Iter() {
		if err != nil {
			return 0, 0, 0, err
		}
		bs := batch.Labels[0].Shape().Dim(0)
		var outs []*tensors.Tensor
		err = catch(func() error {
			var err error
			outs, err = ev.exec.Call(batch.Inputs[0], batch.Labels[0])
			return err
		})
		_ = batch.Finalize()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("batch of images %d-%d: %w", n, n+bs, err)
		}
		for i := range sums {
			sums[i] += scalar(outs[i])
		}
		finalizeAll(outs)
		n += bs
	}
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("set %q is empty", name)
	}
	return sums[0] / float64(n), 100 * sums[1] / float64(n), 100 * sums[2] / float64(n), nil
}

// EvaluateCheckpoint is Evaluate with the variables of the latest checkpoint in dir (for a run
// directory, filepath.Join(runDir, BestDir) or filepath.Join(runDir, LatestDir)), loaded into a
// fresh store.
func EvaluateCheckpoint(ctx context.Context, backend compute.Backend, dir string, modelCfg models.Config,
	ds Dataset, batchSize int) (loss, top1, top5 float64, err error) {
	store := model.NewStore()
	if _, err := LoadCheckpoint(store, dir); err != nil {
		return 0, 0, 0, err
	}
	return Evaluate(ctx, backend, store, modelCfg, ds, batchSize)
}
