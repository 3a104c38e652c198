package layers

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// SeqConvConfig holds the settings shared by the SeqConv layers of a residual block or downsampling layer.
type SeqConvConfig struct {
	Granularity  int     // k
	Bottleneck   bool    // bottleneck (1x1 -> 3x3) filters instead of plain 3x3 ones
	Subgroups    int     // groups of the bottleneck's 3x3 conv (SeqResNeXt), 0 or 1 for none
	WindowGroups int     // g', the window in groups; 0 for the authors' default (as wide as the input)
	DropRate     float64 // Dropout2d before each filter in training (CIFAR models)
	JunctionInit float64 // weight scale of the junction convs (0: zero init, the authors' default)
}

// Apply sets c's granularity, filter kind, subgroups, window and dropout on b and returns it. Call Dense after
// Apply for a dense layer (Apply sets the window).
func (c SeqConvConfig) Apply(b *SeqConvBuilder) *SeqConvBuilder {
	b.Granularity(c.Granularity).Bottleneck(c.Bottleneck).DropRate(c.DropRate).Window(c.WindowGroups)
	if c.Subgroups > 1 {
		b.Subgroups(c.Subgroups)
	}
	return b
}

// ResidualBlock applies the authors' pre-activation residual block to the raw stream r and the activated
// stream a (both C channels): layer A (scope "LayerA") = windowed SeqConv C->C on a; layer B (scope "LayerB") =
// windowed SeqConv C->C on A's activated output with shortcut r and zero-initialised junction convs.
// It returns layer B's raw output (the new residual stream) and activated output.
func ResidualBlock(scope *model.Scope, r, a *Node, cfg SeqConvConfig) (raw, act *Node) {
	c := a.Shape().Dim(layoutFromScope(scope).channelAxis())
	_, aa := cfg.Apply(SeqConv(scope.In("LayerA"), a)).Channels(c).Done()
	return cfg.Apply(SeqConv(scope.In("LayerB"), aa)).Channels(c).Shortcut(r).Junction(cfg.JunctionInit).Done()
}

// DownsampleConfig configures a downsampling layer, see Downsample.
type DownsampleConfig struct {
	Channels      int           // output width C_out (> the input width)
	Extension     SeqConvConfig // the extension SeqConv (the current stage's granularity and subgroups)
	NextK         int           // the next stage's granularity
	NextSubgroups int           // the next stage's subgroups (SeqResNeXt; 0 or 1 for none)
	Released      bool          // feed [E, E] to the shrinking conv, as the released SeqResNeXt code does
}

// Downsample applies the authors' downsampling layer to the activated features x (C_in channels): an
// extension SeqConv C_in -> C_out - C_in on x (scope "ExtensionLayer") gives E; the shrinking conv unit
// (scope "ShrinkingLayer": 3x3, stride 2, C_out -> C_out, groups = C_out/NextK * NextSubgroups) is applied to
// [x, E] ([E, E] when Released). It returns the shrinking unit's raw and activated outputs.
func Downsample(scope *model.Scope, x *Node, cfg DownsampleConfig) (raw, act *Node) {
	ch := layoutFromScope(scope).channelAxis()
	cin := x.Shape().Dim(ch)
	if cfg.Channels <= cin {
		Panicf("layers.Downsample(%s): output channels %d must exceed the input's %d", scope.Scope(), cfg.Channels, cin)
	}
	_, e := cfg.Extension.Apply(SeqConv(scope.In("ExtensionLayer"), x)).Channels(cfg.Channels - cin).Done()
	first := x
	if cfg.Released {
		if e.Shape().Dim(ch) != cin {
			Panicf("layers.Downsample(%s): the released [E, E] variant needs C_out = 2*C_in", scope.Scope())
		}
		first = e
	}
	cat := Concatenate([]*Node{first, e}, ch)
	return ConvUnit(scope.In("ShrinkingLayer"), cat).Channels(cfg.Channels).KernelSize(3).Stride(2).
		Groups(ShrinkGroups(cfg.Channels, cfg.NextK, cfg.NextSubgroups)).Done()
}

// ShrinkGroups is the group count of a shrinking conv of c channels before a stage of granularity k with the
// given subgroups: c/k * max(subgroups, 1).
func ShrinkGroups(c, k, subgroups int) int {
	if k <= 0 || c%k != 0 {
		Panicf("layers: shrinking conv of %d channels needs a granularity dividing it, got %d", c, k)
	}
	return c / k * max(subgroups, 1)
}

// Classifier is the authors' final Linear layer on x [N,in]: "weight" [in, classes] drawn from U(-a, a) with
// a = sqrt(3/classes) (Xavier-style with fan-out = classes) and "bias" [classes] at zero. Returns the logits.
func Classifier(scope *model.Scope, x *Node, classes int) *Node {
	return Linear(scope, x, classes, math.Sqrt(3)/math.Sqrt(float64(classes)), 0)
}

// Linear is a fully connected layer on x [N, in]: x · weight + bias with "weight" [in, out] drawn from
// U(-weightBound, weightBound) and "bias" [out] from U(-biasBound, biasBound), in that order (zeros for a bound
// of 0; see uniformInitializer). It is recorded as an OpLinear.
func Linear(scope *model.Scope, x *Node, out int, weightBound, biasBound float64) *Node {
	if x.Rank() != 2 {
		Panicf("layers.Linear(%s): want [N, features], got %s", scope.Scope(), x.Shape())
	}
	in := x.Shape().Dim(1)
	g := x.Graph()
	w := scope.WithInitializer(uniformInitializer(scope, weightBound)).
		VariableWithShape("weight", shapes.Make(x.DType(), in, out))
	b := scope.WithInitializer(uniformInitializer(scope, biasBound)).VariableWithShape("bias", shapes.Make(x.DType(), out))
	y := Add(DotGeneral(x, []int{1}, nil, w.NodeValue(g), []int{0}, nil), ExpandLeftToRank(b.NodeValue(g), 2))
	recordOp(g, OpRecord{Scope: scope.Scope(), Kind: OpLinear, Out: y.Shape().Dimensions,
		MACs: int64(in * out), Params: int64(in*out + out), Detail: fmt.Sprintf("linear %d->%d", in, out)})
	return y
}
