package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(command{"experiment", "run a reproducible experiment: windowed-vs-dense",
		runExperiment, func(w io.Writer) { printFlagsUsage(w, newExperimentFlags(nil)) }})
}

// Experiment names.
const experimentWindowedVsDense = "windowed-vs-dense"

// Defaults of "seqconv experiment windowed-vs-dense": about 5 minutes on a 2-core CPU.
const (
	defaultExperimentEpochs      = 2
	defaultExperimentTrainImages = 15000
	defaultExperimentGranularity = 8
)

// Variant names of the windowed-vs-dense experiment, also the names of their run directories and files.
const (
	variantWindowed = "windowed"
	variantDense    = "dense"
)

// Files the experiment writes in its output directory (besides the two run directories).
const (
	experimentReportFile  = "report.html"
	experimentSummaryFile = "summary.json"
	heatmapFileSuffix     = "-heatmap.png"
	utilizationCSVSuffix  = "-utilization.csv"
)

// experimentOptions are the flags of "seqconv experiment windowed-vs-dense".
type experimentOptions struct {
	out, model                             string
	epochs, maxTrain, maxEval, granularity int
	seed                                   int64
	quiet                                  bool

	explicitOut           bool          // --out was given.
	outDir                *outputDir    // --out, prepared by validate.
	experiment            string        // the experiment's name.
	base                  string        // the model's name, with its granularity when --granularity sets it.
	windowedCfg, denseCfg models.Config // the two variants.
	denseWindow           int           // the dense variant's window g', in groups.
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
	fs.StringVar(&o.out, "out", "", "output directory (default "+defaultRunsDir+"/"+experimentWindowedVsDense+"-<timestamp>); it must be new or empty")
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
		printError(stderr, usagef("experiment: want an experiment name first: %s", experimentWindowedVsDense))
		return exitUsage
	}
	if args[0] != experimentWindowedVsDense {
		printError(stderr, usagef("experiment: unknown experiment %q, expected %s", args[0], experimentWindowedVsDense))
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
	switch cfg.Family {
	case models.FamilyCIFAR, models.FamilyImageNet, models.FamilyResNeXt:
	default:
		return usagef("--model %s is a %s baseline: the experiment needs a SeqConv model", o.model, cfg.Family)
	}
	if cfg.InChannels != mnistChannels || cfg.Classes < mnistClasses {
		return usagef("--model %s takes %d-channel images and has %d classes, but mnist has %d-channel images and %d classes",
			o.model, cfg.InChannels, cfg.Classes, mnistChannels, mnistClasses)
	}
	o.base = modelBaseName(o.model)
	if o.granularity > 0 {
		cfg.Granularity = models.IntList{o.granularity}
		o.base += "-k" + strconv.Itoa(o.granularity)
		if err := cfg.Validate(); err != nil {
			return usagef("--granularity %d does not fit --model %s: %v", o.granularity, o.model, err)
		}
	}
	o.windowedCfg, o.denseCfg = cfg, cfg
	o.windowedCfg.Name = o.base + "-" + variantWindowed
	o.denseWindow = denseWindowGroups(cfg)
	o.denseCfg.Window = o.denseWindow
	o.denseCfg.Name = o.base + "-" + variantDense
	if o.out == "" {
		o.out = filepath.Join(defaultRunsDir, experimentWindowedVsDense+"-"+time.Now().Format("20060102-150405"))
	}
	o.outDir, err = prepareOutputDir("--out", o.out)
	return err
}

