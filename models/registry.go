package models

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// registry maps model names to constructors of their published configuration.
var registry = map[string]func() Config{
	// The authors' CIFAR demo: SeqResNetB.ResNetCIFAR(10, [1,1,1], [1,2,3], Widening=7, Granularity=16).
	"seqresnet-cifar-demo": func() Config {
		return Config{Family: FamilyCIFAR, Variant: VariantB, Classes: 10, BlocksPerStage: []int{1, 1, 1},
			PyramidFactor: []float64{1, 2, 3}, Widening: 7, Granularity: IntList{16}, DropRate: 0.1}
	},
	// The authors' plain CIFAR SeqResNet with its constructor defaults (widths 128/256/512, k=8, 3 blocks).
	"seqresnet-cifar": func() Config {
		return Config{Family: FamilyCIFAR, Variant: VariantPlain, Classes: 10, BlocksPerStage: []int{3, 3, 3},
			PyramidFactor: []float64{1, 2, 4}, Widening: 8, Granularity: IntList{8}, DropRate: 0.1}
	},
	// SeqResNet-B22 = SeqResNet.py ModelLite.
	"seqresnet-b22": func() Config {
		return Config{Family: FamilyImageNet, Classes: 1000, BlocksPerStage: []int{1, 1, 2, 1}, Widening: 2,
			Granularity: IntList{32, 64, 64, 128}}
	},
	// SeqResNet-B42 = SeqResNet.py ModelLarge.
	"seqresnet-b42": func() Config {
		return Config{Family: FamilyImageNet, Classes: 1000, BlocksPerStage: []int{3, 4, 5, 3}, Widening: 2,
			Granularity: IntList{32, 64, 64, 128}}
	},
	// SeqResNeXt-24 = SeqResNeXt.py Model, with the paper's [X, E] downsampling.
	"seqresnext-24": func() Config {
		return Config{Family: FamilyResNeXt, Classes: 1000, BlocksPerStage: []int{1, 1, 3, 1}, Widening: 4,
			Granularity: IntList{32, 64, 64, 128}, Subgroups: IntList{8, 8, 4, 4}}
	},
	// The embedded default: a small SeqResNet-B for 28x28 grey MNIST digits. Its stride-2 stem runs the three
	// stages at 14x14, 7x7 and 4x4 so that it trains in minutes on a 2-core CPU.
	"seqresnet-mnist": func() Config {
		return Config{Family: FamilyCIFAR, Variant: VariantB, Classes: 10, InChannels: 1, Resolution: 28,
			StemStride: 2, BlocksPerStage: []int{1, 1, 1}, PyramidFactor: []float64{1, 2, 4}, Widening: 1,
			Granularity: IntList{16}, DropRate: 0}
	},
}

// Names returns the registered model names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Get returns the config of a registered model name, or of a JSON config file when nameOrPath ends in
// ".json" or names an existing file.
func Get(nameOrPath string) (Config, error) {
	if ctor, ok := registry[nameOrPath]; ok {
		c := ctor().WithDefaults()
		c.Name = nameOrPath
		return c, nil
	}
	if strings.HasSuffix(nameOrPath, ".json") || fileExists(nameOrPath) {
		c, err := LoadConfig(nameOrPath)
		if err != nil {
			return Config{}, err
		}
		if c.Name == "" {
			c.Name = nameOrPath
		}
		return c, nil
	}
	return Config{}, fmt.Errorf("unknown model %q: expected one of %s, or a path to a JSON model config",
		nameOrPath, strings.Join(Names(), ", "))
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir()
}
