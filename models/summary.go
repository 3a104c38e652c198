package models

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/seqconv/seqconv/layers"
)

// LayerSummary is one row of a per-layer complexity report (see Summarize): the ops recorded under one
// scope prefix while the model graph was built.
type LayerSummary struct {
	// Name is the scope path of the component without the leading "/", e.g. "Stage1/0/LayerA",
	// "Downsample1/ShrinkingLayer" or "Classifier".
	Name string `json:"name"`
	// Out is the component's output shape for one image: [H, W, C] for feature maps, [C] for the
	// pooled features and the logits. A SeqConv layer's C is the sum of its filters' outputs.
	Out []int `json:"out"`
	// Params are the trainable parameters owned by the component's ops (conv and FC weights, FC
	// bias, BN affine).
	Params int64 `json:"params"`
	// ConvMACs and FCMACs are the multiply-accumulates per image of its convolutions and of its
	// fully connected layers.
	ConvMACs int64 `json:"conv_macs"`
	FCMACs   int64 `json:"fc_macs"`
	// Convs is the number of convolutions of the component.
	Convs int `json:"convs"`
	// Description describes the component in the style of docs/ARCHITECTURE.md, Counting, e.g.
	// "conv 3x3 s2 3->32 groups=1 +BN+ReLU" or "SeqConv W k=32 filters=4 out=128 window 128 B(1x1->k, 3x3 k->k g=1)".
	Description string `json:"description"`
}

// MACs returns conv + FC multiply-accumulates per image.
func (l LayerSummary) MACs() int64 { return l.ConvMACs + l.FCMACs }

// OutString formats Out as "56x56x128" (a feature map) or "1x1x1000" (a vector).
func (l LayerSummary) OutString() string {
	dims := l.Out
	if len(dims) == 1 {
		dims = []int{1, 1, dims[0]}
	}
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = strconv.Itoa(d)
	}
	return strings.Join(parts, "x")
}

// Total returns the "total" row of a complexity report: the model's trainable parameters and MACs
// (Summarize's rows add up to it), its logits shape and number of convolutions.
func (s Stats) Total() LayerSummary {
	t := LayerSummary{Name: "total", Params: s.Params, ConvMACs: s.ConvMACs, FCMACs: s.FCMACs,
		Convs: s.ConvLayers}
	if n := len(s.Records); n > 0 {
		t.Out = append([]int(nil), s.Records[n-1].Out[1:]...)
	}
	return t
}

// Summarize aggregates the op records of stats into one row per component, in the order in which the
// components were built. Records are grouped by their scope path truncated to its first depth elements;
// depth 0 groups at the component level (docs/ARCHITECTURE.md, Counting): one row per SeqConv layer ("Head2",
// "Stage1/0/LayerA", "Downsample1/ExtensionLayer"), per conv unit ("Head0", "Downsample1/ShrinkingLayer",
// "Blender") and per other op ("GlobalPool", "Classifier"); for the torchvision baselines one row per
// residual block ("layer1/0"), dense layer or transition, and per stem op. The rows' params and MACs add
// up to stats' totals (see Stats.Total).
func Summarize(stats Stats, depth int) []LayerSummary {
	type group struct {
		name    string
		records []layers.OpRecord
	}
	var groups []*group
	byName := map[string]*group{}
	for _, r := range stats.Records {
		name := groupName(r.Scope, depth)
		g, ok := byName[name]
		if !ok {
			g = &group{name: name}
			byName[name] = g
			groups = append(groups, g)
		}
		g.records = append(g.records, r)
	}
	rows := make([]LayerSummary, 0, len(groups))
	for _, g := range groups {
		row := LayerSummary{Name: g.name}
		for _, r := range g.records {
			conv, fc, convs := macs(r)
			row.Params, row.ConvMACs, row.FCMACs, row.Convs = row.Params+r.Params, row.ConvMACs+conv, row.FCMACs+fc,
				row.Convs+convs
		}
		row.Out = groupOutput(g.records)
		row.Description = describe(g.name, g.records)
		rows = append(rows, row)
	}
	return rows
}