// denseWindowGroups returns a window g' (in groups) that makes every windowed SeqConv layer of cfg
// dense. Filter j of a layer with granularity k reads the last g'*k channels of the sequence
// [x, E_0, ..., E_{j-1}] (layers.SeqConvBuilder.Window), which is C_in + j*k channels wide; the
// widest sequence is that of the last filter, C_in + (n-1)*k. A residual layer of a stage of width w
// has C_in = w and n*k = w, so its sequences are narrower than 2w; a downsampling extension layer
// before a stage of width w' has C_in + n*k = w' < 2w'. Every sequence is thus narrower than twice the
// widest stage, and g' = ceil(2*maxWidth / minK) gives every layer a window of g'*k >= 2*maxWidth
// channels: no filter's view is ever cut, so each reads its whole sequence, which is dense
// aggregation (Eq. 2). The result is also correct for a model whose window was already set.
func denseWindowGroups(cfg models.Config) int {
	widths := cfg.Widths()
	maxWidth, minK := 0, 0
	for i, w := range widths {
		maxWidth = max(maxWidth, w)
		if k := cfg.StageK(i); minK == 0 || k < minK {
			minK = k
		}
	}
	if minK <= 0 {
		return 1
	}
	return (2*maxWidth + minK - 1) / minK
}

// checkVariants builds both models' variables (without running them) and checks, with
// analysis.SeqConvLayers, that they have the same SeqConv layers, that every multi-filter layer of
// the dense variant is dense, and that some layer of the windowed variant is windowed with several
// filters (the layers where the two differ). It returns the number of layers that differ.
func checkVariants(backend compute.Backend, windowed, dense models.Config) (int, error) {
	wl, err := variantLayers(backend, windowed)
	if err != nil {
		return 0, err
	}
	dl, err := variantLayers(backend, dense)
	if err != nil {
		return 0, err
	}
	if len(wl) != len(dl) {
		return 0, fmt.Errorf("the windowed and dense models have %d and %d SeqConv layers", len(wl), len(dl))
	}
	differ := 0
	for i, d := range dl {
		w := wl[i]
		if w.Name != d.Name || w.K != d.K || w.Filters != d.Filters {
			return 0, fmt.Errorf("SeqConv layer %d is %s (k=%d, %d filters) in the windowed model but %s (k=%d, %d filters) in the dense one",
				i, w.Name, w.K, w.Filters, d.Name, d.K, d.Filters)
		}
		if d.Filters > 1 && !d.Dense {
			return 0, fmt.Errorf("layer %s of the dense variant (window %d groups) is not dense: %s", d.Name,
				dense.Window, d)
		}
		if w.Dense != d.Dense || w.Window != d.Window {
			differ++
		}
	}
	if differ == 0 {
		return 0, fmt.Errorf("model %s: no SeqConv layer with several filters aggregates differently with a dense window "+
			"(its windowed layers have one filter each, or its window already covers the sequence): try a smaller --granularity",
			windowed.Name)
	}
	return differ, nil
}

// variantLayers returns the SeqConv layers of cfg's model.
func variantLayers(backend compute.Backend, cfg models.Config) ([]analysis.LayerInfo, error) {
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return nil, err
	}
	return analysis.SeqConvLayers(store), nil
}

// initialHeatmaps returns the heat maps of cfg's model freshly initialized with seed (the weights
// before any training), the baseline that tells how far training moved the utilization.
func initialHeatmaps(backend compute.Backend, cfg models.Config, seed int64) ([]*analysis.Heatmap, error) {
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return nil, err
	}
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, fmt.Errorf("seeding the initialization of %s: %w", cfg.Name, err)
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initializing %s: %w", cfg.Name, err)
	}
	var maps []*analysis.Heatmap
	for _, layer := range analysis.SeqConvLayers(store) {
		h, err := analysis.Utilization(store, layer)
		if err != nil {
			return nil, err
		}
		maps = append(maps, h)
	}
	return maps, nil
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

// experimentVariant is one trained variant of the experiment.
type experimentVariant struct {
	name    string
	cfg     models.Config
	stats   models.Stats
	initial []*analysis.Heatmap // heat maps of the freshly initialized model
	result  *train.Result
	run     analysis.ReportRun
}

// trainConfig returns the training config of a variant: "seqconv train"'s MNIST defaults with the
// experiment's epochs, image limits and seed.
func (o *experimentOptions) trainConfig(cfg models.Config, runDir string, progress bool) train.Config {
	r := train.DefaultRecipe()
	r.Epochs, r.Augmentation = o.epochs, experimentAugmentation
	c := r.Config(cfg, runDir)
	c.Seed, c.Data, c.Progress, c.MaxTrainImages, c.MaxEvalImages = o.seed, defaultData, progress, o.maxTrain, o.maxEval
	return c
}

