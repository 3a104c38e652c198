package train

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

// TestTrainingAgreesAcrossEngines runs the same training steps (forward, backward, Nesterov SGD with weight decay,
// batch-norm statistics) of small models with strided and grouped convolutions from the same initial variables
// on the Go backend and on ONNX Runtime, in float32, and compares the losses of every step and all variables,
// optimizer state included, after the last one. It skips when the ONNX Runtime library is not installed
// (scripts/install-onnxruntime.sh; CI installs it).
//
// The engines round differently and ONNX Runtime runs other formulations (channels first, native convolutions),
// so the results drift apart with every step, as fast as the Go backend's own two formulations do: with batch
// norm over few values, float32 rounding grows to percent-level differences of some gradients within 3 steps on
// either pair, fastest for the variables that start at zero (measured 2026-11-29). The tolerances: losses
// within 1e-4 relative (measured: 3.1e-5); after one step every variable and momentum buffer within 1e-3 of its
// largest magnitude and all of them within 3e-4 in relative L2 norm (measured: 9.5e-5 and 3e-5); after three
// steps of the MNIST model, all model variables within 1e-3 in relative L2 norm (measured: 3.1e-4).
func TestTrainingAgreesAcrossEngines(t *testing.T) {
	lib, err := engine.FindONNXRuntime()
	if err != nil {
		t.Skipf("ONNX Runtime is not installed (%v): %s", err, engine.InstallHint)
	}
	ort, err := engine.NewWithConfig(engine.ONNXConfig(lib, engine.Training))
	if err != nil {
		t.Fatalf("ONNX Runtime at %s: %v", lib, err)
	}
	defer ort.Finalize()
	goBackend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		t.Fatal(err)
	}
	defer goBackend.Finalize()

	tests := []struct {
		name         string
		cfg          models.Config
		steps, batch int
		optimizer    bool    // whether the momentum buffers are compared too
		varTol       float64 // of each variable after the last step, relative to its largest magnitude (0: none)
		l2Tol        float64 // of all compared variables, relative L2 difference
	}{
		// A strided stem, grouped strided shrinking convolutions, windowed bottleneck SeqConv layers.
		{"seqresnet-mnist", mustModel(t, "seqresnet-mnist"), 3, 32, false, 0, 1e-3},
		// Grouped 3x3 convolutions inside the filters (SeqResNeXt) and the ImageNet stem's strided convolutions.
		{"seqresnext tiny", models.Config{Family: models.FamilyResNeXt, Classes: 5, Resolution: 32,
			BlocksPerStage: []int{1, 1, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16},
			Subgroups: models.IntList{2, 2, 2, 2}}, 1, 16, true, 1e-3, 3e-4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			var losses [2][]float64
			var vars [2]map[string][]float64
			var init map[string]*tensors.Tensor
			for e, backend := range []compute.Backend{goBackend, ort} {
				store := model.NewStore()
				if err := store.SetRNGStateFromSeed(7); err != nil {
					t.Fatal(err)
				}
				modelFn := func(scope *model.Scope, x *Node) *Node { return cfg.Build(scope, x) }
				trainer := gtrain.NewTrainer(backend, store, modelFn, CrossEntropyLoss(0),
					SGD().LearningRate(0.01).Momentum(0.9).Nesterov(true).WeightDecay(5e-4).Done(), nil, nil)
				// An evaluation step creates and initialises the variables (each engine draws its own random
				// numbers): both engines start from the Go backend's values.
				if _, err := trainer.EvalStep(syntheticBatch(cfg, tc.batch, 0)); err != nil {
					t.Fatalf("%s: %v", backend.Name(), err)
				}
				if e == 0 {
					init = localValues(t, store)
				} else {
					for v := range store.IterVariables() {
						if want, ok := init[v.Path()]; ok {
							if err := v.SetValue(want); err != nil {
								t.Fatalf("%s: %v", v.Path(), err)
							}
						}
					}
				}
				for step := range tc.steps {
					metrics, err := trainer.TrainStep(syntheticBatch(cfg, tc.batch, step))
					if err != nil {
						t.Fatalf("%s step %d: %v", backend.Name(), step, err)
					}
					losses[e] = append(losses[e], shapes.ConvertTo[float64](metrics[0].Value()))
				}
				vars[e] = floatValues(t, store, tc.optimizer)
			}
			for step := range tc.steps {
				if d := math.Abs(losses[1][step]-losses[0][step]) / max(1, math.Abs(losses[0][step])); d > 1e-4 {
					t.Errorf("step %d: loss %.7g on ONNX Runtime, %.7g on the Go backend (relative difference %.2g)",
						step, losses[1][step], losses[0][step], d)
				}
			}
			if len(vars[0]) != len(vars[1]) || len(vars[0]) < 10 {
				t.Fatalf("%d variables on the Go backend, %d on ONNX Runtime", len(vars[0]), len(vars[1]))
			}
			worst, num, den := 0.0, 0.0, 0.0
			for path, want := range vars[0] {
				got := vars[1][path]
				if len(got) != len(want) {
					t.Fatalf("%s: %d values on ONNX Runtime, %d on the Go backend", path, len(got), len(want))
				}
				scale, diff := 0.0, 0.0
				for i := range want {
					scale = max(scale, math.Abs(want[i]))
					diff = max(diff, math.Abs(got[i]-want[i]))
					num += (got[i] - want[i]) * (got[i] - want[i])
					den += want[i] * want[i]
				}
				worst = max(worst, diff/max(scale, 1e-3))
				if tc.varTol > 0 && diff > tc.varTol*max(scale, 1e-3) {
					t.Errorf("%s after %d steps: max difference %.3g (largest magnitude %.3g)", path, tc.steps, diff,
						scale)
				}
			}
			if rel := math.Sqrt(num / den); rel > tc.l2Tol {
				t.Errorf("after %d steps: relative L2 difference of all compared variables %.3g, want <= %g",
					tc.steps, rel, tc.l2Tol)
			}
			t.Logf("losses %v (Go backend), %v (ONNX Runtime); largest relative variable difference %.2g, "+
				"relative L2 difference of all %.2g", losses[0], losses[1], worst, math.Sqrt(num/den))
		})
	}
}

