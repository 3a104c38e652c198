// Package analysis inspects trained SeqConv models: the poster's "weight visualization" (how much each
// filter of a SeqConv layer uses each of the groups it aggregates, see Utilization and RenderHeatmaps)
// and the training curves of run directories (ReadResults and PlotCurves).
//
// It works on the variables of a model.Store only, for instance one loaded from a run directory with
// train.LoadRun.
package analysis

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/layers"
)

// LayerInfo describes a SeqConv layer found in a store (see SeqConvLayers).
type LayerInfo struct {
	// Name is the layer's scope without the leading "/", e.g. "Stage1/0/LayerA".
	Name string
	// K is the granularity: the width of each filter's output group (the output channels of the
	// filters' first conv).
	K int
	// CIn is the width of the layer input x as far as the weights tell: filter 0's view width. It is the
	// true input width for dense layers and for windowed layers whose window is at least as wide as
	// the input (the authors' default); for a window narrower than the input (Window(g') with
	// g'*k < C_in) it is the window width. The source-group mapping does not depend on it.
	CIn int
	// Filters is the number n of filters (output groups).
	Filters int
	// Dense is true for dense aggregation: filter j reads all CIn + j*K channels of
	// [x, E_0, ..., E_{j-1}]. A single-filter layer is reported as windowed, since then both
	// aggregations coincide; a windowed layer whose window never fills reads what a dense one reads and
	// is reported as dense.
	Dense bool
	// Window is the window width in channels of a windowed layer (0 for dense layers).
	Window int
	// Bottleneck is true when the filters' first conv is the 1x1 "BottleneckLayer" conv, false for
	// plain 3x3 filters.
	Bottleneck bool
	// ViewWidths[j] is the number of channels filter j reads: the last ViewWidths[j] channels of the
	// sequence [x, E_0, ..., E_{j-1}].
	ViewWidths []int
	// WeightPaths[j] is the full path of filter j's first conv weight, [kh, kw, ViewWidths[j], K] (HWIO).
	WeightPaths []string
}

// View returns the channels [lo, hi) of the sequence [x, E_0, ..., E_{j-1}] that filter j reads, by the
// layer's window rule (layers.View) with x taken CIn channels wide.
func (l LayerInfo) View(j int) (lo, hi int) { return layers.View(l.CIn, l.K, l.Window, j) }

// Aggregation returns "dense" or "windowed".
func (l LayerInfo) Aggregation() string {
	if l.Dense {
		return "dense"
	}
	return "windowed"
}

// String describes the layer in one line.
func (l LayerInfo) String() string {
	kind := "plain"
	if l.Bottleneck {
		kind = "bottleneck"
	}
	agg := "dense"
	if !l.Dense {
		agg = fmt.Sprintf("windowed W=%d", l.Window)
	}
	return fmt.Sprintf("%s: %s, %s filters, k=%d, C_in=%d, %d filters", l.Name, agg, kind, l.K, l.CIn, l.Filters)
}

// firstConvRe matches the first conv weight of a SeqConv filter: "<layer>/Filters/<j>/LinearLayer/weight"
// (plain filters) or "<layer>/Filters/<j>/BottleneckLayer/LinearLayer/weight" (bottleneck filters).
var firstConvRe = regexp.MustCompile(`^/(.+)/Filters/(\d+)/(BottleneckLayer/)?LinearLayer/weight$`)

// SeqConvLayers returns the SeqConv layers of store, in the order their variables were created (the
// network's order for a store built by a model or loaded with train.LoadRun). A SeqConv layer is a scope
// holding "Filters/0/..." first conv weights (see LayerInfo.WeightPaths); its granularity, number of
// filters, aggregation and window are read off the weight shapes. A layer whose weights are not
// consistent (a missing filter, a weight that is not [kh, kw, in, K], mixed plain and bottleneck
// filters, view widths that no window of layers.View gives) is left out.
//
// Only variables already in the store are seen: a store with a lazily loading checkpoint attached
// (train.LoadCheckpoint) holds none until the model graph is built, which train.LoadRun does.
func SeqConvLayers(store *model.Store) []LayerInfo {
	type filterVar struct {
		path       string
		bottleneck bool
		dims       []int
	}
	var order []string
	found := map[string]map[int]filterVar{}
	for v := range store.IterVariables() {
		m := firstConvRe.FindStringSubmatch(v.Path())
		if m == nil {
			continue
		}
		j, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		name := m[1]
		if found[name] == nil {
			found[name] = map[int]filterVar{}
			order = append(order, name)
		}
		found[name][j] = filterVar{path: v.Path(), bottleneck: m[3] != "", dims: v.Shape().Dimensions}
	}
	var out []LayerInfo
	for _, name := range order {
		fv := found[name]
		n := len(fv)
		first, ok := fv[0]
		if !ok || len(first.dims) != 4 {
			continue
		}
		info := LayerInfo{Name: name, K: first.dims[3], Filters: n, Bottleneck: first.bottleneck,
			ViewWidths: make([]int, n), WeightPaths: make([]string, n)}
		valid := info.K > 0
		for j := 0; j < n && valid; j++ {
			f, ok := fv[j]
			if !ok || len(f.dims) != 4 || f.dims[3] != info.K || f.dims[2] <= 0 || f.bottleneck != info.Bottleneck {
				valid = false
				break
			}
			info.ViewWidths[j] = f.dims[2]
			info.WeightPaths[j] = f.path
		}
		if !valid || !classify(&info) {
			continue
		}
		out = append(out, info)
	}
	return out
}

// classify sets CIn, Dense and Window from the view widths, the aggregation whose views (layers.View) have
// those widths: dense layers widen by K per filter; windowed ones widen by K per filter until the window is
// full (not at all with the authors' window). It reports whether one does.
func classify(l *LayerInfo) bool {
	l.CIn = l.ViewWidths[0]
	l.Dense, l.Window = l.Filters > 1, 0
	if l.Dense && l.viewsMatch() {
		return true
	}
	l.Dense, l.Window = false, slices.Max(l.ViewWidths)
	return l.viewsMatch()
}

// viewsMatch reports whether filter j's view (see View) is ViewWidths[j] wide for every j.
func (l LayerInfo) viewsMatch() bool {
	for j, w := range l.ViewWidths {
		if lo, hi := l.View(j); hi-lo != w {
			return false
		}
	}
	return true
}
