package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/experiment"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(command{"experiment", "run a reproducible experiment: windowed-vs-dense",
		runExperiment, flagsUsage(newExperimentFlags)})
}

// Defaults of "seqconv experiment windowed-vs-dense": about 5 minutes on a 2-core CPU.
const (
	defaultExperimentEpochs      = 2
	defaultExperimentTrainImages = 15000
	defaultExperimentGranularity = 8
)

// experimentOptions are the flags of "seqconv experiment windowed-vs-dense".
type experimentOptions struct {
	out, model                             string
	epochs, maxTrain, maxEval, granularity int
	seed                                   int64
	quiet                                  bool

	explicitOut bool          // --out was given.
	outDir      *outputDir    // --out, prepared by validate.
	experiment  string        // the experiment's name.
	modelCfg    models.Config // --model, checked by validate.
}

// newExperimentFlags returns the flags of "seqconv experiment" bound to o (nil: a throwaway).
func newExperimentFlags(o *experimentOptions) *flagSet {
	if o == nil {
		o = &experimentOptions{}
	}
	fs := newFlagSet("experiment", "seqconv experiment windowed-vs-dense [flags]", `
windowed-vs-dense reproduces, at a small scale, the poster's weight-visualization claim: that
windowed aggregation uses the groups it aggregates more evenly than dense aggregation. It trains the
same small SeqResNet twice on the embedded MNIST with the same settings and seed (the defaults of
"seqconv train": SGD with Nesterov momentum 0.9, lr 0.1 cosine, weight decay 5e-4, batch 128,
random crops with 2 pixels of padding), once with the authors' windowed aggregation and once with
dense aggregation in every SeqConv layer, and writes into --out: the two run directories (windowed/,
dense/), both heat maps (windowed-heatmap.png, dense-heatmap.png, jet colour map) and utilization
CSVs, report.html (both runs, the per-layer utilization side by side, both accuracies) and
summary.json. The numbers are also printed.

The dense variant is the same model config with a window g' (in groups) wider than any sequence a
SeqConv layer reads: filter j of a layer reads the last g'*k channels of [x, E_0, ..., E_{j-1}],
so once g'*k >= C_in + (n-1)*k it reads all of them, which is dense aggregation (Eq. 2). The
experiment checks, from the built models' weight shapes, that every multi-filter SeqConv layer of
the dense variant is dense.`)
	fs.StringVar(&o.out, "out", "", "output directory (default "+defaultRunsDir+"/"+experiment.WindowedVsDense+"-<timestamp>); it must be new or empty")
	fs.IntVar(&o.epochs, "epochs", defaultExperimentEpochs, "training epochs of each run (>= 1)")
	fs.IntVar(&o.maxTrain, "max-train-images", defaultExperimentTrainImages, "train on the first N of the 60,000 training images (0: all)")
	fs.IntVar(&o.maxEval, "max-eval-images", 0, "evaluate on the first N of the 10,000 test images (0: all)")
	fs.Int64Var(&o.seed, "seed", defaultSeed, "random seed of both runs")
	fs.StringVar(&o.model, "model", defaultModel, "registered model name or JSON model config (a SeqConv model for 1-channel images)")
	fs.IntVar(&o.granularity, "granularity", defaultExperimentGranularity, "granularity k of every stage (0: the model's own; the default 8 halves seqresnet-mnist's 16 so that its layers have 2 to 8 filters)")
	fs.BoolVar(&o.quiet, "quiet", false, "do not print the training lines of each epoch")
	return fs
}

// runExperiment implements "seqconv experiment NAME [flags]".
func runExperiment(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			printFlagsUsage(stdout, newExperimentFlags(nil))
			return exitOK
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		printError(stderr, usagef("experiment: want an experiment name first: %s", experiment.WindowedVsDense))
		return exitUsage
	}
	if args[0] != experiment.WindowedVsDense {
		printError(stderr, usagef("experiment: unknown experiment %q, expected %s", args[0], experiment.WindowedVsDense))
		return exitUsage
	}
	o := experimentOptions{experiment: args[0]}
	fs := newExperimentFlags(&o)
	if code, done := parseFlags(fs, args[1:], stdout, stderr); done {
		return code
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "out" {
			o.explicitOut = true
		}
	})
	if err := o.validate(); err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return runInterruptible(stderr, func(ctx context.Context) error {
		err := o.execute(ctx, stdout, stderr)
		if err != nil && o.outDir.removeIfUseless() {
			return fmt.Errorf("%w (removed %s: no run was saved)", err, o.out)
		}
		return err
	})
}

