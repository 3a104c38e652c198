package layers

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/initializer"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// BatchNormBuilder builds a batch normalisation with PyTorch's BatchNorm2d semantics, see BatchNorm.
type BatchNormBuilder struct {
	scope             *model.Scope
	x                 *Node
	momentum, epsilon float64
}

// BatchNorm starts building a batch normalisation of x [N,H,W,C] (or [N,C]) over all axes but the last,
// exactly as PyTorch's BatchNorm2d: affine γ ("weight", starts at 1) and β ("bias", 0); running statistics
// "running_mean" (0) and "running_var" (1) and the counter "num_batches_tracked" as non-trainable variables.
//
// In training graphs it normalises with the batch mean and biased variance, back-propagates through them, and
// updates running = (1-momentum)*running + momentum*batch, using the unbiased variance for running_var.
// In inference graphs it uses the running statistics. Defaults: momentum 0.1, epsilon 1e-5.
func BatchNorm(scope *model.Scope, x *Node) *BatchNormBuilder {
	return &BatchNormBuilder{scope: scope, x: x, momentum: 0.1, epsilon: 1e-5}
}

// Momentum sets the running-statistics momentum (PyTorch convention: weight of the new batch; default 0.1).
func (b *BatchNormBuilder) Momentum(m float64) *BatchNormBuilder { b.momentum = m; return b }

// Epsilon sets the variance epsilon (default 1e-5).
func (b *BatchNormBuilder) Epsilon(eps float64) *BatchNormBuilder { b.epsilon = eps; return b }

// Done returns the normalised x.
func (b *BatchNormBuilder) Done() *Node {
	x, scope := b.x, b.scope
	g := x.Graph()
	if x.Rank() < 2 {
		Panicf("layers.BatchNorm(%s): want rank >= 2 input, got %s", scope.Scope(), x.Shape())
	}
	c := x.Shape().Dim(-1)
	dtype := x.DType()
	vec := shapes.Make(dtype, c)
	gamma := scope.WithInitializer(initializer.One).VariableWithShape("weight", vec)
	beta := scope.WithInitializer(initializer.Zero).VariableWithShape("bias", vec)
	runMean := scope.WithInitializer(initializer.Zero).VariableWithShape("running_mean", vec).SetTrainable(false)
	runVar := scope.WithInitializer(initializer.One).VariableWithShape("running_var", vec).SetTrainable(false)
	tracked := scope.WithInitializer(initializer.Zero).
		VariableWithShape("num_batches_tracked", shapes.Make(dtypes.Int64)).SetTrainable(false)

	reduceAxes := make([]int, x.Rank()-1)
	for i := range reduceAxes {
		reduceAxes[i] = i
	}
	var mean, variance *Node
	if scope.IsTraining(g) {
		mean = ReduceAndKeep(x, ReduceMean, reduceAxes...)
		centered := Sub(x, mean)
		variance = ReduceAndKeep(Square(centered), ReduceMean, reduceAxes...)
		n := x.Shape().Size() / c
		if n < 2 {
			Panicf("layers.BatchNorm(%s): training needs more than one value per channel, got input %s",
				scope.Scope(), x.Shape())
		}
		m := b.momentum
		bm := Reshape(StopGradient(mean), c)
		bv := MulScalar(Reshape(StopGradient(variance), c), float64(n)/float64(n-1))
		runMean.SetNodeValue(Add(MulScalar(runMean.NodeValue(g), 1-m), MulScalar(bm, m)))
		runVar.SetNodeValue(Add(MulScalar(runVar.NodeValue(g), 1-m), MulScalar(bv, m)))
		tracked.SetNodeValue(AddScalar(tracked.NodeValue(g), 1))
	} else {
		mean = ExpandLeftToRank(runMean.NodeValue(g), x.Rank())
		variance = ExpandLeftToRank(runVar.NodeValue(g), x.Rank())
	}
	// 1/Sqrt rather than Rsqrt: Rsqrt has no gradient in GoMLX v0.28.
	invStd := Inverse(Sqrt(AddScalar(variance, b.epsilon)))
	y := Mul(Sub(x, mean), invStd)
	y = Add(Mul(y, ExpandLeftToRank(gamma.NodeValue(g), x.Rank())), ExpandLeftToRank(beta.NodeValue(g), x.Rank()))
	recordOp(g, OpRecord{Scope: scope.Scope(), Kind: OpBatchNorm, Out: y.Shape().Dimensions,
		Params: int64(2 * c), Elems: perImage(x), Detail: fmt.Sprintf("batchnorm %d", c)})
	return y
}

// ReLU returns max(x, 0), recorded as an OpReLU in the graph's Profile (if any).
func ReLU(scope *model.Scope, x *Node) *Node {
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpReLU, Out: x.Shape().Dimensions, Elems: perImage(x),
		Detail: "relu"})
	return Max(x, ZerosLike(x))
}

// Dropout2d zeroes whole channels of x [N,H,W,C] with probability p in training graphs (one mask per image
// and channel, like PyTorch's Dropout2d) and scales the survivors by 1/(1-p). It is the identity in inference
// graphs or when p is 0.
func Dropout2d(scope *model.Scope, x *Node, p float64) *Node {
	g := x.Graph()
	if p <= 0 || !scope.IsTraining(g) {
		return x
	}
	if p >= 1 {
		return ZerosLike(x)
	}
	maskShape := x.Shape().Clone()
	for axis := 1; axis < x.Rank()-1; axis++ {
		maskShape.Dimensions[axis] = 1
	}
	u := scope.RandomUniform(g, maskShape)
	keep := ConvertDType(GreaterOrEqual(u, Scalar(g, u.DType(), p)), x.DType())
	return Mul(x, MulScalar(keep, 1/(1-p)))
}
