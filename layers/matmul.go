package layers

import (
	. "github.com/gomlx/gomlx/core/graph"
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
	return captureGradient(DotGeneral(xs, []int{rank - 1}, nil, ws, []int{0}, nil), &dOut)
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
