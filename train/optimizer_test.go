package train

import (
	"math"
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
	gomlxtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/seqconv/seqconv/engine"
)

// SGDOptimizer must also support GoMLX's gradient accumulation.
var _ gomlxtrain.OptimizeWithGradients = (*SGDOptimizer)(nil)

var (
	backendOnce sync.Once
	backend     compute.Backend
)

func testBackend(t testing.TB) compute.Backend {
	t.Helper()
	backendOnce.Do(func() { backend = engine.MustNewForTest() })
	return backend
}

// Fixed data of the tiny linear model: pred = x·W + b + frozen, loss = sum((pred - y)^2).
var (
	testX = [][]float64{
		{0.5, -1.0, 0.25},
		{1.0, 0.3, -0.7},
		{-0.2, 0.8, 0.9},
		{0.6, -0.4, -0.1},
	}
	testY = [][]float64{
		{1.0, -0.5},
		{0.2, 0.7},
		{-0.3, 0.4},
		{0.8, -0.9},
	}
	testW0      = [][]float64{{0.1, -0.2}, {0.3, 0.05}, {-0.15, 0.25}}
	testB0      = []float64{0.05, -0.1}
	testFrozen  = []float64{0.2, -0.3} // Non-trainable, used in the graph.
	testUnused0 = []float64{1, 2, 3}   // Trainable, not used in the graph.
)

// refParam is a parameter of the plain-Go reference implementation of torch.optim.SGD.
type refParam struct {
	value, buf []float64
	decay      bool
}

// refSGD is a plain-Go float64 implementation of PyTorch's torch.optim.SGD (dampening=0).
type refSGD struct {
	lr, momentum, weightDecay float64
	nesterov                  bool
}

func (r *refSGD) step(p *refParam, grad []float64) {
	if p.buf == nil {
		p.buf = make([]float64, len(p.value))
	}
	for i := range p.value {
		g := grad[i]
		if r.weightDecay != 0 && p.decay {
			g += r.weightDecay * p.value[i]
		}
		if r.momentum != 0 {
			p.buf[i] = r.momentum*p.buf[i] + g
			if r.nesterov {
				g += r.momentum * p.buf[i]
			} else {
				g = p.buf[i]
			}
		}
		p.value[i] -= r.lr * g
	}
}

// refLossAndGrads returns the loss and the gradients w.r.t. W (flat, row-major [3,2]) and b.
func refLossAndGrads(w, b []float64) (loss float64, gw, gb []float64) {
	gw = make([]float64, 6)
	gb = make([]float64, 2)
	for n, xRow := range testX {
		for j := range 2 {
			pred := b[j] + testFrozen[j]
			for i := range 3 {
				pred += xRow[i] * w[i*2+j]
			}
			r := pred - testY[n][j]
			loss += r * r
			gb[j] += 2 * r
			for i := range 3 {
				gw[i*2+j] += 2 * r * xRow[i]
			}
		}
	}
	return
}

func flatten(m [][]float64) []float64 {
	var out []float64
	for _, row := range m {
		out = append(out, row...)
	}
	return out
}

// toDType converts a float64 1D or 2D slice to the given float dtype.
func toDType(x any, dtype dtypes.DType) any {
	return shapes.CastAsDType(x, dtype)
}

// flatFloat64 returns the flat values of a float32 or float64 tensor as float64.
func flatFloat64(t *testing.T, x *tensors.Tensor) []float64 {
	t.Helper()
	switch x.DType() {
	case dtypes.Float64:
		return tensors.MustCopyFlatData[float64](x)
	case dtypes.Float32:
		f32 := tensors.MustCopyFlatData[float32](x)
		out := make([]float64, len(f32))
		for i, v := range f32 {
			out[i] = float64(v)
		}
		return out
	}
	t.Fatalf("unexpected dtype %s", x.DType())
	return nil
}

func assertClose(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if diff := math.Abs(got[i] - want[i]); diff > tol*max(1, math.Abs(want[i])) || math.IsNaN(got[i]) {
			t.Fatalf("%s[%d]: got %.17g, want %.17g (diff %.3g > tol %.3g)", what, i, got[i], want[i], diff, tol)
		}
	}
}

// newTestStore creates the store with the test variables of the given dtype.
func newTestStore(dtype dtypes.DType) *model.Store {
	store := model.NewStore()
	dense := store.Scope("/dense")
	dense.VariableWithValue("w", toDType(testW0, dtype))
	dense.VariableWithValue("b", toDType(testB0, dtype))
	dense.VariableWithValue("frozen", toDType(testFrozen, dtype)).SetTrainable(false)
	dense.VariableWithValue("unused", toDType(testUnused0, dtype))
	return store
}

