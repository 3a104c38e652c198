package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(command{"train", "train a model and write a run directory", runTrain, flagsUsage(newTrainFlags)})
}

// Defaults of "seqconv train" that are not part of its recipe (train.DefaultRecipe).
const (
	defaultData    = "mnist"
	defaultModel   = "seqresnet-mnist"
	defaultSeed    = 1
	defaultRunsDir = "runs" // --run defaults to runs/<model>-<timestamp>.
)

// trainOptions are the flags of "seqconv train".
type trainOptions struct {
	data, dataDir, model, recipe, resume             string
	epochs, batch, evalBatch, classes                int
	lr, momentum, wd, gamma, warmup, labelSmoothing  float64
	nesterov, noDecayBNBias, quiet, skipBad          bool
	schedule, milestones, runDir, augment, precision string
	milestoneEvery                                   int // the recipe's milestone rule (see train.Recipe).
	seed                                             int64
	maxTrain, maxEval, workers, checkpointEvery      int
	recompute                                        bool
	xlaCache                                         string
	autotune                                         int
}

// newTrainFlags returns the flags of "seqconv train" bound to o (nil: a throwaway), with the defaults of
// train.DefaultRecipe.
func newTrainFlags(o *trainOptions) *flagSet {
	return newTrainFlagsFrom(o, train.DefaultRecipe())
}

