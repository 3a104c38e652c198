package models

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/layers"
)

// The paper's baselines: torchvision's ResNet (Bottleneck blocks, "v1.5" with the stride on the 3x3 conv),
// ResNeXt and DenseNet-BC, built channels last. Variable paths mirror torchvision's state_dict keys:
// strings.ReplaceAll(path[1:], "/", ".") of "/layer1/0/downsample/1/running_mean" is
// "layer1.0.downsample.1.running_mean". Conv weights are stored HWIO and Linear weights [in, out], as
// everywhere in this project (see package interop).
//
// Initialisation: BN γ=1, β=0 and Linear weights U(-1/√in, 1/√in) as in torchvision; the ResNet fc bias is
// U(-1/√in, 1/√in) (PyTorch's Linear default) and the DenseNet classifier bias 0. Conv weights use this
// project's MSR fan-out uniform init (layers.Conv): the same standard deviation √(2/fan_out) as ResNet's
// kaiming_normal_(mode="fan_out"), but uniform; DenseNet's kaiming_normal_ uses fan-in instead.
var baselineRegistry = map[string]func() Config{
	// torchvision.models.resnet50.
	"resnet50": func() Config {
		return Config{Family: FamilyResNet, Classes: 1000, BlocksPerStage: []int{3, 4, 6, 3}}
	},
	// torchvision.models.resnet101.
	"resnet101": func() Config {
		return Config{Family: FamilyResNet, Classes: 1000, BlocksPerStage: []int{3, 4, 23, 3}}
	},
	// torchvision.models.resnet152.
	"resnet152": func() Config {
		return Config{Family: FamilyResNet, Classes: 1000, BlocksPerStage: []int{3, 8, 36, 3}}
	},
	// torchvision.models.resnext50_32x4d.
	"resnext50-32x4d": func() Config {
		return Config{Family: FamilyResNet, Classes: 1000, BlocksPerStage: []int{3, 4, 6, 3}, Groups: 32,
			WidthPerGroup: 4}
	},
	// torchvision.models.densenet169.
	"densenet169": func() Config {
		return Config{Family: FamilyDenseNet, Classes: 1000, BlocksPerStage: []int{6, 12, 32, 32}, GrowthRate: 32,
			BNSize: 4, InitFeatures: 64}
	},
	// DenseNet-264 (k=32): torchvision's DenseNet class with block_config (6, 12, 64, 48).
	"densenet264": func() Config {
		return Config{Family: FamilyDenseNet, Classes: 1000, BlocksPerStage: []int{6, 12, 64, 48}, GrowthRate: 32,
			BNSize: 4, InitFeatures: 64}
	},
}

func init() {
	for name, ctor := range baselineRegistry {
		if _, dup := registry[name]; dup {
			panic(fmt.Sprintf("models: baseline %q is already registered", name))
		}
		registry[name] = ctor
	}
}

// resNetExpansion is torchvision's Bottleneck.expansion.
const resNetExpansion = 4

// isBaseline reports whether c is one of the baseline families (resnet, densenet).
func (c Config) isBaseline() bool { return c.Family == FamilyResNet || c.Family == FamilyDenseNet }

// baselineDefaults fills in torchvision's defaults of a baseline config.
func (c Config) baselineDefaults() Config {
	if c.InChannels == 0 {
		c.InChannels = 3
	}
	if c.Resolution == 0 {
		c.Resolution = 224
	}
	switch c.Family {
	case FamilyResNet:
		if c.Groups == 0 {
			c.Groups = 1
		}
		if c.WidthPerGroup == 0 {
			c.WidthPerGroup = 64
		}
	case FamilyDenseNet:
		if c.GrowthRate == 0 {
			c.GrowthRate = 32
		}
		if c.BNSize == 0 {
			c.BNSize = 4
		}
		if c.InitFeatures == 0 {
			c.InitFeatures = 64
		}
	}
	return c
}

// baselineWidths returns the output channels of each stage (resnet) or dense block (densenet).
func (c Config) baselineWidths() []int {
	w := make([]int, len(c.BlocksPerStage))
	if c.Family == FamilyResNet {
		for i := range w {
			w[i] = (64 << i) * resNetExpansion
		}
		return w
	}
	nf := c.InitFeatures
	for i, n := range c.BlocksPerStage {
		nf += n * c.GrowthRate
		w[i] = nf
		nf /= 2
	}
	return w
}

