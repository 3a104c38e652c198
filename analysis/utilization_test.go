package analysis

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

var (
	backendOnce sync.Once
	backend     compute.Backend
)

func testBackend() compute.Backend {
	backendOnce.Do(func() { backend = engine.MustNewForTest() })
	return backend
}

// seqLayer describes a SeqConv layer to build with layers.SeqConv.
type seqLayer struct {
	cin, cout, k int
	dense        bool
	bottleneck   bool
	windowGroups int
}

// buildSeqConv builds the layer under scope "Net/Layer" in a fresh store by running it once on a
// 1x3x3xcin input, so that its variables exist.
func buildSeqConv(t *testing.T, l seqLayer) *model.Store {
	t.Helper()
	store := model.NewStore()
	exec, err := model.NewExec(testBackend(), store, func(scope *model.Scope, x *Node) *Node {
		store.SetTraining(x.Graph(), false)
		b := layers.SeqConv(scope.In("Net").In("Layer"), x).Granularity(l.k).Channels(l.cout).
			Bottleneck(l.bottleneck).Window(l.windowGroups)
		if l.dense {
			b.Dense()
		}
		_, act := b.Done()
		return act
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Call(tensors.FromShape(shapes.Make(dtypes.Float32, 1, 3, 3, l.cin))); err != nil {
		t.Fatal(err)
	}
	return store
}

// setKnownWeights overwrites filter j's first conv weight w[u][v][c][o] with (-1)^(u+v+o) (1+c) (1+j),
// so that the L1 norm of the weights reading view channels {c, c+1} (k = 2) is
// kh*kw*2*(1+j)*(2c+3).
func setKnownWeights(t *testing.T, store *model.Store, info LayerInfo) {
	t.Helper()
	for j, path := range info.WeightPaths {
		v := store.GetVariable(path)
		dims := v.Shape().Dimensions
		kh, kw, in, out := dims[0], dims[1], dims[2], dims[3]
		flat := make([]float32, 0, kh*kw*in*out)
		for u := range kh {
			for w := range kw {
				for c := range in {
					for o := range out {
						x := float32((1 + c) * (1 + j))
						if (u+w+o)%2 == 1 {
							x = -x
						}
						flat = append(flat, x)
					}
				}
			}
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(flat, dims...)); err != nil {
			t.Fatal(err)
		}
	}
}

const nan = -1.0 // marks a cell that does not exist in the expected matrices below.

func checkMatrix(t *testing.T, what string, got [][]float64, want [][]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for j := range want {
		if len(got[j]) != len(want[j]) {
			t.Fatalf("%s row %d: %d columns, want %d", what, j, len(got[j]), len(want[j]))
		}
		for c, w := range want[j] {
			g := got[j][c]
			if w == nan {
				if !math.IsNaN(g) {
					t.Errorf("%s[%d][%d] = %g, want NaN (not read)", what, j, c, g)
				}
			} else if math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Errorf("%s[%d][%d] = %.10g, want %.10g", what, j, c, g, w)
			}
		}
	}
}

func onlyLayer(t *testing.T, store *model.Store) LayerInfo {
	t.Helper()
	infos := SeqConvLayers(store)
	if len(infos) != 1 {
		t.Fatalf("SeqConvLayers found %d layers, want 1: %v", len(infos), infos)
	}
	return infos[0]
}

// TestUtilizationWindowed: the authors' window (W = C_in = 4), k = 2, 3 plain 3x3 filters. Filter 0
// reads x (groups -2, -1), filter 1 reads x[2:4], E_0 (groups -1, 0), filter 2 reads E_0, E_1 (0, 1).
// L1 = 9*2*(1+j)*(2c+3) for view channels {c, c+1}: 54, 126 / 108, 252 / 162, 378; max 378.
func TestUtilizationWindowed(t *testing.T) {
	store := buildSeqConv(t, seqLayer{cin: 4, cout: 6, k: 2})
	info := onlyLayer(t, store)
	if info.Name != "Net/Layer" || info.K != 2 || info.CIn != 4 || info.Filters != 3 || info.Dense ||
		info.Window != 4 || info.Bottleneck || !slices.Equal(info.ViewWidths, []int{4, 4, 4}) ||
		info.WeightPaths[2] != "/Net/Layer/Filters/2/LinearLayer/weight" {
		t.Fatalf("layer info: %+v", info)
	}
	setKnownWeights(t, store, info)
	h, err := Utilization(store, info)
	if err != nil {
		t.Fatal(err)
	}
	if h.FirstGroup != -2 || h.Cols() != 4 || h.Rows() != 3 {
		t.Fatalf("first group %d, %dx%d, want -2, 3x4", h.FirstGroup, h.Rows(), h.Cols())
	}
	checkMatrix(t, "L1", h.L1, [][]float64{
		{54, 126, nan, nan},
		{nan, 108, 252, nan},
		{nan, nan, 162, 378},
	})
	checkMatrix(t, "Values", h.Values, [][]float64{
		{1.0 / 7, 1.0 / 3, nan, nan},
		{nan, 2.0 / 7, 2.0 / 3, nan},
		{nan, nan, 3.0 / 7, 1},
	})
	checkMatrix(t, "GroupMean", [][]float64{h.GroupMean}, [][]float64{{1.0 / 7, 13.0 / 42, 23.0 / 42, 1}})
	if h.Max != 378 || math.Abs(h.Utilization-10.0/21) > 1e-12 {
		t.Errorf("max %g, utilization %.12g; want 378, 10/21", h.Max, h.Utilization)
	}
}

// TestUtilizationDense: dense aggregation, C_in = 4, k = 2, 3 bottleneck filters (1x1) reading 4, 6 and 8
// channels: groups -2..-1, -2..0, -2..1. L1 = 2*(1+j)*(2c+3): 6, 14 / 12, 28, 44 / 18, 42, 66, 90.
func TestUtilizationDense(t *testing.T) {
	store := buildSeqConv(t, seqLayer{cin: 4, cout: 6, k: 2, dense: true, bottleneck: true})
	info := onlyLayer(t, store)
	if info.K != 2 || info.CIn != 4 || info.Filters != 3 || !info.Dense || info.Window != 0 || !info.Bottleneck ||
		!slices.Equal(info.ViewWidths, []int{4, 6, 8}) ||
		info.WeightPaths[0] != "/Net/Layer/Filters/0/BottleneckLayer/LinearLayer/weight" {
		t.Fatalf("layer info: %+v", info)
	}
	setKnownWeights(t, store, info)
	h, err := Utilization(store, info)
	if err != nil {
		t.Fatal(err)
	}
	if h.FirstGroup != -2 {
		t.Errorf("first group %d, want -2", h.FirstGroup)
	}
	checkMatrix(t, "L1", h.L1, [][]float64{
		{6, 14, nan, nan},
		{12, 28, 44, nan},
		{18, 42, 66, 90},
	})
	checkMatrix(t, "Values", h.Values, [][]float64{
		{1.0 / 15, 7.0 / 45, nan, nan},
		{2.0 / 15, 14.0 / 45, 22.0 / 45, nan},
		{1.0 / 5, 7.0 / 15, 11.0 / 15, 1},
	})
	// (3+7+6+14+22+9+21+33+45)/45 / 9 = 160/405.
	if math.Abs(h.Utilization-160.0/405) > 1e-12 {
		t.Errorf("utilization %.12g, want 160/405", h.Utilization)
	}
	checkMatrix(t, "GroupMean", [][]float64{h.GroupMean},
		[][]float64{{(3.0 + 6 + 9) / 135, (7.0 + 14 + 21) / 135, (22.0 + 33) / 90, 1}})

	// CSV: one row per existing cell.
	var buf bytes.Buffer
	if err := WriteCSV([]*Heatmap{h}, &buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+9 || !slices.Equal(rows[0], CSVHeader) ||
		!slices.Equal(rows[9], []string{"Net/Layer", "dense", "2", "2", "1", "90", "1"}) ||
		!slices.Equal(rows[1], []string{"Net/Layer", "dense", "2", "0", "-2", "6", "0.066666667"}) {
		t.Errorf("CSV:\n%s", rowsString(rows))
	}
}

func rowsString(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, ",") + "\n")
	}
	return b.String()
}

