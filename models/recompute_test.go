package models_test

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/loss"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

// TestRecomputeSameGradients checks that gradient checkpointing (ParamRecompute) changes neither the loss nor
// any gradient, in training graphs with dropout, for both SeqConv implementations and every convolution lowering:
// in float64 to 1e-12 on the Go backend (the native lowering is GoMLX autodiff through XLA-style ops; the onnx
// one ONNX Runtime's formulation, channels first), and on ONNX Runtime with its own lowering, in float32 to 1e-5
// (the two graphs may round differently).
func TestRecomputeSameGradients(t *testing.T) {
	backend := engine.MustNewForTest()
	dtype, tol := dtypes.Float64, 1e-12
	if !engine.IsGo(backend) {
		dtype, tol = dtypes.Float32, 1e-5
	}
	tests := []struct {
		name     string
		cfg      models.Config
		lowering layers.Lowering
		impl     layers.SeqConvImpl
		res      int
	}{
		{"cifar-b im2col fused", models.Config{Family: models.FamilyCIFAR, Variant: models.VariantB, Classes: 5,
			BlocksPerStage: []int{1, 1, 1}, PyramidFactor: []float64{1, 2, 3}, Widening: 1,
			Granularity: models.IntList{8}, DropRate: 0.2}, layers.LoweringIm2Col, layers.SeqConvFused, 8},
		{"cifar-plain native fused", models.Config{Family: models.FamilyCIFAR, Variant: models.VariantPlain,
			Classes: 5, BlocksPerStage: []int{1, 1, 0}, PyramidFactor: []float64{1, 2, 4}, Widening: 1,
			Granularity: models.IntList{8}, DropRate: 0.2}, layers.LoweringNative, layers.SeqConvFused, 8},
		{"imagenet im2col direct", models.Config{Family: models.FamilyImageNet, Classes: 7,
			BlocksPerStage: []int{1, 1, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}},
			layers.LoweringIm2Col, layers.SeqConvDirect, 32},
		{"imagenet im2col fused", models.Config{Family: models.FamilyImageNet, Classes: 7,
			BlocksPerStage: []int{1, 1, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}},
			layers.LoweringIm2Col, layers.SeqConvFused, 32},
		{"cifar-b onnx fused", models.Config{Family: models.FamilyCIFAR, Variant: models.VariantB, Classes: 5,
			BlocksPerStage: []int{1, 1, 1}, PyramidFactor: []float64{1, 2, 3}, Widening: 1,
			Granularity: models.IntList{8}, DropRate: 0.2}, layers.LoweringONNX, layers.SeqConvFused, 8},
	}
	for _, tc := range tests {
		if !engine.IsGo(backend) {
			tc.lowering = layers.LoweringAuto // the engine's own lowering
		}
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			x := tensors.FromShape(shapes.Make(dtype, 2, tc.res, tc.res, 3))
			if dtype == dtypes.Float32 {
				tensors.MustMutableFlatData(x, func(flat []float32) {
					for i := range flat {
						flat[i] = float32(math.Sin(float64(i) * 0.37))
					}
				})
			} else {
				tensors.MustMutableFlatData(x, func(flat []float64) {
					for i := range flat {
						flat[i] = math.Sin(float64(i) * 0.37)
					}
				})
			}
			labels := tensors.FromValue([]int32{1, 3})
			store := model.NewStore()
			var results [2][]float64
			var nGrads int
			for i, on := range []bool{false, true} {
				exec, err := model.NewExec(backend, store, func(scope *model.Scope, x, labels *Node) []*Node {
					g := x.Graph()
					store.SetTraining(g, true)
					scope.SetParam(layers.ParamLowering, tc.lowering)
					scope.SetParam(layers.ParamSeqConvImpl, tc.impl)
					scope.SetParam(models.ParamRecompute, on)
					logits := cfg.Build(scope, x)
					l := ReduceAllMean(loss.SparseCategoricalCrossEntropyLogits(
						[]*Node{ExpandAxes(labels, -1)}, []*Node{logits}))
					var vars []*Node
					for v := range scope.IterVariables() {
						if v.Trainable {
							vars = append(vars, v.NodeValue(g))
						}
					}
					nGrads = len(vars)
					return append([]*Node{l}, Gradient(l, vars...)...)
				})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := exec.Call(x, labels); err != nil { // initialises the variables
					t.Fatal(err)
				}
				if err := store.SetRNGStateFromSeed(3); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Call(x, labels)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range out {
					if o.DType() == dtypes.Float32 {
						for _, v := range tensors.MustCopyFlatData[float32](o) {
							results[i] = append(results[i], float64(v))
						}
						continue
					}
					results[i] = append(results[i], tensors.MustCopyFlatData[float64](o)...)
				}
			}
			if nGrads < 10 || len(results[0]) != len(results[1]) {
				t.Fatalf("%d gradients, %d vs %d values", nGrads, len(results[0]), len(results[1]))
			}
			for e, want := range results[0] {
				if got := results[1][e]; math.Abs(got-want) > tol*max(1, math.Abs(want)) {
					t.Fatalf("value %d (0 is the loss): %.17g with recomputation, %.17g without", e, got, want)
				}
			}
		})
	}
}