// experimentAugmentation is the training augmentation of the experiment, "seqconv train"'s MNIST
// default: random crops with defaultMNISTCropPad pixels of padding.
var experimentAugmentation = "crop:" + strconv.Itoa(defaultMNISTCropPad)

// execute trains both variants and writes the heat maps, report and summary.
func (o *experimentOptions) execute(ctx context.Context, stdout, stderr io.Writer) error {
	start := time.Now()
	backend, err := newBackend(stderr, engine.Training)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	differ, err := checkVariants(backend, o.windowedCfg, o.denseCfg)
	if err != nil {
		return fmt.Errorf("experiment %s: %w", o.experiment, err)
	}
	trainSet, testSet, err := data.LoadMNIST()
	if err != nil {
		return fmt.Errorf("loading mnist: %w", err)
	}
	nTrain, nTest := limit(trainSet.N, o.maxTrain), limit(testSet.N, o.maxEval)
	fmt.Fprintf(stdout, "experiment %s: %s (k=%d) on mnist, %s on %s training images, %s test images, seed %d\n",
		o.experiment, o.base, o.windowedCfg.StageK(0), epochsString(o.epochs), thousands(int64(nTrain)), thousands(int64(nTest)), o.seed)
	fmt.Fprintf(stdout, "backend:    %s\n", describeBackend(backend))
	fmt.Fprintf(stdout, "output:     %s\n", o.out)
	fmt.Fprintf(stdout, "dense:      window g' = %d groups, wider than every sequence: %d SeqConv layers aggregate differently\n",
		o.denseWindow, differ)

	variants := []*experimentVariant{
		{name: variantWindowed, cfg: o.windowedCfg},
		{name: variantDense, cfg: o.denseCfg},
	}
	trainOut := stdout
	if o.quiet {
		trainOut = io.Discard
	}
	for _, v := range variants {
		if v.stats, err = models.Inspect(backend, v.cfg, 0); err != nil {
			return fmt.Errorf("inspecting %s: %w", v.cfg.Name, err)
		}
		if v.initial, err = initialHeatmaps(backend, v.cfg, o.seed); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n== %s: %s, %s params, %s MACs/image ==\n", v.name, v.cfg.Name, thousands(v.stats.Params),
			humanCount(v.stats.MACs()))
		runDir := filepath.Join(o.out, v.name)
		cfg := o.trainConfig(v.cfg, runDir, !o.quiet && isTerminal(stdout))
		v.result, err = train.Run(ctx, backend, cfg, train.ImageSetData(trainSet, data.RandomCrop{Pad: defaultMNISTCropPad}),
			train.ImageSetData(testSet, nil), trainOut)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("interrupted while training the %s variant: %w", v.name, err)
			}
			return fmt.Errorf("training the %s variant: %w", v.name, err)
		}
		fmt.Fprintf(stdout, "%s: test accuracy %.2f%% (top-5 error %.2f%%), %.1f s\n", v.name,
			100-v.result.FinalValidError, v.result.FinalTop5Error, v.result.Seconds)
	}

	// Heat maps, utilization CSVs and the comparison.
	var maps [][]*analysis.Heatmap
	names := make([]string, len(variants))
	for i, v := range variants {
		names[i] = v.name
		if v.run, err = analysis.LoadReportRun(backend, filepath.Join(o.out, v.name), false); err != nil {
			return err
		}
		if len(v.run.Heatmaps) == 0 {
			return fmt.Errorf("run %s has no heat map: %s", v.run.Dir, strings.Join(v.run.Notes, "; "))
		}
		v.run.Label = v.name + " (" + v.cfg.Name + ")"
		var png, csv bytes.Buffer
		if err := analysis.RenderHeatmaps(v.run.Heatmaps, &png, analysis.FormatPNG); err != nil {
			return err
		}
		if err := analysis.WriteCSV(v.run.Heatmaps, &csv); err != nil {
			return err
		}
		for path, b := range map[string][]byte{
			filepath.Join(o.out, v.name+heatmapFileSuffix):    png.Bytes(),
			filepath.Join(o.out, v.name+utilizationCSVSuffix): csv.Bytes(),
		} {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				return fmt.Errorf("writing %s: %w", path, err)
			}
		}
		maps = append(maps, v.run.Heatmaps)
	}
	cmp, err := analysis.CompareUtilization(names, maps)
	if err != nil {
		return err
	}
	initial, err := analysis.CompareUtilization(names, [][]*analysis.Heatmap{variants[0].initial, variants[1].initial})
	if err != nil {
		return err
	}
	wall := time.Since(start).Seconds()
	comparison := &analysis.Comparison{
		Title: "Windowed vs dense aggregation",
		Intro: fmt.Sprintf("The same model (%s, k=%d) trained twice on MNIST with the same settings and seed %d: "+
			"%s on %s training images, tested on %s images. The windowed variant uses the authors' window "+
			"(each filter reads the last C_in channels of the sequence); the dense variant sets the window to %d groups, "+
			"wider than any sequence, so that each filter reads the whole sequence [x, E_0, ..., E_{j-1}]. "+
			"Utilization is a layer's mean normalized L1 norm over the (filter, source group) pairs it has; "+
			"\"at initialization\" is the same measure on the freshly initialized weights (same seed, no training). "+
			"The heat maps use the jet colour map.",
			o.base, o.windowedCfg.StageK(0), o.seed, epochsString(o.epochs), thousands(int64(nTrain)), thousands(int64(nTest)), o.denseWindow),
		Command:     o.command(),
		Utilization: cmp,
		Initial:     &initial,
		Accuracy:    []float64{100 - variants[0].result.FinalValidError, 100 - variants[1].result.FinalValidError},
		Conclusion:  conclusion(cmp, initial, variants[0].result, variants[1].result),
	}
	report := analysis.ReportData{
		Title:       "SeqConv experiment: windowed vs dense aggregation",
		Generated:   time.Now(),
		Runs:        []analysis.ReportRun{variants[0].run, variants[1].run},
		Comparison:  comparison,
		Environment: reportEnvironment(backend),
	}
	reportPath := filepath.Join(o.out, experimentReportFile)
	if err := writeReportFile(reportPath, report); err != nil {
		return err
	}
	summaryPath := filepath.Join(o.out, experimentSummaryFile)
	if err := o.writeSummary(summaryPath, variants, cmp, initial, comparison.Conclusion, nTrain, nTest, wall); err != nil {
		return err
	}
	printComparison(stdout, cmp, initial, variants)
	fmt.Fprintf(stdout, "\n%s\n", comparison.Conclusion)
	fmt.Fprintf(stdout, "wall time %.1f s\n", wall)
	fmt.Fprintf(stdout, "wrote %s, %s, %s and %s\n", reportPath, summaryPath,
		filepath.Join(o.out, variantWindowed+heatmapFileSuffix), filepath.Join(o.out, variantDense+heatmapFileSuffix))
	return nil
}