// TestUtilizationWindows: free windows g'. With W = 6 > C_in = 4 (g' = 3, k = 2) the views widen
// 4, 6, 6, 6; with W = 4 < C_in = 6 (g' = 2) they are 4, 4, 4 and filter 0 reads x's last 2 groups only.
func TestUtilizationWindows(t *testing.T) {
	t.Run("wider than the input", func(t *testing.T) {
		store := buildSeqConv(t, seqLayer{cin: 4, cout: 8, k: 2, bottleneck: true, windowGroups: 3})
		info := onlyLayer(t, store)
		if info.Dense || info.Window != 6 || info.CIn != 4 || !slices.Equal(info.ViewWidths, []int{4, 6, 6, 6}) {
			t.Fatalf("layer info: %+v", info)
		}
		setKnownWeights(t, store, info)
		h, err := Utilization(store, info)
		if err != nil {
			t.Fatal(err)
		}
		// L1 = 2*(1+j)*(2c+3); filter 2 reads groups -1..1, filter 3 groups 0..2.
		checkMatrix(t, "L1", h.L1, [][]float64{
			{6, 14, nan, nan, nan},
			{12, 28, 44, nan, nan},
			{nan, 18, 42, 66, nan},
			{nan, nan, 24, 56, 88},
		})
	})
	t.Run("narrower than the input", func(t *testing.T) {
		store := buildSeqConv(t, seqLayer{cin: 6, cout: 6, k: 2, bottleneck: true, windowGroups: 2})
		info := onlyLayer(t, store)
		if info.Dense || info.Window != 4 || !slices.Equal(info.ViewWidths, []int{4, 4, 4}) {
			t.Fatalf("layer info: %+v", info)
		}
		setKnownWeights(t, store, info)
		h, err := Utilization(store, info)
		if err != nil {
			t.Fatal(err)
		}
		checkMatrix(t, "L1", h.L1, [][]float64{
			{6, 14, nan, nan},
			{nan, 12, 28, nan},
			{nan, nan, 18, 42},
		})
		if h.FirstGroup != -2 {
			t.Errorf("first group %d, want -2", h.FirstGroup)
		}
	})
}

