package layers

import (
	"fmt"
	"slices"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// ConvUnitBuilder builds the authors' pre-activation "conv unit", see ConvUnit.
type ConvUnitBuilder struct {
	conv     *ConvBuilder
	scope    *model.Scope
	shortcut *Node
}

// ConvUnit starts building a conv unit on x [N,H,W,C]: a bias-free conv (scope "LinearLayer"), plus an optional
// shortcut added to the raw conv output, then BatchNorm (scope "BatchNormalizationLayer") and ReLU.
// Done returns both the raw output (conv + shortcut, before BN: the residual stream) and the activated
// output ReLU(BN(raw)).
func ConvUnit(scope *model.Scope, x *Node) *ConvUnitBuilder {
	return &ConvUnitBuilder{conv: Conv(scope.In("LinearLayer"), x), scope: scope}
}

// Channels sets the number of output channels (required).
func (u *ConvUnitBuilder) Channels(n int) *ConvUnitBuilder { u.conv.Channels(n); return u }

// KernelSize sets the square kernel size (default 3).
func (u *ConvUnitBuilder) KernelSize(k int) *ConvUnitBuilder { u.conv.KernelSize(k); return u }

// Stride sets the conv stride (default 1).
func (u *ConvUnitBuilder) Stride(s int) *ConvUnitBuilder { u.conv.Stride(s); return u }

// Groups sets the conv channel groups (default 1).
func (u *ConvUnitBuilder) Groups(g int) *ConvUnitBuilder { u.conv.Groups(g); return u }

// Junction makes the conv a residual junction conv (see ConvBuilder.Junction; 0 zero-initialises it).
func (u *ConvUnitBuilder) Junction(weightScale float64) *ConvUnitBuilder {
	u.conv.Junction(weightScale)
	return u
}

// Shortcut adds s (same shape as the conv output) to the raw conv output before BN.
func (u *ConvUnitBuilder) Shortcut(s *Node) *ConvUnitBuilder { u.shortcut = s; return u }

// Done returns the raw and the activated outputs.
func (u *ConvUnitBuilder) Done() (raw, act *Node) {
	return u.finish(u.conv.Done())
}

// finish adds the shortcut (if any) to the conv output raw and applies BN and ReLU.
func (u *ConvUnitBuilder) finish(raw *Node) (*Node, *Node) {
	if u.shortcut != nil {
		if !u.shortcut.Shape().Equal(raw.Shape()) {
			Panicf("layers.ConvUnit(%s): shortcut shape %s differs from the conv output %s",
				u.scope.Scope(), u.shortcut.Shape(), raw.Shape())
		}
		raw = Add(raw, u.shortcut)
	}
	return raw, ReLU(u.scope, BatchNorm(u.scope.In("BatchNormalizationLayer"), raw).Done())
}

// SeqConvBuilder builds a Sequentially Aggregated Convolution layer, see SeqConv.
type SeqConvBuilder struct {
	scope        *model.Scope
	x, shortcut  *Node
	k, channels  int
	dense        bool // dense aggregation (Eq. 2); otherwise windowed (Eq. 3)
	windowGroups int  // g', the window in groups of k channels; 0: the authors' default (the input width)
	bottleneck   bool
	subgroups    int
	junction     bool
	weightScale  float64
	dropRate     float64
	impl         SeqConvImpl
	implSet      bool
}

// SeqConv starts building a SeqConv layer on the activated features x [N,H,W,Cin]. The layer has
// n = Channels/Granularity filters of k = Granularity output channels each. Filter j reads a view of the
// sequence [x, E_0, ..., E_{j-1}] (its predecessors' activated outputs) and produces E_j:
//
//   - windowed aggregation (the default, Eq. 3): the view is the last W channels of the sequence, a window
//     sliding over the channel axis; W defaults to Cin (the authors' layer) and Window(g) sets it to g groups;
//   - dense aggregation (Dense, Eq. 2): the view is the whole sequence, Cin + j*k channels.
//
// A filter is either plain (one 3x3 conv unit view -> k) or a bottleneck (Bottleneck(true): a 1x1 conv unit
// view -> k, scope "BottleneckLayer", then a 3x3 conv unit k -> k with Subgroups groups, scope
// "TransformationLayer"). Filter j's scope is "Filters/<j>". With a Shortcut S (Channels wide, a raw stream),
// filter j adds S[..., j*k:(j+1)*k] to its last conv's raw output before BN. DropRate applies Dropout2d to the
// view before each filter in training (a fresh mask per filter; the undropped view slides on).
//
// Done returns the concatenated raw outputs and the concatenated activated outputs (Channels wide each);
// x itself is not part of the output.
func SeqConv(scope *model.Scope, x *Node) *SeqConvBuilder {
	return &SeqConvBuilder{scope: scope, x: x, subgroups: 1}
}

// Granularity sets k, the width of each filter's output group (required).
func (b *SeqConvBuilder) Granularity(k int) *SeqConvBuilder { b.k = k; return b }

// Channels sets the layer's output width; it must be a multiple of the granularity (required).
func (b *SeqConvBuilder) Channels(n int) *SeqConvBuilder { b.channels = n; return b }

// Dense selects dense aggregation: filter j sees the input and all earlier outputs (Eq. 2).
func (b *SeqConvBuilder) Dense() *SeqConvBuilder { b.dense = true; return b }

// Window selects windowed aggregation over the g' most recent groups of k channels (Eq. 3): filter j sees the
// last g'*k channels of [x, E_0..E_{j-1}] (fewer while the sequence is shorter). Window(0) restores the
// authors' default, a window as wide as the input.
func (b *SeqConvBuilder) Window(groups int) *SeqConvBuilder {
	if groups < 0 {
		Panicf("layers.SeqConv(%s): window must be >= 0 groups, got %d", b.scope.Scope(), groups)
	}
	b.dense, b.windowGroups = false, groups
	return b
}

// Bottleneck selects bottleneck filters (1x1 view->k then 3x3 k->k) instead of plain ones (3x3 view->k).
func (b *SeqConvBuilder) Bottleneck(on bool) *SeqConvBuilder { b.bottleneck = on; return b }

// Subgroups sets the number of groups of the bottleneck filters' 3x3 k->k conv (SeqResNeXt; default 1).
func (b *SeqConvBuilder) Subgroups(g int) *SeqConvBuilder { b.subgroups = g; return b }

// Shortcut adds per-filter slices of s [N,H,W,Channels] to the filters' raw outputs (residual layers).
func (b *SeqConvBuilder) Shortcut(s *Node) *SeqConvBuilder { b.shortcut = s; return b }

// Junction makes each filter's last conv a junction conv: MSR init scaled by weightScale (0: zero init).
func (b *SeqConvBuilder) Junction(weightScale float64) *SeqConvBuilder {
	b.junction, b.weightScale = true, weightScale
	return b
}

// DropRate sets the Dropout2d probability applied to each filter's view in training (CIFAR models: 0.1).
func (b *SeqConvBuilder) DropRate(p float64) *SeqConvBuilder { b.dropRate = p; return b }

// Impl overrides the implementation (otherwise taken from the scope parameter ParamSeqConvImpl; see
// SeqConvImpl). Both compute the same function with the same variables.
func (b *SeqConvBuilder) Impl(i SeqConvImpl) *SeqConvBuilder { b.impl, b.implSet = i, true; return b }

// WindowChannels returns the width of the window in channels for an input of cin channels, View's window
// argument: g'*k for Window(g'), cin for the authors' default, -1 for dense aggregation.
func (b *SeqConvBuilder) WindowChannels(cin int) int {
	switch {
	case b.dense:
		return -1
	case b.windowGroups > 0:
		return b.windowGroups * b.k
	default:
		return cin
	}
}

// Done builds the layer and returns its raw and activated outputs.
func (b *SeqConvBuilder) Done() (raw, act *Node) {
	x, scope := b.x, b.scope
	if x.Rank() != 4 {
		Panicf("layers.SeqConv(%s): want an NHWC input of rank 4, got %s", scope.Scope(), x.Shape())
	}
	k := b.k
	if k <= 0 || b.channels <= 0 || b.channels%k != 0 {
		Panicf("layers.SeqConv(%s): granularity %d must be positive and divide the output channels %d",
			scope.Scope(), k, b.channels)
	}
	if b.bottleneck && (b.subgroups < 1 || k%b.subgroups != 0) {
		Panicf("layers.SeqConv(%s): subgroups %d must divide the granularity %d", scope.Scope(), b.subgroups, k)
	}
	layout := layoutFromScope(scope)
	ch := layout.channelAxis()
	if b.shortcut != nil && (b.shortcut.Rank() != 4 || b.shortcut.Shape().Dim(ch) != b.channels) {
		Panicf("layers.SeqConv(%s): shortcut %s must have %d channels (%s)", scope.Scope(), b.shortcut.Shape(),
			b.channels, layout)
	}
	cin := x.Shape().Dim(ch)
	n := b.channels / k
	var shortcuts []*Node
	if b.shortcut != nil {
		shortcuts = splitChannels(b.shortcut, ch, k)
	}
	impl := b.impl
	if !b.implSet {
		impl = seqConvImplFromScope(scope)
	}
	plan := seqPlan{cin: cin, k: k, n: n, window: b.WindowChannels(cin)}
	lowering := loweringFromScope(scope).resolve(x.Graph())
	var raws, acts []*Node
	switch {
	case impl == SeqConvDirect:
		raws, acts = b.doneDirect(plan, shortcuts)
	case layout == NCHW && lowering == LoweringONNX && !scope.IsTraining(x.Graph()):
		raws, acts = b.doneFusedInference(plan, shortcuts)
	case layout == NCHW && !b.bottleneck:
		raws, acts = b.doneDirect(plan, shortcuts)
	case layout == NCHW && lowering == LoweringONNX:
		raws, acts = b.doneFusedMatMul(plan, shortcuts)
	case layout == NCHW:
		Panicf("layers.SeqConv(%s): the fused implementation in the %s layout needs the %s lowering, got %s",
			scope.Scope(), layout, LoweringONNX, lowering)
	case lowering == LoweringIm2Col || lowering == LoweringONNX:
		raws, acts = b.doneFusedGathered(plan, shortcuts)
	default:
		raws, acts = b.doneFusedNative(plan, shortcuts, lowering)
	}
	return concatAxis(raws, ch), concatAxis(acts, ch)
}

// doneDirect is the SeqConvDirect implementation: filter j slices its view (plan.view, see View) from the
// growing sequence [x, E_0, ..., E_{j-1}], applies dropout to it and convolves it.
func (b *SeqConvBuilder) doneDirect(plan seqPlan, shortcuts []*Node) (raws, acts []*Node) {
	scope := b.scope
	ch := layoutFromScope(scope).channelAxis()
	pieces := []*Node{b.x} // the sequence: x, then each filter's activated output
	filters := scope.In("Filters")
	for j := range plan.n {
		// The view [lo, hi) is the end of the sequence from the piece it starts in.
		lo, _ := plan.view(j)
		first := plan.firstPiece(j)
		start, width := plan.piece(first)
		parts := slices.Clone(pieces[first:])
		if lo > start {
			parts[0] = SliceAxis(parts[0], ch, AxisRange(lo-start, width))
		}
		view := concatAxis(parts, ch)
		fs := filters.In("%d", j)
		in := Dropout2d(scope, view, b.dropRate)
		var sc *Node
		if shortcuts != nil {
			sc = shortcuts[j]
		}
		unit := b.firstConvUnit(fs, in, sc)
		r, a := b.finishFilter(fs, unit, unit.conv.Done(), sc)
		raws = append(raws, r)
		acts = append(acts, a)
		pieces = append(pieces, a)
	}
	return raws, acts
}

// concat concatenates xs on the last axis (xs[0] alone is returned as is).
func concat(xs []*Node) *Node { return concatAxis(xs, -1) }

// concatAxis concatenates xs on axis (xs[0] alone is returned as is).
func concatAxis(xs []*Node, axis int) *Node {
	if len(xs) == 1 {
		return xs[0]
	}
	return Concatenate(xs, axis)
}

// String describes the layer configuration, for summaries.
func (b *SeqConvBuilder) String() string {
	agg := "windowed"
	if b.dense {
		agg = "dense"
	}
	return fmt.Sprintf("SeqConv %s k=%d out=%d bottleneck=%v subgroups=%d", agg, b.k, b.channels, b.bottleneck,
		b.subgroups)
}
