package layers

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/layers/activation"
	"github.com/gomlx/gomlx/ml/model"
)

// ReLU returns max(x, 0), recorded as an OpReLU in the graph's Profile (if any). In training graphs its gradient
// is PyTorch's: dy where x > 0 and 0 elsewhere (also at x == 0, where GoMLX's Max would pass the gradient
// through).
func ReLU(scope *model.Scope, x *Node) *Node {
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpReLU, Out: recordDims(x, layoutFromScope(scope)),
		Elems:  perImage(x),
		Detail: "relu"})
	if !scope.IsTraining(x.Graph()) {
		// GoMLX's fused ReLU where the backend has one (ONNX Runtime's Relu, which it fuses into the preceding
		// convolution), Max(x, 0) elsewhere.
		return activation.Relu(x)
	}
	zero := ScalarZero(x.Graph(), x.DType())
	var dy *Node
	// node is x's identity, or its rematerialized copy under gradient checkpointing.
	xs := IdentityWithCustomGradient(x, func(node, _ *Node) *Node {
		return Where(GreaterThan(node, zero), dy, zero)
	})
	return captureGradient(Max(xs, zero), &dy)
}

// ReLUModule is ReLU for a module applied several times, like the single ReLU module that torchvision's
// Bottleneck calls three times: pass the same scope on every call. Its records carry Module = the scope
// path, and THOP 2019, which overwrites a module's count on each call, counts only the last of them.
func ReLUModule(scope *model.Scope, x *Node) *Node {
	return tagRecords(x.Graph(), func(r *OpRecord) { r.Module = scope.Scope() }, func() *Node { return ReLU(scope, x) })
}

// FunctionalReLU is ReLU applied as a function (PyTorch's F.relu, e.g. after DenseNet's norm5): recorded with
// Functional set, which the paper's FLOPs (THOP counts modules only) skip.
func FunctionalReLU(scope *model.Scope, x *Node) *Node {
	return tagRecords(x.Graph(), func(r *OpRecord) { r.Functional = true }, func() *Node { return ReLU(scope, x) })
}
