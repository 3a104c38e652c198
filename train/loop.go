package train

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/metric"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
)

// Defaults applied by Run (and Config.WithDefaults) to zero-valued Config fields.
const (
	DefaultSchedule = "multistep"
	DefaultGamma    = 0.1
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

	// Schedule is "multistep" (the default), "cosine" or "constant"; Milestones, Gamma
	// (default 0.1) and WarmupEpochs are passed to ParseSchedule. The learning rate is set once at
	// the start of every epoch e (counting from 0) to Schedule.LR(e), as PyTorch schedulers
	// stepped once per epoch do.
	Schedule     string  `json:"schedule"`
	Milestones   []int   `json:"milestones,omitempty"`
	Gamma        float64 `json:"gamma"`
	WarmupEpochs float64 `json:"warmup_epochs"`

	// LabelSmoothing in [0, 1) is applied to the training loss only (see CrossEntropyLoss).
	LabelSmoothing float64 `json:"label_smoothing"`

	// Seed seeds the weight initialization, dropout and the data shuffling and augmentation: with
	// the same seed, config and data, runs on a deterministic backend are identical.
	Seed int64 `json:"seed"`

	// RunDir is the directory the run writes (see Run). It is created if needed; it must not
	// already hold a checkpoint.
	RunDir string `json:"run_dir"`

	// Data names the dataset (informational: Run uses the sets it is given).
	Data string `json:"data,omitempty"`

	// EvalBatchSize is the evaluation batch size; 0 means BatchSize.
	EvalBatchSize int `json:"eval_batch_size"`

	// Progress shows a self-updating progress line while an epoch trains.
	Progress bool `json:"progress"`

	// MaxTrainImages and MaxEvalImages, when > 0, limit training and evaluation to the first
	// images of the sets.
	MaxTrainImages int `json:"max_train_images,omitempty"`
	MaxEvalImages  int `json:"max_eval_images,omitempty"`

	// Augment, if not nil, augments every training image (evaluation images never are).
	Augment data.Augmenter `json:"-"`

	// Workers is the number of data-loading goroutines; 0 means runtime.NumCPU().
	Workers int `json:"workers,omitempty"`
}