// scopeElems splits a scope path into its elements ("/Stage1/0/LayerA" -> [Stage1 0 LayerA]).
func scopeElems(scope string) []string {
	scope = strings.Trim(scope, "/")
	if scope == "" {
		return nil
	}
	return strings.Split(scope, "/")
}

// groupName is the row name of a record's scope: its first depth elements, or with depth 0 its
// component (see unitElems).
func groupName(scope string, depth int) string {
	elems := scopeElems(scope)
	if depth > 0 {
		elems = elems[:min(depth, len(elems))]
	} else {
		elems = unitElems(elems)
	}
	if len(elems) == 0 {
		return "(root)"
	}
	return strings.Join(elems, "/")
}

// Scope elements that name the parts of SeqConv layers and conv units.
const (
	filtersScope   = "Filters"
	convScope      = "LinearLayer"
	batchNormScope = "BatchNormalizationLayer"
)

// unitElems truncates a record's scope elements to its component: the SeqConv layer holding "Filters", the
// conv unit holding "LinearLayer" and "BatchNormalizationLayer"; for the baselines, the residual block
// ("layer1/0": the path up to its first index), the dense layer or transition (the op's parent module when
// nested two levels deep), or the stem op itself.
func unitElems(elems []string) []string {
	for i, e := range elems {
		if e == filtersScope {
			return elems[:i]
		}
	}
	n := len(elems)
	if n > 0 && (elems[n-1] == convScope || elems[n-1] == batchNormScope) {
		return elems[:n-1]
	}
	for i := 1; i < n-1; i++ {
		if isIndex(elems[i]) {
			return elems[:i+1]
		}
	}
	if n >= 3 {
		return elems[:n-1]
	}
	return elems
}

// isIndex reports whether a scope element is a list index ("0", "12").
func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// filterOf returns the component and the filter index of a record inside a SeqConv layer's filters, or
// ok=false.
func filterOf(scope string) (unit string, index string, ok bool) {
	elems := scopeElems(scope)
	for i, e := range elems {
		if e == filtersScope && i+1 < len(elems) {
			return strings.Join(elems[:i], "/"), elems[i+1], true
		}
	}
	return "", "", false
}

// groupOutput is the output shape (per image) of a group of records: that of its last component. For a
// SeqConv layer (or several of its filters), whose output concatenates its filters' outputs, it sums the
// channels of the last record of each filter.
func groupOutput(records []layers.OpRecord) []int {
	if len(records) == 0 {
		return nil
	}
	last := records[len(records)-1]
	out := append([]int(nil), last.Out[1:]...)
	unit, _, ok := filterOf(last.Scope)
	if !ok || len(out) == 0 {
		return out
	}
	lastOfFilter := map[string]int{}
	var order []string
	for _, r := range records {
		u, j, ok := filterOf(r.Scope)
		if !ok || u != unit || len(r.Out) != len(last.Out) {
			continue
		}
		if _, seen := lastOfFilter[j]; !seen {
			order = append(order, j)
		}
		lastOfFilter[j] = r.Out[len(r.Out)-1]
	}
	channels := 0
	for _, j := range order {
		channels += lastOfFilter[j]
	}
	out[len(out)-1] = channels
	return out
}

// convDetail is a conv record's Detail parsed ("conv 3x3 s2 3->32 groups=1").
type convDetail struct {
	kernel, stride, in, out, groups int
}

func parseConvDetail(detail string) (convDetail, bool) {
	var d convDetail
	var kw int
	_, err := fmt.Sscanf(detail, "conv %dx%d s%d %d->%d groups=%d", &d.kernel, &kw, &d.stride, &d.in, &d.out, &d.groups)
	return d, err == nil
}