// mustModel returns the registered model name.
func mustModel(t *testing.T, name string) models.Config {
	t.Helper()
	cfg, err := models.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// syntheticBatch is a deterministic batch of images and labels for cfg (different for each step).
func syntheticBatch(cfg models.Config, batch, step int) gtrain.Batch {
	res := cfg.Resolution
	x := tensors.FromShape(shapes.Make(dtypes.Float32, batch, res, res, cfg.InChannels))
	tensors.MustMutableFlatData(x, func(flat []float32) {
		for i := range flat {
			flat[i] = float32(math.Sin(0.37*float64(i) + 1.3*float64(step)))
		}
	})
	labels := make([]int32, batch)
	for i := range labels {
		labels[i] = int32((i*3 + step) % cfg.Classes)
	}
	return gtrain.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{tensors.FromValue(labels)}}
}

// localValues returns host copies of the values of store's variables, by path (another backend can load them).
func localValues(t *testing.T, store *model.Store) map[string]*tensors.Tensor {
	t.Helper()
	out := map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		value, err := v.Value()
		if err != nil {
			t.Fatalf("%s: %v", v.Path(), err)
		}
		local, err := value.LocalClone()
		if err != nil {
			t.Fatalf("%s: %v", v.Path(), err)
		}
		out[v.Path()] = local
	}
	return out
}

// floatValues returns the values of store's float32 variables as float64, by path: the model's, and the
// optimizer's when optimizer is set (not the metrics', which are named per trainer).
func floatValues(t *testing.T, store *model.Store, optimizer bool) map[string][]float64 {
	t.Helper()
	out := map[string][]float64{}
	for path, v := range localValues(t, store) {
		if v.DType() != dtypes.Float32 || strings.HasPrefix(path, "/metrics/") ||
			(!optimizer && strings.HasPrefix(path, "/"+SGDScope+"/")) {
			continue
		}
		for _, f := range tensors.MustCopyFlatData[float32](v) {
			out[path] = append(out[path], float64(f))
		}
	}
	return out
}
