package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// TestSeqConvImplsAgree checks that the fused implementation (gathered products with hand-written gradients
// on the Go backend; one input convolution plus per-filter convolutions of the new groups with native
// convolutions; ONNX Runtime's batched products, channels first) and the direct formulation in both layouts
// compute exactly what the direct formulation computes on the Go backend, in float64: both outputs and the
// gradients of a loss with respect to the input, the shortcut and every variable, in training mode with
// dropout (both draw the same masks) and in inference mode.
func TestSeqConvImplsAgree(t *testing.T) {
	goBackendOnly(t)
	backend := gobackend.GetBackend()
	tests := []struct {
		name                   string
		cin, cout, k           int
		bottleneck, dense      bool
		windowGroups, subgroup int
		shortcut               bool
		drop                   float64
		training               bool
	}{
		{"plain windowed shortcut dropout", 6, 6, 2, false, false, 0, 1, true, 0.3, true},
		{"plain dense dropout", 4, 6, 2, false, true, 0, 1, false, 0.3, true},
		{"plain window cut inside the input", 5, 6, 2, false, false, 2, 1, false, 0.3, true},
		{"plain window cut inside a group", 5, 8, 2, false, false, 0, 1, true, 0.3, true},
		{"bottleneck windowed shortcut dropout", 5, 8, 2, true, false, 0, 1, true, 0.2, true},
		{"bottleneck dense subgroups", 4, 8, 4, true, true, 0, 2, false, 0.2, true},
		{"bottleneck g'=2", 6, 8, 2, true, false, 2, 1, true, 0.25, true},
		{"bottleneck g'=5 wider than input, no dropout", 4, 8, 2, true, false, 5, 1, false, 0, true},
		{"bottleneck inference", 5, 8, 2, true, false, 0, 1, true, 0.2, false},
		{"plain dense inference", 4, 6, 2, false, true, 0, 1, false, 0.3, false},
		{"plain windowed shortcut inference", 6, 6, 2, false, false, 0, 1, true, 0.3, false},
		{"plain window cut inside the input inference", 5, 6, 2, false, false, 2, 1, false, 0.3, false},
		{"plain window cut inside a group inference", 5, 8, 2, false, false, 0, 1, true, 0.3, false},
		{"bottleneck dense subgroups inference", 4, 8, 4, true, true, 0, 2, false, 0.2, false},
		{"bottleneck g'=2 inference", 6, 8, 2, true, false, 2, 1, true, 0.25, false},
		{"bottleneck 6 filters, window cut inside groups, inference", 5, 12, 2, true, false, 0, 1, true, 0, false},
		{"plain dense 6 filters inference", 3, 12, 2, false, true, 0, 1, true, 0, false},
	}
	impls := []struct {
		impl     SeqConvImpl
		lowering Lowering
		layout   Layout
	}{{SeqConvDirect, LoweringIm2Col, NHWC}, {SeqConvFused, LoweringIm2Col, NHWC}, {SeqConvFused, LoweringNative, NHWC},
		{SeqConvFused, LoweringONNX, NHWC}, {SeqConvFused, LoweringONNX, NCHW}, {SeqConvDirect, LoweringONNX, NCHW}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			const n, h, w = 3, 5, 4
			x := randTensor(rng, n, h, w, tc.cin)
			s := randTensor(rng, n, h, w, tc.cout)
			r1 := randTensor(rng, n, h, w, tc.cout)
			r2 := randTensor(rng, n, h, w, tc.cout)
			store := model.NewStore()
			var results [][]*tensors.Tensor
			var names []string
			for _, im := range impls {
				exec, err := model.NewExec(backend, store, func(scope *model.Scope, x, s, r1, r2 *Node) []*Node {
					g := x.Graph()
					store.SetTraining(g, tc.training)
					scope.SetParam(ParamLowering, im.lowering)
					scope.SetParam(ParamLayout, im.layout)
					b := SeqConv(scope, im.layout.FromNHWC(x)).Granularity(tc.k).Channels(tc.cout).Bottleneck(tc.bottleneck).
						Subgroups(tc.subgroup).Window(tc.windowGroups).DropRate(tc.drop).Impl(im.impl)
					if tc.dense {
						b.Dense()
					}
					if tc.shortcut {
						b.Shortcut(im.layout.FromNHWC(s)).Junction(1)
					}
					raw, act := b.Done()
					raw, act = im.layout.ToNHWC(raw), im.layout.ToNHWC(act)
					loss := Add(ReduceAllSum(Mul(raw, r1)), ReduceAllSum(Mul(act, r2)))
					wrt := []*Node{x, s}
					names = []string{"dx", "ds"}
					for v := range scope.IterVariables() {
						if v.Trainable {
							wrt = append(wrt, v.NodeValue(g))
							names = append(names, "d"+v.Path())
						}
					}
					outs := []*Node{raw, act}
					return append(outs, Gradient(loss, wrt...)...)
				})
				if err != nil {
					t.Fatal(err)
				}
				// A first call initialises the variables (drawing from the RNG), then both draw the same masks.
				if _, err := exec.Call(x, s, r1, r2); err != nil {
					t.Fatalf("%s/%s/%s: %v", im.impl, im.lowering, im.layout, err)
				}
				if err := store.SetRNGStateFromSeed(11); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Call(x, s, r1, r2)
				if err != nil {
					t.Fatalf("%s/%s/%s: %v", im.impl, im.lowering, im.layout, err)
				}
				results = append(results, out)
			}
			names = append([]string{"raw", "act"}, names...)
			for i := 1; i < len(impls); i++ {
				if len(results[i]) != len(results[0]) {
					t.Fatalf("%s/%s/%s: %d results, want %d", impls[i].impl, impls[i].lowering, impls[i].layout,
						len(results[i]), len(results[0]))
				}
				for o := range results[0] {
					want := tensors.MustCopyFlatData[float64](results[0][o])
					got := tensors.MustCopyFlatData[float64](results[i][o])
					scale := 0.0
					for _, v := range want {
						scale = max(scale, math.Abs(v))
					}
					if scale == 0 && o > 1 && o < 4 && !tc.shortcut {
						continue // ds without a shortcut
					}
					for e := range want {
						if math.Abs(got[e]-want[e]) > 1e-10*max(scale, 1) {
							t.Fatalf("%s/%s/%s %s[%d]: got %.15g, want %.15g (direct)", impls[i].impl,
								impls[i].lowering, impls[i].layout, names[o], e, got[e], want[e])
						}
					}
				}
			}
			if len(names) < 4 {
				t.Fatalf("no variable gradients compared: %v", names)
			}
		})
	}
}