// validate checks the flags and builds the two model configs.
func (o *experimentOptions) validate() error {
	switch {
	case o.epochs < 1:
		return usagef("--epochs must be >= 1, got %d", o.epochs)
	case o.maxTrain < 0:
		return usagef("--max-train-images must be >= 0 (0: all), got %d", o.maxTrain)
	case o.maxTrain > 0 && o.maxTrain < train.DefaultRecipe().BatchSize:
		return usagef("--max-train-images must be 0 (all) or at least one batch (%d), got %d", train.DefaultRecipe().BatchSize, o.maxTrain)
	case o.maxEval < 0:
		return usagef("--max-eval-images must be >= 0 (0: all), got %d", o.maxEval)
	case o.granularity < 0:
		return usagef("--granularity must be >= 0 (0: the model's), got %d", o.granularity)
	}
	cfg, err := models.Get(o.model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	if err := experiment.CheckModel(cfg); err != nil {
		return usagef("--model %s %v", o.model, err)
	}
	if _, _, _, err := experiment.Variants(cfg, modelBaseName(o.model), o.granularity); err != nil {
		return usagef("--granularity %d does not fit --model %s: %v", o.granularity, o.model, err)
	}
	o.modelCfg = cfg
	if o.out == "" {
		o.out = filepath.Join(defaultRunsDir, experiment.WindowedVsDense+"-"+time.Now().Format("20060102-150405"))
	}
	o.outDir, err = prepareOutputDir("--out", o.out)
	return err
}

// command returns the command line that reproduces the experiment.
func (o *experimentOptions) command() string {
	args := []string{"seqconv", "experiment", o.experiment}
	if o.explicitOut {
		args = append(args, "--out", shellQuote(o.out))
	}
	args = append(args, "--epochs", strconv.Itoa(o.epochs), "--max-train-images", strconv.Itoa(o.maxTrain))
	if o.maxEval > 0 {
		args = append(args, "--max-eval-images", strconv.Itoa(o.maxEval))
	}
	args = append(args, "--seed", strconv.FormatInt(o.seed, 10))
	if o.model != defaultModel {
		args = append(args, "--model", shellQuote(o.model))
	}
	if o.granularity != defaultExperimentGranularity {
		args = append(args, "--granularity", strconv.Itoa(o.granularity))
	}
	return strings.Join(args, " ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./=:,+@", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// experimentRecipe is how the experiment trains its variants: "seqconv train"'s default recipe with MNIST's
// default augmentation (the experiment sets each run's model, directory, epochs, seed and image limits).
func experimentRecipe() train.Recipe {
	r := train.DefaultRecipe()
	r.Augmentation = data.DefaultMNISTAugmentation
	return r
}

// execute runs the experiment and prints its progress and results.
func (o *experimentOptions) execute(ctx context.Context, stdout, stderr io.Writer) error {
	backend, err := newBackend(stderr, engine.Training)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	opts := experiment.Options{
		Model: o.modelCfg, Name: modelBaseName(o.model), Granularity: o.granularity,
		Recipe: experimentRecipe(), Epochs: o.epochs, MaxTrainImages: o.maxTrain, MaxEvalImages: o.maxEval,
		Seed: o.seed, Out: o.out, Command: o.command(), Environment: reportEnvironment(backend),
		TrainLog: stdout, Progress: !o.quiet && isTerminal(stdout),
		Started: func(s *experiment.Summary) {
			fmt.Fprintf(stdout, "experiment %s: %s (k=%d) on mnist, %s on %s training images, %s test images, seed %d\n",
				s.Experiment, s.Model, s.Granularity, epochsString(s.Epochs), thousands(int64(s.TrainImages)),
				thousands(int64(s.TestImages)), s.Seed)
			fmt.Fprintf(stdout, "backend:    %s\n", describeBackend(backend))
			fmt.Fprintf(stdout, "output:     %s\n", o.out)
			fmt.Fprintf(stdout, "dense:      window g' = %d groups, wider than every sequence: %d SeqConv layers aggregate differently\n",
				s.DenseWindow, s.DifferingLayers)
		},
		TrainStart: func(v *experiment.Variant) {
			fmt.Fprintf(stdout, "\n== %s: %s, %s params, %s MACs/image ==\n", v.Name, v.Model, thousands(v.Params),
				humanCount(v.MACs))
		},
		TrainDone: func(v *experiment.Variant) {
			fmt.Fprintf(stdout, "%s: test accuracy %.2f%% (top-5 error %.2f%%), %.1f s\n", v.Name,
				v.TestAccuracy, v.TestTop5Error, v.TrainingSeconds)
		},
	}
	if o.quiet {
		opts.TrainLog = nil
	}
	s, err := experiment.RunWindowedVsDense(ctx, backend, opts)
	if err != nil {
		return err
	}
	printComparison(stdout, s)
	fmt.Fprintf(stdout, "\n%s\n", s.Conclusion)
	fmt.Fprintf(stdout, "wall time %.1f s\n", s.WallSeconds)
	fmt.Fprintf(stdout, "wrote %s, %s, %s and %s\n", filepath.Join(o.out, experiment.ReportFile),
		filepath.Join(o.out, experiment.SummaryFile), filepath.Join(o.out, s.Variants[0].HeatmapFile),
		filepath.Join(o.out, s.Variants[1].HeatmapFile))
	return nil
}

// printComparison prints the per-layer utilization of the variants, their means and accuracies.
func printComparison(w io.Writer, s *experiment.Summary) {
	win, dense := s.Variants[0], s.Variants[1]
	fmt.Fprintf(w, "\n%-28s %3s %7s %22s %22s\n", "LAYER", "K", "FILTERS", "WINDOWED UTILIZATION", "DENSE UTILIZATION")
	for _, l := range s.Layers {
		mark := ""
		if !l.Differs {
			mark = " (same)"
		}
		fmt.Fprintf(w, "%-28s %3d %7d %22.3f %22.3f%s\n", l.Name, l.K, l.Filters, l.Utilization[win.Name],
			l.Utilization[dense.Name], mark)
	}
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", fmt.Sprintf("mean over the %d layers that differ", s.DifferingLayers),
		win.MeanUtilization, dense.MeanUtilization)
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", fmt.Sprintf("mean over all %d SeqConv layers", len(s.Layers)),
		win.MeanUtilizationAll, dense.MeanUtilizationAll)
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", "same mean (layers that differ) at init",
		win.InitialMeanUtilization, dense.InitialMeanUtilization)
	fmt.Fprintf(w, "%-40s %21.2f%% %21.2f%%\n", "final top-1 test accuracy", win.TestAccuracy, dense.TestAccuracy)
	fmt.Fprintf(w, "%-40s %21.1fs %21.1fs\n", "training time", win.TrainingSeconds, dense.TrainingSeconds)
}
