package models

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/layers"
)

// Build builds the model's graph on images x [N,H,W,C] (channels last) and returns the logits [N, Classes].
// Variables are created in scope under the authors' module names ("Init/LinearLayer/weight", ...).
// Inside, the images are in the layout the backend runs fastest (layers.PreferredLayout, which Build sets
// as scope's layers.ParamLayout): channels first on ONNX Runtime. The variables are the same in both.
// It panics (GoMLX style) on an invalid config or input; call Validate first to get an error instead.
func (c Config) Build(scope *model.Scope, x *Node) *Node {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		Panicf("model %s: %v", c.Name, err)
	}
	if x.Rank() != 4 {
		Panicf("model %s: want input images [N, H, W, %d] (channels last), got %s", c.Name, c.InChannels, x.Shape())
	}
	if err := c.CheckInput(x.Shape().Dim(3), x.Shape().Dim(1), x.Shape().Dim(2)); err != nil {
		Panicf("%v (input images [N, H, W, C] %s)", err, x.Shape())
	}
	layout := layers.PreferredLayout(scope, x.Graph())
	scope.SetParam(layers.ParamLayout, layout)
	x = layout.FromNHWC(x)
	if c.isBaseline() {
		return c.buildBaseline(scope, x)
	}
	var act *Node
	if c.Family == FamilyCIFAR {
		act = c.buildCIFAR(scope, x)
	} else {
		act = c.buildImageNet(scope, x)
	}
	pooled := layers.GlobalAvgPool(scope.In("GlobalPool"), act)
	return layers.Classifier(scope.In("Classifier"), pooled, c.Classes)
}

func (c Config) seqCfg(stage int) layers.SeqConvConfig {
	return layers.SeqConvConfig{
		Granularity:  c.StageK(stage),
		Bottleneck:   c.Family != FamilyCIFAR || c.Variant == VariantB,
		Subgroups:    c.StageSubgroups(stage),
		WindowGroups: c.Window,
		DropRate:     c.DropRate,
	}
}

// DenseWindowGroups returns a window g' (in groups, for Config.Window) that makes every windowed SeqConv layer
// of c dense: with it, layers.View gives every filter its whole sequence [x, E_0, ..., E_{j-1}], which is
// dense aggregation (Eq. 2).
//
// The widest sequence of a layer with C_in input channels, n filters and granularity k is the last filter's,
// C_in + (n-1)*k channels. A residual layer of a stage of width w has C_in = w and n*k = w, so its sequences
// are narrower than 2w; a downsampling extension layer before a stage of width w' has C_in + n*k = w' < 2w'.
// Every sequence is thus narrower than twice the widest stage, and g' is the fewest groups of the smallest
// granularity that read a sequence of 2*maxWidth channels whole (layers.DenseWindowGroups), ceil(2*maxWidth /
// minK): a window of g'*k >= 2*maxWidth channels for every stage's k. It does not depend on c.Window, so it is
// also correct for a model whose window was already set.
func (c Config) DenseWindowGroups() int {
	widths := c.Widths()
	maxWidth, minK := 0, 0
	for i, w := range widths {
		maxWidth = max(maxWidth, w)
		if k := c.StageK(i); minK == 0 || k < minK {
			minK = k
		}
	}
	if minK <= 0 {
		return 1
	}
	return layers.DenseWindowGroups(2*maxWidth, minK)
}

// ParamRecompute is the scope hyperparameter (a bool, default false) that turns on gradient checkpointing
// (GoMLX's Node.Checkpoint): the activations inside each residual block and downsampling layer are not kept
// for the backward pass but recomputed from the block's inputs, trading about one more forward pass for the
// memory of the large models (the authors do the same for SeqResNeXt). The result is the same.
const ParamRecompute = "recompute"

// checkpoint marks the streams as the inputs of a recomputed block when ParamRecompute is set.
func checkpoint(scope *model.Scope, raw, act *Node) (*Node, *Node) {
	if !model.GetParamOr(scope, ParamRecompute, false) {
		return raw, act
	}
	if raw != nil {
		raw = checkpointNode(raw)
	}
	return raw, checkpointNode(act)
}

// checkpointNode checkpoints x through an addition of zero: GoMLX v0.28.2's rematerialization can reset
// the gradient function of the node a Checkpoint wraps when that node has a custom gradient (as this
// project's ReLU and matmul outputs do), which then fails with "no gradient is defined" for an Identity.
func checkpointNode(x *Node) *Node {
	return AddScalar(x, 0).Checkpoint()
}

// stages runs the residual stages and downsampling layers from the streams (raw, act) of the first stage.
func (c Config) stages(scope *model.Scope, raw, act *Node) *Node {
	widths := c.Widths()
	for i := range widths {
		if i > 0 {
			_, act = checkpoint(scope, nil, act) // the downsampling layer reads the activated stream only
			ext := c.seqCfg(i - 1)
			raw, act = layers.Downsample(scope.In("Downsample%d", i), act, layers.DownsampleConfig{
				Channels:      widths[i],
				Extension:     ext,
				NextK:         c.StageK(i),
				NextSubgroups: c.StageSubgroups(i),
				Released:      c.Downsample == DownsampleReleased,
			})
		}
		stage := scope.In("Stage%d", i+1)
		for b := range c.BlocksPerStage[i] {
			raw, act = checkpoint(scope, raw, act)
			raw, act = layers.ResidualBlock(stage.In("%d", b), raw, act, c.seqCfg(i))
		}
	}
	if model.GetParamOr(scope, ParamRecompute, false) {
		act = act.StopCheckpoint()
	}
	return act
}

func (c Config) buildCIFAR(scope *model.Scope, x *Node) *Node {
	widths := c.Widths()
	_, a := layers.ConvUnit(scope.In("Init"), x).Channels(16).KernelSize(3).Stride(c.StemStride).Done()
	head := c.seqCfg(0)
	head.DropRate = 0 // the stem Head layer has no dropout
	raw, act := head.Apply(layers.SeqConv(scope.In("Head"), a)).Dense().Channels(widths[0]).Done()
	act = c.stages(scope, raw, act)
	act = layers.Dropout2d(scope, act, c.DropRate)
	_, act = layers.ConvUnit(scope.In("Blender"), act).Channels(widths[len(widths)-1]).KernelSize(1).Done()
	return act
}

func (c Config) buildImageNet(scope *model.Scope, x *Node) *Node {
	widths := c.Widths()
	_, a := layers.ConvUnit(scope.In("Head0"), x).Channels(32).KernelSize(3).Stride(2).Done()
	_, a = layers.ConvUnit(scope.In("Head1"), a).Channels(32).KernelSize(3).Done()
	_, a = c.seqCfg(0).Apply(layers.SeqConv(scope.In("Head2"), a)).Dense().Channels(widths[0]).Done()
	raw, act := layers.ConvUnit(scope.In("ShrinkingLayer"), a).Channels(widths[0]).KernelSize(3).Stride(2).
		Groups(layers.ShrinkGroups(widths[0], c.StageK(0), c.StageSubgroups(0))).Done()
	act = c.stages(scope, raw, act)
	_, act = layers.ConvUnit(scope.In("Blender"), act).Channels(widths[len(widths)-1]).KernelSize(1).Done()
	return act
}

// String summarises the config.
func (c Config) String() string {
	if c.isBaseline() {
		return c.baselineString()
	}
	return fmt.Sprintf("%s(%s classes=%d widths=%v k=%v blocks=%v)", c.Name, c.Family, c.Classes, c.Widths(),
		[]int(c.Granularity), c.BlocksPerStage)
}
