package layers

import (
	"fmt"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
)

// BenchmarkGoBackendOps measures what single graph ops cost on the Go backend, per element of the input, at
// shapes of the CIFAR demo's SeqConv layers (batch 16): it is why this package computes sums as matrix products
// (sumRows) and avoids slicing, concatenating and broadcasting activations where it can.
//
//	GOEXPERIMENT=simd go test ./layers -run XXX -bench GoBackendOps
func BenchmarkGoBackendOps(b *testing.B) {
	backend := gobackend.GetBackend()
	ops := []struct {
		name string
		fn   func(x *Node) *Node
	}{
		{"reduce-sum", func(x *Node) *Node { return ReduceSum(x, 0, 1, 2) }},
		{"sum-as-matmul", sumRows},
		{"slice-channels", func(x *Node) *Node { return SliceAxis(x, -1, AxisRange(x.Shape().Dim(-1)/2)) }},
		{"concat-channels", func(x *Node) *Node { return Concatenate([]*Node{x, x}, -1) }},
		{"transpose", func(x *Node) *Node { return TransposeAllAxes(x, 0, 3, 1, 2) }},
		{"mul", func(x *Node) *Node { return Mul(x, x) }},
		{"mul-per-channel", func(x *Node) *Node {
			return Mul(x, Ones(x.Graph(), shapes.Make(x.DType(), 1, 1, 1, x.Shape().Dim(-1))))
		}},
		{"matmul-16-outputs", func(x *Node) *Node { // the kernel [C, 16] as the right operand
			c := x.Shape().Dim(-1)
			return DotGeneral(x, []int{3}, nil, Ones(x.Graph(), shapes.Make(x.DType(), c, 16)), []int{0}, nil)
		}},
		{"matmul-16-outputs-rhs-transposed", func(x *Node) *Node { // the kernel as [16, C], as matmulLastAxis does
			c := x.Shape().Dim(-1)
			return DotGeneral(x, []int{3}, nil, Ones(x.Graph(), shapes.Make(x.DType(), 16, c)), []int{1}, nil)
		}},
	}
	for _, dims := range [][]int{{16, 32, 32, 16}, {16, 32, 32, 112}, {16, 8, 8, 336}} {
		x := tensors.FromShape(shapes.Make(dtypes.Float32, dims...))
		for _, op := range ops {
			b.Run(fmt.Sprintf("%s/%v", op.name, dims), func(b *testing.B) {
				exec := MustNewExec(backend, op.fn)
				exec.MustCall(x)
				b.ResetTimer()
				for range b.N {
					exec.MustCall(x)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(x.Shape().Size()), "ns/elem")
			})
		}
	}
}
