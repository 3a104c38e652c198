package analysis

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"

	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Heatmap is the poster's weight visualization of one SeqConv layer: for each target group (filter j,
// a row) and each source group it aggregates (a column), the L1 norm of the weights of filter j's
// first conv that read that group, normalized by the layer's maximum.
//
// Source groups are numbered relative to the layer's first new group: E_i (filter i's output) is
// group i, and the input x is split into groups of K channels counted back from its end, -1 being
// its last K channels, -2 the K before them, and so on (if C_in is not a multiple of K, the first
// input group is narrower). Filter j reads groups up to j-1.
type Heatmap struct {
	// Layer is the layer the map describes.
	Layer LayerInfo
	// FirstGroup is the source group of column 0 (negative: an input group); column c is source group
	// FirstGroup + c, and the last column is group Filters-2 (or -1 for a single filter).
	FirstGroup int
	// L1[j][c] is the sum over kh, kw, the group's input channels and the K output channels of the
	// absolute values of filter j's first conv weights that read source group FirstGroup + c; NaN
	// where filter j does not read that group (outside its window, or a group after its own).
	L1 [][]float64
	// Values[j][c] is L1[j][c] / Max, in [0, 1]; NaN where L1 is.
	Values [][]float64
	// Max is the largest L1 value of the layer (the normalization; Values are 0 if it is 0).
	Max float64
	// Utilization is the mean of Values over the cells that exist: the layer's overall use of the
	// groups it aggregates.
	Utilization float64
	// GroupMean[c] is the mean of Values[.][c] over the filters that read source group FirstGroup + c.
	GroupMean []float64
}

// Rows returns the number of target groups (filters).
func (h *Heatmap) Rows() int { return len(h.Values) }

// Cols returns the number of source groups.
func (h *Heatmap) Cols() int { return len(h.GroupMean) }

// SourceGroup returns the source group of column c.
func (h *Heatmap) SourceGroup(c int) int { return h.FirstGroup + c }

// Exists reports whether filter j reads the source group of column c.
func (h *Heatmap) Exists(j, c int) bool { return !math.IsNaN(h.L1[j][c]) }

// floorDiv is a / b rounded towards -inf (b > 0).
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// sourceGroup returns the source group (relative to the layer's first new group) of channel s of the
// sequence [x, E_0, ..., E_{j-1}] of a layer whose input x is cin channels wide and whose granularity is k:
// floor((s - cin) / k). E_i's channels are group i, x's are counted back from its end.
func sourceGroup(cin, k, s int) int { return floorDiv(s-cin, k) }