// newTrainFlagsFrom returns the flags of "seqconv train" bound to o (nil: a throwaway), with the defaults of
// the recipe r.
func newTrainFlagsFrom(o *trainOptions, r train.Recipe) *flagSet {
	if o == nil {
		o = &trainOptions{}
	}
	fs := newFlagSet("train", "seqconv train [flags]\n       seqconv train --resume RUN_DIR [flags: "+resumeFlagList()+"]", `
Trains a model with SGD, evaluating it on the test (or val) set after every epoch, and writes the
run directory: config.json, classes.json (class names), results.csv and results.jsonl (one row per
epoch), checkpoint/ (the last 2 checkpoints: weights, batch-norm statistics, optimizer state, global
step, RNG state and position in the data) and best/ (the checkpoint of the epoch with the lowest
test error). Checkpoints are written atomically with a SHA-256 manifest.

--recipe cifar|imagenet applies the authors' settings to the flags not given explicitly (cifar:
SGD Nesterov 0.9, wd 1e-4, lr 0.1, batch 64, 300 epochs, lr x0.1 at 50% and 75%, crop:4+flip;
imagenet: the same with batch 256, 100 epochs, lr x0.1 every 30 epochs, random resized crop, flip,
colour jitter 0.4 and lighting 0.1, evaluated resized to 256/224 of the model resolution and
centre-cropped).

--resume RUN_DIR continues an interrupted run from its newest good checkpoint with the
configuration of its config.json, and ends with the same results as an uninterrupted run; only
`+resumeFlagList()+` may be given with it (other flags must match the saved
configuration). Ctrl-C stops between two steps after saving a checkpoint.

--run RUN_DIR must be new or empty: train never replaces a file. A run that fails before its first
checkpoint removes what it created.`)
	fs.StringVar(&o.data, "data", defaultData, "dataset: mnist (embedded), cifar10, cifar100 (binary version, from --data-dir), or the path of an image folder with train/ and val/ holding one folder per class")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory holding cifar-10-batches-bin/, cifar-100-binary/ or their .tar.gz (default $"+dataDirEnvVar+" or "+defaultDataDirName+")")
	fs.StringVar(&o.model, "model", defaultModel, "registered model name (see \"seqconv models\") or path to a JSON model config")
	fs.IntVar(&o.classes, "classes", 0, "number of classes of the model (0: the model config's)")
	fs.StringVar(&o.recipe, "recipe", r.Name, "training recipe applied to the flags not given: "+strings.Join(train.RecipeNames(), " or ")+" (the paper's settings, see the README)")
	fs.IntVar(&o.epochs, "epochs", r.Epochs, "number of training epochs (>= 1)")
	fs.IntVar(&o.batch, "batch", r.BatchSize, "training batch size (>= 1); the last incomplete batch of each epoch is dropped")
	fs.Float64Var(&o.lr, "lr", r.LR, "base learning rate (> 0)")
	fs.Float64Var(&o.momentum, "momentum", r.Momentum, "SGD momentum (>= 0)")
	fs.BoolVar(&o.nesterov, "nesterov", r.Nesterov, "use Nesterov momentum (needs --momentum > 0; --nesterov=false to disable)")
	fs.Float64Var(&o.wd, "wd", r.WeightDecay, "weight decay (L2 penalty added to the gradients, >= 0)")
	fs.BoolVar(&o.noDecayBNBias, "no-decay-bn-bias", r.NoDecayBNBias, "exclude batch-norm parameters and biases from weight decay")
	fs.StringVar(&o.schedule, "schedule", r.Schedule, "learning-rate schedule, set at the start of each epoch: multistep|cosine|constant")
	fs.StringVar(&o.milestones, "milestones", joinInts(r.Milestones), "multistep: comma-separated epochs (from 0) at which the learning rate is multiplied by --gamma (default: 50% and 75% of --epochs)")
	o.milestoneEvery = r.MilestoneEvery
	fs.Float64Var(&o.gamma, "gamma", r.Gamma, "multistep: learning-rate factor at each milestone (> 0)")
	fs.Float64Var(&o.warmup, "warmup", r.WarmupEpochs, "epochs of linear learning-rate warmup (0: none)")
	fs.Float64Var(&o.labelSmoothing, "label-smoothing", r.LabelSmoothing, "label smoothing of the training loss, in [0, 1)")
	fs.StringVar(&o.precision, "precision", "f32", "f32, or bf16: bfloat16 convolutions with float32 accumulation, master weights, batch norm and loss")
	fs.BoolVar(&o.recompute, "recompute", false, "gradient checkpointing: recompute each block's activations in the backward pass (less memory, same results)")
	addXLAFlags(fs.FlagSet, &o.xlaCache, &o.autotune, "RUN_DIR/xla-cache")
	fs.Int64Var(&o.seed, "seed", defaultSeed, "random seed of the initialization, dropout, shuffling and augmentation")
	fs.StringVar(&o.runDir, "run", "", "run directory (default "+defaultRunsDir+"/<model>-<timestamp>); it must not hold checkpoints already")
	fs.StringVar(&o.resume, "resume", "", "resume the run directory RUN_DIR from its newest good checkpoint")
	fs.IntVar(&o.checkpointEvery, "checkpoint-every-steps", 0, "also checkpoint every N steps within an epoch (0: at the end of each epoch only)")
	fs.IntVar(&o.evalBatch, "eval-batch", r.EvalBatchSize, "evaluation batch size (>= 1)")
	fs.IntVar(&o.maxTrain, "max-train-images", 0, "train on the first N training images only (0: all)")
	fs.IntVar(&o.maxEval, "max-eval-images", 0, "evaluate on the first N test images only (0: all)")
	fs.StringVar(&o.augment, "augment", r.Augmentation, "training augmentation: default (mnist crop:2, cifar crop:4+flip, folders rrc+flip+jitter:0.4+lighting:0.1), none, or '+'-separated rrc (random resized crop, first), crop[:PAD], flip, jitter[:AMOUNT], lighting[:STD]")
	fs.IntVar(&o.workers, "workers", 0, "data-loading goroutines (0: one per CPU)")
	fs.BoolVar(&o.quiet, "quiet", false, "print no progress line and no per-epoch lines, only the start and the final result")
	addSkipBadImagesFlag(fs, &o.skipBad)
	return fs
}

// resumeFlags are the flags that may be given with --resume: they do not change the results.
var resumeFlags = []string{"resume", "workers", "quiet", "data-dir", "checkpoint-every-steps", "xla-cache",
	"autotune-level", "skip-bad-images"}