// newTestExec returns an Exec that runs one training step of opt and returns the loss (before the update).
func newTestExec(t *testing.T, store *model.Store, opt *SGDOptimizer) *model.Exec {
	t.Helper()
	exec, err := model.NewExec(testBackend(t), store, func(scope *model.Scope, x, y *Node) *Node {
		scope.Store().SetTraining(x.Graph(), true) // A training step, as GoMLX's Trainer builds it.
		dense := scope.At("dense")
		w := dense.GetVariable("w").NodeValue(x)
		b := dense.GetVariable("b").NodeValue(x)
		frozen := dense.GetVariable("frozen").NodeValue(x)
		pred := Add(MatMul(x, w), InsertAxes(Add(b, frozen), 0))
		loss := ReduceAllSum(Square(Sub(pred, y)))
		opt.UpdateGraph(scope, x.Graph(), loss)
		return loss
	})
	if err != nil {
		t.Fatalf("NewExec: %v", err)
	}
	return exec
}

func varValues(t *testing.T, store *model.Store, varPath string) []float64 {
	t.Helper()
	v := store.GetVariable(varPath)
	if v == nil {
		t.Fatalf("variable %q not found", varPath)
	}
	return flatFloat64(t, v.MustValue())
}

func TestSGDMatchesPyTorchReference(t *testing.T) {
	const numSteps = 5
	testCases := []struct {
		name     string
		dtype    dtypes.DType
		momentum float64
		nesterov bool
		wd       float64
		filter   func(*model.Variable) bool
		lrs      []float64 // Per step: step 0 uses the configured LR, later ones are set with SetLearningRate.
		tol      float64
	}{
		{name: "plain", dtype: dtypes.Float64, lrs: []float64{0.02}, tol: 1e-12},
		{name: "momentum", dtype: dtypes.Float64, momentum: 0.9, lrs: []float64{0.02}, tol: 1e-12},
		{name: "nesterov", dtype: dtypes.Float64, momentum: 0.9, nesterov: true, lrs: []float64{0.02}, tol: 1e-12},
		{name: "momentum0-wd", dtype: dtypes.Float64, wd: 0.05, lrs: []float64{0.03}, tol: 1e-12},
		{name: "momentum-wd-all", dtype: dtypes.Float64, momentum: 0.5, wd: 0.05, lrs: []float64{0.02}, tol: 1e-12},
		{name: "nesterov-wd-nobnbias", dtype: dtypes.Float64, momentum: 0.9, nesterov: true, wd: 0.05,
			filter: NoDecayForBNAndBias, lrs: []float64{0.02}, tol: 1e-12},
		{name: "momentum-wd-nobnbias", dtype: dtypes.Float64, momentum: 0.8, wd: 0.1,
			filter: NoDecayForBNAndBias, lrs: []float64{0.02}, tol: 1e-12},
		{name: "lr-changes", dtype: dtypes.Float64, momentum: 0.9, nesterov: true, wd: 0.01,
			filter: NoDecayForBNAndBias, lrs: []float64{0.02, 0.02, 0.005, 0.04, 0.01}, tol: 1e-12},
		{name: "lr-changes-plain", dtype: dtypes.Float64, lrs: []float64{0.02, 0.1, 0.0, 0.03, 0.001}, tol: 1e-12},
		// float32: LR 0.015625 = 2^-6 is exact in float32; the reference is float64, hence the tolerance.
		{name: "float32-nesterov-wd", dtype: dtypes.Float32, momentum: 0.9, nesterov: true, wd: 0.05,
			filter: NoDecayForBNAndBias, lrs: []float64{0.015625, 0.0078125}, tol: 2e-5},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			store := newTestStore(tc.dtype)
			opt := SGD().LearningRate(tc.lrs[0]).Momentum(tc.momentum).Nesterov(tc.nesterov).
				WeightDecay(tc.wd).WeightDecayFilter(tc.filter).Done()
			exec := newTestExec(t, store, opt)
			defer exec.Finalize()

			ref := &refSGD{lr: tc.lrs[0], momentum: tc.momentum, weightDecay: tc.wd, nesterov: tc.nesterov}
			pw := &refParam{value: flatten(testW0), decay: true}
			pb := &refParam{value: append([]float64(nil), testB0...), decay: tc.filter == nil}
			x, y := toDType(testX, tc.dtype), toDType(testY, tc.dtype)

			unchangedTol := 0.0 // Untouched variables must keep their exact values (up to the float32 rounding).
			if tc.dtype == dtypes.Float32 {
				unchangedTol = 1e-7
			}
			var firstGraph *Graph
			for step := range numSteps {
				if step > 0 && step < len(tc.lrs) {
					if err := SetLearningRate(store, tc.lrs[step]); err != nil {
						t.Fatalf("SetLearningRate: %v", err)
					}
					ref.lr = tc.lrs[step]
				}
				outputs, g := exec.MustCallWithGraph(x, y)
				if firstGraph == nil {
					firstGraph = g
				} else if g != firstGraph {
					t.Fatalf("step %d: a new graph was built", step)
				}

				wantLoss, gw, gb := refLossAndGrads(pw.value, pb.value)
				ref.step(pw, gw)
				ref.step(pb, gb)

				assertClose(t, "loss", flatFloat64(t, outputs[0]), []float64{wantLoss}, tc.tol)
				assertClose(t, "w", varValues(t, store, "/dense/w"), pw.value, tc.tol)
				assertClose(t, "b", varValues(t, store, "/dense/b"), pb.value, tc.tol)
				assertClose(t, "frozen", varValues(t, store, "/dense/frozen"), testFrozen, unchangedTol)
				assertClose(t, "unused", varValues(t, store, "/dense/unused"), testUnused0, unchangedTol)
				if tc.momentum != 0 {
					assertClose(t, "w_momentum", varValues(t, store, "/SGDOptimizer/dense/w_momentum"), pw.buf, tc.tol)
					assertClose(t, "b_momentum", varValues(t, store, "/SGDOptimizer/dense/b_momentum"), pb.buf, tc.tol)
				}
			}

			if tc.momentum == 0 {
				if v := store.GetVariable("/SGDOptimizer/dense/w_momentum"); v != nil {
					t.Errorf("momentum 0 created momentum buffer %q", v.Path())
				}
			}
			for _, p := range []string{"/SGDOptimizer/dense/unused_momentum", "/SGDOptimizer/dense/frozen_momentum"} {
				if v := store.GetVariable(p); v != nil {
					t.Errorf("unexpected momentum buffer %q", p)
				}
			}
			if got := optimizer.GetGlobalStep(store); got != numSteps {
				t.Errorf("global step = %d, want %d", got, numSteps)
			}
			lr, err := LearningRate(store)
			if err != nil {
				t.Fatalf("LearningRate: %v", err)
			}
			if lr != ref.lr {
				t.Errorf("LearningRate() = %g, want %g", lr, ref.lr)
			}
			if lrVar := store.GetVariable(LearningRatePath); lrVar.DType() != tc.dtype || lrVar.Trainable {
				t.Errorf("learning rate variable: dtype %s (want %s), trainable=%t", lrVar.DType(), tc.dtype, lrVar.Trainable)
			}
		})
	}
}

