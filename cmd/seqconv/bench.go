package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// benchOptions are the flags of "seqconv bench".
type benchOptions struct {
	model, mode, precision, impl string
	recompute                    bool
	xlaCache                     string
	autotune                     int
	batch, steps, warmup         int
	json                         bool
}

func init() {
	registerCommand(command{"bench", "time training or inference steps of a model: median step, images/s, compile time, memory",
		runBench, flagsUsage(newBenchFlags)})
}

func newBenchFlags(o *benchOptions) *flagSet {
	if o == nil {
		o = &benchOptions{}
	}
	fs := newFlagSet("bench", "seqconv bench [flags]", `
Times steps of a model on synthetic data on the configured backend ($GOMLX_BACKEND): the first step
(building and compiling the graph) apart, then --warmup untimed steps, then the median of --steps
timed steps. Training steps use GoMLX's Trainer with Nesterov SGD, as "seqconv train" does. Reports
the median step time, images/s, the achieved GFLOP/s (2 x MACs, x3 for training) and the peak
resident memory of the process.`)
	fs.StringVar(&o.model, "model", "seqresnet-cifar-demo", "registered model name or path to a JSON model config")
	fs.IntVar(&o.batch, "batch", 64, "images per step (>= 1)")
	fs.StringVar(&o.mode, "mode", "train", "train (forward, backward, update) or infer (forward only)")
	fs.IntVar(&o.steps, "steps", 5, "timed steps (>= 1)")
	fs.IntVar(&o.warmup, "warmup", 1, "untimed steps after the compiling one (>= 0)")
	fs.StringVar(&o.precision, "precision", "f32", "f32, or bf16 (bfloat16 convolutions, float32 accumulation and master weights)")
	fs.StringVar(&o.impl, "impl", "fused", "SeqConv implementation: fused (the default, see README) or direct (the paper's equations as written; a baseline)")
	fs.BoolVar(&o.recompute, "recompute", false, "gradient checkpointing: recompute each block's activations in the backward pass (less memory)")
	addXLAFlags(fs.FlagSet, &o.xlaCache, &o.autotune, "the user cache directory")
	fs.BoolVar(&o.json, "json", false, "print the result as one JSON object")
	return fs
}

// runBench implements "seqconv bench".
func runBench(args []string, stdout, stderr io.Writer) int {
	var o benchOptions
	fs := newBenchFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	cfg, err := models.Get(o.model)
	switch {
	case err != nil:
		err = usagef("--model: %v", err)
	case o.batch < 1:
		err = usagef("--batch must be >= 1, got %d", o.batch)
	case o.steps < 1:
		err = usagef("--steps must be >= 1, got %d", o.steps)
	case o.warmup < 0:
		err = usagef("--warmup must be >= 0, got %d", o.warmup)
	case o.mode != "train" && o.mode != "infer":
		err = usagef("--mode must be train or infer, got %q", o.mode)
	case o.precision != "f32" && o.precision != "bf16":
		err = usagef("--precision must be f32 or bf16, got %q", o.precision)
	case o.impl != "fused" && o.impl != "direct":
		err = usagef("--impl must be fused or direct, got %q", o.impl)
	default:
		err = configureXLA(o.xlaCache, defaultXLACacheDir(), o.autotune)
	}
	if err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	workload := engine.Inference
	if o.mode == "train" {
		workload = engine.Training
	}
	backend, err := newBackend(stderr, workload)
	if err != nil {
		printError(stderr, err)
		return exitFailure
	}
	defer backend.Finalize()
	res, err := train.Bench(backend, cfg, train.BenchOptions{Batch: o.batch, Steps: o.steps, Warmup: o.warmup,
		Train: o.mode == "train", Precision: o.precision,
		Impl: o.impl, Recompute: o.recompute})
	if err != nil {
		printError(stderr, err)
		return exitFailure
	}
	if o.json {
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			printError(stderr, err)
			return exitFailure
		}
		return exitOK
	}
	fmt.Fprintf(stdout, "model %s (%s params, %s MACs/image at %dx%d) on %s, %s, batch %d\n",
		res.Model, thousands(res.Params), humanCount(res.MACsPerImage), res.ResolutionUsed, res.ResolutionUsed,
		describeBackend(backend), res.Mode+" "+res.Precision+" "+res.Impl+recomputeNote(res.Recompute), res.Batch)
	fmt.Fprintf(stdout, "first step (build + compile + run): %.2fs\n", res.FirstStepS)
	fmt.Fprintf(stdout, "median step: %.4fs (min %.4fs, %d steps) = %.1f images/s, %.1f GFLOP/s\n",
		res.MedianStepS, res.MinStepS, res.Steps, res.ImagesPerS, res.GFLOPsPerS)
	fmt.Fprintf(stdout, "peak resident memory: %.1f MiB\n", float64(res.PeakRSSBytes)/(1<<20))
	return exitOK
}

func recomputeNote(on bool) string {
	if on {
		return " recompute"
	}
	return ""
}
