package train

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
)

var nan = float32(math.NaN())

// Hand-made logits [5, 6] and labels: see the expected errors below.
var (
	handLogits = [][]float32{
		{0.1, 0.2, 3.0, -1, 0.5, 0.3}, // label 2 is the largest.
		{2.0, 2.5, -1, 0, 1, 1.5},     // label 0 is 2nd: top-1 wrong, top-5 right.
		{5, 4, 3, 2, 1, 0},            // label 5 is the smallest (rank 6): both wrong.
		{1, 3, 3, 0, 0, 0},            // label 2 ties with the max: right.
		{1, nan, 0, 0, 0, 0},          // not finite: both wrong.
	}
	handLabels   = []int32{2, 0, 5, 2, 0}
	handTop1Want = []float32{0, 1, 1, 0, 1}
	handTop5Want = []float32{0, 0, 1, 0, 1}
)

func TestTopKErrorHandMade(t *testing.T) {
	b := testBackend(t)
	outs := MustExecOnceN(b, func(logits, labels *Node) []*Node {
		return []*Node{TopKError(logits, labels, 1), TopKError(logits, labels, 5),
			TopKError(logits, ExpandAxes(labels, -1), 1)}
	}, handLogits, handLabels)
	for i, want := range [][]float32{handTop1Want, handTop5Want, handTop1Want} {
		got := outs[i].Value().([]float32)
		for j := range want {
			if got[j] != want[j] {
				t.Errorf("output %d: got %v, want %v", i, got, want)
				break
			}
		}
	}
}

func TestTopKErrorFewClasses(t *testing.T) {
	b := testBackend(t)
	// 3 classes < 5: top-5 error is always 0, top-1 error as usual.
	logits := [][]float32{{1, 2, 3}, {3, 2, 1}}
	labels := []int32{0, 0}
	outs := MustExecOnceN(b, func(logits, labels *Node) []*Node {
		return []*Node{TopKError(logits, labels, 5), TopKError(logits, labels, 1)}
	}, logits, labels)
	if got := outs[0].Value().([]float32); got[0] != 0 || got[1] != 0 {
		t.Errorf("top-5 with 3 classes: got %v, want [0 0]", got)
	}
	if got := outs[1].Value().([]float32); got[0] != 1 || got[1] != 0 {
		t.Errorf("top-1: got %v, want [1 0]", got)
	}
}

// refCE is the plain-Go cross-entropy of one example with label smoothing eps.
func refCE(logits []float32, label int, eps float64) float64 {
	maxV := math.Inf(-1)
	for _, v := range logits {
		maxV = math.Max(maxV, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - maxV)
	}
	logZ := maxV + math.Log(sum)
	c := float64(len(logits))
	var l float64
	for j, v := range logits {
		target := eps / c
		if j == label {
			target += 1 - eps
		}
		l -= target * (float64(v) - logZ)
	}
	return l
}

func TestSoftmaxCrossEntropy(t *testing.T) {
	b := testBackend(t)
	logits := [][]float32{{0.1, 0.2, 3.0}, {2, -1, 0.5}, {1000, 0, -1000}} // the last one is extreme.
	labels := []int32{2, 1, 1}
	for _, eps := range []float64{0, 0.1} {
		out := MustExecOnce(b, func(logits, labels *Node) *Node {
			return SoftmaxCrossEntropy(logits, labels, eps)
		}, logits, labels).Value().([]float32)
		for i := range logits {
			want := refCE(logits[i], int(labels[i]), eps)
			if math.Abs(float64(out[i])-want) > 1e-4*math.Max(1, math.Abs(want)) {
				t.Errorf("eps=%g example %d: got %g, want %g", eps, i, out[i], want)
			}
		}
	}
}

// TestCrossEntropyLossSmoothingOnlyInTraining checks that label smoothing applies to training
// graphs only, and that the loss is the batch mean.
func TestCrossEntropyLossSmoothingOnlyInTraining(t *testing.T) {
	b := testBackend(t)
	logits := [][]float32{{0.1, 0.2, 3.0}, {2, -1, 0.5}}
	labels := []int32{2, 1}
	lossFn := CrossEntropyLoss(0.2)
	for _, training := range []bool{true, false} {
		store := model.NewStore()
		out, err := model.ExecOnce(b, store, func(scope *model.Scope, logits, labels *Node) *Node {
			scope.Store().SetTraining(logits.Graph(), training)
			return lossFn([]*Node{labels}, []*Node{logits})
		}, logits, labels)
		if err != nil {
			t.Fatal(err)
		}
		eps := 0.0
		if training {
			eps = 0.2
		}
		want := (refCE(logits[0], 2, eps) + refCE(logits[1], 1, eps)) / 2
		if got := float64(out.Value().(float32)); math.Abs(got-want) > 1e-5 {
			t.Errorf("training=%v: got %g, want %g", training, got, want)
		}
	}
}

// TestTopKErrorMetricMean checks the mean metrics: in %, weighted by batch size across calls, and
// reset by Reset.
func TestTopKErrorMetricMean(t *testing.T) {
	b := testBackend(t)
	store := model.NewStore()
	top1, top5 := NewTop1ErrorMetric(), NewTop5ErrorMetric()
	exec, err := model.NewExec(b, store, func(scope *model.Scope, logits, labels *Node) []*Node {
		engine.VariablesAsParameters(scope.Store(), logits.Graph())
		return []*Node{
			top1.UpdateGraph(scope, []*Node{labels}, []*Node{logits}),
			top5.UpdateGraph(scope, []*Node{labels}, []*Node{logits}),
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	call := func(logits [][]float32, labels []int32) (float64, float64) {
		t.Helper()
		outs, err := exec.Call(logits, labels)
		if err != nil {
			t.Fatal(err)
		}
		return scalar(outs[0]), scalar(outs[1])
	}
	// First batch: the 5 hand-made examples: 3/5 top-1 and 2/5 top-5 errors.
	e1, e5 := call(handLogits, handLabels)
	if math.Abs(e1-60) > 1e-4 || math.Abs(e5-40) > 1e-4 {
		t.Fatalf("first batch: got top1 %g%% top5 %g%%, want 60%% and 40%%", e1, e5)
	}
	// Second batch: 3 examples all right: the mean over 8 examples is 3/8 and 2/8.
	right := [][]float32{{1, 0, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 9}}
	e1, e5 = call(right, []int32{0, 1, 5})
	if math.Abs(e1-37.5) > 1e-4 || math.Abs(e5-25) > 1e-4 {
		t.Fatalf("after two batches: got top1 %g%% top5 %g%%, want 37.5%% and 25%%", e1, e5)
	}
	if s := top1.PrettyPrint(tensors.FromScalar(float32(37.5))); s != "37.50%" {
		t.Errorf("PrettyPrint: got %q", s)
	}
	top1.Reset(store.RootScope())
	top5.Reset(store.RootScope())
	e1, e5 = call(right, []int32{0, 1, 5})
	if e1 != 0 || e5 != 0 {
		t.Fatalf("after Reset: got top1 %g%% top5 %g%%, want 0", e1, e5)
	}
}