// WithDefaults returns c with the defaults applied to zero-valued fields: Schedule
// DefaultSchedule, Gamma DefaultGamma and EvalBatchSize BatchSize.
func (c Config) WithDefaults() Config {
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	if c.Gamma == 0 {
		c.Gamma = DefaultGamma
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
		return fmt.Errorf("train: model %s: %w", c.Model.Name, err)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("train: epochs must be >= 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("train: batch size must be >= 1, got %d", c.BatchSize)
	case c.EvalBatchSize < 1:
		return fmt.Errorf("train: eval batch size must be >= 1, got %d", c.EvalBatchSize)
	case !(c.LR > 0) || !finite(c.LR):
		return fmt.Errorf("train: learning rate must be a finite value > 0, got %g", c.LR)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 || !finite(c.LabelSmoothing):
		return fmt.Errorf("train: label smoothing must be in [0, 1), got %g", c.LabelSmoothing)
	case c.MaxTrainImages < 0:
		return fmt.Errorf("train: max train images must be >= 0 (0: all), got %d", c.MaxTrainImages)
	case c.MaxEvalImages < 0:
		return fmt.Errorf("train: max eval images must be >= 0 (0: all), got %d", c.MaxEvalImages)
	case c.Workers < 0:
		return fmt.Errorf("train: workers must be >= 0 (0: one per CPU), got %d", c.Workers)
	case c.RunDir == "":
		return errors.New("train: the run directory is not set")
	}
	if _, err := c.optimizer(c.LR); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if _, err := c.schedule(); err != nil {
		return fmt.Errorf("train: %w", err)
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

// EpochResult are the statistics of one epoch, one row of results.csv.
type EpochResult struct {
	// Epoch counts from 1.
	Epoch int
	// TrainLoss and TrainError (top-1, %) are means over the epoch's training batches, with the
	// model in training mode (dropout, batch statistics) as it was being updated.
	TrainLoss, TrainError float64
	// ValidLoss (cross-entropy without label smoothing), ValidError and ValidTop5Error (%) are
	// computed on the validation set at the end of the epoch, in inference mode.
	ValidLoss, ValidError, ValidTop5Error float64
	// LR is the learning rate used during the epoch.
	LR float64
	// Seconds is the wall time of the epoch (training, evaluation and checkpointing);
	// ImagesPerSecond the training throughput (training images / training time).
	Seconds, ImagesPerSecond float64
}

// Result summarizes a training run.
type Result struct {
	// BestValidError is the lowest validation top-1 error (%) of all epochs, at BestEpoch
	// (counting from 1; 0 when no epoch completed); its weights are in the run's BestDir.
	BestValidError float64
	BestEpoch      int
	// FinalValidError, FinalTop5Error and FinalValidLoss are those of the last epoch trained.
	FinalValidError, FinalTop5Error, FinalValidLoss float64
	// Epochs is the number of epochs completed.
	Epochs int
	// Seconds is the wall time of the run.
	Seconds float64
	// History has one entry per completed epoch.
	History []EpochResult
	// RunDir is the run directory.
	RunDir string
	// TrainImages and ValidImages are the numbers of images used (after MaxTrainImages and
	// MaxEvalImages).
	TrainImages, ValidImages int
}

// ResultsHeader is the header line of results.csv.
var ResultsHeader = []string{"epoch", "train_loss", "train_error", "valid_loss", "valid_error",
	"valid_top5_error", "lr", "seconds", "images_per_second"}

// ErrNonFiniteLoss is wrapped by the error Run returns when the training loss becomes NaN or Inf.
var ErrNonFiniteLoss = errors.New("training loss is not finite")

// Indices of the training metrics of the GoMLX trainer built by Run: GoMLX puts the batch loss and
// its moving average first.
const (
	trainMetricBatchLoss = 0
	trainMetricMeanLoss  = 2
	trainMetricMeanError = 3
)

// Indices of the evaluation metrics of the trainer: GoMLX puts the mean loss first.
const (
	evalMetricLoss = 0
	evalMetricTop1 = 1
	evalMetricTop5 = 2
)

// runConfigFile is what config.json holds: the Config plus a description of what is not
// serializable and of the data actually used.
type runConfigFile struct {
	Config
	AugmentDesc string `json:"augment"`
	Backend     string `json:"backend"`
	TrainImages int    `json:"train_images"`
	ValidImages int    `json:"valid_images"`
	ScheduleStr string `json:"schedule_desc"`
	Optimizer   string `json:"optimizer"`
}

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

// Run trains cfg.Model on trainSet with SGD, evaluating on validSet after every epoch, and
// writes the run directory cfg.RunDir:
//
//   - config.json: the Config (with the model config) and a description of the run;
//   - results.csv: ResultsHeader and one row per epoch, flushed after every epoch;
//   - checkpoint/: GoMLX checkpoints (weights, batch-norm statistics, optimizer state, global
//     step) after each of the last KeepCheckpoints epochs;
//   - best/: a copy of the checkpoint of the epoch with the lowest validation error.
//
// The model is seeded with cfg.Seed; training batches are shuffled (with cfg.Seed), augmented with
// cfg.Augment, and the last incomplete batch of an epoch is dropped; evaluation uses all the
// images in order. Summary lines (and, with cfg.Progress, a progress line) are written to out
// (nil: discarded).
//
// Run stops with an error wrapping ErrNonFiniteLoss, naming the epoch and step, as soon as a
// training batch loss is NaN or Inf; that state is not saved. It stops with an error wrapping
// ctx.Err() when ctx is cancelled, checked between steps. On errors after training started, the
// returned Result holds the epochs completed so far.
func Run(ctx context.Context, backend compute.Backend, cfg Config, trainSet, validSet *data.ImageSet,
	out io.Writer) (result *Result, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if out == nil {
		out = io.Discard
	}
	if backend == nil {
		return nil, errors.New("train: nil backend")
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sched, err := cfg.schedule()
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	trainSet, validSet, err = cfg.prepareSets(trainSet, validSet)
	if err != nil {
		return nil, err
	}
	opt, err := cfg.optimizer(sched.LR(0))
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}

	r := &runner{
		ctx: ctx, backend: backend, cfg: cfg, sched: sched, out: out,
		trainSet: trainSet, validSet: validSet,
		latestDir: filepath.Join(cfg.RunDir, LatestDir),
		bestDir:   filepath.Join(cfg.RunDir, BestDir),
		result:    &Result{RunDir: cfg.RunDir, TrainImages: trainSet.N, ValidImages: validSet.N},
	}
	if err := r.prepareRunDir(opt); err != nil {
		return nil, err
	}
	defer func() {
		if cerr := r.closeResults(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	err = catch(func() error { return r.setup(opt) })
	if err != nil {
		return r.result, err
	}
	err = r.run()
	return r.result, err
}

// prepareSets validates the sets against the model and applies MaxTrainImages/MaxEvalImages.
func (c Config) prepareSets(trainSet, validSet *data.ImageSet) (*data.ImageSet, *data.ImageSet, error) {
	for _, s := range []struct {
		name string
		set  *data.ImageSet
	}{{"training", trainSet}, {"validation", validSet}} {
		if s.set == nil {
			return nil, nil, fmt.Errorf("train: no %s set", s.name)
		}
		if err := s.set.Validate(); err != nil {
			return nil, nil, fmt.Errorf("train: %s set: %w", s.name, err)
		}
		if s.set.N == 0 {
			return nil, nil, fmt.Errorf("train: %s set %q is empty", s.name, s.set.Name)
		}
		if s.set.C != c.Model.InChannels {
			return nil, nil, fmt.Errorf("train: %s set %q has %d-channel images but model %s expects %d channels",
				s.name, s.set.Name, s.set.C, c.Model.Name, c.Model.InChannels)
		}
		if s.set.NumClasses > c.Model.Classes {
			return nil, nil, fmt.Errorf("train: %s set %q has %d classes but model %s has %d outputs",
				s.name, s.set.Name, s.set.NumClasses, c.Model.Name, c.Model.Classes)
		}
	}
	if c.MaxTrainImages > 0 && c.MaxTrainImages < trainSet.N {
		trainSet = trainSet.Subset(0, c.MaxTrainImages)
	}
	if c.MaxEvalImages > 0 && c.MaxEvalImages < validSet.N {
		validSet = validSet.Subset(0, c.MaxEvalImages)
	}
	if trainSet.N < c.BatchSize {
		return nil, nil, fmt.Errorf("train: the training set has %d images, fewer than one batch of %d "+
			"(incomplete batches are dropped)", trainSet.N, c.BatchSize)
	}
	return trainSet, validSet, nil
}

// catch runs fn, converting a panic (GoMLX reports errors by panicking) into an error.
func catch(fn func() error) (err error) {
	var fnErr error
	err = exceptions.TryCatch[error](func() { fnErr = fn() })
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return fnErr
}

// runner holds the state of one Run.
type runner struct {
	ctx      context.Context
	backend  compute.Backend
	cfg      Config
	sched    Schedule
	out      io.Writer
	prog     *progress
	trainSet *data.ImageSet
	validSet *data.ImageSet

	latestDir, bestDir string
	resultsFile        *os.File
	results            *csv.Writer

	store       *model.Store
	trainer     *gtrain.Trainer
	loop        *gtrain.Loop
	ckpt        *checkpoint.Handler
	trainLoader *data.Loader
	evalLoader  *data.Loader

	epoch     int   // current epoch, from 1.
	step      int   // steps done in the current epoch.
	stepErr   error // error raised by the step hook.
	startTime time.Time
	result    *Result
}

// prepareRunDir creates the run directory, checks it holds no checkpoint, and writes config.json
// and the header of results.csv.
func (r *runner) prepareRunDir(opt *SGDOptimizer) error {
	dir := r.cfg.RunDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: creating run directory: %w", err)
	}
	for _, d := range []string{r.latestDir, r.bestDir} {
		names, err := listCheckpoints(d)
		if err != nil {
			return fmt.Errorf("train: run directory %s: %w", dir, err)
		}
		if len(names) > 0 {
			return fmt.Errorf("train: run directory %s already holds checkpoints in %s: choose a new run directory",
				dir, d)
		}
	}
	desc := runConfigFile{
		Config:      r.cfg,
		AugmentDesc: describeAugmenter(r.cfg.Augment),
		Backend:     r.backend.Name() + ": " + r.backend.Description(),
		TrainImages: r.trainSet.N,
		ValidImages: r.validSet.N,
		ScheduleStr: r.sched.String(),
		Optimizer:   opt.String(),
	}
	b, err := json.MarshalIndent(desc, "", "  ")
	if err != nil {
		return fmt.Errorf("train: encoding %s: %w", ConfigFile, err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("train: writing %s: %w", ConfigFile, err)
	}
	f, err := os.Create(filepath.Join(dir, ResultsFile))
	if err != nil {
		return fmt.Errorf("train: creating %s: %w", ResultsFile, err)
	}
	r.resultsFile = f
	r.results = csv.NewWriter(f)
	if err := r.results.Write(ResultsHeader); err != nil {
		return fmt.Errorf("train: writing %s: %w", ResultsFile, err)
	}
	r.results.Flush()
	if err := r.results.Error(); err != nil {
		return fmt.Errorf("train: writing %s: %w", ResultsFile, err)
	}
	return nil
}

// closeResults closes results.csv.
func (r *runner) closeResults() error {
	if r.resultsFile == nil {
		return nil
	}
	err := r.resultsFile.Close()
	r.resultsFile = nil
	if err != nil {
		return fmt.Errorf("train: closing %s: %w", ResultsFile, err)
	}
	return nil
}

// setup creates the store, trainer, checkpoint handler, loaders and loop.
func (r *runner) setup(opt *SGDOptimizer) error {
	cfg := r.cfg
	r.store = model.NewStore()
	if err := r.store.SetRNGStateFromSeed(cfg.Seed); err != nil {
		return fmt.Errorf("train: seeding the random number generator: %w", err)
	}
	modelCfg := cfg.Model
	modelFn := func(scope *model.Scope, x *Node) *Node { return modelCfg.Build(scope, x) }
	r.trainer = gtrain.NewTrainer(r.backend, r.store, modelFn, CrossEntropyLoss(cfg.LabelSmoothing), opt,
		[]metric.Interface{NewMeanLossMetric(), NewTopKErrorMetric("Train Error", "train_err", 1)},
		[]metric.Interface{NewTop1ErrorMetric(), NewTop5ErrorMetric()})
	var err error
	r.ckpt, err = checkpoint.Build(r.store).Dir(r.latestDir).Keep(KeepCheckpoints).Done()
	if err != nil {
		return fmt.Errorf("train: creating checkpoint handler: %w", err)
	}
	r.trainLoader = data.NewLoader(r.trainSet, data.LoaderOptions{
		BatchSize: cfg.BatchSize, Shuffle: true, Seed: cfg.Seed, DropLast: true,
		Augment: cfg.Augment, Workers: cfg.Workers,
	})
	r.evalLoader = data.NewLoader(r.validSet, data.LoaderOptions{BatchSize: cfg.EvalBatchSize, Workers: cfg.Workers})
	r.prog = newProgress(r.out, cfg.Progress, cfg.Epochs)
	r.loop = gtrain.NewLoop(r.trainer)
	r.loop.OnStep("seqconv: check loss, progress, cancellation", 0, r.onStep)
	return nil
}

// onStep is the loop's step hook: it stops on a non-finite loss or a cancelled context and updates
// the progress line.
func (r *runner) onStep(_ *gtrain.Loop, metrics []*tensors.Tensor) error {
	r.step++
	steps := r.trainLoader.NumBatches()
	batchLoss := shapes.ConvertTo[float64](metrics[trainMetricBatchLoss].Value())
	if math.IsNaN(batchLoss) || math.IsInf(batchLoss, 0) {
		r.stepErr = fmt.Errorf("train: %w: the loss is %v at epoch %d/%d, step %d/%d (global step %d): "+
			"stopping without saving this state (try a lower learning rate)",
			ErrNonFiniteLoss, nanOrInf(batchLoss), r.epoch, r.cfg.Epochs, r.step, steps, r.loop.LoopStep+1)
		return r.stepErr
	}
	r.prog.step(r.step, r.step*r.cfg.BatchSize, batchLoss)
	if err := r.ctx.Err(); err != nil {
		r.stepErr = fmt.Errorf("train: interrupted at epoch %d/%d, step %d/%d: %w",
			r.epoch, r.cfg.Epochs, r.step, steps, err)
		return r.stepErr
	}
	return nil
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

// run trains all the epochs.
func (r *runner) run() error {
	r.startTime = time.Now()
	defer func() { r.result.Seconds = time.Since(r.startTime).Seconds() }()
	for e := range r.cfg.Epochs {
		if err := r.ctx.Err(); err != nil {
			r.prog.clear()
			return fmt.Errorf("train: interrupted before epoch %d/%d: %w", e+1, r.cfg.Epochs, err)
		}
		er, err := r.runEpoch(e)
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

// runEpoch trains epoch e (from 0), evaluates, saves the checkpoints and writes the results row.
func (r *runner) runEpoch(e int) (EpochResult, error) {
	epochStart := time.Now()
	er := EpochResult{Epoch: e + 1, LR: r.sched.LR(float64(e))}
	if err := SetLearningRate(r.store, er.LR); err != nil {
		return er, err
	}
	r.epoch, r.step, r.stepErr = e+1, 0, nil
	r.trainLoader.SetEpoch(e)
	r.prog.startEpoch(e+1, r.trainLoader.NumBatches())

	var metrics []*tensors.Tensor
	err := catch(func() error {
		var err error
		metrics, err = r.loop.RunEpochs(r.trainLoader, 1)
		return err
	})
	if r.stepErr != nil {
		return er, r.stepErr
	}
	if err != nil {
		return er, fmt.Errorf("train: epoch %d/%d, step %d: %w", e+1, r.cfg.Epochs, r.step+1, err)
	}
	trainSeconds := time.Since(epochStart).Seconds()
	if len(metrics) <= trainMetricMeanError {
		return er, fmt.Errorf("train: epoch %d/%d: the trainer returned %d metrics, expected %d",
			e+1, r.cfg.Epochs, len(metrics), trainMetricMeanError+1)
	}
	er.TrainLoss = scalar(metrics[trainMetricMeanLoss])
	er.TrainError = scalar(metrics[trainMetricMeanError])
	finalizeAll(metrics)
	trainImages := r.trainLoader.NumBatches() * r.cfg.BatchSize
	if trainSeconds > 0 {
		er.ImagesPerSecond = float64(trainImages) / trainSeconds
	}

	r.prog.status(fmt.Sprintf("epoch %d/%d evaluating %d images...", e+1, r.cfg.Epochs, r.validSet.N))
	var evalMetrics []*tensors.Tensor
	err = catch(func() error {
		var err error
		evalMetrics, err = r.trainer.Eval(ctxDataset{Dataset: r.evalLoader, ctx: r.ctx})
		return err
	})
	if err != nil {
		if cerr := r.ctx.Err(); cerr != nil {
			return er, fmt.Errorf("train: interrupted while evaluating epoch %d/%d: %w", e+1, r.cfg.Epochs, cerr)
		}
		return er, fmt.Errorf("train: evaluating epoch %d/%d: %w", e+1, r.cfg.Epochs, err)
	}
	if len(evalMetrics) <= evalMetricTop5 {
		return er, fmt.Errorf("train: evaluating epoch %d/%d: got %d metrics, expected %d",
			e+1, r.cfg.Epochs, len(evalMetrics), evalMetricTop5+1)
	}
	er.ValidLoss = scalar(evalMetrics[evalMetricLoss])
	er.ValidError = scalar(evalMetrics[evalMetricTop1])
	er.ValidTop5Error = scalar(evalMetrics[evalMetricTop5])
	finalizeAll(evalMetrics)

	if err := r.ckpt.Save(); err != nil {
		return er, fmt.Errorf("train: saving the checkpoint of epoch %d: %w", e+1, err)
	}
	if er.ValidError < r.result.BestValidError || r.result.BestEpoch == 0 {
		if err := copyLatestCheckpoint(r.latestDir, r.bestDir); err != nil {
			return er, fmt.Errorf("train: saving the best checkpoint (epoch %d): %w", e+1, err)
		}
		r.result.BestValidError = er.ValidError
		r.result.BestEpoch = e + 1
	}
	er.Seconds = time.Since(epochStart).Seconds()
	if err := r.writeRow(er); err != nil {
		return er, err
	}
	return er, nil
}

// writeRow appends one row to results.csv and flushes it.
func (r *runner) writeRow(er EpochResult) error {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	row := []string{strconv.Itoa(er.Epoch), f(er.TrainLoss), f(er.TrainError), f(er.ValidLoss),
		f(er.ValidError), f(er.ValidTop5Error), f(er.LR), strconv.FormatFloat(er.Seconds, 'f', 3, 64),
		strconv.FormatFloat(er.ImagesPerSecond, 'f', 1, 64)}
	if err := r.results.Write(row); err != nil {
		return fmt.Errorf("train: writing %s: %w", ResultsFile, err)
	}
	r.results.Flush()
	if err := r.results.Error(); err != nil {
		return fmt.Errorf("train: writing %s: %w", ResultsFile, err)
	}
	return nil
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
// (in %) of the model modelCfg with the variables of store on set, in batches of batchSize images
// (in order, the last batch possibly smaller). Variables without a value are loaded by the store's
// loader (e.g. a checkpoint attached with LoadCheckpoint) or else initialized randomly. It stops with
// ctx's error when ctx is cancelled.
func Evaluate(ctx context.Context, backend compute.Backend, store *model.Store, modelCfg models.Config,
	set *data.ImageSet, batchSize int) (loss, top1, top5 float64, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := modelCfg.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: model %s: %w", modelCfg.Name, err)
	}
	if batchSize < 1 {
		return 0, 0, 0, fmt.Errorf("evaluate: batch size must be >= 1, got %d", batchSize)
	}
	if set == nil {
		return 0, 0, 0, errors.New("evaluate: no data set")
	}
	if err := set.Validate(); err != nil {
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	if set.C != modelCfg.InChannels || set.NumClasses > modelCfg.Classes {
		return 0, 0, 0, fmt.Errorf("evaluate: set %q (%d channels, %d classes) does not fit model %s (%d channels, %d classes)",
			set.Name, set.C, set.NumClasses, modelCfg.Name, modelCfg.InChannels, modelCfg.Classes)
	}
	var exec *model.Exec
	err = catch(func() error {
		var err error
		exec, err = model.NewExec(backend, store, func(scope *model.Scope, x, labels *Node) []*Node {
			g := x.Graph()
			scope.Store().SetTraining(g, false)
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
		return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
	}
	defer exec.Finalize()
	loader := data.NewLoader(set, data.LoaderOptions{BatchSize: batchSize})
	var sums [3]float64
	n := 0
	for batch, err := range (ctxDataset{Dataset: loader, ctx: ctx}).Iter() {
		if err != nil {
			return 0, 0, 0, fmt.Errorf("evaluate: %w", err)
		}
		bs := batch.Labels[0].Shape().Dim(0)
		var outs []*tensors.Tensor
		err = catch(func() error {
			var err error
			outs, err = exec.Call(batch.Inputs[0], batch.Labels[0])
			return err
		})
		_ = batch.Finalize()
		if err != nil {
			return 0, 0, 0, fmt.Errorf("evaluate: batch of images %d-%d: %w", n, n+bs, err)
		}
		for i := range sums {
			sums[i] += scalar(outs[i])
		}
		finalizeAll(outs)
		n += bs
	}
	if n == 0 {
		return 0, 0, 0, fmt.Errorf("evaluate: set %q is empty", set.Name)
	}
	return sums[0] / float64(n), 100 * sums[1] / float64(n), 100 * sums[2] / float64(n), nil
}

// EvaluateCheckpoint is Evaluate with the variables of the latest checkpoint in dir (for a run
// directory, filepath.Join(runDir, BestDir) or filepath.Join(runDir, LatestDir)), loaded into a
// fresh store.
func EvaluateCheckpoint(ctx context.Context, backend compute.Backend, dir string, modelCfg models.Config,
	set *data.ImageSet, batchSize int) (loss, top1, top5 float64, err error) {
	store := model.NewStore()
	if _, err := LoadCheckpoint(store, dir); err != nil {
		return 0, 0, 0, err
	}
	return Evaluate(ctx, backend, store, modelCfg, set, batchSize)
}
