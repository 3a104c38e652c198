// Package analysis inspects trained SeqConv models: the poster's "weight visualization" (how much each
// filter of a SeqConv layer uses each of the groups it aggregates, see Utilization and RenderHeatmaps)
// and the training curves of run directories (ReadResults and PlotCurves).
//
// It works on the variables of a model.Store only: a store loaded from a checkpoint with LoadRun or
// LoadStore holds every variable with its value without the model graph being built.
package analysis

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/seqconv/seqconv/train"
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
	// aggregations coincide, and so is a windowed layer whose window never fills.
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
// network's order for a store built by a model or loaded with LoadStore). A SeqConv layer is a scope
// holding "Filters/0/..." first conv weights (see LayerInfo.WeightPaths); its granularity, number of
// filters, aggregation and window are read off the weight shapes. A layer whose weights are not
// consistent (a missing filter, a weight that is not [kh, kw, in, K], mixed plain and bottleneck
// filters) is left out.
//
// Only variables already in the store are seen: a store with a lazily loading checkpoint attached
// (train.LoadCheckpoint) holds none until the model graph is built, so use LoadStore or LoadRun.
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
		if !valid {
			continue
		}
		classify(&info)
		out = append(out, info)
	}
	return out
}

// classify sets CIn, Dense and Window from the view widths: dense layers widen by K per filter;
// windowed ones widen by K per filter until the window is full (not at all with the authors' window).
func classify(l *LayerInfo) {
	w0 := l.ViewWidths[0]
	l.CIn = w0
	dense := l.Filters > 1
	for j, w := range l.ViewWidths {
		if w != w0+j*l.K {
			dense = false
		}
	}
	l.Dense = dense
	if !dense {
		l.Window = slices.Max(l.ViewWidths)
	}
}

// LoadRun loads the weights of a run directory written by train.Run (or "seqconv train") into a
// fresh store: the latest checkpoint (runDir/checkpoint), or with best the checkpoint of the best
// epoch (runDir/best). See LoadStore.
func LoadRun(runDir string, best bool) (*model.Store, error) {
	fi, err := os.Stat(runDir)
	if err != nil {
		return nil, fmt.Errorf("run directory %s: %w", runDir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("run directory %s is not a directory", runDir)
	}
	sub := train.LatestDir
	if best {
		sub = train.BestDir
	}
	dir := filepath.Join(runDir, sub)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("run directory %s has no checkpoint directory %s", runDir, sub)
	}
	return LoadStore(dir)
}

// LoadStore loads the latest GoMLX checkpoint in dir (with train.LoadCheckpoint) into a fresh
// model.NewStore and materializes every variable it holds, in the order they were saved, so that
// the store's variables are there with their values without building the model graph.
func LoadStore(dir string) (*model.Store, error) {
	store := model.NewStore()
	h, err := train.LoadCheckpoint(store, dir)
	if err != nil {
		return nil, err
	}
	// GetVariable consumes the handler's pending values: list the keys first, in the saved order.
	var paths []string
	seen := map[string]bool{}
	for _, p := range savedVariableOrder(h) {
		if _, ok := h.LoadedVariables()[variableKeyPrefix+p]; ok && !seen[p] {
			seen[p] = true
			paths = append(paths, p)
		}
	}
	var rest []string
	for key := range h.LoadedVariables() {
		if p, ok := strings.CutPrefix(key, variableKeyPrefix); ok && !seen[p] {
			rest = append(rest, p)
		}
	}
	slices.SortFunc(rest, naturalCompare)
	paths = append(paths, rest...)
	for _, p := range paths {
		if store.GetVariable(p) == nil {
			return nil, fmt.Errorf("analysis: loading variable %s from %s failed", p, dir)
		}
	}
	return store, nil
}

// variableKeyPrefix prefixes the variable paths in a GoMLX checkpoint (see checkpoint.Handler.LoadedVariables).
const variableKeyPrefix = "var:"

// savedVariableOrder returns the variable paths of h's latest checkpoint file in the order they were
// saved (the store's creation order), or nil if that cannot be read.
func savedVariableOrder(h *checkpoint.Handler) []string {
	names, err := h.ListCheckpoints()
	if err != nil || len(names) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(h.Dir(), names[len(names)-1]+checkpoint.JsonNameSuffix))
	if err != nil {
		return nil
	}
	var meta struct {
		Variables []struct{ ParameterName string }
	}
	if json.Unmarshal(b, &meta) != nil {
		return nil
	}
	paths := make([]string, 0, len(meta.Variables))
	for _, v := range meta.Variables {
		if p, ok := strings.CutPrefix(v.ParameterName, variableKeyPrefix); ok {
			paths = append(paths, p)
		}
	}
	return paths
}

// naturalCompare compares paths with runs of digits compared as numbers ("Stage1/2" < "Stage1/10").
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && i < 18 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