// describe describes the group of records named name in the style of docs/ARCHITECTURE.md, Counting.
func describe(name string, records []layers.OpRecord) string {
	counts := map[layers.OpKind]int{}
	for _, r := range records {
		counts[r.Kind]++
	}
	if s, ok := describeSeqConv(name, records); ok {
		return s
	}
	if len(records) == 1 || (counts[layers.OpConv] == 1 && len(records) == counts[layers.OpConv]+
		counts[layers.OpBatchNorm]+counts[layers.OpReLU] && counts[layers.OpBatchNorm] <= 1) {
		var b strings.Builder
		for _, r := range records {
			switch r.Kind {
			case layers.OpConv:
				b.WriteString(r.Detail)
			case layers.OpBatchNorm:
				if counts[layers.OpConv] > 0 {
					b.WriteString(" +BN")
				} else {
					b.WriteString(r.Detail)
				}
			case layers.OpReLU:
				if counts[layers.OpConv] > 0 {
					b.WriteString("+ReLU")
				} else {
					b.WriteString(r.Detail)
				}
			case layers.OpLinear:
				out := int64(r.Out[len(r.Out)-1])
				fmt.Fprintf(&b, "FC %d->%d", r.MACs/out, out)
			default:
				b.WriteString(r.Detail)
			}
		}
		return b.String()
	}
	var parts []string
	for _, k := range []layers.OpKind{layers.OpConv, layers.OpLinear, layers.OpBatchNorm, layers.OpReLU,
		layers.OpMaxPool, layers.OpAvgPool, layers.OpGAP} {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	return strings.Join(parts, ", ")
}

// describeSeqConv describes the records of one whole SeqConv layer (a group named after the layer or its
// "Filters"): "SeqConv W k=32 filters=4 out=128 window 128 B(1x1->k, 3x3 k->k g=1)" (windowed, bottleneck
// filters) or "SeqConv dense k=16 filters=7 out=112 inputs 16,32,...,112 3x3" (dense, plain filters). ok is
// false for other groups.
func describeSeqConv(name string, records []layers.OpRecord) (string, bool) {
	unit, _, ok := filterOf(records[0].Scope)
	if !ok || (name != unit && name != unit+"/"+filtersScope) {
		return "", false
	}
	type filter struct{ convs []convDetail }
	filters := map[string]*filter{}
	var order []string
	for _, r := range records {
		u, j, ok := filterOf(r.Scope)
		if !ok || u != unit {
			return "", false
		}
		f, seen := filters[j]
		if !seen {
			f = &filter{}
			filters[j] = f
			order = append(order, j)
		}
		if r.Kind == layers.OpConv {
			d, ok := parseConvDetail(r.Detail)
			if !ok {
				return "", false
			}
			f.convs = append(f.convs, d)
		}
	}
	first := filters[order[0]]
	nConvs := len(first.convs)
	if nConvs < 1 || nConvs > 2 {
		return "", false
	}
	k := first.convs[nConvs-1].out
	var inputs []int
	for _, j := range order {
		f := filters[j]
		if len(f.convs) != nConvs || f.convs[nConvs-1].out != k {
			return "", false
		}
		inputs = append(inputs, f.convs[0].in)
	}
	windowed := true
	for _, in := range inputs {
		windowed = windowed && in == inputs[0]
	}
	var b strings.Builder
	if windowed {
		fmt.Fprintf(&b, "SeqConv W k=%d filters=%d out=%d window %d", k, len(order), k*len(order), inputs[0])
	} else {
		fmt.Fprintf(&b, "SeqConv dense k=%d filters=%d out=%d inputs %s", k, len(order), k*len(order),
			intsString(inputs))
	}
	if nConvs == 2 {
		fmt.Fprintf(&b, " B(1x1->k, 3x3 k->k g=%d)", first.convs[1].groups)
	} else {
		b.WriteString(" 3x3")
	}
	return b.String(), true
}

// intsString formats a list of ints as "32,64,96,128", or "32,64,...,256" when longer than 5.
func intsString(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	if len(s) > 5 {
		s = []string{s[0], s[1], "...", s[len(s)-1]}
	}
	return strings.Join(s, ",")
}
