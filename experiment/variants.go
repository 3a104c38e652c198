package experiment

import (
	"fmt"
	"strconv"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// The images the experiment trains on: the embedded MNIST (data.KindMNIST).
const (
	mnistChannels = 1
	mnistClasses  = 10
)

// CheckModel returns an error when cfg cannot be the experiment's model: it must be a SeqConv model (not
// a baseline) for MNIST's 1-channel images with at least its 10 classes. The error reads after the
// model's name ("<model> is a resnet baseline: ...").
func CheckModel(cfg models.Config) error {
	switch cfg.Family {
	case models.FamilyCIFAR, models.FamilyImageNet, models.FamilyResNeXt:
	default:
		return fmt.Errorf("is a %s baseline: the experiment needs a SeqConv model", cfg.Family)
	}
	if cfg.InChannels != mnistChannels || cfg.Classes < mnistClasses {
		return fmt.Errorf("takes %d-channel images and has %d classes, but mnist has %d-channel images and %d classes",
			cfg.InChannels, cfg.Classes, mnistChannels, mnistClasses)
	}
	return nil
}

// Variants returns the two models the experiment compares, built from model (a config CheckModel
// accepts) named name: with granularity k in every stage when granularity > 0 (and "-k<granularity>"
// added to the name), the windowed variant named "<name>-windowed" and the dense variant named
// "<name>-dense" whose window is DenseWindowGroups of the model. The error is that of the model's
// Validate when the granularity does not fit it.
func Variants(model models.Config, name string, granularity int) (windowed, dense models.Config, base string, err error) {
	base = name
	if granularity > 0 {
		model.Granularity = models.IntList{granularity}
		base += "-k" + strconv.Itoa(granularity)
		if err := model.Validate(); err != nil {
			return models.Config{}, models.Config{}, "", err
		}
	}
	windowed, dense = model, model
	windowed.Name = base + "-" + VariantWindowed
	dense.Window = model.DenseWindowGroups()
	dense.Name = base + "-" + VariantDense
	return windowed, dense, base, nil
}

// checkVariants builds both models' variables (without running them) and checks, with
// analysis.SeqConvLayers, that they have the same SeqConv layers, that every multi-filter layer of
// the dense variant is dense, and that some layer of the windowed variant is windowed with several
// filters (the layers where the two differ). It returns the number of layers that differ.
func checkVariants(backend compute.Backend, windowed, dense models.Config) (int, error) {
	wl, err := variantLayers(backend, windowed)
	if err != nil {
		return 0, err
	}
	dl, err := variantLayers(backend, dense)
	if err != nil {
		return 0, err
	}
	if len(wl) != len(dl) {
		return 0, fmt.Errorf("the windowed and dense models have %d and %d SeqConv layers", len(wl), len(dl))
	}
	differ := 0
	for i, d := range dl {
		w := wl[i]
		if w.Name != d.Name || w.K != d.K || w.Filters != d.Filters {
			return 0, fmt.Errorf("SeqConv layer %d is %s (k=%d, %d filters) in the windowed model but %s (k=%d, %d filters) in the dense one",
				i, w.Name, w.K, w.Filters, d.Name, d.K, d.Filters)
		}
		if d.Filters > 1 && !d.Dense {
			return 0, fmt.Errorf("layer %s of the dense variant (window %d groups) is not dense: %s", d.Name,
				dense.Window, d)
		}
		if w.Dense != d.Dense || w.Window != d.Window {
			differ++
		}
	}
	if differ == 0 {
		return 0, fmt.Errorf("model %s: no SeqConv layer with several filters aggregates differently with a dense window "+
			"(its windowed layers have one filter each, or its window already covers the sequence): try a smaller granularity",
			windowed.Name)
	}
	return differ, nil
}

// variantLayers returns the SeqConv layers of cfg's model.
func variantLayers(backend compute.Backend, cfg models.Config) ([]analysis.LayerInfo, error) {
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return nil, err
	}
	return analysis.SeqConvLayers(store), nil
}

// initialHeatmaps returns the heat maps of cfg's model freshly initialized with seed (the weights
// before any training), the baseline that tells how far training moved the utilization.
func initialHeatmaps(backend compute.Backend, cfg models.Config, seed int64) ([]*analysis.Heatmap, error) {
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return nil, err
	}
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, fmt.Errorf("seeding the initialization of %s: %w", cfg.Name, err)
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return nil, fmt.Errorf("initializing %s: %w", cfg.Name, err)
	}
	var maps []*analysis.Heatmap
	for _, layer := range analysis.SeqConvLayers(store) {
		h, err := analysis.Utilization(store, layer)
		if err != nil {
			return nil, err
		}
		maps = append(maps, h)
	}
	return maps, nil
}