// TestSeqConvNativeShapes checks that the fused implementation on native convolutions (XLA's path) builds a
// windowed layer from few distinct convolution shapes, so that XLA compiles and autotunes each once: the
// input's contribution (one convolution), the new groups' contributions (one shape for all filters) and the
// bottleneck's 3x3; the direct formulation has one view convolution per filter plus the 3x3.
func TestSeqConvNativeShapes(t *testing.T) {
	goBackendOnly(t)
	backend := gobackend.GetBackend()
	for _, tc := range []struct {
		impl            SeqConvImpl
		convs, distinct int
	}{{SeqConvFused, 1 + 4 + 5, 3}, {SeqConvDirect, 5 + 5, 2}} {
		g := NewGraph(backend, "shapes")
		store := model.NewStore()
		store.SetTraining(g, false)
		scope := store.RootScope()
		scope.SetParam(ParamLowering, LoweringNative)
		x := Parameter(g, "x", shapes.Make(dtypes.Float32, 2, 6, 6, 10))
		SeqConv(scope, x).Granularity(2).Channels(10).Bottleneck(true).Impl(tc.impl).Done()
		seen := map[string]bool{}
		convs := 0
		for _, n := range g.Nodes() {
			if n.Type() == NodeTypeConvGeneral {
				convs++
				seen[n.Inputs()[0].Shape().String()+n.Inputs()[1].Shape().String()] = true
			}
		}
		if convs != tc.convs || len(seen) != tc.distinct {
			t.Errorf("%s: %d convolutions of %d shapes, want %d of %d: %v", tc.impl, convs, len(seen), tc.convs,
				tc.distinct, seen)
		}
	}
}

// TestSeqConvFusedBF16 checks the fused implementation under mixed precision: float32 results within bfloat16
// rounding (relative L2 <= 2e-2, and not bit-equal) of the float32 computation for the output, the input
// gradient and the variable gradients, in training with dropout, for bottleneck and plain filters.
func TestSeqConvFusedBF16(t *testing.T) {
	goBackendOnly(t)
	backend := gobackend.GetBackend()
	rng := rand.New(rand.NewPCG(7, 8))
	x := randTensor32(rng, 2, 5, 4, 6)
	for _, bottleneck := range []bool{true, false} {
		results := map[Precision][]*tensors.Tensor{}
		var names []string
		for _, p := range []Precision{PrecisionF32, PrecisionBF16} {
			store := model.NewStore()
			if err := store.SetRNGStateFromSeed(1); err != nil { // the same initial weights
				t.Fatal(err)
			}
			store.RootScope().SetParam(ParamPrecision, string(p))
			exec := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
				g := x.Graph()
				store.SetTraining(g, true)
				_, act := SeqConv(scope, x).Granularity(2).Channels(8).Bottleneck(bottleneck).DropRate(0.2).Done()
				loss := ReduceAllSum(Mul(act, Sin(IotaFull(g, act.Shape()))))
				wrt := []*Node{x}
				names = []string{"act", "dx"}
				for v := range scope.IterVariables() {
					if v.Trainable {
						wrt = append(wrt, v.NodeValue(g))
						names = append(names, "d"+v.Path())
					}
				}
				return append([]*Node{act}, Gradient(loss, wrt...)...)
			})
			exec.MustCall(x) // initialises the variables
			if err := store.SetRNGStateFromSeed(5); err != nil {
				t.Fatal(err)
			}
			results[p] = exec.MustCall(x)
		}
		// The output, the input gradient, and all variable gradients together (a single BN γ gradient is a sum
		// with heavy cancellation, ill-conditioned in any low precision).
		groups := [][]int{{0}, {1}, {}}
		for i := 2; i < len(results[PrecisionF32]); i++ {
			groups[2] = append(groups[2], i)
		}
		for gi, group := range groups {
			var num, den float64
			for _, i := range group {
				if dt := results[PrecisionBF16][i].DType(); dt != dtypes.Float32 {
					t.Fatalf("%s: dtype %s, want Float32", names[i], dt)
				}
				a := tensors.MustCopyFlatData[float32](results[PrecisionF32][i])
				b := tensors.MustCopyFlatData[float32](results[PrecisionBF16][i])
				for j := range a {
					num += float64((a[j] - b[j]) * (a[j] - b[j]))
					den += float64(a[j] * a[j])
				}
			}
			if rel := math.Sqrt(num / den); rel > 2e-2 || rel == 0 {
				t.Errorf("bottleneck=%v %s: relative L2 difference bf16 vs f32 = %g, want (0, 2e-2]",
					bottleneck, []string{"output", "input gradient", "variable gradients"}[gi], rel)
			}
		}
	}
}