// resumeFlagList lists the flags that may be given with --resume (but --resume), for the help and the
// errors: "--workers, --quiet, ... and --skip-bad-images".
func resumeFlagList() string {
	names := make([]string, len(resumeFlags)-1)
	for i, n := range resumeFlags[1:] {
		names[i] = "--" + n
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// runTrain implements "seqconv train".
func runTrain(args []string, stdout, stderr io.Writer) int {
	var o trainOptions
	fs := newTrainFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var plan *trainPlan
	var err error
	if set["resume"] {
		plan, err = o.resumePlan(fs, set)
	} else if o, err = o.withRecipe(args, set); err == nil {
		plan, err = o.validate(set)
	}
	if err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return runInterruptible(stderr, func(ctx context.Context) error {
		err := plan.execute(ctx, stdout, stderr)
		if err == nil {
			return nil
		}
		if plan.outDir.removeIfUseless() {
			return fmt.Errorf("%w (removed %s: no epoch was saved)", err, plan.cfg.RunDir)
		}
		switch {
		case errors.Is(err, context.Canceled):
			return fmt.Errorf("%w; continue with: seqconv train --resume %s", err, plan.cfg.RunDir)
		case errors.Is(err, data.ErrBadImage):
			return fmt.Errorf("%w; the trained epochs are saved: remove the image, or skip the bad ones, and continue "+
				"with: seqconv train --resume %s --skip-bad-images", err, plan.cfg.RunDir)
		}
		return err
	})
}

// trainPlan is a validated "seqconv train" invocation.
type trainPlan struct {
	cfg      train.Config
	data     dataSpec
	pipeline pipeline
	resume   bool
	xlaCache string // --xla-cache
	autotune int    // --autotune-level
	quiet    bool
	outDir   *outputDir // the new run directory (nil when resuming).
	skipBad  bool       // --skip-bad-images
}

// withRecipe returns the options of args with the defaults of --recipe (the flags not given take the
// recipe's values), or o itself without --recipe.
func (o trainOptions) withRecipe(args []string, set map[string]bool) (trainOptions, error) {
	if o.recipe == "" {
		return o, nil
	}
	r, err := train.GetRecipe(o.recipe)
	if err != nil {
		return o, usagef("--recipe: %v", err)
	}
	var withRecipe trainOptions
	if err := newTrainFlagsFrom(&withRecipe, r).Parse(args); err != nil {
		return o, usagef("%s", flagError(err))
	}
	withRecipe.recipe = r.Name
	if set["milestones"] {
		withRecipe.milestoneEvery = 0
	}
	return withRecipe, nil
}

// validate checks every flag, before any expensive work, and returns the training plan. Invalid
// values are usageErrors. It creates the run directory to check that it is writable.
func (o *trainOptions) validate(set map[string]bool) (*trainPlan, error) {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case o.epochs < 1:
		return nil, usagef("--epochs must be >= 1, got %d", o.epochs)
	case o.batch < 1:
		return nil, usagef("--batch must be >= 1, got %d", o.batch)
	case o.evalBatch < 1:
		return nil, usagef("--eval-batch must be >= 1, got %d", o.evalBatch)
	case !(o.lr > 0) || !finite(o.lr):
		return nil, usagef("--lr must be a finite number > 0, got %g", o.lr)
	case o.momentum < 0 || !finite(o.momentum):
		return nil, usagef("--momentum must be a finite number >= 0, got %g", o.momentum)
	case o.nesterov && o.momentum == 0:
		return nil, usagef("--nesterov needs --momentum > 0 (use --nesterov=false)")
	case o.wd < 0 || !finite(o.wd):
		return nil, usagef("--wd must be a finite number >= 0, got %g", o.wd)
	case !(o.gamma > 0) || !finite(o.gamma):
		return nil, usagef("--gamma must be a finite number > 0, got %g", o.gamma)
	case o.warmup < 0 || !finite(o.warmup):
		return nil, usagef("--warmup must be a finite number >= 0, got %g", o.warmup)
	case o.labelSmoothing < 0 || o.labelSmoothing >= 1 || !finite(o.labelSmoothing):
		return nil, usagef("--label-smoothing must be in [0, 1), got %g", o.labelSmoothing)
	case o.maxTrain < 0:
		return nil, usagef("--max-train-images must be >= 0 (0: all), got %d", o.maxTrain)
	case o.maxEval < 0:
		return nil, usagef("--max-eval-images must be >= 0 (0: all), got %d", o.maxEval)
	case o.workers < 0:
		return nil, usagef("--workers must be >= 0 (0: one per CPU), got %d", o.workers)
	case o.checkpointEvery < 0:
		return nil, usagef("--checkpoint-every-steps must be >= 0 (0: at epoch ends only), got %d", o.checkpointEvery)
	case o.classes < 0:
		return nil, usagef("--classes must be >= 1 (0: the model's), got %d", o.classes)
	}
	milestones, err := parseIntList(o.milestones)
	if err != nil {
		return nil, usagef("--milestones: %v", err)
	}
	rec := train.Recipe{Name: o.recipe, Epochs: o.epochs, BatchSize: o.batch, EvalBatchSize: o.evalBatch,
		LR: o.lr, Momentum: o.momentum, WeightDecay: o.wd, Nesterov: o.nesterov, NoDecayBNBias: o.noDecayBNBias,
		Schedule: o.schedule, Milestones: milestones, MilestoneEvery: o.milestoneEvery, Gamma: o.gamma,
		WarmupEpochs: o.warmup, LabelSmoothing: o.labelSmoothing, Augmentation: o.augment}
	milestones = rec.EffectiveMilestones()
	if _, err := train.ParseSchedule(o.schedule, o.lr, o.epochs, milestones, o.gamma, o.warmup); err != nil {
		if len(milestones) > 0 {
			return nil, usagef("--milestones %s: %v", o.milestones, err)
		}
		return nil, usagef("--schedule: %v", err)
	}
	if set["milestones"] && len(milestones) > 0 && milestones[len(milestones)-1] >= o.epochs {
		return nil, usagef("--milestones %s: epoch %d is past the last epoch, %d (epochs count from 0 to --epochs - 1): "+
			"the learning rate would never drop there", o.milestones, milestones[len(milestones)-1], o.epochs-1)
	}
	spec, err := parseDataName(o.data)
	if err != nil {
		return nil, err
	}
	if spec.Kind == kindFolder {
		if err := checkFolderLayout(spec.Name); err != nil {
			return nil, err
		}
	}
	modelCfg, err := o.modelConfig()
	if err != nil {
		return nil, err
	}
	if modelCfg.InChannels != spec.Channels {
		return nil, usagef("--model %s takes %d-channel images, but %s has %d-channel images",
			o.model, modelCfg.InChannels, o.data, spec.Channels)
	}
	if spec.Classes > 0 && modelCfg.Classes != spec.Classes {
		return nil, usagef("--model %s has %d classes, but %s has %d classes (set --classes %d)",
			o.model, modelCfg.Classes, o.data, spec.Classes, spec.Classes)
	}
	p, err := parseAugment(o.augment, spec.Kind)
	if err != nil {
		return nil, err
	}
	runDir := o.runDir
	if runDir == "" {
		runDir = filepath.Join(defaultRunsDir, modelBaseName(o.model)+"-"+time.Now().Format("20060102-150405"))
	}
	dataDir := ""
	if spec.Kind == kindCIFAR10 || spec.Kind == kindCIFAR100 {
		dataDir = o.dataDir
		if dataDir == "" {
			dataDir = defaultDataDir()
		}
		if abs, err := filepath.Abs(dataDir); err == nil {
			dataDir = abs
		}
	}
	cfg := rec.Config(modelCfg, runDir)
	cfg.Seed, cfg.Data, cfg.DataDir, cfg.Augmentation = o.seed, spec.Name, dataDir, p.desc
	cfg.Progress, cfg.MaxTrainImages, cfg.MaxEvalImages = !o.quiet, o.maxTrain, o.maxEval
	cfg.Workers, cfg.CheckpointEverySteps, cfg.Precision, cfg.Recompute = o.workers, o.checkpointEvery, o.precision, o.recompute
	if err := cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	outDir, err := prepareOutputDir("--run", runDir)
	if err != nil {
		return nil, err
	}
	return &trainPlan{cfg: cfg, data: spec, pipeline: p, quiet: o.quiet, xlaCache: o.xlaCache, autotune: o.autotune,
		outDir: outDir, skipBad: o.skipBad}, nil
}

// modelConfig returns the model of --model with --classes applied.
func (o *trainOptions) modelConfig() (models.Config, error) {
	modelCfg, err := models.Get(o.model)
	if err != nil {
		return models.Config{}, usagef("--model: %v", err)
	}
	if o.classes > 0 {
		modelCfg.Classes = o.classes
	}
	modelCfg = modelCfg.WithDefaults()
	if err := modelCfg.Validate(); err != nil {
		return models.Config{}, usagef("--model %s: %v", o.model, err)
	}
	return modelCfg, nil
}

// modelBaseName is the model's name for the default run directory: the registered name, or the
// JSON file name without extension.
func modelBaseName(model string) string {
	base := filepath.Base(model)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// execute runs a validated training plan.
func (p *trainPlan) execute(ctx context.Context, stdout, stderr io.Writer) error {
	cfg := p.cfg
	if err := configureXLA(p.xlaCache, filepath.Join(cfg.RunDir, "xla-cache"), p.autotune); err != nil {
		return err
	}
	backend, err := newBackend(stderr, engine.Training)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	stats, err := models.Inspect(backend, cfg.Model, 0)
	if err != nil {
		return fmt.Errorf("inspecting the model: %w", err)
	}
	fmt.Fprintf(stdout, "backend:  %s\n", describeBackend(backend))
	fmt.Fprintf(stdout, "model:    %s (%s): %s params, %s MACs/image at %dx%d, %.2f paper GFLOPs\n",
		cfg.Model.Name, cfg.Model.Family, thousands(stats.Params), humanCount(stats.MACs()),
		stats.Resolution, stats.Resolution, stats.PaperGFLOPs)

	sets, err := loadData(p.data, cfg.DataDir, p.pipeline, cfg.Model.Resolution, cfg.Workers, false, nil,
		badImagesLog(p.skipBad, stderr))
	if err != nil {
		return err
	}
	for _, ds := range []train.Dataset{sets.Train, sets.Eval} {
		if err := ds.Validate(); err != nil {
			return fmt.Errorf("data %s: %w", ds.Name(), err)
		}
		if err := checkModelFits(cfg.Model.Name, cfg.Model.InChannels, cfg.Model.Classes, ds, dataLabel(cfg.Data)); err != nil {
			return err
		}
	}
	nTrain, nEval := train.ImagesUsed(sets.Train.Len(), cfg.MaxTrainImages), train.ImagesUsed(sets.Eval.Len(), cfg.MaxEvalImages)
	h, w := sets.Train.ImageSize()
	fmt.Fprintf(stdout, "data:     %s: %s training images, %s %s images, %d classes, %dx%d, augmentation %s\n",
		dataLabel(cfg.Data), thousands(int64(nTrain)), thousands(int64(nEval)), sets.EvalSplit,
		sets.Train.NumClasses(), h, w, p.pipeline.desc)
	if h != cfg.Model.Resolution || w != cfg.Model.Resolution {
		fmt.Fprintf(stderr, "seqconv: note: the images are %dx%d, the model's nominal resolution is %d\n",
			h, w, cfg.Model.Resolution)
	}
	sched, err := train.ParseSchedule(cfg.Schedule, cfg.LR, cfg.Epochs, cfg.Milestones, cfg.Gamma, cfg.WarmupEpochs)
	if err != nil {
		return usagef("--schedule: %v", err)
	}
	nesterov := ""
	if cfg.Nesterov {
		nesterov = " nesterov"
	}
	recipe := ""
	if cfg.Recipe != "" {
		recipe = ", recipe " + cfg.Recipe
	}
	fmt.Fprintf(stdout, "training: %s, batch %d, SGD momentum %g%s, weight decay %g, lr %s, label smoothing %g, seed %d%s\n",
		epochsString(cfg.Epochs), cfg.BatchSize, cfg.Momentum, nesterov, cfg.WeightDecay, sched, cfg.LabelSmoothing, cfg.Seed, recipe)
	fmt.Fprintf(stdout, "run:      %s\n", cfg.RunDir)

	out := stdout
	if p.quiet {
		out = io.Discard
	}
	cfg.Log = stderr
	cfg.Progress = cfg.Progress && isTerminal(stdout)
	start := time.Now()
	var res *train.Result
	if p.resume {
		res, err = train.Resume(ctx, backend, cfg, sets.Train, sets.Eval, out)
		if p.quiet && res != nil && res.ResumedFrom != "" {
			info := train.CheckpointInfo{Name: res.ResumedFrom, HasState: true, Epoch: res.ResumedEpoch, Step: res.ResumedStep}
			fmt.Fprintf(stdout, "resumed:  from %s\n", info)
		}
	} else {
		res, err = train.Run(ctx, backend, cfg, sets.Train, sets.Eval, out)
	}
	wall := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		if res != nil && res.Epochs > 0 {
			fmt.Fprintf(stdout, "stopped after %s completed (%s); their results are in %s\n",
				epochsString(res.Epochs), wall, cfg.RunDir)
		}
		return err
	}
	fmt.Fprintf(stdout, "%s accuracy %.2f%% (error %.2f%%, top-5 error %.2f%%) after %s; best %.2f%% at epoch %d\n",
		sets.EvalSplit, 100-res.FinalValidError, res.FinalValidError, res.FinalTop5Error, epochsString(res.Epochs),
		100-res.BestValidError, res.BestEpoch)
	fmt.Fprintf(stdout, "wall time %s; results in %s\n", wall, cfg.RunDir)
	return nil
}

// dataLabel is a short name of a --data value (the base name of a folder's path).
func dataLabel(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Base(name)
	}
	return name
}

// isTerminal reports whether w is a character device (a terminal), where a self-updating
// progress line makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