// bottleneckWidth is the width of the 3x3 conv of a Bottleneck with the given planes (torchvision:
// int(planes * width_per_group / 64) * groups).
func (c Config) bottleneckWidth(planes int) int {
	return planes * c.WidthPerGroup / 64 * c.Groups
}

// noBaselineKeys checks that a SeqConv config sets none of the baseline families' keys.
func (c Config) noBaselineKeys() error {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"groups", c.Groups != 0}, {"width_per_group", c.WidthPerGroup != 0}, {"growth_rate", c.GrowthRate != 0},
		{"bn_size", c.BNSize != 0}, {"init_features", c.InitFeatures != 0},
	} {
		if k.set {
			return fmt.Errorf("%s: only for the %s/%s families, not %s", k.key, FamilyResNet, FamilyDenseNet, c.Family)
		}
	}
	return nil
}

// validateBaseline validates a config of a baseline family (after baselineDefaults).
func (c Config) validateBaseline() error {
	isResNet := c.Family == FamilyResNet
	for _, k := range []struct {
		key string
		set bool
	}{
		{"variant", c.Variant != ""}, {"pyramid_factor", len(c.PyramidFactor) != 0}, {"widening", c.Widening != 0},
		{"granularity", len(c.Granularity) != 0}, {"subgroups", len(c.Subgroups) != 0},
		{"downsample", c.Downsample != ""}, {"stem_stride", c.StemStride != 0}, {"window", c.Window != 0},
		{"drop_rate", isResNet && c.DropRate != 0},
		{"groups", !isResNet && c.Groups != 0}, {"width_per_group", !isResNet && c.WidthPerGroup != 0},
		{"growth_rate", isResNet && c.GrowthRate != 0}, {"bn_size", isResNet && c.BNSize != 0},
		{"init_features", isResNet && c.InitFeatures != 0},
	} {
		if k.set {
			return fmt.Errorf("%s: not a setting of the %s family", k.key, c.Family)
		}
	}
	if c.Classes < 1 {
		return fmt.Errorf("classes: want >= 1, got %d", c.Classes)
	}
	if c.InChannels < 1 {
		return fmt.Errorf("in_channels: want >= 1, got %d", c.InChannels)
	}
	if c.Resolution < 32 {
		return fmt.Errorf("resolution: want >= 32 for the %s family, got %d", c.Family, c.Resolution)
	}
	if isResNet && len(c.BlocksPerStage) != 4 {
		return fmt.Errorf("blocks_per_stage: want 4 values, got %d", len(c.BlocksPerStage))
	}
	if len(c.BlocksPerStage) == 0 {
		return fmt.Errorf("blocks_per_stage: want at least one dense block")
	}
	for _, b := range c.BlocksPerStage {
		if b < 1 {
			return fmt.Errorf("blocks_per_stage: values must be >= 1, got %v", c.BlocksPerStage)
		}
	}
	if isResNet {
		if c.Groups < 1 {
			return fmt.Errorf("groups: want >= 1, got %d", c.Groups)
		}
		if c.WidthPerGroup < 1 {
			return fmt.Errorf("width_per_group: want >= 1, got %d", c.WidthPerGroup)
		}
		if err := c.checkWidths("groups", c.Groups, c.WidthPerGroup); err != nil {
			return err
		}
		for i := range c.BlocksPerStage {
			if err := c.checkWidths("width_per_group", c.bottleneckWidth(64<<i)); err != nil {
				return err
			}
		}
		return nil
	}
	if c.GrowthRate < 1 {
		return fmt.Errorf("growth_rate: want >= 1, got %d", c.GrowthRate)
	}
	if c.BNSize < 1 {
		return fmt.Errorf("bn_size: want >= 1, got %d", c.BNSize)
	}
	if c.InitFeatures < 1 {
		return fmt.Errorf("init_features: want >= 1, got %d", c.InitFeatures)
	}
	if c.DropRate < 0 || c.DropRate >= 1 {
		return fmt.Errorf("drop_rate: want 0 <= p < 1, got %v", c.DropRate)
	}
	for _, k := range []struct {
		key    string
		widths []int
	}{
		{"init_features", []int{c.InitFeatures}}, {"growth_rate", []int{c.GrowthRate}}, {"bn_size", []int{c.BNSize}},
		{"bn_size", []int{c.BNSize * c.GrowthRate}}, {"growth_rate", c.baselineWidths()},
	} {
		if err := c.checkWidths(k.key, k.widths...); err != nil {
			return err
		}
	}
	// The stem (conv s2, maxpool s2) and each transition's 2x2 average pool must leave at least one pixel.
	if m := c.MinInputSize(); c.Resolution < m {
		return fmt.Errorf("resolution: %d is too small for %d dense blocks: want >= %d", c.Resolution,
			len(c.BlocksPerStage), m)
	}
	return nil
}

