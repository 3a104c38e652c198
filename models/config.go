// Package models holds the SeqConv model families (CIFAR and ImageNet SeqResNet, SeqResNeXt), their JSON
// configuration and the registry of named models.
package models

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Families of models this package builds.
const (
	FamilyCIFAR    = "seqresnet-cifar"     // the authors' ResNetCIFAR (SeqResNet.py / SeqResNetB.py)
	FamilyImageNet = "seqresnet-imagenet"  // the authors' ResNetImageNet (SeqResNet.py ModelLite/ModelLarge)
	FamilyResNeXt  = "seqresnext-imagenet" // the authors' SeqResNeXt.py
	FamilyResNet   = "resnet"              // torchvision's ResNet / ResNeXt with Bottleneck blocks (baselines)
	FamilyDenseNet = "densenet"            // torchvision's DenseNet-BC (baselines)
)

// Variants of the CIFAR family.
const (
	VariantB     = "b"     // bottleneck filters (SeqResNetB)
	VariantPlain = "plain" // plain 3x3 filters (SeqResNet)
)

// Downsampling modes of SeqResNeXt.
const (
	DownsamplePaper    = "paper"    // the shrinking conv reads [X, E], the paper's design
	DownsampleReleased = "released" // it reads [E, E], as the released SeqResNeXt code does
)

// IntList is a list of ints that also unmarshals from a single JSON number (meaning "the same for every stage").
type IntList []int

// UnmarshalJSON accepts a number or a list of numbers; null is the empty list (as json.Marshal writes it).
func (l *IntList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = nil
		return nil
	}
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*l = IntList{n}
		return nil
	}
	var xs []int
	if err := json.Unmarshal(b, &xs); err != nil {
		return fmt.Errorf("want a number or a list of numbers, got %s", b)
	}
	*l = xs
	return nil
}

// Config describes a model. Its JSON keys mirror the authors' constructor arguments in snake case.
type Config struct {
	// Name is the registered name (informational).
	Name string `json:"name,omitempty"`
	// Family is one of FamilyCIFAR, FamilyImageNet, FamilyResNeXt, or a baseline family: FamilyResNet,
	// FamilyDenseNet (see baselines.go).
	Family string `json:"family"`
	// Variant is VariantB or VariantPlain (CIFAR family; the ImageNet families are always bottleneck).
	Variant string `json:"variant,omitempty"`
	// Classes is the number of output classes.
	Classes int `json:"classes"`
	// InChannels is the number of input image channels (3, or 1 for MNIST).
	InChannels int `json:"in_channels,omitempty"`
	// Resolution is the nominal input height and width (32 for CIFAR, 224 for ImageNet, 28 for MNIST).
	Resolution int `json:"resolution,omitempty"`
	// BlocksPerStage is the number of residual blocks of each stage (3 stages for CIFAR, 4 for ImageNet and
	// resnet), or the number of layers of each dense block (densenet: torchvision's block_config).
	BlocksPerStage []int `json:"blocks_per_stage"`
	// PyramidFactor (CIFAR) gives the stage widths 16*W*P_i/P_1.
	PyramidFactor []float64 `json:"pyramid_factor,omitempty"`
	// Widening is W: CIFAR widths are 16*W*P_i/P_1, ImageNet widths 64W, 128W, 256W, 512W.
	Widening float64 `json:"widening"`
	// Granularity is k, one value for all stages or one per stage.
	Granularity IntList `json:"granularity"`
	// Subgroups (SeqResNeXt) is the number of groups of the filters' 3x3 convs, per stage.
	Subgroups IntList `json:"subgroups,omitempty"`
	// DropRate is the Dropout2d probability of the CIFAR models (0.1 in the authors' code).
	DropRate float64 `json:"drop_rate"`
	// Downsample is DownsamplePaper (default) or DownsampleReleased (SeqResNeXt only).
	Downsample string `json:"downsample,omitempty"`
	// StemStride (CIFAR family) is the stride of the "Init" conv: 1 in the authors' code; 2 halves the
	// resolution of every stage (the MNIST default uses it to train fast on a CPU).
	StemStride int `json:"stem_stride,omitempty"`
	// Window is g', the window of the windowed layers in groups; 0 keeps the authors' window (the layer's input).
	Window int `json:"window,omitempty"`

	// Baseline families (baselines.go), torchvision's constructor arguments:

	// Groups (resnet) is the group count of the Bottleneck 3x3 convs (1; 32 for ResNeXt-50 32x4d).
	Groups int `json:"groups,omitempty"`
	// WidthPerGroup (resnet) is torchvision's width_per_group (64; 4 for ResNeXt-50 32x4d).
	WidthPerGroup int `json:"width_per_group,omitempty"`
	// GrowthRate (densenet) is k, the channels each dense layer adds (32).
	GrowthRate int `json:"growth_rate,omitempty"`
	// BNSize (densenet) sets the bottleneck width of a dense layer to bn_size*growth_rate (4).
	BNSize int `json:"bn_size,omitempty"`
	// InitFeatures (densenet) is the width of the stem conv (64).
	InitFeatures int `json:"init_features,omitempty"`

	// Size budget (see Validate):

	// MaxBlocks raises the budget of blocks (the sum of BlocksPerStage); 0 means DefaultMaxBlocks.
	MaxBlocks int `json:"max_blocks,omitempty"`
	// MaxWidth raises the budget of channels of a stage; 0 means DefaultMaxWidth.
	MaxWidth int `json:"max_width,omitempty"`
}