// gapTolerance is the smallest change of the windowed-minus-dense utilization gap that conclusion
// attributes to training (utilization is on a 0..1 scale).
const gapTolerance = 0.01

// conclusion says what the comparison shows, for the report, summary.json and the terminal. The
// poster's claim is that trained windowed layers use their aggregated groups more evenly (a higher
// utilization) than dense ones. Since both variants start from random weights whose utilization
// already differs (the layers' shapes differ), the gap after training is compared with the gap at
// initialization: the run supports the claim only if windowed is higher and training widened the
// gap by at least gapTolerance.
func conclusion(c, initial analysis.UtilizationComparison, windowed, dense *train.Result) string {
	mw, md := c.MeanDiffering[0], c.MeanDiffering[1]
	iw, id := initial.MeanDiffering[0], initial.MeanDiffering[1]
	gap, gap0 := mw-md, iw-id
	higher := 0
	for _, l := range c.Layers {
		if l.Differs && l.Utilization[0] > l.Utilization[1] {
			higher++
		}
	}
	var verdict string
	switch {
	case gap > 0 && gap-gap0 >= gapTolerance:
		verdict = fmt.Sprintf("windowed is higher and training widened the gap from %+.3f at initialization to %+.3f: "+
			"this run agrees with the poster's claim that windowed aggregation uses its aggregated groups more evenly", gap0, gap)
	case gap > 0:
		verdict = fmt.Sprintf("windowed is higher, but the gap was already %+.3f at initialization and training changed it "+
			"by less than %.2f (to %+.3f; the means moved by %+.3f windowed and %+.3f dense): the difference comes from the "+
			"initialization and the layers' shapes, not from training, so this run neither supports nor contradicts the "+
			"poster's claim that windowed aggregation uses its aggregated groups more evenly", gap0, gapTolerance, gap, mw-iw, md-id)
	default:
		verdict = fmt.Sprintf("dense is as high or higher (gap %+.3f after training, %+.3f at initialization): this run "+
			"does not agree with the poster's claim that windowed aggregation uses its aggregated groups more evenly", gap, gap0)
	}
	return fmt.Sprintf("Over the %d layers whose aggregation differs, the mean utilization after training is %.3f windowed "+
		"vs %.3f dense (windowed higher in %d of %d layers); %s. Test accuracy: windowed %.2f%%, dense %.2f%%. "+
		"This is one seed of a small model after a short training run.", c.Differing, mw, md, higher, c.Differing, verdict,
		100-windowed.FinalValidError, 100-dense.FinalValidError)
}

