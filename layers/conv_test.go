package layers

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
)

func randTensor(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float64, n)
	for i := range data {
		data[i] = rng.Float64()*2 - 1
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// randTensor32 is randTensor in float32.
func randTensor32(rng *rand.Rand, dims ...int) *tensors.Tensor {
	d := tensors.MustCopyFlatData[float64](randTensor(rng, dims...))
	out := make([]float32, len(d))
	for i, v := range d {
		out[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(out, dims...)
}

func maxAbsDiff(t *testing.T, a, b *tensors.Tensor) float64 {
	t.Helper()
	if !a.Shape().Equal(b.Shape()) {
		t.Fatalf("shapes differ: %s vs %s", a.Shape(), b.Shape())
	}
	var m float64
	fa, fb := tensors.MustCopyFlatData[float64](a), tensors.MustCopyFlatData[float64](b)
	for i := range fa {
		m = math.Max(m, math.Abs(fa[i]-fb[i]))
	}
	return m
}

// TestConv2DLoweringMatchesNative checks that the lowerings with hand-written gradients compute what GoMLX's
// native ConvGeneral and its autodiff compute on the Go backend in float64: the output and the gradients with
// respect to the input and the kernel, for 1x1/3x3/5x5/7x7 kernels, strides 1-3, odd sizes and grouped
// convolutions. The lowerings run on the test engine: im2col (Go backend only: on ONNX Runtime the gradient
// of its strided slices needs interior padding) and the ONNX Runtime lowering in both layouts.
func TestConv2DLoweringMatchesNative(t *testing.T) {
	backend := engine.MustNewForTest()
	dtype := testDType(backend)
	tests := []struct {
		n, h, w, cin, cout, k, stride, groups int
	}{
		{2, 7, 6, 3, 5, 3, 1, 1},
		{2, 8, 8, 4, 6, 3, 2, 1},
		{1, 5, 5, 6, 4, 1, 1, 1},
		{2, 6, 6, 6, 4, 1, 2, 1},
		{2, 6, 5, 8, 8, 3, 1, 4},
		{2, 8, 8, 8, 12, 3, 2, 2},
		{1, 9, 9, 2, 3, 5, 1, 1},
		{1, 3, 3, 4, 4, 3, 2, 1},
		{1, 7, 7, 3, 4, 3, 2, 1},
		{2, 9, 8, 4, 6, 5, 2, 2},
		{1, 7, 7, 4, 4, 1, 2, 1},
		{1, 8, 10, 3, 4, 3, 3, 1},
		{1, 11, 12, 3, 4, 7, 2, 1},
	}
	type variant struct {
		lowering Lowering
		layout   Layout
	}
	variants := []variant{{LoweringONNX, NHWC}, {LoweringONNX, NCHW}}
	if isGoBackend(backend) {
		variants = append(variants, variant{LoweringIm2Col, NHWC})
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range tests {
		name := fmt.Sprintf("%dx%dx%dx%d->%d_k%d_s%d_g%d", tc.n, tc.h, tc.w, tc.cin, tc.cout, tc.k, tc.stride, tc.groups)
		t.Run(name, func(t *testing.T) {
			x := randTensor(rng, tc.n, tc.h, tc.w, tc.cin)
			kernel := randTensor(rng, tc.k, tc.k, tc.cin/tc.groups, tc.cout)
			run := func(b compute.Backend, v variant, x, kernel *tensors.Tensor) []*tensors.Tensor {
				exec := MustNewExec(b, func(x, kernel *Node) []*Node {
					out := v.layout.ToNHWC(conv2D(v.layout.FromNHWC(x), kernel, v.layout, tc.stride, tc.groups, v.lowering))
					// A non-uniform loss so that every output element gets a different gradient.
					weights := Sin(IotaFull(x.Graph(), out.Shape()))
					loss := ReduceAllSum(Mul(out, weights))
					grads := Gradient(loss, x, kernel)
					return []*Node{out, grads[0], grads[1]}
				})
				return exec.MustCall(x, kernel)
			}
			native := run(goBackend(backend), variant{LoweringNative, NHWC}, x, kernel)
			for _, v := range variants {
				lowered := run(backend, v, toDType(x, dtype), toDType(kernel, dtype))
				for i, what := range []string{"output", "grad x", "grad kernel"} {
					if rel, ok := closeTo(t, backend, native[i], lowered[i]); !ok {
						t.Errorf("%s: max |native - %s %s| = %g (relative)", what, v.lowering, v.layout, rel)
					}
				}
			}
		})
	}
}

// TestConvBF16 checks the bf16 mixed-precision convolution: float32 in and out, values and gradients within
// bfloat16 rounding of the float32 convolution, on both lowerings. ONNX Runtime has no bfloat16 convolution:
// there it checks that bf16 is refused with a clear error.
func TestConvBF16(t *testing.T) {
	backend := engine.MustNewForTest()
	rng := rand.New(rand.NewPCG(9, 10))
	x := randTensor32(rng, 2, 6, 6, 8)
	if isONNXBackend(backend) {
		store := model.NewStore()
		store.RootScope().SetParam(ParamPrecision, string(PrecisionBF16))
		_, err := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
			return Conv(scope, x).Channels(16).Done()
		}).Call(x)
		if err == nil || !strings.Contains(err.Error(), "bf16 precision is not supported on ONNX Runtime") {
			t.Errorf("bf16 on ONNX Runtime: got error %v, want one saying it is not supported", err)
		}
		return
	}
	for _, lowering := range []Lowering{LoweringIm2Col, LoweringNative} {
		results := map[Precision][]*tensors.Tensor{}
		for _, p := range []Precision{PrecisionF32, PrecisionBF16} {
			store := model.NewStore()
			if err := store.SetRNGStateFromSeed(1); err != nil {
				t.Fatal(err)
			}
			store.RootScope().SetParam(ParamPrecision, string(p))
			exec := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) []*Node {
				out := Conv(scope, x).Channels(16).KernelSize(3).Lowering(lowering).Done()
				w := scope.GetVariable("weight").NodeValue(x.Graph())
				loss := ReduceAllSum(Mul(out, Sin(IotaFull(x.Graph(), out.Shape()))))
				g := Gradient(loss, x, w)
				return []*Node{out, g[0], g[1]}
			})
			results[p] = exec.MustCall(x)
			if dt := results[p][0].DType(); dt != dtypes.Float32 {
				t.Fatalf("%s: output dtype %s, want Float32", p, dt)
			}
		}
		for i, what := range []string{"output", "grad x", "grad w"} {
			a := tensors.MustCopyFlatData[float32](results[PrecisionF32][i])
			b := tensors.MustCopyFlatData[float32](results[PrecisionBF16][i])
			var num, den float64
			for j := range a {
				num += float64((a[j] - b[j]) * (a[j] - b[j]))
				den += float64(a[j] * a[j])
			}
			if rel := math.Sqrt(num / den); rel > 2e-2 || rel == 0 {
				t.Errorf("%s %s: relative L2 difference bf16 vs f32 = %g, want (0, 2e-2]", lowering, what, rel)
			}
		}
	}
}