func TestUtilizationErrors(t *testing.T) {
	store := buildSeqConv(t, seqLayer{cin: 4, cout: 6, k: 2})
	info := onlyLayer(t, store)
	bad := info
	bad.ViewWidths = []int{4, 6, 8}
	if _, err := Utilization(store, bad); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong widths: err %v", err)
	}
	bad = info
	bad.WeightPaths = []string{info.WeightPaths[0], "/nope", info.WeightPaths[2]}
	if _, err := Utilization(store, bad); err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Errorf("missing weight: err %v", err)
	}
	bad = info
	bad.Filters = 5
	if _, err := Utilization(store, bad); err == nil {
		t.Errorf("inconsistent description accepted")
	}
	// A layer with a missing filter is not reported.
	if err := store.DeleteVariable(info.WeightPaths[1]); err != nil {
		t.Fatal(err)
	}
	if got := SeqConvLayers(store); len(got) != 0 {
		t.Errorf("layer with a missing filter reported: %v", got)
	}
}

// TestSourceGroup checks the source group of channel c of filter j's view of w channels. The view is the
// sequence's last w channels and the groups do not depend on C_in: x is taken w channels wide.
func TestSourceGroup(t *testing.T) {
	for _, tc := range []struct{ j, w, c, k, want int }{
		{0, 4, 0, 2, -2}, {0, 4, 3, 2, -1}, {2, 4, 0, 2, 0}, {2, 4, 3, 2, 1},
		{0, 5, 0, 2, -3}, {0, 5, 1, 2, -2}, // C_in = 5, k = 2: the first input group is 1 channel wide.
		{1, 7, 4, 2, -1}, {1, 7, 5, 2, 0},
	} {
		lo, _ := layers.View(tc.w, tc.k, tc.w, tc.j)
		if got := sourceGroup(tc.w, tc.k, lo+tc.c); got != tc.want {
			t.Errorf("sourceGroup(j=%d, w=%d, c=%d, k=%d) = %d, want %d", tc.j, tc.w, tc.c, tc.k, got, tc.want)
		}
	}
}