// printComparison prints the per-layer utilization of the variants, their means and accuracies.
func printComparison(w io.Writer, c, initial analysis.UtilizationComparison, variants []*experimentVariant) {
	fmt.Fprintf(w, "\n%-28s %3s %7s %22s %22s\n", "LAYER", "K", "FILTERS", "WINDOWED UTILIZATION", "DENSE UTILIZATION")
	for _, l := range c.Layers {
		mark := ""
		if !l.Differs {
			mark = " (same)"
		}
		fmt.Fprintf(w, "%-28s %3d %7d %22.3f %22.3f%s\n", l.Name, l.K, l.Filters, l.Utilization[0], l.Utilization[1], mark)
	}
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", fmt.Sprintf("mean over the %d layers that differ", c.Differing),
		c.MeanDiffering[0], c.MeanDiffering[1])
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", fmt.Sprintf("mean over all %d SeqConv layers", len(c.Layers)),
		c.MeanAll[0], c.MeanAll[1])
	fmt.Fprintf(w, "%-40s %22.3f %22.3f\n", "same mean (layers that differ) at init",
		initial.MeanDiffering[0], initial.MeanDiffering[1])
	fmt.Fprintf(w, "%-40s %21.2f%% %21.2f%%\n", "final top-1 test accuracy", 100-variants[0].result.FinalValidError,
		100-variants[1].result.FinalValidError)
	fmt.Fprintf(w, "%-40s %21.1fs %21.1fs\n", "training time", variants[0].result.Seconds, variants[1].result.Seconds)
}

// experimentSummary is summary.json.
type experimentSummary struct {
	Experiment       string           `json:"experiment"`
	Command          string           `json:"command"`
	Model            string           `json:"model"`
	Granularity      int              `json:"granularity"`
	Data             string           `json:"data"`
	Epochs           int              `json:"epochs"`
	TrainImages      int              `json:"train_images"`
	TestImages       int              `json:"test_images"`
	Seed             int64            `json:"seed"`
	ColorMap         string           `json:"colormap"`
	DenseWindow      int              `json:"dense_window_groups"`
	DifferingLayers  int              `json:"differing_layers"`
	Variants         []summaryVariant `json:"variants"`
	Layers           []summaryLayer   `json:"layers"`
	WallSeconds      float64          `json:"wall_seconds"`
	Conclusion       string           `json:"conclusion"`
	UtilizationNotes string           `json:"utilization_definition"`
}

