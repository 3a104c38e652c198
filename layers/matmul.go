package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// matmulLastAxis returns x [..., K] · w [K, Co] = [..., Co], with a hand-written gradient that suits the Go
// backend's matmul kernels, which only read the left operand contracted on its last axis: GoMLX's generic
// DotGeneral gradient makes that backend transpose both large operands for dw and copy dx through an identity
// transpose. Here dx = dOut · wᵀ needs no transpose at all and dw transposes only the smaller of x and dOut.
// Numerically it is the same matrix product.
func matmulLastAxis(x, w *Node) *Node {
	rank := x.Rank()
	k, co := w.Shape().Dim(0), w.Shape().Dim(1)
	m := x.Shape().Size() / k
	var dOut *Node
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		return DotGeneral(dOut, []int{rank - 1}, nil, w, []int{1}, nil)
	})
	ws := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		d := Reshape(dOut, m, co)
		x2 := Reshape(x, m, k)
		if k <= co {
			return DotGeneral(Transpose(x2, 0, 1), []int{1}, nil, d, []int{0}, nil)
		}
		return Transpose(DotGeneral(Transpose(d, 0, 1), []int{1}, nil, x2, []int{0}, nil), 0, 1)
	})
	// The kernel goes in as wᵀ [Co, K], both operands contracted on their last axis: for 16 outputs the
	// backend's matmul is then ~1.35x faster at K = 112 (the CIFAR demo's stage-1 width) and about as fast at
	// K = 16 and 336 (BenchmarkGoBackendOps/matmul-16-outputs*).
	return captureGradient(DotGeneral(xs, []int{rank - 1}, nil, Transpose(ws, 0, 1), []int{1}, nil), &dOut)
}

// captureGradient returns out unchanged; during reverse-mode autodiff it stores out's adjoint in *dst.
//
// It is how this package writes the gradient of a multi-input op by hand: the op's inputs go through
// IdentityWithCustomGradient whose functions ignore the gradient GoMLX derived for them and compute their own
// from *dst instead. Autodiff visits the output before the inputs, so *dst is set by then, and the backend
// drops the unused derived gradients.
func captureGradient(out *Node, dst **Node) *Node {
	return IdentityWithCustomGradient(out, func(_, v *Node) *Node {
		*dst = v
		return v
	})
}

// splitChannels splits x [..., n*k] into n pieces of k channels along the last axis. Its gradient is one
// concatenation of the pieces' gradients (zeros for unused pieces) rather than GoMLX's default for n slices,
// which pads each piece's gradient to the full width of x and sums the n results (O(n²) work).
func splitChannels(x *Node, k int) []*Node {
	c := x.Shape().Dim(-1)
	if k <= 0 || c%k != 0 {
		Panicf("splitChannels: %d channels do not split into groups of %d", c, k)
	}
	n := c / k
	grads := make([]*Node, n)
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		parts := make([]*Node, n)
		for i, g := range grads {
			if g == nil {
				g = Zeros(x.Graph(), shapes.Make(x.DType(), append(x.Shape().Clone().Dimensions[:x.Rank()-1], k)...))
			}
			parts[i] = g
		}
		return Concatenate(parts, -1)
	})
	pieces := make([]*Node, n)
	for i := range n {
		pieces[i] = captureGradient(SliceAxis(xs, -1, AxisRange(i*k, (i+1)*k)), &grads[i])
	}
	return pieces
}
