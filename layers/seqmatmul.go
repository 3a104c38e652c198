package layers

import (
	"slices"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// matmulFilter is one filter's first (1x1) convolution as doneFusedMatMul builds it.
type matmulFilter struct {
	start int   // sequence channel of the first piece the view touches
	rows  *Node // the kernel rows, per image: [N, K, k] for the K channels of the pieces the view touches
	dOut  *Node // gradient of the convolution's output [N, k, H*W], captured during autodiff
}

// doneFusedMatMul is the fused implementation of bottleneck SeqConv layers on channels-first images (NCHW,
// LoweringONNX). The sequence is kept as pieces, each a matrix [N, width, H*W]: x split where the filters'
// views start inside it (one copy of x, so that no view reads channels it does not use), then the filters'
// outputs. Filter j's 1x1 convolution is one batched matrix product of its kernel rows [k, K] (per image when
// dropout scales them; zero rows for the channels of a first output piece only partly in the view) with the
// concatenated pieces its view touches [N, K, H*W]. Its gradients are written by hand: per piece, one batched
// product of the readers' kernel rows with their concatenated output gradients; per filter, one batched product
// of its pieces with its output gradient. No operand of these products needs a transposition larger than a
// k-channel output gradient.
func (b *SeqConvBuilder) doneFusedMatMul(plan seqPlan, shortcuts []*Node) (raws, acts []*Node) {
	x, scope := b.x, b.scope
	g := x.Graph()
	if b.computeDType(x.DType()) != x.DType() {
		checkBF16(scope, g, LoweringONNX)
	}
	nImg, h, w, _ := NCHW.dims(x)
	m := h * w
	filters := make([]*matmulFilter, plan.n)
	var pieces []*Node // [N, width, H*W]
	var starts []int   // sequence channel of each piece's first channel
	views := make([][2]int, plan.n)
	for j := range views {
		views[j][0], views[j][1] = plan.view(j)
	}

	// addPiece registers the sequence channels [start, start+width) (node p, [N, width, H, W]): they feed the
	// later filters' products, and their gradient is computed from the output gradients of the filters that
	// read them.
	addPiece := func(p *Node, start int) {
		width := p.Shape().Dim(1)
		var readers []int
		for j, v := range views {
			if v[0] < start+width && v[1] > start {
				readers = append(readers, j)
			}
		}
		ps := IdentityWithCustomGradient(p, func(_, _ *Node) *Node {
			// dP = Σ_j W_jpᵀ dOut_j: the readers' kernel rows [N, width, R*k] times their output gradients
			// [N, R*k, H*W].
			var dOuts, rows []*Node
			for _, j := range readers {
				f := filters[j]
				if f == nil || f.dOut == nil {
					continue // the filter does not reach the loss
				}
				rows = append(rows, SliceAxis(f.rows, 1, AxisRange(start-f.start, start-f.start+width)))
				dOuts = append(dOuts, f.dOut)
			}
			if len(dOuts) == 0 {
				return ZerosLike(p)
			}
			dp := DotGeneral(concatAxis(rows, 2), []int{2}, []int{0}, concatAxis(dOuts, 1), []int{1}, []int{0})
			return Reshape(dp, p.Shape().Dimensions...)
		})
		pieces = append(pieces, Reshape(ps, nImg, width, m))
		starts = append(starts, start)
	}
	cuts := plan.inputCuts()
	for i, p := range splitAt(x, 1, cuts) {
		addPiece(p, cuts[i])
	}

	fsScope := scope.In("Filters")
	for j, v := range views {
		fs := fsScope.In("%d", j)
		lo, hi := v[0], v[1]
		viewW := hi - lo
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		mask := dropoutMask(scope, g, x.DType(), nImg, viewW, b.dropRate)
		unit := b.firstConvUnit(fs, nil, sc)
		weight := Reshape(unit.conv.weight(g, x.DType(), viewW), viewW, b.k)
		first := len(starts) - 1 // the last piece starting at or before lo
		for starts[first] > lo {
			first--
		}
		f := &matmulFilter{start: starts[first]}
		// The first piece may be partly outside the view: zero kernel rows (and multipliers) for those channels.
		weight = viewPart(weight, 0, lo, f.start, hi-f.start)
		if mask != nil {
			mask = viewPart(mask, 1, lo, f.start, hi-f.start)
		}
		filters[j] = f
		out := piecesProduct(pieces[first:], weight, mask, f)
		out = Reshape(out, nImg, b.k, h, w)
		unit.conv.record(out, viewW)
		r, a := b.finishFilter(fs, unit, out, sc)
		raws = append(raws, r)
		acts = append(acts, a)
		if j < plan.n-1 {
			addPiece(a, hi)
		}
	}
	return raws, acts
}

// inputCuts returns where x is split so that no view starts inside a piece of it: 0, the views' starts inside
// x, cin.
func (p seqPlan) inputCuts() []int {
	cuts := []int{0, p.cin}
	for j := range p.n {
		if lo, _ := p.view(j); lo > 0 && lo < p.cin {
			cuts = append(cuts, lo)
		}
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

// doneFusedInference is the fused inference graph on ONNX Runtime (channels first, no dropout, no gradients
// needed), for plain and bottleneck filters. Filter j's first convolution is split by linearity into a sum of
// convolutions: of the whole input x with the rows of its weight that read x (zero rows for the channels of x
// outside the view), and of the outputs E_s..E_{j-1} its view touches, taken in runs that end at multiples of
// seqChunk, so that each full run is concatenated once per layer and reused by the later filters. Nothing copies
// x, the copies of the outputs are a few per filter instead of its whole view, and every tensor stays in ONNX
// Runtime's blocked layout (NCHWc), whose Conv adds each part to the next in the same pass (its fused Sum
// input); batch norm and ReLU follow in that layout (see BatchNorm). The multiply-adds on the zero rows cost
// less than the copies and layout conversions they save (BENCHMARKS.md has the measurements).
func (b *SeqConvBuilder) doneFusedInference(plan seqPlan, shortcuts []*Node) (raws, acts []*Node) {
	x, scope := b.x, b.scope
	g := x.Graph()
	if b.computeDType(x.DType()) != x.DType() {
		checkBF16(scope, g, LoweringONNX)
	}
	conv := func(in, rows *Node) *Node { return conv2D(in, rows, NCHW, 1, 1, LoweringONNX) }
	var outs []*Node          // E_0, E_1, ...
	chunks := map[int]*Node{} // the concatenations of seqChunk outputs, by their first
	fsScope := scope.In("Filters")
	for j := range plan.n {
		fs := fsScope.In("%d", j)
		lo, hi := plan.view(j)
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		unit := b.firstConvUnit(fs, nil, sc)
		weight := unit.conv.weight(g, x.DType(), hi-lo)
		var parts []*Node
		if lo < plan.cin {
			parts = append(parts, conv(x, viewRows(weight, lo, 0, plan.cin)))
		}
		if hi > plan.cin {
			for s := max(plan.firstPiece(j), 1) - 1; s < j; {
				e := min((s/seqChunk+1)*seqChunk, j)
				var es *Node
				if e-s == seqChunk {
					if chunks[s] == nil {
						chunks[s] = concatAxis(outs[s:e], 1)
					}
					es = chunks[s]
				} else {
					es = concatAxis(outs[s:e], 1)
				}
				start, _ := plan.piece(s + 1)
				parts = append(parts, conv(es, viewRows(weight, lo, start, (e-s)*plan.k)))
				s = e
			}
		}
		out := parts[0]
		for _, p := range parts[1:] {
			out = Add(p, out)
		}
		unit.conv.record(out, hi-lo)
		r, a := b.finishFilter(fs, unit, out, sc)
		raws = append(raws, r)
		acts = append(acts, a)
		outs = append(outs, a)
	}
	return raws, acts
}

// seqChunk is how many filter outputs doneFusedInference concatenates into one piece. Of the sizes tried on the
// CIFAR demo model at batch 64, 1 (no concatenation) to 4 ran alike and 8 slower; one concatenation of all the
// outputs a filter reads, as before, was slower still.
const seqChunk = 4

// viewRows returns the rows of a view's weight [q, q, view width, k] (the view starting at sequence channel lo)
// that read the sequence channels [start, start+width): [q, q, width, k], zeros for the channels outside the
// view.
func viewRows(weight *Node, lo, start, width int) *Node { return viewPart(weight, 2, lo, start, width) }

// viewPart returns the part of v, whose axis holds the channels of a view starting at sequence channel lo, for
// the sequence channels [start, start+width), with zeros for the channels outside the view.
func viewPart(v *Node, axis, lo, start, width int) *Node {
	viewW := v.Shape().Dim(axis)
	a := max(lo-start, 0)           // first channel inside the view
	e := min(lo+viewW-start, width) // end of the channels inside the view
	if a >= e {
		Panicf("SeqConv: channels [%d,%d) are outside the view [%d,%d)", start, start+width, lo, lo+viewW)
	}
	part := SliceAxis(v, axis, AxisRange(start+a-lo, start+e-lo))
	if a == 0 && e == width {
		return part
	}
	zeros := func(c int) *Node {
		dims := part.Shape().Clone().Dimensions
		dims[axis] = c
		return Zeros(part.Graph(), shapes.Make(part.DType(), dims...))
	}
	parts := []*Node{}
	if a > 0 {
		parts = append(parts, zeros(a))
	}
	parts = append(parts, part)
	if e < width {
		parts = append(parts, zeros(width-e))
	}
	return Concatenate(parts, axis)
}

// perImageKernel returns kernel rows w [K, k] (or their transpose [k, K] when transposed) as the batch [N, ...] of the
// left operands of a per-image product: scaled by the dropout multipliers mask [N, K], or repeated when mask is
// nil.
func perImageKernel(w, mask *Node, n int, transposed bool) *Node {
	if transposed {
		w = Transpose(w, 0, 1)
	}
	dims := append([]int{n}, w.Shape().Dimensions...)
	if mask == nil {
		return BroadcastToDims(ExpandAxes(w, 0), dims...)
	}
	kk := mask.Shape().Dim(1)
	if transposed {
		return Mul(ExpandAxes(w, 0), Reshape(mask, n, 1, kk))
	}
	return Mul(ExpandAxes(w, 0), Reshape(mask, n, kk, 1))
}

// piecesProduct returns the 1x1 convolution [N, k, M] of the concatenation v [N, K, M] of pieces with kernel
// [K, k], each image's kernel rows scaled by mask [N, K] when it is not nil, and sets f.rows to the per-image
// kernel rows [N, K, k] for the pieces' gradients. The output gradient is stored in f.dOut; the kernel's gradient
// is written by hand (v's gradient is computed per piece by the caller, so the one autodiff derives here is never
// used). The kernel is transposed before it is repeated or scaled per image, not after.
//
// The kernel's gradient concatenates the pieces again in the backward pass rather than keeping v from the forward
// pass: one more copy per filter, but no filter's view lives from its forward to its backward product. On ONNX
// Runtime the CIFAR demo's training step at batch 64 then peaks at 1.9 instead of 3.5 GiB, in the same time.
func piecesProduct(pieces []*Node, kernel, mask *Node, f *matmulFilter) *Node {
	v := concatAxis(pieces, 1)
	n, kk := v.Shape().Dim(0), v.Shape().Dim(1)
	ks := IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		// Σ_n v_n dOut_nᵀ, masked per image: [N, K, k], the transposition falls on the k-row dOut.
		per := DotGeneral(concatAxis(pieces, 1), []int{2}, []int{0}, f.dOut, []int{2}, []int{0})
		if mask != nil {
			per = Mul(per, Reshape(mask, n, kk, 1))
		}
		return ReduceSum(per, 0)
	})
	f.rows = perImageKernel(ks, mask, n, false)
	return captureGradient(DotGeneral(perImageKernel(ks, mask, n, true), []int{2}, []int{0}, v, []int{1}, []int{0}),
		&f.dOut)
}