// Utilization computes the weight visualization of layer (found by SeqConvLayers) from the values of
// its first conv weights in store. It fails if a weight is missing or its shape does not match layer.
func Utilization(store *model.Store, layer LayerInfo) (*Heatmap, error) {
	n, k := layer.Filters, layer.K
	if n <= 0 || k <= 0 || len(layer.ViewWidths) != n || len(layer.WeightPaths) != n {
		return nil, fmt.Errorf("layer %s: inconsistent description (%d filters, k=%d, %d widths, %d weights)",
			layer.Name, n, k, len(layer.ViewWidths), len(layer.WeightPaths))
	}
	first, last := 0, -1
	for j, w := range layer.ViewWidths {
		if w <= 0 {
			return nil, fmt.Errorf("layer %s: filter %d reads %d channels", layer.Name, j, w)
		}
		lo, _ := layer.View(j)
		first = min(first, sourceGroup(layer.CIn, k, lo))
		last = max(last, j-1)
	}
	cols := last - first + 1
	h := &Heatmap{Layer: layer, FirstGroup: first, L1: make([][]float64, n), Values: make([][]float64, n),
		GroupMean: make([]float64, cols)}
	for j := range n {
		row := make([]float64, cols)
		for c := range row {
			row[c] = math.NaN()
		}
		w := layer.ViewWidths[j]
		v := store.GetVariable(layer.WeightPaths[j])
		if v == nil {
			return nil, fmt.Errorf("layer %s: no variable %s", layer.Name, layer.WeightPaths[j])
		}
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("layer %s: reading %s: %w", layer.Name, layer.WeightPaths[j], err)
		}
		dims := t.Shape().Dimensions
		if len(dims) != 4 || dims[2] != w || dims[3] != k {
			return nil, fmt.Errorf("layer %s: %s has shape %s, want [kh, kw, %d, %d]", layer.Name,
				layer.WeightPaths[j], t.Shape(), w, k)
		}
		lo, hi := layer.View(j)
		if hi-lo != w {
			return nil, fmt.Errorf("layer %s: filter %d reads %d channels, but its %s window over C_in = %d gives "+
				"[%d, %d)", layer.Name, j, w, layer.Aggregation(), layer.CIn, lo, hi)
		}
		abs, err := absValues(t)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %s: %w", layer.Name, layer.WeightPaths[j], err)
		}
		// HWIO: element ((u*kw + v)*in + c)*out + o.
		for i, a := range abs {
			c := (i / k) % w
			col := sourceGroup(layer.CIn, k, lo+c) - first
			if math.IsNaN(row[col]) {
				row[col] = 0
			}
			row[col] += a
		}
		h.L1[j] = row
		for _, x := range row {
			if !math.IsNaN(x) && x > h.Max {
				h.Max = x
			}
		}
	}
	counts := make([]int, cols)
	var sum float64
	var cells int
	for j := range n {
		h.Values[j] = make([]float64, cols)
		for c, x := range h.L1[j] {
			switch {
			case math.IsNaN(x):
				h.Values[j][c] = math.NaN()
				continue
			case h.Max > 0:
				h.Values[j][c] = x / h.Max
			}
			sum += h.Values[j][c]
			cells++
			h.GroupMean[c] += h.Values[j][c]
			counts[c]++
		}
	}
	for c := range cols {
		if counts[c] > 0 {
			h.GroupMean[c] /= float64(counts[c])
		} else {
			h.GroupMean[c] = math.NaN()
		}
	}
	if cells > 0 {
		h.Utilization = sum / float64(cells)
	}
	return h, nil
}

// absValues returns the absolute values of t's elements as float64.
func absValues(t *tensors.Tensor) (out []float64, err error) {
	err = t.ConstFlatData(func(flat any) {
		switch s := flat.(type) {
		case []float32:
			out = make([]float64, len(s))
			for i, x := range s {
				out[i] = math.Abs(float64(x))
			}
		case []float64:
			out = make([]float64, len(s))
			for i, x := range s {
				out[i] = math.Abs(x)
			}
		default:
			rv := reflect.ValueOf(flat)
			if rv.Kind() != reflect.Slice {
				return
			}
			out = make([]float64, rv.Len())
			for i := range out {
				out[i] = math.Abs(shapes.ConvertTo[float64](rv.Index(i).Interface()))
			}
		}
	})
	if err == nil && out == nil && t.Shape().Size() > 0 {
		err = fmt.Errorf("unsupported dtype %s", t.DType())
	}
	return out, err
}

// CSVHeader is the header of WriteCSV's output.
var CSVHeader = []string{"layer", "aggregation", "k", "filter", "source_group", "l1", "normalized"}

// WriteCSV writes the matrices of maps in long form, one row per existing cell (a filter and a source
// group it reads): the layer name, its aggregation, k, the filter (target group), the source group
// (relative to the layer's first new group), the raw L1 norm and the normalized value.
func WriteCSV(maps []*Heatmap, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	for _, h := range maps {
		for j := range h.Rows() {
			for c := range h.Cols() {
				if !h.Exists(j, c) {
					continue
				}
				row := []string{h.Layer.Name, h.Layer.Aggregation(), strconv.Itoa(h.Layer.K), strconv.Itoa(j),
					strconv.Itoa(h.SourceGroup(c)), f(h.L1[j][c]), f(h.Values[j][c])}
				if err := cw.Write(row); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}
