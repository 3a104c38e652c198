package models

import (
	"slices"
	"testing"

	_ "github.com/gomlx/compute/gobackend"
	"github.com/seqconv/seqconv/engine"
)

// TestSummarizeB22 checks the SeqResNet-B22 rows against the per-component table of docs/ARCHITECTURE.md, Counting.
func TestSummarizeB22(t *testing.T) {
	backend := engine.MustNewForTest()
	c, err := Get("seqresnet-b22")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Inspect(backend, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := Summarize(stats, 0)
	byName := map[string]LayerSummary{}
	var names []string
	for _, r := range rows {
		if _, dup := byName[r.Name]; dup {
			t.Errorf("duplicate row %q", r.Name)
		}
		byName[r.Name] = r
		names = append(names, r.Name)
	}
	wantNames := []string{"Head0", "Head1", "Head2", "ShrinkingLayer", "Stage1/0/LayerA", "Stage1/0/LayerB",
		"Downsample1/ExtensionLayer", "Downsample1/ShrinkingLayer", "Stage2/0/LayerA", "Stage2/0/LayerB",
		"Downsample2/ExtensionLayer", "Downsample2/ShrinkingLayer", "Stage3/0/LayerA", "Stage3/0/LayerB",
		"Stage3/1/LayerA", "Stage3/1/LayerB", "Downsample3/ExtensionLayer", "Downsample3/ShrinkingLayer",
		"Stage4/0/LayerA", "Stage4/0/LayerB", "Blender", "GlobalPool", "Classifier"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("rows:\n%v\nwant\n%v", names, wantNames)
	}
	for _, want := range []struct {
		name   string
		out    string
		params int64
		macs   int64
		desc   string
	}{
		{"Head0", "112x112x32", 928, 10_838_016, "conv 3x3 s2 3->32 groups=1 +BN+ReLU"},
		{"Head2", "112x112x128", 47_616, 590_872_576,
			"SeqConv dense k=32 filters=4 out=128 inputs 32,64,96,128 B(1x1->k, 3x3 k->k g=1)"},
		{"ShrinkingLayer", "56x56x128", 37_120, 115_605_504, "conv 3x3 s2 128->128 groups=4 +BN+ReLU"},
		{"Stage1/0/LayerA", "56x56x128", 53_760, 166_985_728,
			"SeqConv W k=32 filters=4 out=128 window 128 B(1x1->k, 3x3 k->k g=1)"},
		{"Downsample1/ExtensionLayer", "56x56x128", 53_760, 166_985_728, ""},
		{"Downsample1/ShrinkingLayer", "28x28x256", 147_968, 115_605_504, "conv 3x3 s2 256->256 groups=4 +BN+ReLU"},
		{"Stage2/0/LayerB", "28x28x256", 214_016, 166_985_728, ""},
		{"Downsample2/ShrinkingLayer", "14x14x512", 295_936, 57_802_752, ""},
		{"Stage3/1/LayerB", "14x14x512", 559_104, 109_182_976,
			"SeqConv W k=64 filters=8 out=512 window 512 B(1x1->k, 3x3 k->k g=1)"},
		{"Downsample3/ShrinkingLayer", "7x7x1024", 1_181_696, 57_802_752, ""},
		{"Stage4/0/LayerA", "7x7x1024", 2_232_320, 109_182_976, ""},
		{"Blender", "7x7x1024", 1_050_624, 51_380_224, "conv 1x1 s1 1024->1024 groups=1 +BN+ReLU"},
		{"Classifier", "1x1x1000", 1_025_000, 1_024_000, "FC 1024->1000"},
	} {
		r, ok := byName[want.name]
		if !ok {
			t.Errorf("no row %q", want.name)
			continue
		}
		if r.OutString() != want.out || r.Params != want.params || r.MACs() != want.macs {
			t.Errorf("%s: out %s params %d MACs %d, want %s %d %d", want.name, r.OutString(), r.Params, r.MACs(),
				want.out, want.params, want.macs)
		}
		if want.desc != "" && r.Description != want.desc {
			t.Errorf("%s: description %q, want %q", want.name, r.Description, want.desc)
		}
	}
	if r := byName["Classifier"]; r.ConvMACs != 0 || r.FCMACs != 1_024_000 {
		t.Errorf("Classifier: conv MACs %d, FC MACs %d", r.ConvMACs, r.FCMACs)
	}
	total := stats.Total()
	if total.Params != 11_859_656 || total.MACs() != 2_882_732_032 || total.OutString() != "1x1x1000" {
		t.Errorf("total: params %d MACs %d out %s, want 11,859,656 and 2,882,732,032 (docs/ARCHITECTURE.md, Counting)",
			total.Params, total.MACs(), total.OutString())
	}
	assertRowsSum(t, "seqresnet-b22", rows, stats)
}

// assertRowsSum checks that the rows add up to the Inspect totals.
func assertRowsSum(t *testing.T, name string, rows []LayerSummary, stats Stats) {
	t.Helper()
	var sum LayerSummary
	for _, r := range rows {
		sum.Params += r.Params
		sum.ConvMACs += r.ConvMACs
		sum.FCMACs += r.FCMACs
		sum.Convs += r.Convs
	}
	total := stats.Total()
	if sum.Params != total.Params || sum.ConvMACs != total.ConvMACs || sum.FCMACs != total.FCMACs ||
		sum.Convs != total.Convs {
		t.Errorf("%s: rows sum to params %d conv %d FC %d convs %d; totals %d %d %d %d", name, sum.Params,
			sum.ConvMACs, sum.FCMACs, sum.Convs, total.Params, total.ConvMACs, total.FCMACs, total.Convs)
	}
}

// TestSummarizeDepths checks the CIFAR demo rows and the grouping by depth, and that the rows of every
// family add up to the totals.
func TestSummarizeDepths(t *testing.T) {
	backend := engine.MustNewForTest()
	c, err := Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	stats, err := Inspect(backend, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := Summarize(stats, 0)
	want := map[string]struct {
		out          string
		params, macs int64
	}{
		"Init":                       {"32x32x16", 464, 442_368},
		"Head":                       {"32x32x112", 23_744, 23_855_104},
		"Downsample2/ExtensionLayer": {"16x16x112", 41_664, 10_551_296},
		"Downsample2/ShrinkingLayer": {"8x8x336", 49_056, 3_096_576},
		"Stage3/0/LayerB":            {"8x8x336", 162_624, 10_321_920},
		"Classifier":                 {"1x1x10", 3_370, 3_360},
	}
	found := 0
	for _, r := range rows {
		if w, ok := want[r.Name]; ok {
			found++
			if r.OutString() != w.out || r.Params != w.params || r.MACs() != w.macs {
				t.Errorf("%s: %s %d %d, want %s %d %d", r.Name, r.OutString(), r.Params, r.MACs(), w.out, w.params, w.macs)
			}
		}
	}
	if found != len(want) {
		t.Errorf("found %d of the %d expected rows in %v", found, len(want), rows)
	}
	assertRowsSum(t, "demo depth 0", rows, stats)

	// Depth 1: one row per top-level scope; Stage2 is its one block, two SeqConv layers of 224 channels.
	rows1 := Summarize(stats, 1)
	assertRowsSum(t, "demo depth 1", rows1, stats)
	var names []string
	for _, r := range rows1 {
		names = append(names, r.Name)
		if r.Name == "Stage2" && (r.Params != 2*83_328 || r.OutString() != "16x16x224") {
			t.Errorf("Stage2: %s %d params", r.OutString(), r.Params)
		}
	}
	wantNames := []string{"Init", "Head", "Stage1", "Downsample1", "Stage2", "Downsample2", "Stage3", "Blender",
		"GlobalPool", "Classifier"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("depth 1 rows %v, want %v", names, wantNames)
	}
	// A deep grouping splits the filters: every row is one conv unit or less.
	rows9 := Summarize(stats, 9)
	assertRowsSum(t, "demo depth 9", rows9, stats)
	for _, r := range rows9 {
		if r.Convs > 1 {
			t.Errorf("depth 9: row %s has %d convs", r.Name, r.Convs)
		}
	}

	for _, name := range []string{"seqresnext-24", "seqresnet-cifar", "resnet50", "densenet169"} {
		c, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		stats, err := Inspect(backend, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		rows := Summarize(stats, 0)
		assertRowsSum(t, name, rows, stats)
		t.Logf("%s: %d rows", name, len(rows))
	}
}
