package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// Training defaults (for the embedded MNIST), in one place so that they are easy to tune.
const (
	defaultData           = "mnist"
	defaultModel          = "seqresnet-mnist"
	defaultEpochs         = 3
	defaultBatch          = 128
	defaultEvalBatch      = 500
	defaultLR             = 0.1
	defaultMomentum       = 0.9
	defaultNesterov       = true
	defaultWeightDecay    = 5e-4
	defaultNoDecayBNBias  = false
	defaultSchedule       = "cosine"
	defaultMilestones     = "" // multistep: "" means 50% and 75% of the epochs.
	defaultGamma          = 0.1
	defaultWarmup         = 0.0
	defaultLabelSmoothing = 0.0
	defaultSeed           = 1
	defaultAugment        = "default"
	defaultRunsDir        = "runs" // --run defaults to runs/<model>-<timestamp>.
	defaultMNISTCropPad   = 2      // MNIST's default augmentation: random crop with 2 pixels of padding.
)

// trainOptions are the flags of "seqconv train".
type trainOptions struct {
	data, model                                     string
	epochs, batch, evalBatch                        int
	lr, momentum, wd, gamma, warmup, labelSmoothing float64
	nesterov, noDecayBNBias, quiet                  bool
	schedule, milestones, runDir, augment           string
	seed                                            int64
	maxTrain, maxEval, workers                      int
}

// newTrainFlags returns the flags of "seqconv train" bound to o (nil: a throwaway).
func newTrainFlags(o *trainOptions) *flagSet {
	if o == nil {
		o = &trainOptions{}
	}
	fs := newFlagSet("train", "seqconv train [flags]", `
Trains a model with SGD, evaluating it on the test set after every epoch, and writes the run
directory: config.json, results.csv (one row per epoch), checkpoint/ (the latest GoMLX
checkpoints: weights, batch-norm statistics and optimizer state) and best/ (the checkpoint of the
epoch with the lowest test error). Ctrl-C stops between two steps; completed epochs are kept.`)
	fs.StringVar(&o.data, "data", defaultData, "dataset: mnist (embedded; cifar10 is not available yet)")
	fs.StringVar(&o.model, "model", defaultModel, "registered model name (see \"seqconv models\") or path to a JSON model config")
	fs.IntVar(&o.epochs, "epochs", defaultEpochs, "number of training epochs (>= 1)")
	fs.IntVar(&o.batch, "batch", defaultBatch, "training batch size (>= 1); the last incomplete batch of each epoch is dropped")
	fs.Float64Var(&o.lr, "lr", defaultLR, "base learning rate (> 0)")
	fs.Float64Var(&o.momentum, "momentum", defaultMomentum, "SGD momentum (>= 0)")
	fs.BoolVar(&o.nesterov, "nesterov", defaultNesterov, "use Nesterov momentum (needs --momentum > 0; --nesterov=false to disable)")
	fs.Float64Var(&o.wd, "wd", defaultWeightDecay, "weight decay (L2 penalty added to the gradients, >= 0)")
	fs.BoolVar(&o.noDecayBNBias, "no-decay-bn-bias", defaultNoDecayBNBias, "exclude batch-norm parameters and biases from weight decay")
	fs.StringVar(&o.schedule, "schedule", defaultSchedule, "learning-rate schedule, set at the start of each epoch: multistep|cosine|constant")
	fs.StringVar(&o.milestones, "milestones", defaultMilestones, "multistep: comma-separated epochs (from 0) at which the learning rate is multiplied by --gamma (default: 50% and 75% of --epochs)")
	fs.Float64Var(&o.gamma, "gamma", defaultGamma, "multistep: learning-rate factor at each milestone (> 0)")
	fs.Float64Var(&o.warmup, "warmup", defaultWarmup, "epochs of linear learning-rate warmup (0: none)")
	fs.Float64Var(&o.labelSmoothing, "label-smoothing", defaultLabelSmoothing, "label smoothing of the training loss, in [0, 1)")
	fs.Int64Var(&o.seed, "seed", defaultSeed, "random seed of the initialization, dropout, shuffling and augmentation")
	fs.StringVar(&o.runDir, "run", "", "run directory (default "+defaultRunsDir+"/<model>-<timestamp>); it must not hold checkpoints already")
	fs.IntVar(&o.evalBatch, "eval-batch", defaultEvalBatch, "evaluation batch size (>= 1)")
	fs.IntVar(&o.maxTrain, "max-train-images", 0, "train on the first N training images only (0: all)")
	fs.IntVar(&o.maxEval, "max-eval-images", 0, "evaluate on the first N test images only (0: all)")
	fs.StringVar(&o.augment, "augment", defaultAugment, "training augmentation: default (mnist: crop:2), none, or '+'-separated crop[:PAD] and flip, e.g. crop:4+flip")
	fs.IntVar(&o.workers, "workers", 0, "data-loading goroutines (0: one per CPU)")
	fs.BoolVar(&o.quiet, "quiet", false, "print no progress line and no per-epoch lines, only the start and the final result")
	return fs
}