// tinyModelJSON is a small SeqResNet-B for 8x8 grey images with k = 4: a dense Head layer (16 -> 16), one
// residual block of two windowed layers (16 -> 16) and two downsampling extension layers.
const tinyModelJSON = `{"family":"seqresnet-cifar","variant":"b","classes":4,"in_channels":1,"resolution":8,
"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":1,"granularity":4,"drop_rate":0}`

// buildTinyModel builds the tiny model in a fresh store and returns it with its config.
func buildTinyModel(t *testing.T) (*model.Store, models.Config) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny.json")
	if err := writeFile(path, tinyModelJSON); err != nil {
		t.Fatal(err)
	}
	cfg, err := models.Get(path)
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	exec, err := model.NewExec(testBackend(), store, func(scope *model.Scope, x *Node) *Node {
		store.SetTraining(x.Graph(), false)
		return cfg.Build(scope, x)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Call(tensors.FromShape(shapes.Make(dtypes.Float32, 1, 8, 8, 1))); err != nil {
		t.Fatal(err)
	}
	return store, cfg
}

// TestModelLayersAndCheckpoint finds the SeqConv layers of a real model, writes it as a run directory, loads it
// with train.LoadRun into a fresh store and checks the same layers and heat maps come back.
func TestModelLayersAndCheckpoint(t *testing.T) {
	store, cfg := buildTinyModel(t)
	infos := SeqConvLayers(store)
	var desc []string
	for _, l := range infos {
		desc = append(desc, fmt.Sprintf("%s %s k=%d cin=%d n=%d", l.Name, l.Aggregation(), l.K, l.CIn, l.Filters))
	}
	want := []string{"Head dense k=4 cin=16 n=4", "Stage1/0/LayerA windowed k=4 cin=16 n=4",
		"Stage1/0/LayerB windowed k=4 cin=16 n=4", "Downsample1/ExtensionLayer windowed k=4 cin=16 n=4",
		"Downsample2/ExtensionLayer windowed k=4 cin=32 n=4"}
	if !slices.Equal(desc, want) {
		t.Fatalf("layers:\n%s\nwant:\n%s", strings.Join(desc, "\n"), strings.Join(want, "\n"))
	}
	runDir := filepath.Join(t.TempDir(), "run")
	if err := train.WriteRun(runDir, cfg, store, "test"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(runDir, train.BestDir)); err != nil {
		t.Fatal(err)
	}
	_, loaded, err := train.LoadRun(testBackend(), runDir, false)
	if err != nil {
		t.Fatal(err)
	}
	// Every model variable comes back (the store's RNG state "#rngState" is not part of the model).
	modelVars := 0
	for v := range store.IterVariables() {
		if !strings.Contains(v.Path(), "#") {
			modelVars++
		}
	}
	if loaded.NumVariables() != modelVars {
		t.Errorf("loaded %d variables, want %d", loaded.NumVariables(), modelVars)
	}
	got := SeqConvLayers(loaded)
	if len(got) != len(infos) {
		t.Fatalf("loaded store: %d layers, want %d", len(got), len(infos))
	}
	for i := range infos {
		if got[i].Name != infos[i].Name || !slices.Equal(got[i].ViewWidths, infos[i].ViewWidths) {
			t.Errorf("loaded layer %d: %+v, want %+v", i, got[i], infos[i])
		}
		a, err := Utilization(store, infos[i])
		if err != nil {
			t.Fatal(err)
		}
		b, err := Utilization(loaded, got[i])
		if err != nil {
			t.Fatal(err)
		}
		if a.Utilization != b.Utilization || a.Max != b.Max || !(a.Utilization > 0 && a.Utilization <= 1) {
			t.Errorf("layer %s: utilization %g / %g, max %g / %g", a.Layer.Name, a.Utilization, b.Utilization,
				a.Max, b.Max)
		}
	}
	// Errors.
	if _, _, err := train.LoadRun(testBackend(), filepath.Join(runDir, "nope"), false); err == nil {
		t.Errorf("missing run directory accepted")
	}
	if _, _, err := train.LoadRun(testBackend(), runDir, true); err == nil || !strings.Contains(err.Error(), "best") {
		t.Errorf("missing best checkpoint: err %v", err)
	}
}
