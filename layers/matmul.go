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
	k, co := w.Shape().Dim(0), w.Shape().Dim(1)
	m := x.Shape().Size() / k
	outDims := x.Shape().Clone().Dimensions
	outDims[len(outDims)-1] = co
	// Both operands of every product are matrices: ONNX Runtime runs rank-2 DotGenerals as MatMul (others
	// as the slower Einsum), and reshaping costs nothing on the Go backend.
	x = Reshape(x, m, k)
	var dOut *Node
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		return DotGeneral(dOut, []int{1}, nil, w, []int{1}, nil)
	})
	ws := IdentityWithCustomGradient(w, func(_, _ *Node) *Node {
		if k <= co {
			return DotGeneral(Transpose(x, 0, 1), []int{1}, nil, dOut, []int{0}, nil)
		}
		return Transpose(DotGeneral(Transpose(dOut, 0, 1), []int{1}, nil, x, []int{0}, nil), 0, 1)
	})
	// The kernel goes in as wᵀ [Co, K], both operands contracted on their last axis: for 16 outputs the
	// backend's matmul is then ~1.35x faster at K = 112 (the CIFAR demo's stage-1 width) and about as fast at
	// K = 16 and 336 (BenchmarkGoBackendOps/matmul-16-outputs*).
	out := captureGradient(DotGeneral(xs, []int{1}, nil, Transpose(ws, 0, 1), []int{1}, nil), &dOut)
	return Reshape(out, outDims...)
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

// splitChannels splits x into n pieces of k channels along its channel axis ch (see splitAt).
func splitChannels(x *Node, ch, k int) []*Node {
	c := x.Shape().Dim(ch)
	if k <= 0 || c%k != 0 {
		Panicf("splitChannels: %d channels do not split into groups of %d", c, k)
	}
	cuts := make([]int, 0, c/k+1)
	for off := 0; off <= c; off += k {
		cuts = append(cuts, off)
	}
	return splitAt(x, ch, cuts)
}

// splitAt splits x along its channel axis ch at the increasing offsets cuts (0 first, the width of x last) into
// len(cuts)-1 pieces. Its gradient is one concatenation of the pieces' gradients (zeros for unused pieces)
// rather than GoMLX's default for n slices, which pads each piece's gradient to the full width of x and sums
// the n results (O(n²) work).
func splitAt(x *Node, ch int, cuts []int) []*Node {
	n := len(cuts) - 1
	if n < 1 || cuts[0] != 0 || cuts[n] != x.Shape().Dim(ch) {
		Panicf("splitAt: cuts %v do not split the %d channels of %s", cuts, x.Shape().Dim(ch), x.Shape())
	}
	if n == 1 {
		return []*Node{x}
	}
	if pieces := concatPieces(x, ch, cuts); pieces != nil {
		return pieces
	}
	grads := make([]*Node, n)
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		parts := make([]*Node, n)
		for i, g := range grads {
			if g == nil {
				dims := x.Shape().Clone().Dimensions
				dims[ch] = cuts[i+1] - cuts[i]
				g = Zeros(x.Graph(), shapes.Make(x.DType(), dims...))
			}
			parts[i] = g
		}
		return Concatenate(parts, ch)
	})
	pieces := make([]*Node, n)
	for i := range n {
		pieces[i] = captureGradient(SliceAxis(xs, ch, AxisRange(cuts[i], cuts[i+1])), &grads[i])
	}
	return pieces
}

// concatPieces returns the pieces of x split at cuts (see splitAt) without slicing when x is a concatenation on
// axis ch whose inputs all start and end at cuts: each piece is the input, or the concatenation of the inputs,
// between two cuts. Otherwise it returns nil. A SeqConv layer's outputs are such concatenations of its filters'
// outputs, so the shortcut of the next layer takes its filters' slices as they were computed: on ONNX Runtime
// the slices then stay in its blocked layout, and autodiff adds no slice gradients.
func concatPieces(x *Node, ch int, cuts []int) []*Node {
	if x.Type() != NodeTypeConcatenate {
		return nil
	}
	inputs := x.Inputs()
	ends := make([]int, len(inputs)) // end channel of each input
	end := 0
	for i, in := range inputs {
		if in.Rank() != x.Rank() {
			return nil
		}
		for a := range x.Rank() {
			if a != ch && in.Shape().Dim(a) != x.Shape().Dim(a) {
				return nil // not a concatenation on ch
			}
		}
		end += in.Shape().Dim(ch)
		ends[i] = end
	}
	if end != x.Shape().Dim(ch) {
		return nil
	}
	pieces := make([]*Node, 0, len(cuts)-1)
	first := 0 // first input of the current piece
	for _, c := range cuts[1:] {
		last := first
		for last < len(inputs) && ends[last] < c {
			last++
		}
		if last == len(inputs) || ends[last] != c {
			return nil // a cut inside an input
		}
		pieces = append(pieces, concatAxis(inputs[first:last+1], ch))
		first = last + 1
	}
	return pieces
}