// buildBaseline builds a baseline model on images x (in scope's layers.ParamLayout) and returns the logits.
func (c Config) buildBaseline(scope *model.Scope, x *Node) *Node {
	if c.Family == FamilyResNet {
		return c.buildResNet(scope, x)
	}
	return c.buildDenseNet(scope, x)
}

// buildResNet is torchvision's ResNet with Bottleneck blocks.
func (c Config) buildResNet(scope *model.Scope, x *Node) *Node {
	y := layers.Conv(scope.In("conv1"), x).Channels(64).KernelSize(7).Stride(2).Done()
	y = layers.BatchNorm(scope.In("bn1"), y).Done()
	y = layers.ReLU(scope.In("relu"), y)
	y = layers.MaxPool2d(scope.In("maxpool"), y, 3, 2, 1)
	for i, blocks := range c.BlocksPerStage {
		layer := scope.In("layer%d", i+1)
		planes, stride := 64<<i, 2
		if i == 0 {
			stride = 1
		}
		for b := range blocks {
			if b > 0 {
				stride = 1
			}
			y = c.bottleneck(layer.In("%d", b), y, planes, stride)
		}
	}
	y = layers.GlobalAvgPool(scope.In("avgpool"), y)
	return linear(scope.In("fc"), y, c.Classes, false)
}

// bottleneck is torchvision's Bottleneck: conv1 1x1 -> bn1 -> relu -> conv2 3x3 (stride, groups) -> bn2 ->
// relu -> conv3 1x1 (planes*4) -> bn3, plus the identity or the downsample (1x1 conv with stride + BN), then
// relu. Its one ReLU module is applied three times.
func (c Config) bottleneck(scope *model.Scope, x *Node, planes, stride int) *Node {
	width, outC := c.bottleneckWidth(planes), planes*resNetExpansion
	relu := scope.In("relu")
	y := layers.Conv(scope.In("conv1"), x).Channels(width).KernelSize(1).Done()
	y = layers.ReLUModule(relu, layers.BatchNorm(scope.In("bn1"), y).Done())
	y = layers.Conv(scope.In("conv2"), y).Channels(width).KernelSize(3).Stride(stride).Groups(c.Groups).Done()
	y = layers.ReLUModule(relu, layers.BatchNorm(scope.In("bn2"), y).Done())
	y = layers.Conv(scope.In("conv3"), y).Channels(outC).KernelSize(1).Done()
	y = layers.BatchNorm(scope.In("bn3"), y).Done()
	identity := x
	if stride != 1 || x.Shape().Dim(layers.ChannelAxis(scope)) != outC {
		ds := scope.In("downsample")
		identity = layers.Conv(ds.In("0"), x).Channels(outC).KernelSize(1).Stride(stride).Done()
		identity = layers.BatchNorm(ds.In("1"), identity).Done()
	}
	return layers.ReLUModule(relu, Add(y, identity))
}

