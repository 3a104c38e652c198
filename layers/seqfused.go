package layers

import (
	"fmt"
	"slices"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// SeqConvImpl selects how a SeqConv layer computes its filters' first convolutions (the ones that read the
// aggregated view). Both compute the same function with the same variables; they differ in the graph.
type SeqConvImpl int

const (
	// SeqConvFused (the default) never materialises the views. The sequence [x, E_0, E_1, ...] is kept as
	// pieces, each converted once to its convolution patches, and filter j's first conv is one matrix product
	// of the concatenated patches of the pieces its view touches with a kernel assembled from the filter's
	// weight (zero rows for channels outside the window; dropout folded into per-image kernels). Its gradients
	// are written per piece: one matrix product of the concatenated output gradients of the filters that read
	// it. On backends with a native convolution (XLA) the input's contribution to all filters is one
	// convolution (grouped over per-filter dropped-out copies of the input when training with dropout), and
	// only the new groups' contributions are computed filter by filter, zero-padded to one shape per layer so
	// that XLA compiles and autotunes it once; autodiff derives the gradients there. On ONNX Runtime (channels
	// first, LoweringONNX) a bottleneck filter's 1x1 convolution is one batched matrix product of the
	// concatenated pieces in training, with the gradients written per piece as on the Go backend (see
	// doneFusedMatMul), and plain filters there use the direct formulation; inference graphs, of both filter
	// kinds, sum the convolutions of the whole input and of runs of the outputs (see doneFusedInference).
	SeqConvFused SeqConvImpl = iota
	// SeqConvDirect is the straightforward formulation of the paper's equations: for each filter, slice the
	// view from the growing sequence, apply dropout to it, convolve it.
	SeqConvDirect
)

// String implements fmt.Stringer.
func (i SeqConvImpl) String() string {
	switch i {
	case SeqConvFused:
		return "fused"
	case SeqConvDirect:
		return "direct"
	}
	return fmt.Sprintf("SeqConvImpl(%d)", int(i))
}

// ParseSeqConvImpl converts a name ("fused", "direct") to a SeqConvImpl.
func ParseSeqConvImpl(name string) (SeqConvImpl, error) {
	return parseEnum("SeqConv implementation", name, SeqConvFused, SeqConvDirect)
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseSeqConvImpl, so that ParamSeqConvImpl may hold
// a name (see scopeParam).
func (i *SeqConvImpl) UnmarshalText(text []byte) (err error) {
	*i, err = ParseSeqConvImpl(string(text))
	return err
}

// ParamSeqConvImpl is the scope hyperparameter (a SeqConvImpl or its name) that selects the implementation
// of every SeqConv layer built in that scope. It defaults to SeqConvFused.
const ParamSeqConvImpl = "seqconv_impl"

func seqConvImplFromScope(scope *model.Scope) SeqConvImpl {
	return scopeParam(scope, ParamSeqConvImpl, SeqConvFused)
}

// seqFilter is one filter's first convolution as the fused implementation builds it.
type seqFilter struct {
	conv   *ConvUnitBuilder // the conv unit whose conv reads the view
	weight *Node            // its weight [q, q, view width, k]
	mask   *Node            // dropout multipliers per image and view channel [N, view width], or nil
	dOut   *Node            // gradient of the first conv's output, captured during autodiff
	dPatch *Node            // dOut's q x q patches (built once, on first use by a piece's gradient)
	rows   map[int][2]*Node // kernelRows results by piece start, shared by the forward and backward passes
}

// kernelRows returns the rows of f's weight (view offset lo) that read piece channels [start, start+width):
// [q, q, width, k], zeros for the piece channels outside the view. The matching dropout multipliers
// [N, width] (zeros outside the view) are returned too when f has a mask. Each piece's rows are built once.
func (f *seqFilter) kernelRows(lo, start, width int) (block, mask *Node) {
	if r, ok := f.rows[start]; ok {
		return r[0], r[1]
	}
	defer func() {
		if f.rows == nil {
			f.rows = map[int][2]*Node{}
		}
		f.rows[start] = [2]*Node{block, mask}
	}()
	block = viewRows(f.weight, lo, start, width)
	if f.mask != nil {
		mask = viewPart(f.mask, 1, lo, start, width)
	}
	return block, mask
}

// dropoutMask draws filter j's Dropout2d multipliers [N, c] exactly as Dropout2d does for a view of c
// channels (same RNG draw, so both implementations drop the same channels); nil when dropout is off.
func dropoutMask(scope *model.Scope, g *Graph, dtype dtypes.DType, n, c int, p float64) *Node {
	m := channelDropMask(scope, g, shapes.Make(dtype, n, 1, 1, c), p)
	if m == nil {
		return nil
	}
	return Reshape(m, n, c)
}

// firstConvUnit returns filter j's conv unit that reads the view (the bottleneck's 1x1 unit, or the plain
// filter's 3x3 unit with its junction and shortcut), not yet built. view is its input (nil for the fused
// implementation, which only uses the unit's weight, record and BN/ReLU).
func (b *SeqConvBuilder) firstConvUnit(fs *model.Scope, view, shortcut *Node) *ConvUnitBuilder {
	if b.bottleneck {
		return ConvUnit(fs.In("BottleneckLayer"), view).Channels(b.k).KernelSize(1)
	}
	u := ConvUnit(fs, view).Channels(b.k).KernelSize(3)
	if b.junction {
		u.Junction(b.weightScale)
	}
	if shortcut != nil {
		u.Shortcut(shortcut)
	}
	return u
}

// finishFilter turns filter j's first-conv output into the filter's raw and activated outputs.
func (b *SeqConvBuilder) finishFilter(fs *model.Scope, unit *ConvUnitBuilder, first, shortcut *Node) (raw, act *Node) {
	raw, act = unit.finish(first)
	if !b.bottleneck {
		return raw, act
	}
	last := ConvUnit(fs.In("TransformationLayer"), act).Channels(b.k).KernelSize(3).Groups(b.subgroups)
	if b.junction {
		last.Junction(b.weightScale)
	}
	if shortcut != nil {
		last.Shortcut(shortcut)
	}
	return last.Done()
}

// computeDType is the dtype the first convs compute in (bfloat16 under mixed precision).
func (b *SeqConvBuilder) computeDType(dt dtypes.DType) dtypes.DType {
	if precisionFromScope(b.scope) == PrecisionBF16 && dt == dtypes.Float32 {
		return dtypes.BFloat16
	}
	return dt
}

// doneFusedGathered is the fused implementation on backends without a fast native convolution (the Go
// backend): patches per piece, one matrix product per filter, hand-written gradients. See SeqConvFused.
func (b *SeqConvBuilder) doneFusedGathered(plan seqPlan, shortcuts []*Node) (raws, acts []*Node) {
	x, scope := b.x, b.scope
	g := x.Graph()
	q := 3
	if b.bottleneck {
		q = 1
	}
	pad := (q - 1) / 2
	dt := x.DType()
	cdt := b.computeDType(dt)
	nImg, h, w := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2)
	filters := make([]*seqFilter, plan.n)
	var feats []*Node // each piece's patches [N, H, W, q*q*width], in the compute dtype

	// addPiece registers sequence piece i (node p): its patches feed the later filters' products, and its
	// gradient is computed from the output gradients of the filters that read it.
	addPiece := func(i int, p *Node) {
		start, width := plan.piece(i)
		var readers []int
		for j := i; j < plan.n; j++ {
			if _, hi := plan.view(j); hi > start && plan.firstPiece(j) <= i {
				readers = append(readers, j)
			}
		}
		ps := IdentityWithCustomGradient(p, func(_, _ *Node) *Node {
			// dP = Σ_j conv(dOut_j, flip(W_jp)ᵀ): the output gradients' patches, concatenated, times the
			// readers' flipped kernels stacked (per image when dropout scaled the kernels).
			var dPatches, flipped, masks []*Node
			for _, j := range readers {
				f := filters[j]
				if f.dOut == nil {
					continue // the filter does not reach the loss
				}
				if f.dPatch == nil {
					f.dPatch = f.dOut
					if q > 1 {
						f.dPatch = im2col(f.dOut, q, q, 1, pad, pad)
					}
				}
				lo, _ := plan.view(j)
				block, mask := f.kernelRows(lo, start, width)
				dPatches = append(dPatches, f.dPatch)
				// The flipped kernel, transposed: [width, q*q*k] (matmuls are fastest with both operands
				// contracted on their last axis).
				flipped = append(flipped, Reshape(TransposeAllAxes(Reverse(ConvertDType(block, cdt), 0, 1), 2, 0, 1, 3),
					width, q*q*b.k))
				if mask != nil {
					masks = append(masks, BroadcastToDims(Reshape(ConvertDType(mask, cdt), nImg, width, 1),
						nImg, width, q*q*b.k))
				}
			}
			if len(dPatches) == 0 {
				return ZerosLike(p)
			}
			d := concat(dPatches)
			kd := d.Shape().Dim(-1)
			bmat := Concatenate(flipped, 1) // [width, kd]
			var dp *Node
			if len(masks) > 0 {
				// Each image's flipped kernels, scaled by its dropout multipliers: [N, width, kd].
				bPerImage := Mul(ExpandAxes(bmat, 0), Concatenate(masks, 2))
				dp = DotGeneral(Reshape(d, nImg, h*w, kd), []int{2}, []int{0}, bPerImage, []int{2}, []int{0})
			} else {
				dp = DotGeneral(Reshape(d, nImg*h*w, kd), []int{1}, nil, bmat, []int{1}, nil)
			}
			return ConvertDType(Reshape(dp, nImg, h, w, width), p.DType())
		})
		feat := ConvertDType(ps, cdt)
		if q > 1 {
			feat = im2col(feat, q, q, 1, pad, pad)
		}
		feats = append(feats, feat)
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
		f := &seqFilter{mask: dropoutMask(scope, g, dt, nImg, viewW, b.dropRate)}
		filters[j] = f
		f.conv = b.firstConvUnit(fs, nil, sc)
		f.weight = f.conv.conv.weight(g, dt, viewW)

		// The view's patches and the kernel rows (and dropout multipliers) that read them, piece by piece.
		first := plan.firstPiece(j)
		var blocks, masks []*Node
		for i := first; i <= j; i++ {
			start, width := plan.piece(i)
			block, mask := f.kernelRows(lo, start, width)
			blocks = append(blocks, Reshape(block, q*q*width, b.k))
			if mask != nil {
				masks = append(masks, Reshape(BroadcastToDims(Reshape(mask, nImg, 1, width), nImg, q*q, width),
					nImg, q*q*width))
			}
		}
		patches := concat(feats[first : j+1])
		kernel := Concatenate(blocks, 0) // [K, k]
		var maskRows *Node
		if len(masks) > 0 {
			maskRows = ConvertDType(Concatenate(masks, 1), cdt) // [N, K]
		}
		out := gatheredProduct(patches, kernel, maskRows, cdt, &f.dOut)
		out = ConvertDType(out, dt)
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

// gatheredProduct returns patches [N, H, W, K] · kernel [K, k] as [N, H, W, k], with each image's kernel rows
// scaled by maskRows [N, K] when it is not nil, in dtype cdt. The output gradient is stored in *dOut; the
// kernel's gradient is written by hand (the patches' gradient is computed per piece by the caller, so the one
// autodiff derives here is never used).
func gatheredProduct(patches, kernel, maskRows *Node, cdt dtypes.DType, dOut **Node) *Node {
	nImg, h, w, kk := patches.Shape().Dim(0), patches.Shape().Dim(1), patches.Shape().Dim(2), patches.Shape().Dim(3)
	k := kernel.Shape().Dim(1)
	ks := IdentityWithCustomGradient(kernel, func(_, _ *Node) *Node {
		d := *dOut
		var dk *Node // [k, K]
		if maskRows != nil {
			dT := Transpose(Reshape(d, nImg, h*w, k), 1, 2) // [N, k, HW]
			per := DotGeneral(dT, []int{2}, []int{0}, Reshape(patches, nImg, h*w, kk), []int{1}, []int{0})
			dk = ReduceSum(Mul(per, ExpandAxes(maskRows, 1)), 0)
		} else {
			dT := Transpose(Reshape(d, nImg*h*w, k), 0, 1) // [k, NHW]
			dk = DotGeneral(dT, []int{1}, nil, Reshape(patches, nImg*h*w, kk), []int{0}, nil)
		}
		return ConvertDType(Transpose(dk, 0, 1), kernel.DType())
	})
	// The kernel goes in transposed, [k, K], so that both operands are contracted on their last axis (see
	// matmulLastAxis).
	kc := Transpose(ConvertDType(ks, cdt), 0, 1)
	var out *Node
	if maskRows != nil {
		kn := Mul(ExpandAxes(kc, 0), ExpandAxes(maskRows, 1)) // [N, k, K]
		out = DotGeneral(Reshape(patches, nImg, h*w, kk), []int{2}, []int{0}, kn, []int{2}, []int{0})
	} else {
		out = DotGeneral(Reshape(patches, nImg*h*w, kk), []int{1}, nil, kc, []int{1}, nil)
	}
	return captureGradient(Reshape(out, nImg, h, w, k), dOut)
}

// doneFusedNative is the fused implementation on backends with a native convolution (XLA): the input's
// contribution to every filter that reads it is one convolution (a grouped one over per-filter dropped-out
// copies of the input in training with dropout), and filter j adds the convolution of the new groups in its
// view. Autodiff derives the gradients.
func (b *SeqConvBuilder) doneFusedNative(plan seqPlan, shortcuts []*Node, lowering Lowering) (raws, acts []*Node) {
	x, scope := b.x, b.scope
	g := x.Graph()
	dt := x.DType()
	cdt := b.computeDType(dt)
	nImg := x.Shape().Dim(0)
	fsScope := scope.In("Filters")

	// All filters' first-conv weights and dropout masks, in filter order.
	filters := make([]*seqFilter, plan.n)
	scopes := make([]*model.Scope, plan.n)
	for j := range plan.n {
		lo, hi := plan.view(j)
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		scopes[j] = fsScope.In("%d", j)
		f := &seqFilter{mask: dropoutMask(scope, g, dt, nImg, hi-lo, b.dropRate)}
		f.conv = b.firstConvUnit(scopes[j], nil, sc)
		f.weight = f.conv.conv.weight(g, dt, hi-lo)
		filters[j] = f
	}

	// The input's contribution: one convolution with the x rows of every filter reading x.
	var xReaders []int
	for j := range plan.n {
		if plan.firstPiece(j) == 0 {
			xReaders = append(xReaders, j)
		}
	}
	var blocks, xMasks []*Node
	for _, j := range xReaders {
		lo, _ := plan.view(j)
		block, mask := filters[j].kernelRows(lo, 0, plan.cin)
		blocks = append(blocks, block)
		if mask != nil {
			xMasks = append(xMasks, mask)
		}
	}
	xKernel := ConvertDType(Concatenate(blocks, 3), cdt) // [q, q, cin, len(xReaders)*k]
	xc := ConvertDType(x, cdt)
	groups := 1
	if len(xMasks) > 0 {
		// Each filter sees its own dropped-out copy of x: stack the copies on the channel axis and convolve
		// them as len(xReaders) groups.
		copies := make([]*Node, len(xMasks))
		for i, m := range xMasks {
			copies[i] = Mul(xc, Reshape(ConvertDType(m, cdt), nImg, 1, 1, plan.cin))
		}
		xc, groups = Concatenate(copies, -1), len(xMasks)
	}
	xContrib := Conv2D(xc, xKernel, 1, groups, lowering)

	// The new groups' convolutions all get the width of the widest (zero channels and kernel rows in front),
	// so that XLA compiles and autotunes one convolution shape per layer instead of one per filter.
	eWidth := 0
	for j := 1; j < plan.n; j++ {
		eWidth = max(eWidth, (j-max(plan.firstPiece(j), 1)+1)*b.k)
	}
	var newActs []*Node
	for j := range plan.n {
		fs := scopes[j]
		f := filters[j]
		lo, hi := plan.view(j)
		var parts []*Node
		if pos := slices.Index(xReaders, j); pos >= 0 {
			parts = append(parts, SliceAxis(xContrib, -1, AxisRange(pos*b.k, (pos+1)*b.k)))
		}
		if j > 0 {
			// The new groups in the view: pieces max(first, 1)..j, i.e. outputs E_{first-1}..E_{j-1}.
			first := max(plan.firstPiece(j), 1)
			var ins, eBlocks []*Node
			for i := first; i <= j; i++ {
				start, width := plan.piece(i)
				block, mask := f.kernelRows(lo, start, width)
				in := ConvertDType(newActs[i-1], cdt)
				if mask != nil {
					in = Mul(in, Reshape(ConvertDType(mask, cdt), nImg, 1, 1, width))
				}
				ins = append(ins, in)
				eBlocks = append(eBlocks, block)
			}
			if pad := eWidth - (j-first+1)*b.k; pad > 0 {
				ins = append([]*Node{Zeros(g, shapes.Make(cdt, nImg, x.Shape().Dim(1), x.Shape().Dim(2), pad))}, ins...)
				eBlocks = append([]*Node{Zeros(g, shapes.Make(dt, eBlocks[0].Shape().Dim(0), eBlocks[0].Shape().Dim(1),
					pad, b.k))}, eBlocks...)
			}
			parts = append(parts, Conv2D(concat(ins), ConvertDType(Concatenate(eBlocks, 2), cdt), 1, 1, lowering))
		}
		out := parts[0]
		if len(parts) > 1 {
			out = Add(parts[0], parts[1])
		}
		out = ConvertDType(out, dt)
		f.conv.conv.record(out, hi-lo)
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		r, a := b.finishFilter(fs, f.conv, out, sc)
		raws = append(raws, r)
		acts = append(acts, a)
		newActs = append(newActs, a)
	}
	return raws, acts
}