// runTrain implements "seqconv train".
func runTrain(args []string, stdout, stderr io.Writer) int {
	var o trainOptions
	fs := newTrainFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	plan, err := o.validate()
	if err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := plan.execute(ctx, stdout, stderr); err != nil {
		printError(stderr, err)
		if errors.Is(err, context.Canceled) {
			return exitInterrupted
		}
		return exitCode(err)
	}
	return exitOK
}

// trainPlan is a validated "seqconv train" invocation.
type trainPlan struct {
	cfg         train.Config
	augmentDesc string
	quiet       bool
}

// validate checks every flag, before any expensive work, and returns the training plan. Invalid
// values are usageErrors. It creates the run directory to check that it is writable.
func (o *trainOptions) validate() (*trainPlan, error) {
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
	}
	milestones, err := parseIntList(o.milestones)
	if err != nil {
		return nil, usagef("--milestones: %v", err)
	}
	if _, err := train.ParseSchedule(o.schedule, o.lr, o.epochs, milestones, o.gamma, o.warmup); err != nil {
		return nil, usagef("--schedule: %v", err)
	}
	if err := checkDataName(o.data); err != nil {
		return nil, err
	}
	modelCfg, err := models.Get(o.model)
	if err != nil {
		return nil, usagef("--model: %v", err)
	}
	if modelCfg.InChannels != mnistChannels || modelCfg.Classes < mnistClasses {
		return nil, usagef("--model %s takes %d-channel images and has %d classes, but %s has %d-channel images and %d classes",
			o.model, modelCfg.InChannels, modelCfg.Classes, o.data, mnistChannels, mnistClasses)
	}
	aug, augDesc, err := parseAugment(o.augment, o.data)
	if err != nil {
		return nil, err
	}
	runDir := o.runDir
	if runDir == "" {
		runDir = filepath.Join(defaultRunsDir, modelBaseName(o.model)+"-"+time.Now().Format("20060102-150405"))
	}
	if err := checkRunDir(runDir); err != nil {
		return nil, err
	}
	cfg := train.Config{
		Model: modelCfg, Epochs: o.epochs, BatchSize: o.batch, LR: o.lr, Momentum: o.momentum,
		WeightDecay: o.wd, Nesterov: o.nesterov, NoDecayBNBias: o.noDecayBNBias, Schedule: o.schedule,
		Milestones: milestones, Gamma: o.gamma, WarmupEpochs: o.warmup, LabelSmoothing: o.labelSmoothing,
		Seed: o.seed, RunDir: runDir, Data: o.data, EvalBatchSize: o.evalBatch, Progress: !o.quiet,
		MaxTrainImages: o.maxTrain, MaxEvalImages: o.maxEval, Augment: aug, Workers: o.workers,
	}
	if err := cfg.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return &trainPlan{cfg: cfg, augmentDesc: augDesc, quiet: o.quiet}, nil
}

// MNIST's image channels and classes, to check the model before loading the data.
const (
	mnistChannels = 1
	mnistClasses  = 10
)

// checkDataName checks --data.
func checkDataName(name string) error {
	switch strings.ToLower(name) {
	case "mnist":
		return nil
	case "cifar10", "cifar-10", "cifar100", "cifar-100", "imagenet":
		return usagef("--data %s is not available yet: only mnist is", name)
	}
	return usagef("--data: unknown dataset %q, expected mnist", name)
}