type summaryVariant struct {
	Name                   string  `json:"name"`
	Model                  string  `json:"model"`
	RunDir                 string  `json:"run_dir"`
	WindowGroups           int     `json:"window_groups"`
	Params                 int64   `json:"params"`
	MACs                   int64   `json:"macs"`
	TestAccuracy           float64 `json:"test_accuracy"`
	TestTop5Error          float64 `json:"test_top5_error"`
	BestTestAccuracy       float64 `json:"best_test_accuracy"`
	MeanUtilization        float64 `json:"mean_utilization"`
	MeanUtilizationAll     float64 `json:"mean_utilization_all_layers"`
	InitialMeanUtilization float64 `json:"initial_mean_utilization"`
	TrainingSeconds        float64 `json:"training_seconds"`
	ImagesPerSecond        float64 `json:"images_per_second"`
	HeatmapFile            string  `json:"heatmap"`
	UtilizationCSV         string  `json:"utilization_csv"`
}

type summaryLayer struct {
	Name        string             `json:"name"`
	K           int                `json:"k"`
	Filters     int                `json:"filters"`
	Differs     bool               `json:"differs"`
	Utilization map[string]float64 `json:"utilization"`
	Initial     map[string]float64 `json:"initial_utilization"`
	Aggregation map[string]string  `json:"aggregation"`
}

// round4 rounds x to 4 decimals for summary.json.
func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return v
}

// writeSummary writes summary.json.
func (o *experimentOptions) writeSummary(path string, variants []*experimentVariant, c, initial analysis.UtilizationComparison,
	conclusion string, nTrain, nTest int, wall float64) error {
	s := experimentSummary{
		Experiment: o.experiment, Command: o.command(), Model: o.base, Granularity: o.windowedCfg.StageK(0),
		Data: defaultData, Epochs: o.epochs, TrainImages: nTrain, TestImages: nTest, Seed: o.seed, ColorMap: "jet",
		DenseWindow: o.denseWindow, DifferingLayers: c.Differing, WallSeconds: round4(wall), Conclusion: conclusion,
		UtilizationNotes: "a layer's utilization is the mean, over the (filter, source group) pairs it has, of the L1 norm " +
			"of the filter's first-conv weights reading that group divided by the layer's largest such norm; " +
			"mean_utilization averages the layers whose aggregation differs between the variants; the initial values are " +
			"those of the freshly initialized model (same seed, no training)",
	}
	for i, v := range variants {
		ips := 0.0
		if n := len(v.result.History); n > 0 {
			for _, e := range v.result.History {
				ips += e.ImagesPerSecond
			}
			ips /= float64(n)
		}
		s.Variants = append(s.Variants, summaryVariant{
			Name: v.name, Model: v.cfg.Name, RunDir: filepath.Join(o.out, v.name), WindowGroups: v.cfg.Window,
			Params: v.stats.Params, MACs: v.stats.MACs(),
			TestAccuracy: round4(100 - v.result.FinalValidError), TestTop5Error: round4(v.result.FinalTop5Error),
			BestTestAccuracy: round4(100 - v.result.BestValidError),
			MeanUtilization:  round4(c.MeanDiffering[i]), MeanUtilizationAll: round4(c.MeanAll[i]),
			InitialMeanUtilization: round4(initial.MeanDiffering[i]),
			TrainingSeconds:        round4(v.result.Seconds), ImagesPerSecond: round4(ips),
			HeatmapFile: v.name + heatmapFileSuffix, UtilizationCSV: v.name + utilizationCSVSuffix,
		})
	}
	for j, l := range c.Layers {
		sl := summaryLayer{Name: l.Name, K: l.K, Filters: l.Filters, Differs: l.Differs,
			Utilization: map[string]float64{}, Initial: map[string]float64{}, Aggregation: map[string]string{}}
		for i, name := range c.Variants {
			sl.Utilization[name] = round4(l.Utilization[i])
			sl.Initial[name] = round4(initial.Layers[j].Utilization[i])
			agg := l.Aggregation[i]
			if agg == "windowed" {
				agg += fmt.Sprintf(" (%d channels)", l.Window[i])
			}
			sl.Aggregation[name] = agg
		}
		s.Layers = append(s.Layers, sl)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
