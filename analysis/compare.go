package analysis

import (
	"errors"
	"fmt"
	"math"
)

// ComparedLayer is one SeqConv layer present in every variant of a UtilizationComparison.
type ComparedLayer struct {
	// Name, K and Filters describe the layer (the same in every variant).
	Name    string `json:"name"`
	K       int    `json:"k"`
	Filters int    `json:"filters"`
	// Aggregation[v] is "dense" or "windowed" in variant v.
	Aggregation []string `json:"aggregation"`
	// Window[v] is the window in channels of variant v (0 for dense aggregation).
	Window []int `json:"window"`
	// Utilization[v] is the layer's utilization in variant v.
	Utilization []float64 `json:"utilization"`
	// Differs is true when the variants aggregate differently in this layer.
	Differs bool `json:"differs"`
}

// UtilizationComparison compares the per-layer utilization of runs of the same architecture whose
// SeqConv layers aggregate differently (see CompareUtilization).
type UtilizationComparison struct {
	// Variants names the runs compared.
	Variants []string `json:"variants"`
	// Layers are the SeqConv layers, in the first variant's order.
	Layers []ComparedLayer `json:"layers"`
	// MeanAll[v] is variant v's mean utilization over all Layers; MeanDiffering[v] its mean over the
	// layers whose aggregation differs between the variants (NaN if none does), the layers where the
	// choice of aggregation can show.
	MeanAll       []float64 `json:"mean_all"`
	MeanDiffering []float64 `json:"mean_differing"`
	// Differing is the number of layers whose aggregation differs.
	Differing int `json:"differing_layers"`
}

// CompareUtilization matches the heat maps of several runs of one architecture by layer name
// (maps[v] are variant v's heat maps) and averages their utilization. It fails unless every variant
// has the same layers with the same granularity and number of filters.
func CompareUtilization(variants []string, maps [][]*Heatmap) (UtilizationComparison, error) {
	c := UtilizationComparison{Variants: variants}
	if len(variants) == 0 || len(variants) != len(maps) {
		return c, fmt.Errorf("compare utilization: %d variant names for %d sets of heat maps",
			len(variants), len(maps))
	}
	byName := make([]map[string]*Heatmap, len(maps))
	for v, ms := range maps {
		byName[v] = map[string]*Heatmap{}
		for _, h := range ms {
			byName[v][h.Layer.Name] = h
		}
		if len(ms) != len(maps[0]) {
			return c, fmt.Errorf("compare utilization: %s has %d SeqConv layers, %s has %d",
				variants[v], len(ms), variants[0], len(maps[0]))
		}
	}
	if len(maps[0]) == 0 {
		return c, errors.New("compare utilization: no SeqConv layer")
	}
	n := len(variants)
	c.MeanAll, c.MeanDiffering = make([]float64, n), make([]float64, n)
	for _, h0 := range maps[0] {
		l := ComparedLayer{Name: h0.Layer.Name, K: h0.Layer.K, Filters: h0.Layer.Filters,
			Aggregation: make([]string, n), Window: make([]int, n), Utilization: make([]float64, n)}
		for v := range n {
			h, ok := byName[v][l.Name]
			if !ok {
				return c, fmt.Errorf("compare utilization: %s has no layer %s", variants[v], l.Name)
			}
			if h.Layer.K != l.K || h.Layer.Filters != l.Filters {
				return c, fmt.Errorf("compare utilization: layer %s has k=%d, %d filters in %s but k=%d, %d filters in %s",
					l.Name, l.K, l.Filters, variants[0], h.Layer.K, h.Layer.Filters, variants[v])
			}
			l.Aggregation[v], l.Window[v], l.Utilization[v] = h.Layer.Aggregation(), h.Layer.Window, h.Utilization
			if l.Aggregation[v] != l.Aggregation[0] || l.Window[v] != l.Window[0] {
				l.Differs = true
			}
		}
		for v := range n {
			c.MeanAll[v] += l.Utilization[v]
			if l.Differs {
				c.MeanDiffering[v] += l.Utilization[v]
			}
		}
		if l.Differs {
			c.Differing++
		}
		c.Layers = append(c.Layers, l)
	}
	for v := range n {
		c.MeanAll[v] /= float64(len(c.Layers))
		if c.Differing > 0 {
			c.MeanDiffering[v] /= float64(c.Differing)
		} else {
			c.MeanDiffering[v] = math.NaN()
		}
	}
	return c, nil
}