// runRefSteps runs numSteps of exec and of the reference (with plain SGD at lr) and compares w and b.
func runRefSteps(t *testing.T, store *model.Store, exec *model.Exec, ref *refSGD, pw, pb *refParam, numSteps int) {
	t.Helper()
	for range numSteps {
		exec.MustCall(testX, testY)
		_, gw, gb := refLossAndGrads(pw.value, pb.value)
		ref.step(pw, gw)
		ref.step(pb, gb)
		assertClose(t, "w", varValues(t, store, "/dense/w"), pw.value, 1e-12)
		assertClose(t, "b", varValues(t, store, "/dense/b"), pb.value, 1e-12)
	}
}

func TestSGDUsesLearningRateSetBeforeGraph(t *testing.T) {
	store := newTestStore(dtypes.Float64)
	// Created before any graph: float32, and the optimizer's configured value (0.5) is not used.
	if err := SetLearningRate(store, 0.0625); err != nil {
		t.Fatal(err)
	}
	if got := store.GetVariable(LearningRatePath).DType(); got != dtypes.Float32 {
		t.Fatalf("learning rate variable dtype = %s, want float32", got)
	}
	opt := SGD().LearningRate(0.5).Momentum(0.9).Done()
	exec := newTestExec(t, store, opt)
	defer exec.Finalize()
	ref := &refSGD{lr: 0.0625, momentum: 0.9}
	pw := &refParam{value: flatten(testW0), decay: true}
	pb := &refParam{value: append([]float64(nil), testB0...), decay: true}
	runRefSteps(t, store, exec, ref, pw, pb, 2)

	if err := SetLearningRate(store, 0.03125); err != nil {
		t.Fatal(err)
	}
	ref.lr = 0.03125
	runRefSteps(t, store, exec, ref, pw, pb, 2)
	if got := store.GetVariable(LearningRatePath).DType(); got != dtypes.Float32 {
		t.Errorf("SetLearningRate changed the learning rate dtype to %s", got)
	}
}