// numStages is the number of stages of the family.
func (c Config) numStages() int {
	if c.Family == FamilyCIFAR {
		return 3
	}
	return 4
}

// WithDefaults returns c with the defaults of its family applied to its zero-valued fields (input
// channels, resolution, CIFAR variant, stem stride, downsampling mode; the baselines' torchvision
// arguments), as Get and LoadConfig return configs. Build, Validate and Inspect apply them too.
func (c Config) WithDefaults() Config {
	if c.isBaseline() {
		return c.baselineDefaults()
	}
	if c.InChannels == 0 {
		c.InChannels = 3
	}
	if c.Resolution == 0 {
		if c.Family == FamilyCIFAR {
			c.Resolution = 32
		} else {
			c.Resolution = 224
		}
	}
	if c.Family == FamilyCIFAR && c.Variant == "" {
		c.Variant = VariantB
	}
	if c.StemStride == 0 {
		c.StemStride = 1
	}
	if c.Downsample == "" {
		c.Downsample = DownsamplePaper
	}
	return c
}

// StageK returns the granularity of stage i (0-based).
func (c Config) StageK(i int) int {
	if len(c.Granularity) == 1 {
		return c.Granularity[0]
	}
	return c.Granularity[i]
}

// StageSubgroups returns the subgroups of stage i (1 when none).
func (c Config) StageSubgroups(i int) int {
	switch len(c.Subgroups) {
	case 0:
		return 1
	case 1:
		return c.Subgroups[0]
	}
	return c.Subgroups[i]
}

// Widths returns the stage widths.
func (c Config) Widths() []int {
	if c.isBaseline() {
		return c.baselineWidths()
	}
	n := c.numStages()
	w := make([]int, n)
	for i := range n {
		if c.Family == FamilyCIFAR {
			w[i] = int(16 * c.PyramidFactor[i] / c.PyramidFactor[0] * c.Widening)
		} else {
			w[i] = int(64 * float64(int(1)<<i) * c.Widening)
		}
	}
	return w
}

