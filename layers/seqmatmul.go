package layers

import (
	. "github.com/gomlx/gomlx/core/graph"
)

// doneFusedMatMul is the fused implementation of bottleneck SeqConv layers on channels-first images (NCHW,
// LoweringONNX): each sequence piece is a matrix [N, width, H*W] as it is, and filter j's 1x1 convolution is
// one batched matrix product of its kernel rows [k, K] (per image when dropout scales them) with the
// concatenated pieces its view touches [N, K, H*W]. Its gradients are written by hand: per piece, one batched
// product of the readers' kernel rows with their concatenated output gradients; per filter, one batched
// product of its pieces with its output gradient. No operand of these products needs a transposition larger
// than a k-channel output gradient.
func (b *SeqConvBuilder) doneFusedMatMul(plan seqPlan, shortcuts []*Node) (raws, acts []*Node) {
	x, scope := b.x, b.scope
	g := x.Graph()
	if b.computeDType(x.DType()) != x.DType() {
		checkBF16(scope, g, LoweringONNX)
	}
	nImg, h, w, _ := NCHW.dims(x)
	m := h * w
	filters := make([]*seqFilter, plan.n)
	var pieces []*Node // [N, width, H*W]

	// addPiece registers sequence piece i (node p, [N, width, H, W]): it feeds the later filters' products,
	// and its gradient is computed from the output gradients of the filters that read it.
	addPiece := func(i int, p *Node) {
		start, width := plan.piece(i)
		var readers []int
		for j := i; j < plan.n; j++ {
			if _, hi := plan.view(j); hi > start && plan.firstPiece(j) <= i {
				readers = append(readers, j)
			}
		}
		ps := IdentityWithCustomGradient(p, func(_, _ *Node) *Node {
			// dP = Σ_j W_jpᵀ dOut_j: the readers' kernel rows [N, width, R*k] times their output gradients
			// [N, R*k, H*W].
			var dOuts, rows []*Node
			for _, j := range readers {
				f := filters[j]
				if f.dOut == nil {
					continue // the filter does not reach the loss
				}
				lo, _ := plan.view(j)
				block, mask := f.kernelRows(lo, start, width)
				rows = append(rows, perImageRows(Reshape(block, width, b.k), mask, nImg))
				dOuts = append(dOuts, f.dOut)
			}
			if len(dOuts) == 0 {
				return ZerosLike(p)
			}
			dp := DotGeneral(concatAxis(rows, 2), []int{2}, []int{0}, concatAxis(dOuts, 1), []int{1}, []int{0})
			return Reshape(dp, p.Shape().Dimensions...)
		})
		pieces = append(pieces, Reshape(ps, nImg, width, m))
	}
	addPiece(0, x)

	fsScope := scope.In("Filters")
	for j := range plan.n {
		fs := fsScope.In("%d", j)
		lo, hi := plan.view(j)
		viewW := hi - lo
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		f := &seqFilter{mask: dropoutMask(scope, g, x.DType(), nImg, viewW, b.dropRate)}
		filters[j] = f
		f.conv = b.firstConvUnit(fs, nil, sc)
		f.weight = f.conv.conv.weight(g, x.DType(), viewW)

		first := plan.firstPiece(j)
		var blocks, masks []*Node
		for i := first; i <= j; i++ {
			start, width := plan.piece(i)
			block, mask := f.kernelRows(lo, start, width)
			blocks = append(blocks, Reshape(block, width, b.k))
			if mask != nil {
				masks = append(masks, mask)
			}
		}
		var maskRows *Node
		if len(masks) > 0 {
			maskRows = concatAxis(masks, 1) // [N, K]
		}
		out := piecesProduct(concatAxis(pieces[first:j+1], 1), concatAxis(blocks, 0), maskRows, &f.dOut)
		out = Reshape(out, nImg, b.k, h, w)
		f.conv.conv.record(out, viewW)
		r, a := b.finishFilter(fs, f.conv, out, sc)
		raws = append(raws, r)
		acts = append(acts, a)
		if j < plan.n-1 {
			addPiece(j+1, a)
		}
	}
	return raws, acts
}

// perImageRows returns kernel rows [K, k] as the batch [N, K, k] of the left operands of a per-image product:
// scaled by the dropout multipliers mask [N, K], or repeated when mask is nil.
func perImageRows(rows, mask *Node, n int) *Node {
	kk, k := rows.Shape().Dim(0), rows.Shape().Dim(1)
	if mask == nil {
		return BroadcastToDims(ExpandAxes(rows, 0), n, kk, k)
	}
	return Mul(ExpandAxes(rows, 0), Reshape(mask, n, kk, 1))
}

// piecesProduct returns the 1x1 convolution [N, k, M] of v [N, K, M] with kernel [K, k], each image's kernel
// rows scaled by maskRows [N, K] when it is not nil. The output gradient is stored in *dOut; the kernel's
// gradient is written by hand (v's gradient is computed per piece by the caller, so the one autodiff derives
// here is never used).
func piecesProduct(v, kernel, maskRows *Node, dOut **Node) *Node {
	n, kk := v.Shape().Dim(0), v.Shape().Dim(1)
	ks := IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		// Σ_n v_n dOut_nᵀ, masked per image: [N, K, k], the transposition falls on the k-row dOut.
		per := DotGeneral(v, []int{2}, []int{0}, *dOut, []int{2}, []int{0})
		if maskRows != nil {
			per = Mul(per, Reshape(maskRows, n, kk, 1))
		}
		return ReduceSum(per, 0)
	})
	kn := Transpose(perImageRows(ks, maskRows, n), 1, 2) // [N, k, K]
	return captureGradient(DotGeneral(kn, []int{2}, []int{0}, v, []int{1}, []int{0}), dOut)
}
