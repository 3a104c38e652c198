package models

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/layers"
)

// Stats are a model's size and cost for one image at a given resolution, computed from the built graph.
type Stats struct {
	Params      int64 // trainable parameters (conv and FC weights, FC bias, BN affine)
	ConvMACs    int64 // multiply-accumulates of all convolutions, per image
	FCMACs      int64 // multiply-accumulates of the classifier, per image
	Resolution  int
	Records     []layers.OpRecord
	NumVars     int // variables, trainable or not
	NumBuffers  int64
	ConvLayers  int
	PaperGFLOPs float64 // the paper's FLOPs convention (THOP 2019) / 2^30
	Family      string  // the model family, which decides how the paper prints PaperGFLOPs
}

// PaperFLOPs formats PaperGFLOPs with two decimals the way the paper's table does: its baseline figures are
// rounded (ResNet-50 3.858 -> 3.86) while its SeqConv figures are truncated (SeqResNet-B42 5.336 -> 5.33).
func (s Stats) PaperFLOPs() string {
	v := s.PaperGFLOPs
	switch s.Family {
	case FamilyCIFAR, FamilyImageNet, FamilyResNeXt:
		v = math.Floor(v*100) / 100
	}
	return fmt.Sprintf("%.2f", v)
}

// MACs returns conv + FC multiply-accumulates per image.
func (s Stats) MACs() int64 { return s.ConvMACs + s.FCMACs }

// Inspect builds the model graph (inference mode, batch 1, float32) in a fresh store at the given resolution
// (0: the config's) and counts its trainable parameters and per-image MACs from the built graph. It does not
// compile or run the graph.
func Inspect(backend compute.Backend, c Config, resolution int) (stats Stats, err error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Stats{}, fmt.Errorf("model %s: %w", c.Name, err)
	}
	if resolution == 0 {
		resolution = c.Resolution
	}
	store := model.NewStore()
	prof := &layers.Profile{}
	err = exceptions.TryCatch[error](func() {
		g := NewGraph(backend, "inspect")
		model.SetStore(g, store)
		store.SetTraining(g, false)
		layers.AttachProfile(g, prof)
		x := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, resolution, resolution, c.InChannels))
		c.Build(store.RootScope(), x)
		g.Finalize()
	})
	if err != nil {
		return Stats{}, fmt.Errorf("model %s at %dx%d: %w", c.Name, resolution, resolution, err)
	}
	stats.Resolution = resolution
	stats.Family = c.Family
	stats.Records = prof.Records
	for v := range store.IterVariables() {
		stats.NumVars++
		if v.Trainable {
			stats.Params += int64(v.Shape().Size())
		} else {
			stats.NumBuffers += int64(v.Shape().Size())
		}
	}
	// THOP 2019 overwrites a module's count on every call: a reused module counts only its last record.
	lastOfModule := map[string]int{}
	for i, r := range prof.Records {
		if r.Module != "" {
			lastOfModule[r.Module] = i
		}
	}
	var ops float64
	for i, r := range prof.Records {
		conv, fc, convs := macs(r)
		stats.ConvMACs, stats.FCMACs, stats.ConvLayers = stats.ConvMACs+conv, stats.FCMACs+fc, stats.ConvLayers+convs
		if r.Functional || (r.Module != "" && lastOfModule[r.Module] != i) {
			continue // THOP counts modules only, and a reused module's last call only
		}
		ops += paperOps(r)
	}
	stats.PaperGFLOPs = ops / (1 << 30)
	return stats, nil
}

// macs returns the multiply-accumulates per image that r adds to the convolutions' and to the fully connected
// layers' counts, and the convolutions it adds (1 for a conv record).
func macs(r layers.OpRecord) (conv, fc int64, convs int) {
	switch r.Kind {
	case layers.OpConv:
		return r.MACs, 0, 1
	case layers.OpLinear:
		return 0, r.MACs, 0
	}
	return 0, 0, 0
}

// paperOps is the cost of one recorded op in the paper's convention (THOP 2019, docs/ARCHITECTURE.md, Counting).
func paperOps(r layers.OpRecord) float64 {
	switch r.Kind {
	case layers.OpConv:
		return float64(r.MACs)
	case layers.OpLinear:
		out := int64(r.Out[len(r.Out)-1])
		in := r.MACs / out
		return float64((2*in - 1) * out)
	case layers.OpBatchNorm:
		return float64(4 * r.Elems)
	case layers.OpReLU:
		return float64(r.Elems)
	case layers.OpGAP:
		// AdaptiveAvgPool2d: (kh*kw + 1) per output element.
		return float64(r.Elems + perImage(r.Out))
	case layers.OpMaxPool:
		// MaxPool2d with an int kernel k: k (not k²) per output element.
		return float64(int64(r.Kernel) * perImage(r.Out))
	case layers.OpAvgPool:
		// AvgPool2d with an int kernel k: k + 1 per output element.
		return float64(int64(r.Kernel+1) * perImage(r.Out))
	}
	return 0
}

// perImage is the number of elements of one image of a shape given batch first.
func perImage(dims []int) int64 {
	n := int64(1)
	for _, d := range dims[1:] {
		n *= int64(d)
	}
	return n
}
