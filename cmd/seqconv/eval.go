package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/train"
)

func init() {
	registerCommand(command{"eval", "evaluate a run's checkpoint: loss, top-1 and top-5 error", runEval,
		flagsUsage(newEvalFlags)})
}

// evalOptions are the flags of "seqconv eval".
type evalOptions struct {
	run, data, dataDir   string
	best, jsonOut        bool
	skipBad              bool
	batch, maxImages, wk int
}

// newEvalFlags returns the flags of "seqconv eval" bound to o (nil: a throwaway).
func newEvalFlags(o *evalOptions) *flagSet {
	if o == nil {
		o = &evalOptions{}
	}
	fs := newFlagSet("eval", "seqconv eval --run RUN_DIR [flags]", `
Evaluates the latest (or, with --best, the best) checkpoint of a run directory on the test set of
its dataset (the val/ folder of an image-folder dataset), or on --data, in inference mode, and
prints the mean cross-entropy loss and the top-1 and top-5 errors. Images are prepared as the
run's evaluation did: as they are for in-memory sets, resized and centre-cropped to the model's
resolution for image folders (and for runs trained with the rrc augmentation).`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.data, "data", "", "dataset: mnist, cifar10, cifar100, or an image folder (its val/ sub-folder if it has one); default: the run's")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory of the CIFAR binaries (default: the run's, else $"+dataDirEnvVar+" or "+defaultDataDirName+")")
	fs.BoolVar(&o.best, "best", false, "evaluate the checkpoint of the best epoch (<run>/"+train.BestDir+") instead of the latest (<run>/"+train.LatestDir+")")
	fs.IntVar(&o.batch, "batch", train.DefaultRecipe().EvalBatchSize, "evaluation batch size (>= 1)")
	fs.IntVar(&o.maxImages, "max-images", 0, "evaluate the first N images only (0: all)")
	fs.IntVar(&o.wk, "workers", 0, "data-loading goroutines (0: one per CPU)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the result as one JSON object")
	addSkipBadImagesFlag(fs, &o.skipBad)
	return fs
}

// evalResult is the --json output of "seqconv eval". A non-finite metric is written as null, and
// NonFinite says which and why.
type evalResult struct {
	Run        string       `json:"run"`
	Checkpoint string       `json:"checkpoint"`
	Data       string       `json:"data"`
	Images     int          `json:"images"`
	Loss       finiteNumber `json:"loss"`
	Top1Error  finiteNumber `json:"top1_error"`
	Top5Error  finiteNumber `json:"top5_error"`
	Seconds    float64      `json:"seconds"`
	NonFinite  string       `json:"non_finite,omitempty"`
}

// finiteNumber is a float64 written to JSON as null when it is NaN or infinite (which JSON cannot
// represent), and read back from null as NaN.
type finiteNumber float64

// MarshalJSON implements json.Marshaler.
func (x finiteNumber) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(x))
}

// UnmarshalJSON implements json.Unmarshaler.
func (x *finiteNumber) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*x = finiteNumber(math.NaN())
		return nil
	}
	return json.Unmarshal(b, (*float64)(x))
}

