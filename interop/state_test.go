package interop_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/models"
)

const refName = "testdata/seqresnet-cifar-demo"

// newDemo builds seqresnet-cifar-demo (float32, inference mode) in a fresh store and creates its variables by
// compiling for the given NHWC input shape.
func newDemo(t *testing.T, backend compute.Backend, inShape shapes.Shape) (*model.Store, *model.Exec) {
	t.Helper()
	cfg, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		scope.Store().SetTraining(x.Graph(), false)
		return cfg.Build(scope, x)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Compile(inShape); err != nil {
		t.Fatal(err)
	}
	return store, exec
}

// nchwToNHWC transposes a float32 NCHW array into an NHWC tensor.
func nchwToNHWC(t *testing.T, a *interop.Array) *tensors.Tensor {
	t.Helper()
	if a.DType != dtypes.Float32 || len(a.Shape) != 4 {
		t.Fatalf("input: want a float32 NCHW array, got %s", a)
	}
	n, c, h, w := a.Shape[0], a.Shape[1], a.Shape[2], a.Shape[3]
	src := a.Data.([]float32)
	dst := make([]float32, 0, len(src))
	for in := range n {
		for ih := range h {
			for iw := range w {
				for ic := range c {
					dst = append(dst, src[((in*c+ic)*h+ih)*w+iw])
				}
			}
		}
	}
	return tensors.FromFlatDataAndDimensions(dst, n, h, w, c)
}

func readRef(t *testing.T) (weights map[string]*interop.Array, keys []string, input, logits *interop.Array) {
	t.Helper()
	weights, keys, err := interop.ReadNPZ(refName + ".weights.npz")
	if err != nil {
		t.Fatal(err)
	}
	if input, err = interop.ReadNPYFile(refName + ".input.npy"); err != nil {
		t.Fatal(err)
	}
	if logits, err = interop.ReadNPYFile(refName + ".logits.npy"); err != nil {
		t.Fatal(err)
	}
	return weights, keys, input, logits
}

// TestReferenceLogits imports the authors' PyTorch weights (random weights and BN statistics) into our
// seqresnet-cifar-demo and checks our eval-mode logits against PyTorch's.
func TestReferenceLogits(t *testing.T) {
	backend := engine.MustNewForTest()
	weights, keys, input, want := readRef(t)
	x := nchwToNHWC(t, input)
	store, exec := newDemo(t, backend, x.Shape())
	if err := interop.ImportState(store, weights); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Call(x)
	if err != nil {
		t.Fatal(err)
	}
	got := tensors.MustCopyFlatData[float32](out[0])
	if !slices.Equal(out[0].Shape().Dimensions, want.Shape) {
		t.Fatalf("logits shape %v, want %v", out[0].Shape().Dimensions, want.Shape)
	}
	var diff, norm float64
	for i, w := range want.Data.([]float32) {
		d := float64(got[i]) - float64(w)
		diff += d * d
		norm += float64(w) * float64(w)
	}
	rel := math.Sqrt(diff / norm)
	t.Logf("reference logits %v: relative L2 error %.3g (%d state_dict entries)", want.Shape, rel, len(keys))
	if !(rel <= 1e-4) {
		t.Errorf("relative L2 error %.3g > 1e-4", rel)
	}

	// Export gives back exactly the imported state_dict, keys in the PyTorch order.
	exported, order, err := interop.ExportState(store)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, keys) {
		t.Errorf("exported key order differs from the reference state_dict order")
	}
	assertSameArrays(t, exported, weights)
}

func assertSameArrays(t *testing.T, got, want map[string]*interop.Array) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d arrays, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: missing", k)
		case g.DType != w.DType || !slices.Equal(g.Shape, w.Shape):
			t.Errorf("%s: %s, want %s", k, g, w)
		case !bitEqual(g.Data, w.Data):
			t.Errorf("%s: data differs", k)
		}
	}
}