// buildDenseNet is torchvision's DenseNet (DenseNet-BC without compression other than the transitions'
// halving).
func (c Config) buildDenseNet(scope *model.Scope, x *Node) *Node {
	f := scope.In("features")
	y := layers.Conv(f.In("conv0"), x).Channels(c.InitFeatures).KernelSize(7).Stride(2).Done()
	y = layers.BatchNorm(f.In("norm0"), y).Done()
	y = layers.ReLU(f.In("relu0"), y)
	y = layers.MaxPool2d(f.In("pool0"), y, 3, 2, 1)
	for i, numLayers := range c.BlocksPerStage {
		block := f.In("denseblock%d", i+1)
		features := []*Node{y}
		for j := range numLayers {
			features = append(features, c.denseLayer(block.In("denselayer%d", j+1), features))
		}
		y = Concatenate(features, layers.ChannelAxis(scope))
		if i < len(c.BlocksPerStage)-1 {
			t := f.In("transition%d", i+1)
			y = layers.BatchNorm(t.In("norm"), y).Done()
			y = layers.ReLU(t.In("relu"), y)
			y = layers.Conv(t.In("conv"), y).Channels(y.Shape().Dim(layers.ChannelAxis(scope)) / 2).KernelSize(1).Done()
			y = layers.AvgPool2d(t.In("pool"), y, 2, 2, 0)
		}
	}
	y = layers.BatchNorm(f.In("norm5"), y).Done()
	// DenseNet.forward: F.relu, F.adaptive_avg_pool2d and flatten are functional calls.
	y = layers.FunctionalReLU(scope, y)
	y = layers.FunctionalGlobalAvgPool(scope, y)
	return linear(scope.In("classifier"), y, c.Classes, true)
}

// denseLayer is torchvision's _DenseLayer on the concatenation of the previous features: norm1 -> relu1 ->
// conv1 1x1 (bn_size*k) -> norm2 -> relu2 -> conv2 3x3 (k), then F.dropout(drop_rate) in training.
func (c Config) denseLayer(scope *model.Scope, features []*Node) *Node {
	y := features[0]
	if len(features) > 1 {
		y = Concatenate(features, layers.ChannelAxis(scope))
	}
	y = layers.ReLU(scope.In("relu1"), layers.BatchNorm(scope.In("norm1"), y).Done())
	y = layers.Conv(scope.In("conv1"), y).Channels(c.BNSize * c.GrowthRate).KernelSize(1).Done()
	y = layers.ReLU(scope.In("relu2"), layers.BatchNorm(scope.In("norm2"), y).Done())
	y = layers.Conv(scope.In("conv2"), y).Channels(c.GrowthRate).KernelSize(3).Done()
	return dropout(scope, y, c.DropRate)
}

// dropout is PyTorch's F.dropout in training graphs (each element zeroed with probability p, survivors
// scaled by 1/(1-p)); the identity in inference graphs or when p is 0.
func dropout(scope *model.Scope, x *Node, p float64) *Node {
	g := x.Graph()
	if p <= 0 || !scope.IsTraining(g) {
		return x
	}
	u := scope.RandomUniform(g, x.Shape())
	keep := ConvertDType(GreaterOrEqual(u, Scalar(g, u.DType(), p)), x.DType())
	return Mul(x, MulScalar(keep, 1/(1-p)))
}

// linear is PyTorch's nn.Linear on x [N, in]: "weight" [in, out] ~ U(-1/√in, 1/√in) (kaiming_uniform_ with
// a=√5) and "bias" [out] ~ U(-1/√in, 1/√in), or zero with zeroBias (DenseNet). It is recorded as an OpLinear.
func linear(scope *model.Scope, x *Node, out int, zeroBias bool) *Node {
	bound := 1 / math.Sqrt(float64(x.Shape().Dim(-1)))
	biasBound := bound
	if zeroBias {
		biasBound = 0
	}
	return layers.Linear(scope, x, out, bound, biasBound)
}

// baselineString summarises a baseline config.
func (c Config) baselineString() string {
	if c.Family == FamilyResNet {
		return fmt.Sprintf("%s(%s classes=%d blocks=%v groups=%d width_per_group=%d)", c.Name, c.Family, c.Classes,
			c.BlocksPerStage, c.Groups, c.WidthPerGroup)
	}
	return fmt.Sprintf("%s(%s classes=%d blocks=%v growth_rate=%d bn_size=%d init_features=%d)", c.Name, c.Family,
		c.Classes, c.BlocksPerStage, c.GrowthRate, c.BNSize, c.InitFeatures)
}