// nonFiniteNote says which of the metrics are not finite, and why that happens, or "".
func nonFiniteNote(metrics map[string]float64) string {
	var bad []string
	for _, name := range slices.Sorted(maps.Keys(metrics)) {
		if x := metrics[name]; math.IsNaN(x) || math.IsInf(x, 0) {
			bad = append(bad, fmt.Sprintf("%s is %v", name, x))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return strings.Join(bad, ", ") + ": the model's outputs are not finite (diverged weights, or non-finite input)"
}

// runEval implements "seqconv eval".
func runEval(args []string, stdout, stderr io.Writer) int {
	var o evalOptions
	fs := newEvalFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	return runInterruptible(stderr, func(ctx context.Context) error { return o.execute(ctx, stdout, stderr) })
}

// execute checks the flags and evaluates.
func (o *evalOptions) execute(ctx context.Context, stdout, stderr io.Writer) error {
	switch {
	case o.batch < 1:
		return usagef("--batch must be >= 1, got %d", o.batch)
	case o.maxImages < 0:
		return usagef("--max-images must be >= 0 (0: all), got %d", o.maxImages)
	case o.wk < 0:
		return usagef("--workers must be >= 0 (0: one per CPU), got %d", o.wk)
	}
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	cfg, err := train.ReadConfig(o.run)
	if err != nil {
		return err
	}
	dataDir := o.dataDir
	var spec dataSpec
	switch {
	case o.data != "":
		spec, err = parseDataName(o.data)
	case cfg.Data == "":
		return usagef("--run %s names no dataset in its %s (an imported run?): set --data", o.run, train.ConfigFile)
	default:
		spec, err = parseRecordedData("--run", o.run, cfg.Data)
	}
	if err != nil {
		return err
	}
	if dataDir == "" {
		dataDir = cfg.DataDir
	}
	if dataDir == "" {
		dataDir = defaultDataDir()
	}
	// Evaluate as the run did: resized and centre-cropped if it trained with random resized crops.
	p := pipeline{rrc: cfg.TrainedWithRandomResizedCrop()}
	classes, err := readClasses(o.run)
	if err != nil {
		return err
	}
	if spec.Kind != kindFolder {
		classes = nil
	}

	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	modelCfg, store, err := train.LoadRun(backend, o.run, o.best)
	if err != nil {
		return err
	}
	sets, err := loadData(spec, dataDir, p, modelCfg.Resolution, o.wk, true, classes, badImagesLog(o.skipBad, stderr))
	if err != nil {
		return err
	}
	ds := sets.Eval
	if err := ds.Validate(); err != nil {
		return fmt.Errorf("data %s: %w", ds.Name(), err)
	}
	if ds.Channels() != modelCfg.InChannels || ds.NumClasses() != modelCfg.Classes {
		return usagef("the model of %s takes %d-channel images and has %d classes, but %s has %d-channel images and %d classes",
			o.run, modelCfg.InChannels, modelCfg.Classes, ds.Name(), ds.Channels(), ds.NumClasses())
	}
	if o.maxImages > 0 {
		ds = ds.Head(o.maxImages)
	}
	which := "latest"
	if o.best {
		which = "best"
	}
	if !o.jsonOut {
		ckpt := train.RunCheckpointDir(o.run, o.best)
		if info, err := train.LatestCheckpointInfo(ckpt); err == nil {
			ckpt = filepath.Join(ckpt, info.String())
		}
		fmt.Fprintf(stdout, "run:      %s (%s checkpoint: %s)\n", o.run, which, ckpt)
		fmt.Fprintf(stdout, "model:    %s (%s)\n", modelCfg.Name, modelCfg.Family)
		fmt.Fprintf(stdout, "data:     %s: %s %s images\n", dataLabel(spec.Name), thousands(int64(ds.Len())), sets.EvalSplit)
	}
	start := time.Now()
	ev, err := train.Evaluate(ctx, backend, store, modelCfg, ds, o.batch)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("interrupted: %w", err)
		}
		return err
	}
	res := evalResult{Run: o.run, Checkpoint: which, Data: spec.Name, Images: ds.Len(), Loss: finiteNumber(ev.Loss),
		Top1Error: finiteNumber(ev.Top1Error), Top5Error: finiteNumber(ev.Top5Error), Seconds: time.Since(start).Seconds(),
		NonFinite: nonFiniteNote(map[string]float64{"loss": ev.Loss, "top1_error": ev.Top1Error, "top5_error": ev.Top5Error})}
	if o.jsonOut {
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(stdout, "loss %.4f  top-1 error %.2f%%  top-5 error %.2f%%  (%s images, %.1fs)\n",
		ev.Loss, ev.Top1Error, ev.Top5Error, thousands(int64(res.Images)), res.Seconds)
	if res.NonFinite != "" {
		fmt.Fprintf(stderr, "seqconv: warning: %s\n", res.NonFinite)
	}
	return nil
}