// bitEqual compares flat data bit for bit (NaNs included).
func bitEqual(a, b any) bool {
	switch x := a.(type) {
	case []float32:
		y, ok := b.([]float32)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float32bits(x[i]) != math.Float32bits(y[i]) {
				return false
			}
		}
		return true
	case []float64:
		y, ok := b.([]float64)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if math.Float64bits(x[i]) != math.Float64bits(y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// TestStateRoundTrip exports a store with non-trivial values to .npz (stored and deflated), re-imports it into
// a fresh store and checks that every variable is restored bit for bit, and that non-model variables are
// neither exported nor required.
func TestStateRoundTrip(t *testing.T) {
	backend := engine.MustNewForTest()
	weights, _, input, _ := readRef(t)
	shape := shapes.Make(dtypes.Float32, 1, input.Shape[2], input.Shape[3], input.Shape[1])
	store, _ := newDemo(t, backend, shape)
	if err := interop.ImportState(store, weights); err != nil {
		t.Fatal(err)
	}
	// Non-model variables: optimizer state, global step, RNG state.
	for _, p := range []string{"/SGDOptimizer/Init/LinearLayer/weight_momentum", "/optimizers/learning_rate",
		"/global_step", "/#rngState"} {
		if _, err := store.CreateVariable(p, tensors.FromValue(float32(1))); err != nil {
			t.Fatal(err)
		}
		if interop.ModelVariable(p) {
			t.Errorf("ModelVariable(%q) = true, want false", p)
		}
	}
	// Bump a counter and set a value needing all 32 bits, to check they survive.
	nbt := store.GetVariable("/Init/BatchNormalizationLayer/num_batches_tracked")
	if err := nbt.SetValue(tensors.FromValue(int64(1) << 40)); err != nil {
		t.Fatal(err)
	}
	exported, keys, err := interop.ExportState(store)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "Optimizer") || strings.Contains(k, "optimizers") || k == "global_step" ||
			strings.Contains(k, "#") {
			t.Errorf("non-model variable exported as %q", k)
		}
	}
	if a := exported["Init.BatchNormalizationLayer.num_batches_tracked"]; a.DType != dtypes.Int64 || len(a.Shape) != 0 ||
		a.Data.([]int64)[0] != 1<<40 {
		t.Errorf("num_batches_tracked exported as %s %v", a, a.Data)
	}
	if a := exported["Classifier.weight"]; a.DType != dtypes.Float32 {
		t.Errorf("Classifier.weight exported as %s, want float32", a)
	}
	dir := t.TempDir()
	for _, compressed := range []bool{false, true} {
		path := filepath.Join(dir, fmt.Sprintf("state-%v.npz", compressed))
		write := interop.WriteNPZ
		if compressed {
			write = interop.WriteNPZCompressed
		}
		if err := write(path, exported, keys); err != nil {
			t.Fatal(err)
		}
		back, backKeys, err := interop.ReadNPZ(path)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(backKeys, keys) {
			t.Errorf("keys read back in a different order")
		}
		fresh, _ := newDemo(t, backend, shape)
		if err := interop.ImportState(fresh, back); err != nil {
			t.Fatal(err)
		}
		again, againKeys, err := interop.ExportState(fresh)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(againKeys, keys) {
			t.Errorf("re-exported keys differ")
		}
		assertSameArrays(t, again, exported)
		// And the variables themselves are identical.
		for v := range store.IterVariables() {
			if !interop.ModelVariable(v.Path()) {
				continue
			}
			w := fresh.GetVariable(v.Path())
			if w == nil {
				t.Fatalf("%s missing from the fresh store", v.Path())
			}
			a, _ := interop.ArrayFromTensor(v.MustValue())
			b, _ := interop.ArrayFromTensor(w.MustValue())
			if !bitEqual(a.Data, b.Data) || !slices.Equal(a.Shape, b.Shape) {
				t.Errorf("%s differs after the round trip", v.Path())
			}
		}
	}
	// A float64 state_dict is accepted for float32 variables (converted).
	f64 := map[string]*interop.Array{}
	for k, a := range weights {
		if f, ok := a.Data.([]float32); ok {
			d := make([]float64, len(f))
			for i, x := range f {
				d[i] = float64(x)
			}
			f64[k] = &interop.Array{DType: dtypes.Float64, Shape: a.Shape, Data: d}
		} else {
			f64[k] = a
		}
	}
	fresh, _ := newDemo(t, backend, shape)
	if err := interop.ImportState(fresh, f64); err != nil {
		t.Fatal(err)
	}
	back, _, _ := interop.ExportState(fresh)
	assertSameArrays(t, back, weights)
}

