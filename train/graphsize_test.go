package train

import (
	"bytes"
	"testing"
	"time"

	onnxbackend "github.com/gomlx/compute-onnx"
	"github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"google.golang.org/protobuf/proto"
)

// maxTrainingGraphNodes bounds the ONNX nodes of the CIFAR demo model's training step: ONNX Runtime's session
// build, most of the first step, grows with them (29,637 on 2026-12-08; 33,678 before the vectors were updated
// together and batch norm's redundant identities went, BENCHMARKS.md).
const maxTrainingGraphNodes = 30_000

// TestTrainingGraphSize builds the CIFAR demo model's training step (forward, backward, Nesterov SGD with weight
// decay) on ONNX Runtime, as "seqconv bench" does, and checks its node count against maxTrainingGraphNodes. It
// logs the count and the time of building the graph and ONNX Runtime's session. It runs in the ONNX Runtime
// pass of the suite ($GOMLX_BACKEND naming ONNX Runtime).
func TestTrainingGraphSize(t *testing.T) {
	ort, ok := testBackend(t).(*onnxbackend.Backend)
	if !ok {
		t.Skip("an ONNX Runtime check: it runs in the suite's pass with $GOMLX_BACKEND naming ONNX Runtime")
	}
	defer ort.SetKeepModelProto(ort.KeepModelProto())
	ort.SetKeepModelProto(true)
	cfg := mustModel(t, "seqresnet-cifar-demo")
	store := model.NewStore()
	exec, err := model.NewExec(ort, store, func(scope *model.Scope, x, labels *Node) *Node {
		store.SetTraining(x.Graph(), true)
		loss := ReduceAllMean(SoftmaxCrossEntropy(cfg.Build(scope, x), labels, 0))
		SGD().LearningRate(0.01).Momentum(0.9).Nesterov(true).WeightDecay(1e-4).Done().UpdateGraph(scope, x.Graph(), loss)
		return loss
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	start := time.Now()
	g, err := exec.Compile(shapes.Make(dtypes.Float32, 16, cfg.Resolution, cfg.Resolution, cfg.InChannels),
		shapes.Make(dtypes.Int32, 16))
	if err != nil {
		t.Fatal(err)
	}
	built := time.Since(start)
	var buf bytes.Buffer
	if err := onnxbackend.SaveModel(ort, g.Executable(), &buf, nil, nil); err != nil {
		t.Fatal(err)
	}
	var m protos.ModelProto
	if err := proto.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	nodes := len(m.GetGraph().GetNode())
	t.Logf("training graph of %s at batch 16: %d ONNX nodes; graph and session built in %s", cfg.Name, nodes,
		built.Round(10*time.Millisecond))
	if nodes > maxTrainingGraphNodes {
		t.Errorf("the training graph has %d nodes, more than %d: ONNX Runtime's session build grows with them",
			nodes, maxTrainingGraphNodes)
	}
}