func TestSGDRecreatesDeletedLearningRate(t *testing.T) {
	store := newTestStore(dtypes.Float64)
	if err := SetLearningRate(store, 0.3); err != nil {
		t.Fatal(err)
	}
	// What GoMLX's train.NewTrainer does.
	if err := store.Scope(optimizer.Scope).DeleteVariable(optimizer.ParamLearningRate); err != nil {
		t.Fatal(err)
	}
	if _, err := LearningRate(store); err == nil {
		t.Fatal("LearningRate() of a deleted variable should fail")
	}
	opt := SGD().LearningRate(0.02).Done()
	exec := newTestExec(t, store, opt)
	defer exec.Finalize()
	ref := &refSGD{lr: 0.02}
	pw := &refParam{value: flatten(testW0), decay: true}
	pb := &refParam{value: append([]float64(nil), testB0...), decay: true}
	runRefSteps(t, store, exec, ref, pw, pb, 1)
	if lr, err := LearningRate(store); err != nil || lr != 0.02 {
		t.Fatalf("LearningRate() = %g, %v; want 0.02", lr, err)
	}
}

func TestSGDDefaultLearningRateFromParam(t *testing.T) {
	for _, tc := range []struct {
		name  string
		param any
		want  float64
	}{
		{"param", 0.03, 0.03},
		{"default", nil, optimizer.SGDDefaultLearningRate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newTestStore(dtypes.Float64)
			if tc.param != nil {
				store.RootScope().SetParam(optimizer.ParamLearningRate, tc.param)
			}
			exec := newTestExec(t, store, SGD().Done())
			defer exec.Finalize()
			exec.MustCall(testX, testY)
			if lr, err := LearningRate(store); err != nil || lr != tc.want {
				t.Fatalf("LearningRate() = %g, %v; want %g", lr, err, tc.want)
			}
		})
	}
}

func TestSGDClear(t *testing.T) {
	store := newTestStore(dtypes.Float64)
	opt := SGD().LearningRate(0.01).Momentum(0.9).Done()
	exec := newTestExec(t, store, opt)
	exec.MustCall(testX, testY)
	exec.Finalize()
	for bufPath, varPath := range map[string]string{
		"/SGDOptimizer/dense/w_momentum": "/dense/w",
		"/SGDOptimizer/dense/b_momentum": "/dense/b",
	} {
		v := store.GetVariable(bufPath)
		if v == nil || v.Trainable || !v.Shape().Equal(store.GetVariable(varPath).Shape()) {
			t.Fatalf("momentum buffer %q missing, trainable or with a shape different from %q: %v", bufPath, varPath, v)
		}
	}
	if err := opt.Clear(store.RootScope()); err != nil {
		t.Fatal(err)
	}
	for v := range store.IterVariables() {
		if strings.HasPrefix(v.Path(), "/"+SGDScope) {
			t.Errorf("variable %q not cleared", v.Path())
		}
	}
	for _, p := range []string{"/dense/w", "/dense/b", LearningRatePath} {
		if store.GetVariable(p) == nil {
			t.Errorf("Clear deleted %q", p)
		}
	}
}

func TestSGDBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     *SGDConfig
		wantErr string // Empty for no error.
	}{
		{"ok", SGD().LearningRate(0.1).Momentum(0.9).Nesterov(true).WeightDecay(1e-4), ""},
		{"ok-defaults", SGD(), ""},
		{"ok-lr0", SGD().LearningRate(0), ""},
		{"negative-lr", SGD().LearningRate(-0.1), "learning rate -0.1"},
		{"nan-lr", SGD().LearningRate(math.NaN()), "learning rate NaN"},
		{"negative-momentum", SGD().Momentum(-0.5), "momentum -0.5"},
		{"negative-wd", SGD().WeightDecay(-1e-4), "weight decay -0.0001"},
		{"nesterov-without-momentum", SGD().Nesterov(true), "Nesterov"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, err := tc.cfg.Build()
			if tc.wantErr == "" {
				if err != nil || opt == nil {
					t.Fatalf("Build() = %v, %v; want no error", opt, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Build() error = %v, want one containing %q", err, tc.wantErr)
			}
			defer func() {
				if recover() == nil {
					t.Errorf("Done() did not panic")
				}
			}()
			tc.cfg.Done()
		})
	}
}