// TestImportErrors checks that missing keys, extra keys, wrong shapes and wrong dtypes are errors naming the
// keys, all reported together and sorted, and that a failed import changes nothing.
func TestImportErrors(t *testing.T) {
	backend := engine.MustNewForTest()
	weights, _, input, _ := readRef(t)
	shape := shapes.Make(dtypes.Float32, 1, input.Shape[2], input.Shape[3], input.Shape[1])
	store, _ := newDemo(t, backend, shape)
	if err := interop.ImportState(store, weights); err != nil {
		t.Fatal(err)
	}
	const (
		missingKey = "Stage2.0.LayerA.Filters.3.TransformationLayer.LinearLayer.weight"
		extraKey   = "Stage2.0.LayerA.Filters.99.BottleneckLayer.LinearLayer.weight"
		shapeKey   = "Classifier.weight"
		dtypeKey   = "Init.BatchNormalizationLayer.num_batches_tracked"
	)
	clone := func() map[string]*interop.Array {
		m := make(map[string]*interop.Array, len(weights))
		for k, v := range weights {
			m[k] = v
		}
		return m
	}
	transposed := func() *interop.Array {
		a := weights[shapeKey]
		return &interop.Array{DType: a.DType, Shape: []int{a.Shape[1], a.Shape[0]}, Data: a.Data}
	}
	cases := []struct {
		name   string
		modify func(m map[string]*interop.Array)
		keys   []string
		words  []string
	}{
		{"missing", func(m map[string]*interop.Array) { delete(m, missingKey) }, []string{missingKey}, []string{"missing"}},
		{"extra", func(m map[string]*interop.Array) { m[extraKey] = weights[missingKey] }, []string{extraKey},
			[]string{"unexpected"}},
		{"shape", func(m map[string]*interop.Array) { m[shapeKey] = transposed() }, []string{shapeKey},
			[]string{"shape 336x10, want 10x336"}},
		{"dtype", func(m map[string]*interop.Array) {
			m[dtypeKey] = &interop.Array{DType: dtypes.Float32, Shape: nil, Data: []float32{3}}
		}, []string{dtypeKey}, []string{"integer"}},
		{"all", func(m map[string]*interop.Array) {
			delete(m, missingKey)
			m[extraKey] = weights[missingKey]
			m[shapeKey] = transposed()
		}, []string{missingKey, extraKey, shapeKey}, []string{"3 problems"}},
	}
	before, _, err := interop.ExportState(store)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := clone()
			c.modify(m)
			err := interop.ImportState(store, m)
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("%v", err)
			msg := err.Error()
			for _, s := range append(c.keys, c.words...) {
				if !strings.Contains(msg, s) {
					t.Errorf("error does not mention %q", s)
				}
			}
			var se *interop.StateError
			if !errors.As(err, &se) || len(se.Problems) != len(c.keys) {
				t.Fatalf("want a *StateError with %d problems, got %#v", len(c.keys), err)
			}
			if !slices.IsSorted(se.Problems) {
				t.Errorf("problems not sorted: %q", se.Problems)
			}
		})
	}
	after, _, err := interop.ExportState(store)
	if err != nil {
		t.Fatal(err)
	}
	assertSameArrays(t, after, before)
}