// Validate checks the config and returns an error naming the offending key. A config must also be within
// its size budget: at most MaxBlocks blocks (DefaultMaxBlocks when 0) and stages at most MaxWidth channels
// wide (DefaultMaxWidth when 0), so that a typo cannot make a model too large to build.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.checkBudget(); err != nil {
		return err
	}
	switch c.Family {
	case FamilyCIFAR, FamilyImageNet, FamilyResNeXt:
		if err := c.noBaselineKeys(); err != nil {
			return err
		}
	case FamilyResNet, FamilyDenseNet:
		return c.validateBaseline()
	default:
		return fmt.Errorf("family: unknown family %q, expected %s", c.Family,
			strings.Join([]string{FamilyCIFAR, FamilyImageNet, FamilyResNeXt, FamilyResNet, FamilyDenseNet}, "|"))
	}
	n := c.numStages()
	if c.Family == FamilyCIFAR {
		if c.Variant != VariantB && c.Variant != VariantPlain {
			return fmt.Errorf("variant: want %q or %q, got %q", VariantB, VariantPlain, c.Variant)
		}
		if len(c.PyramidFactor) != n {
			return fmt.Errorf("pyramid_factor: want %d values, got %d", n, len(c.PyramidFactor))
		}
		for _, p := range c.PyramidFactor {
			if p <= 0 {
				return fmt.Errorf("pyramid_factor: values must be positive, got %v", c.PyramidFactor)
			}
		}
	} else if c.Variant != "" && c.Variant != VariantB {
		return fmt.Errorf("variant: the %s family only has bottleneck filters (%q), got %q", c.Family, VariantB, c.Variant)
	}
	if c.Classes < 1 {
		return fmt.Errorf("classes: want >= 1, got %d", c.Classes)
	}
	if c.InChannels < 1 {
		return fmt.Errorf("in_channels: want >= 1, got %d", c.InChannels)
	}
	minRes := 4
	if c.Family != FamilyCIFAR {
		minRes = 32
	}
	if c.Resolution < minRes {
		return fmt.Errorf("resolution: want >= %d for the %s family, got %d", minRes, c.Family, c.Resolution)
	}
	if len(c.BlocksPerStage) != n {
		return fmt.Errorf("blocks_per_stage: want %d values, got %d", n, len(c.BlocksPerStage))
	}
	for _, b := range c.BlocksPerStage {
		if b < 0 {
			return fmt.Errorf("blocks_per_stage: values must be >= 0, got %v", c.BlocksPerStage)
		}
	}
	if c.Widening <= 0 {
		return fmt.Errorf("widening: want > 0, got %v", c.Widening)
	}
	if len(c.Granularity) != 1 && len(c.Granularity) != n {
		return fmt.Errorf("granularity: want one value or %d, got %d", n, len(c.Granularity))
	}
	if c.Family == FamilyCIFAR && len(c.Granularity) != 1 {
		return fmt.Errorf("granularity: the CIFAR family uses one granularity everywhere, got %v", c.Granularity)
	}
	if len(c.Subgroups) != 0 && len(c.Subgroups) != 1 && len(c.Subgroups) != n {
		return fmt.Errorf("subgroups: want one value or %d, got %d", n, len(c.Subgroups))
	}
	if len(c.Subgroups) > 0 && c.Family == FamilyCIFAR && c.Variant == VariantPlain {
		return fmt.Errorf("subgroups: plain filters have no grouped 3x3 conv")
	}
	widths := c.Widths()
	if err := c.checkWidths("widening", widths...); err != nil {
		return err
	}
	for i := range n {
		k, w, sg := c.StageK(i), widths[i], c.StageSubgroups(i)
		if k < 1 || w%k != 0 {
			return fmt.Errorf("granularity: stage %d: k=%d must be positive and divide the stage width %d", i+1, k, w)
		}
		if sg < 1 || k%sg != 0 {
			return fmt.Errorf("subgroups: stage %d: %d must divide the granularity %d", i+1, sg, k)
		}
		if i > 0 {
			if widths[i] <= widths[i-1] {
				return fmt.Errorf("widening/pyramid_factor: stage %d width %d must exceed stage %d width %d",
					i+1, widths[i], i, widths[i-1])
			}
			if (widths[i]-widths[i-1])%c.StageK(i-1) != 0 {
				return fmt.Errorf("granularity: the extension %d->%d of downsampling layer %d needs k=%d to divide %d",
					widths[i-1], widths[i], i, c.StageK(i-1), widths[i]-widths[i-1])
			}
		}
	}
	if c.DropRate < 0 || c.DropRate >= 1 {
		return fmt.Errorf("drop_rate: want 0 <= p < 1, got %v", c.DropRate)
	}
	switch c.Downsample {
	case DownsamplePaper:
	case DownsampleReleased:
		for i := 1; i < n; i++ {
			if widths[i] != 2*widths[i-1] {
				return fmt.Errorf("downsample: %q needs every stage twice as wide as the previous", DownsampleReleased)
			}
		}
	default:
		return fmt.Errorf("downsample: want %q or %q, got %q", DownsamplePaper, DownsampleReleased, c.Downsample)
	}
	if c.StemStride != 1 && (c.StemStride != 2 || c.Family != FamilyCIFAR) {
		return fmt.Errorf("stem_stride: want 1, or 2 for the %s family, got %d", FamilyCIFAR, c.StemStride)
	}
	if c.Window < 0 {
		return fmt.Errorf("window: want >= 0 groups, got %d", c.Window)
	}
	return nil
}
