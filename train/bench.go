package train

import (
	"fmt"
	"math"
	"slices"
	"syscall"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

// BenchOptions configures Bench.
type BenchOptions struct {
	Batch  int  // images per step
	Steps  int  // timed steps after the warm-up (>= 1)
	Warmup int  // untimed steps after the first (compiling) one
	Train  bool // a training step (forward, backward, SGD update) rather than inference
	// Precision is "f32" (default) or "bf16" (see layers.PrecisionBF16).
	Precision string
	// Impl is the SeqConv implementation, "fused" (default) or "direct" (see layers.SeqConvImpl).
	Impl string
	// Recompute turns on gradient checkpointing (models.ParamRecompute).
	Recompute bool
}

// BenchResult is what Bench measured.
type BenchResult struct {
	Model          string  `json:"model"`
	Backend        string  `json:"backend"`
	Mode           string  `json:"mode"`
	Precision      string  `json:"precision"`
	Impl           string  `json:"seqconv_impl"`
	Recompute      bool    `json:"recompute"`
	Batch          int     `json:"batch"`
	Steps          int     `json:"steps"`
	FirstStepS     float64 `json:"first_step_s"` // graph building + compilation + one step
	MedianStepS    float64 `json:"median_step_s"`
	MinStepS       float64 `json:"min_step_s"`
	ImagesPerS     float64 `json:"images_per_s"` // Batch / MedianStepS
	PeakRSSBytes   int64   `json:"peak_rss_bytes"`
	Params         int64   `json:"params"`
	MACsPerImage   int64   `json:"macs_per_image"`
	GFLOPsPerS     float64 `json:"gflops_per_s"` // 2*MACs*Batch/median (x3 for training: forward + 2 backward)
	ResolutionUsed int     `json:"resolution"`
}

// Bench times training (or inference) steps of a model on synthetic data: the first step (which builds and
// compiles the graph) is reported apart, then Warmup untimed steps, then the median of Steps timed steps.
// Training steps run through GoMLX's Trainer with Nesterov SGD and cross-entropy, as `seqconv train` does.
func Bench(backend compute.Backend, cfg models.Config, opts BenchOptions) (res BenchResult, err error) {
	if opts.Batch < 1 || opts.Steps < 1 || opts.Warmup < 0 {
		return res, fmt.Errorf("bench: batch and steps must be >= 1 and warmup >= 0, got %d, %d, %d",
			opts.Batch, opts.Steps, opts.Warmup)
	}
	if err := cfg.Validate(); err != nil {
		return res, fmt.Errorf("bench: model %s: %w", cfg.Name, err)
	}
	stats, err := models.Inspect(backend, cfg, 0)
	if err != nil {
		return res, err
	}
	precision := layers.PrecisionF32
	if opts.Precision != "" {
		if precision, err = layers.ParsePrecision(opts.Precision); err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
	}
	impl := layers.SeqConvFused
	if opts.Impl != "" {
		if impl, err = layers.ParseSeqConvImpl(opts.Impl); err != nil {
			return res, fmt.Errorf("bench: %w", err)
		}
	}
	res = BenchResult{Model: cfg.Name, Impl: impl.String(), Recompute: opts.Recompute, Backend: backend.Name(), Batch: opts.Batch, Steps: opts.Steps,
		Params: stats.Params, MACsPerImage: stats.MACs(), ResolutionUsed: stats.Resolution, Mode: "infer",
		Precision: string(precision)}
	if opts.Train {
		res.Mode = "train"
	}
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(1); err != nil {
		return res, err
	}
	store.RootScope().SetParam(layers.ParamPrecision, string(precision))
	store.RootScope().SetParam(layers.ParamSeqConvImpl, impl)
	store.RootScope().SetParam(models.ParamRecompute, opts.Recompute)
	var step stepFunc
	if opts.Train {
		modelFn := func(scope *model.Scope, x *Node) *Node { return cfg.Build(scope, x) }
		trainer := gtrain.NewTrainer(backend, store, modelFn, CrossEntropyLoss(0),
			SGD().LearningRate(0.01).Momentum(0.9).Nesterov(true).WeightDecay(1e-4).Done(), nil, nil)
		step = trainer.TrainStep
	} else {
		step = inferenceSteps(backend, store, cfg)
	}
	res.FirstStepS, err = timeStep(step, cfg, opts, 0)
	if err != nil {
		return res, err
	}
	for i := range opts.Warmup {
		if _, err := timeStep(step, cfg, opts, 1+i); err != nil {
			return res, err
		}
	}
	times := make([]float64, opts.Steps)
	for i := range times {
		if times[i], err = timeStep(step, cfg, opts, 1+opts.Warmup+i); err != nil {
			return res, err
		}
	}
	slices.Sort(times)
	res.MedianStepS, res.MinStepS = times[len(times)/2], times[0]
	res.ImagesPerS = float64(opts.Batch) / res.MedianStepS
	flopsPerImage := 2 * float64(res.MACsPerImage)
	if opts.Train {
		flopsPerImage *= 3
	}
	res.GFLOPsPerS = flopsPerImage * float64(opts.Batch) / res.MedianStepS / 1e9
	res.PeakRSSBytes = peakRSS()
	return res, nil
}

// stepFunc runs one training or inference step on a batch and returns its metrics (the loss first) or outputs.
type stepFunc func(gtrain.Batch) ([]*tensors.Tensor, error)

// inferenceSteps returns the inference steps of cfg with the variables of store, as a deployed model runs them:
// the first call initialises the variables, then builds and compiles the inference graph with their values as
// constants (the Go and ONNX Runtime backends fold them into the graph); every call returns the logits.
func inferenceSteps(backend compute.Backend, store *model.Store, cfg models.Config) stepFunc {
	modelFn := func(scope *model.Scope, x *Node) *Node {
		scope.Store().SetTraining(x.Graph(), false)
		return cfg.Build(scope, x)
	}
	var exec *model.Exec
	return func(batch gtrain.Batch) ([]*tensors.Tensor, error) {
		if exec == nil {
			// A first graph creates and initialises the variables (which have no values while it is built).
			initExec, err := model.NewExec(backend, store, modelFn)
			if err != nil {
				return nil, err
			}
			x := batch.Inputs[0]
			one := tensors.FromShape(shapes.Make(x.DType(), append([]int{1}, x.Shape().Dimensions[1:]...)...))
			if _, err := initExec.Call(one); err != nil {
				return nil, err
			}
			initExec.Finalize()
			if exec, err = model.NewExec(backend, store, modelFn); err != nil {
				return nil, err
			}
		}
		return exec.Call(batch.Inputs[0])
	}
}

// timeStep runs one step on a synthetic batch (deterministic in step) and returns its wall time.
func timeStep(run stepFunc, cfg models.Config, opts BenchOptions, step int) (seconds float64, err error) {
	res := cfg.Resolution
	x := tensors.FromShape(shapes.Make(dtypes.Float32, opts.Batch, res, res, cfg.InChannels))
	tensors.MustMutableFlatData(x, func(flat []float32) {
		for i := range flat {
			flat[i] = float32((i*7+step*13)%255)/127.5 - 1
		}
	})
	labels := make([]int32, opts.Batch)
	for i := range labels {
		labels[i] = int32((i + step) % cfg.Classes)
	}
	batch := gtrain.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{tensors.FromValue(labels)}}
	start := time.Now()
	err = exceptions.TryCatch[error](func() {
		metrics, err := run(batch)
		if err != nil {
			panic(err)
		}
		if opts.Train && len(metrics) > 0 {
			if l := shapes.ConvertTo[float64](metrics[0].Value()); math.IsNaN(l) || math.IsInf(l, 0) {
				panic(fmt.Errorf("%w: the loss is %v", ErrNonFiniteLoss, l))
			}
		}
		for _, m := range metrics {
			m.MustFinalizeAll()
		}
	})
	if err != nil {
		return 0, fmt.Errorf("bench: %s step %d: %w", cfg.Name, step, err)
	}
	return time.Since(start).Seconds(), nil
}

// peakRSS is the process's peak resident set size (0 where unknown).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // Linux reports KiB
}