// statedictTxt reads a key list of the authors' models: "KEY\tDIMS" lines after a "#" header.
func statedictTxt(t *testing.T, path string) (keys []string, dims map[string]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dims = map[string]string{}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if strings.HasPrefix(s, "#") || strings.TrimSpace(s) == "" {
			continue
		}
		k, d, ok := strings.Cut(s, "\t")
		if !ok {
			t.Fatalf("%s:%d: want KEY\\tDIMS, got %q", path, line, s)
		}
		if _, dup := dims[k]; dup {
			t.Fatalf("%s:%d: duplicate key %s", path, line, k)
		}
		keys = append(keys, k)
		dims[k] = d
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, dims
}

func dimsText(d []int) string {
	if len(d) == 0 {
		return "scalar"
	}
	s := make([]string, len(d))
	for i, x := range d {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, "x")
}

// TestStateDictKeys checks that the state_dict keys and PyTorch shapes our models export are exactly those
// of the authors' models, in the same order. The models' graphs are only built (no compile, no run).
func TestStateDictKeys(t *testing.T) {
	backend := engine.MustNewForTest()
	for _, c := range []struct{ name, config string }{
		{"seqresnet-cifar-demo", "seqresnet-cifar-demo"},
		{"seqresnet-b22", "seqresnet-b22"},
		{"seqresnet-b42", "seqresnet-b42"},
		{"seqresnext-24", "seqresnext-24"},
		// Not registered: its config, inferred from its key list (plain CIFAR SeqResNet, widths 32/64/128,
		// k=8, one block per stage), is in testdata.
		{"seqresnet-cifar-plain-small", "testdata/seqresnet-cifar-plain-small.json"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := models.Get(c.config)
			if err != nil {
				t.Fatal(err)
			}
			wantKeys, wantDims := statedictTxt(t, "testdata/"+c.name+".txt")
			store := model.NewStore()
			err = exceptions.TryCatch[error](func() {
				g := NewGraph(backend, "keys")
				model.SetStore(g, store)
				store.SetTraining(g, false)
				x := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, cfg.Resolution, cfg.Resolution, cfg.InChannels))
				cfg.Build(store.RootScope(), x)
			})
			if err != nil {
				t.Fatal(err)
			}
			keys, dims := interop.TorchShapes(store, interop.OptionsFor(cfg))
			var problems []string
			for _, k := range wantKeys {
				if d, ok := dims[k]; !ok {
					problems = append(problems, "missing "+k)
				} else if dimsText(d) != wantDims[k] {
					problems = append(problems, fmt.Sprintf("%s: %s, want %s", k, dimsText(d), wantDims[k]))
				}
			}
			for _, k := range keys {
				if _, ok := wantDims[k]; !ok {
					problems = append(problems, "extra "+k)
				}
			}
			for i, p := range problems {
				if i == 20 {
					t.Errorf("... %d more", len(problems)-20)
					break
				}
				t.Error(p)
			}
			if len(problems) == 0 && !slices.Equal(keys, wantKeys) {
				t.Errorf("same keys in a different order than the authors' state_dict")
			}
			t.Logf("%d keys", len(keys))
		})
	}
}