// parseAugment parses --augment for the dataset.
func parseAugment(spec, dataName string) (data.Augmenter, string, error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if spec == "default" {
		spec = "crop:" + strconv.Itoa(defaultMNISTCropPad) // The MNIST default; no flip for digits.
	}
	if spec == "none" || spec == "" {
		return nil, "none", nil
	}
	var augs []data.Augmenter
	var descs []string
	for _, item := range strings.Split(spec, "+") {
		name, arg, hasArg := strings.Cut(strings.TrimSpace(item), ":")
		switch {
		case name == "crop":
			pad := defaultMNISTCropPad
			if hasArg {
				n, err := strconv.Atoi(arg)
				if err != nil || n < 1 {
					return nil, "", usagef("--augment: crop padding must be an integer >= 1, got %q", arg)
				}
				pad = n
			}
			augs = append(augs, data.RandomCrop{Pad: pad})
			descs = append(descs, fmt.Sprintf("crop:%d", pad))
		case name == "flip" && !hasArg:
			augs = append(augs, data.HFlip{})
			descs = append(descs, "flip")
		default:
			return nil, "", usagef("--augment: unknown augmentation %q, expected default, none, crop[:PAD] or flip joined with '+'", item)
		}
	}
	if len(augs) == 1 {
		return augs[0], descs[0], nil
	}
	return data.Compose(augs...), strings.Join(descs, "+"), nil
}

// modelBaseName is the model's name for the default run directory: the registered name, or the
// JSON file name without extension.
func modelBaseName(model string) string {
	base := filepath.Base(model)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// checkRunDir creates dir if needed, checks that a file can be created in it, and that it holds no
// checkpoint already.
func checkRunDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usagef("--run %s: cannot create the run directory: %v", dir, err)
	}
	f, err := os.CreateTemp(dir, ".seqconv-write-test-*")
	if err != nil {
		return usagef("--run %s: the run directory is not writable: %v", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return usagef("--run %s: the run directory is not writable: %v", dir, err)
	}
	for _, sub := range []string{train.LatestDir, train.BestDir} {
		if m, _ := filepath.Glob(filepath.Join(dir, sub, "checkpoint-*.json")); len(m) > 0 {
			return usagef("--run %s already holds checkpoints (%s): choose a new run directory", dir, sub)
		}
	}
	return nil
}

// execute runs a validated training plan.
func (p *trainPlan) execute(ctx context.Context, stdout, stderr io.Writer) error {
	cfg := p.cfg
	backend, err := newBackend(stderr)
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

	trainSet, testSet, err := data.LoadMNIST()
	if err != nil {
		return fmt.Errorf("loading mnist: %w", err)
	}
	nTrain, nTest := limit(trainSet.N, cfg.MaxTrainImages), limit(testSet.N, cfg.MaxEvalImages)
	fmt.Fprintf(stdout, "data:     %s: %s training images, %s test images, augmentation %s\n",
		cfg.Data, thousands(int64(nTrain)), thousands(int64(nTest)), p.augmentDesc)
	sched, err := train.ParseSchedule(cfg.Schedule, cfg.LR, cfg.Epochs, cfg.Milestones, cfg.Gamma, cfg.WarmupEpochs)
	if err != nil {
		return usagef("--schedule: %v", err)
	}
	nesterov := ""
	if cfg.Nesterov {
		nesterov = " nesterov"
	}
	fmt.Fprintf(stdout, "training: %d epochs, batch %d, SGD momentum %g%s, weight decay %g, lr %s, label smoothing %g, seed %d\n",
		cfg.Epochs, cfg.BatchSize, cfg.Momentum, nesterov, cfg.WeightDecay, sched, cfg.LabelSmoothing, cfg.Seed)
	fmt.Fprintf(stdout, "run:      %s\n", cfg.RunDir)

	out := stdout
	if p.quiet {
		out = io.Discard
	}
	cfg.Progress = cfg.Progress && isTerminal(stdout)
	start := time.Now()
	res, err := train.Run(ctx, backend, cfg, trainSet, testSet, out)
	wall := time.Since(start).Round(100 * time.Millisecond)
	if err != nil {
		if res != nil && res.Epochs > 0 {
			fmt.Fprintf(stdout, "stopped after %d completed epochs (%s); their results are in %s\n",
				res.Epochs, wall, cfg.RunDir)
		}
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "test accuracy %.2f%% (error %.2f%%, top-5 error %.2f%%) after %d epochs; best %.2f%% at epoch %d\n",
		100-res.FinalValidError, res.FinalValidError, res.FinalTop5Error, res.Epochs,
		100-res.BestValidError, res.BestEpoch)
	fmt.Fprintf(stdout, "wall time %s; results in %s\n", wall, cfg.RunDir)
	return nil
}

// limit returns min(n, max) when max > 0, else n.
func limit(n, max int) int {
	if max > 0 && max < n {
		return max
	}
	return n
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
