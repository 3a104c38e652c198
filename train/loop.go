package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/metric"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

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
// saving) are renamed with the prefix "incomplete-", corrupt ones (checksum mismatch) with "corrupt-"; each
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
	resumeFrom  *savedCheckpoint // the checkpoint Resume continues from.

	steps          int // steps per epoch.
	startEpoch     int // epoch (from 0) the run starts at, and the steps of it already done.
	startStep      int
	epoch          int     // current epoch, from 1.
	step           int     // steps done in the current epoch.
	batchLoss      float64 // loss of the current step's batch.
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

// warnf writes a warning line to the log.
func (r *runner) warnf(format string, args ...any) {
	fmt.Fprintf(r.log, "warning: %s\n", fmt.Sprintf(format, args...))
}

// setup creates the store (restoring the resumed checkpoint), trainer and loop.
func (r *runner) setup(opt *SGDOptimizer) error {
	cfg := r.cfg
	r.store = model.NewStore()
	if r.resumeFrom != nil {
		if err := r.resumeFrom.Restore(r.store); err != nil {
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
				r.resumeFrom.Name, gs, r.resumeFrom.state.GlobalStep)
		}
	}
	r.prog = newProgress(r.out, cfg.Progress, cfg.Epochs)
	r.loop = gtrain.NewLoop(r.trainer)
	r.addStepHooks()
	return nil
}

// Priorities of the loop's step hooks (see gtrain.Loop.OnStep; the lowest run first): count the step,
// stop on a non-finite loss before anything else sees it, accumulate the epoch's metrics, update the
// progress line, save the periodic checkpoint, and last stop if the context is cancelled.
const (
	priorityCountStep gtrain.Priority = iota - 3
	priorityCheckLoss
	priorityAccumulate
	priorityProgress
	priorityCheckpoint
	priorityCancel
)

// addStepHooks registers the run's step hooks on the loop.
func (r *runner) addStepHooks() {
	for _, h := range []struct {
		name     string
		priority gtrain.Priority
		fn       func(metrics []*tensors.Tensor) error
	}{
		{"seqconv: count the step", priorityCountStep, r.countStep},
		{"seqconv: stop on a non-finite loss", priorityCheckLoss, r.checkLoss},
		{"seqconv: accumulate the epoch's loss and error", priorityAccumulate, r.accumulate},
		{"seqconv: progress line", priorityProgress, r.showProgress},
		{"seqconv: periodic checkpoint", priorityCheckpoint, r.periodicCheckpoint},
		{"seqconv: stop when cancelled", priorityCancel, r.checkCancel},
	} {
		r.loop.OnStep(h.name, h.priority, func(_ *gtrain.Loop, metrics []*tensors.Tensor) error {
			// The error is kept as it is: the loop would wrap it with the hook's name.
			r.stepErr = h.fn(metrics)
			return r.stepErr
		})
	}
}

// countStep counts the steps of the epoch and reads the batch loss.
func (r *runner) countStep(metrics []*tensors.Tensor) error {
	r.step++
	r.batchLoss = scalar(metrics[trainMetricBatchLoss])
	return nil
}

// checkLoss stops on a non-finite loss, saving nothing.
func (r *runner) checkLoss([]*tensors.Tensor) error {
	if math.IsNaN(r.batchLoss) || math.IsInf(r.batchLoss, 0) {
		return fmt.Errorf("%w: the loss is %v at epoch %d/%d, step %d/%d (global step %d): "+
			"stopping without saving this state, the last checkpoint is the last good one (try a lower learning rate)",
			ErrNonFiniteLoss, nanOrInf(r.batchLoss), r.epoch, r.cfg.Epochs, r.step, r.steps, r.trainer.GlobalStep())
	}
	return nil
}

// accumulate sums the epoch's training batch losses and errors.
func (r *runner) accumulate(metrics []*tensors.Tensor) error {
	r.lossSum += r.batchLoss
	r.errSum += scalar(metrics[trainMetricBatchError])
	return nil
}

// showProgress updates the progress line.
func (r *runner) showProgress([]*tensors.Tensor) error {
	r.prog.step(r.step, (r.step-r.skip)*r.cfg.BatchSize, r.batchLoss)
	return nil
}

// periodicCheckpoint saves the checkpoints of Config.CheckpointEverySteps within an epoch (the
// epoch's end saves its own).
func (r *runner) periodicCheckpoint([]*tensors.Tensor) error {
	if n := r.cfg.CheckpointEverySteps; n > 0 && r.step%n == 0 && r.step < r.steps {
		return r.saveMidEpoch()
	}
	return nil
}

// checkCancel stops, after saving a checkpoint of the state reached, when the context is cancelled.
func (r *runner) checkCancel([]*tensors.Tensor) error {
	err := r.ctx.Err()
	if err == nil {
		return nil
	}
	err = fmt.Errorf("interrupted at epoch %d/%d, step %d/%d: %w", r.epoch, r.cfg.Epochs, r.step, r.steps, err)
	if serr := r.saveMidEpoch(); serr != nil {
		err = fmt.Errorf("%w (and saving a checkpoint failed: %v)", err, serr)
	}
	return err
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
	ev, err := r.evaluator.evaluate(r.ctx, r.evalLoader, r.validData.Name())
	er.ValidLoss, er.ValidError, er.ValidTop5Error = ev.Loss, ev.Top1Error, ev.Top5Error
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
		if name, err = checkpoint.NextName(r.latestDir, st.GlobalStep); err != nil {
			return err
		}
		if newBest {
			st.BestValidError, st.BestEpoch, st.BestCheckpoint = jsonFloat(er.ValidError), e+1, name
		}
		return checkpoint.Write(r.store, r.latestDir, name, st, KeepCheckpoints)
	})
	if err != nil {
		return er, fmt.Errorf("saving the checkpoint of epoch %d: %w", e+1, err)
	}
	r.savedStep = 0
	if newBest {
		r.result.BestValidError, r.result.BestEpoch, r.bestCheckpoint = er.ValidError, e+1, name
		if err := checkpoint.Copy(r.latestDir, name, r.bestDir); err != nil {
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