func TestModelVariable(t *testing.T) {
	for path, want := range map[string]bool{
		"/Init/LinearLayer/weight":                                      true,
		"/Stage1/0/LayerA/Filters/0/BottleneckLayer/LinearLayer/weight": true,
		"/Classifier/bias":                                              true,
		"/Head0/BatchNormalizationLayer/num_batches_tracked":            true,
		"/#rngState":                false,
		"/global_step":              false,
		"/train_last_global_step":   false,
		"/optimizers/learning_rate": false,
		"/SGDOptimizer/Init/LinearLayer/weight_momentum": false,
		"/AdamOptimizer/Classifier/weight_1st_moment":    false,
		"/metrics/accuracy/total":                        false,
	} {
		if got := interop.ModelVariable(path); got != want {
			t.Errorf("ModelVariable(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestResNeXtKey(t *testing.T) {
	for path, want := range map[string]string{
		"/Head2/Filters/7/BottleneckLayer/LinearLayer/weight":                          "Head2.BottleneckLayers.7.LinearLayer.weight",
		"/Stage3/2/LayerB/Filters/15/TransformationLayer/BatchNormalizationLayer/bias": "Stage3.2.LayerB.TransformationLayers.15.BatchNormalizationLayer.bias",
		"/Downsample1/ExtensionLayer/Filters/0/BottleneckLayer/LinearLayer/weight":     "Downsample1.ExtensionLayer.BottleneckLayers.0.LinearLayer.weight",
		"/Downsample1/ShrinkingLayer/LinearLayer/weight":                               "Downsample1.ShrinkingLayer.LinearLayer.weight",
		"/Classifier/weight": "Classifier.weight",
	} {
		if got := interop.ResNeXtKey(path); got != want {
			t.Errorf("ResNeXtKey(%q) = %q, want %q", path, got, want)
		}
	}
	got := interop.ModuleOrder([]string{"a.F.0.B.w", "a.F.0.T.w", "a.F.1.B.w", "a.F.1.T.w", "b", "a.x"})
	want := []string{"a.F.0.B.w", "a.F.0.T.w", "a.F.1.B.w", "a.F.1.T.w", "a.x", "b"}
	if !slices.Equal(got, want) {
		t.Errorf("ModuleOrder = %v, want %v", got, want)
	}
	got = interop.ModuleOrder([]string{"a.B.0.w", "a.T.0.w", "a.B.1.w", "a.T.1.w"})
	want = []string{"a.B.0.w", "a.B.1.w", "a.T.0.w", "a.T.1.w"}
	if !slices.Equal(got, want) {
		t.Errorf("ModuleOrder = %v, want %v", got, want)
	}
}

// TestResNeXtRoundTrip imports a synthetic state_dict with the authors' SeqResNeXt key names into a small
// SeqResNeXt and exports it back unchanged, in the same order.
func TestResNeXtRoundTrip(t *testing.T) {
	cfg := models.Config{Name: "tiny-resnext", Family: models.FamilyResNeXt, Classes: 5, BlocksPerStage: []int{1, 1, 1, 1},
		Widening: 0.25, Granularity: models.IntList{16, 16, 16, 32}, Subgroups: models.IntList{2}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store := model.NewStore()
	exec, err := model.NewExec(engine.MustNewForTest(), store, func(scope *model.Scope, x *Node) *Node {
		scope.Store().SetTraining(x.Graph(), false)
		return cfg.Build(scope, x)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Compile(shapes.Make(dtypes.Float32, 1, 32, 32, 3)); err != nil {
		t.Fatal(err)
	}
	opts := interop.OptionsFor(cfg)
	keys, dims := interop.TorchShapes(store, opts)
	arrays := map[string]*interop.Array{}
	for i, k := range keys {
		if strings.HasSuffix(k, "num_batches_tracked") {
			arrays[k] = mustArray(interop.NewArray([]int64{int64(i)}))
			continue
		}
		n := 1
		for _, d := range dims[k] {
			n *= d
		}
		data := make([]float32, n)
		for j := range data {
			data[j] = float32(math.Sin(float64(i*7919 + j)))
		}
		arrays[k] = mustArray(interop.NewArray(data, dims[k]...))
	}
	if !slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, ".BottleneckLayers.") }) {
		t.Fatalf("no SeqResNeXt-style keys in %v", keys[:20])
	}
	err = interop.ImportState(store, arrays) // TorchKey names: everything in the filters mismatches
	if err == nil || !strings.Contains(err.Error(), "Head2.Filters.0.BottleneckLayer.LinearLayer.weight: missing") ||
		!strings.Contains(err.Error(), "Head2.BottleneckLayers.0.LinearLayer.weight: unexpected key") {
		t.Errorf("ImportState with PyTorch-style keys on SeqResNeXt: %v", err)
	}
	if err := interop.ImportStateWith(store, arrays, opts); err != nil {
		t.Fatal(err)
	}
	back, order, err := interop.ExportStateWith(store, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, keys) {
		t.Errorf("export order differs from TorchShapes order")
	}
	assertSameArrays(t, back, arrays)
}