func TestNoDecayForBNAndBias(t *testing.T) {
	store := model.NewStore()
	for _, tc := range []struct {
		name string
		dims []int
		want bool
	}{
		{"scalar", nil, false},
		{"bias", []int{16}, false},
		{"dense", []int{3, 2}, true},
		{"conv1d", []int{3, 8, 16}, true},
		{"conv2d", []int{3, 3, 8, 16}, true},
	} {
		v := store.RootScope().VariableWithShape(tc.name, shapes.Make(dtypes.Float32, tc.dims...))
		if got := NoDecayForBNAndBias(v); got != tc.want {
			t.Errorf("NoDecayForBNAndBias(%s %s) = %t, want %t", tc.name, v.Shape(), got, tc.want)
		}
	}
}

func TestSetLearningRate(t *testing.T) {
	store := model.NewStore()
	if _, err := LearningRate(store); err == nil || !strings.Contains(err.Error(), LearningRatePath) {
		t.Errorf("LearningRate() on empty store: error = %v, want one naming %q", err, LearningRatePath)
	}
	for _, bad := range []float64{-0.1, math.NaN(), math.Inf(1)} {
		if err := SetLearningRate(store, bad); err == nil {
			t.Errorf("SetLearningRate(%g) succeeded, want error", bad)
		}
	}
	if store.GetVariable(LearningRatePath) != nil {
		t.Fatal("invalid SetLearningRate created the variable")
	}
	// An existing float64 variable keeps its dtype and full precision.
	optimizer.LearningRateVar(store.RootScope(), dtypes.Float64, 0.5)
	for _, lr := range []float64{0.1, 0.0, 1e-5} {
		if err := SetLearningRate(store, lr); err != nil {
			t.Fatal(err)
		}
		if got, err := LearningRate(store); err != nil || got != lr {
			t.Errorf("LearningRate() = %g, %v; want %g", got, err, lr)
		}
	}
	if v := store.GetVariable(LearningRatePath); v.DType() != dtypes.Float64 || v.Trainable {
		t.Errorf("learning rate variable: dtype %s, trainable %t; want float64, false", v.DType(), v.Trainable)
	}
}

// TestSGDVectorsUpdatedTogether checks that the vectors, updated together (applyFlat), get exactly the updates
// they get one by one: the same model is trained with its vectors stored as [n] (updated together) and as
// [1, n] (one by one), with a weight-decay filter that decays some vectors only, and every variable and
// momentum buffer must be bit for bit equal after three steps.
func TestSGDVectorsUpdatedTogether(t *testing.T) {
	names := []string{"d1", "n1", "d2", "n2"} // d*: decayed, n*: not
	size := len(testB0)
	filter := func(v *model.Variable) bool { return strings.HasPrefix(v.Name(), "d") || v.Name() == "w" }
	run := func(rowVectors bool) *model.Store {
		store := model.NewStore()
		scope := store.Scope("/m")
		scope.VariableWithValue("w", toDType(testW0, dtypes.Float64))
		for i, name := range names {
			vals := make([]float64, size)
			for k := range vals {
				vals[k] = 0.1*float64(i+1) - 0.05*float64(k)
			}
			if rowVectors {
				scope.VariableWithValue(name, [][]float64{vals})
			} else {
				scope.VariableWithValue(name, vals)
			}
		}
		opt := SGD().LearningRate(0.02).Momentum(0.9).Nesterov(true).WeightDecay(0.05).WeightDecayFilter(filter).Done()
		exec, err := model.NewExec(testBackend(t), store, func(scope *model.Scope, x, y *Node) *Node {
			scope.Store().SetTraining(x.Graph(), true)
			m := scope.At("m")
			pred := MatMul(x, m.GetVariable("w").NodeValue(x))
			for i, name := range names {
				v := Reshape(m.GetVariable(name).NodeValue(x), size)
				pred = Add(pred, InsertAxes(MulScalar(v, float64(i+1)), 0))
			}
			loss := ReduceAllSum(Square(Sub(pred, y)))
			opt.UpdateGraph(scope, x.Graph(), loss)
			return loss
		})
		if err != nil {
			t.Fatalf("NewExec: %v", err)
		}
		defer exec.Finalize()
		for range 3 {
			exec.MustCall(toDType(testX, dtypes.Float64), toDType(testY, dtypes.Float64))
		}
		return store
	}
	together, oneByOne := run(false), run(true)
	for _, name := range append([]string{"w"}, names...) {
		for _, p := range []string{"/m/" + name, "/SGDOptimizer/m/" + name + "_momentum"} {
			got, want := varValues(t, together, p), varValues(t, oneByOne, p)
			for k := range want {
				if got[k] != want[k] {
					t.Errorf("%s[%d]: %v updated together, %v one by one", p, k, got[k], want[k])
				}
			}
		}
	}
}
