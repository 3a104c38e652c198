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

// BatchNorm starts building a batch normalisation of x [N,H,W,C] (or [N,C,H,W] in the scope's ParamLayout
// NCHW, or [N,C]) over all axes but the channels',
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
	chAxis := x.Rank() - 1
	if x.Rank() == 4 {
		chAxis = layoutFromScope(scope).channelAxis()
	}
	c := x.Shape().Dim(chAxis)
	dtype := x.DType()
	vec := shapes.Make(dtype, c)
	gamma := scope.WithInitializer(initializer.One).VariableWithShape("weight", vec)
	beta := scope.WithInitializer(initializer.Zero).VariableWithShape("bias", vec)
	runMean := scope.WithInitializer(initializer.Zero).VariableWithShape("running_mean", vec).SetTrainable(false)
	runVar := scope.WithInitializer(initializer.One).VariableWithShape("running_var", vec).SetTrainable(false)
	tracked := scope.WithInitializer(initializer.Zero).
		VariableWithShape("num_batches_tracked", shapes.Make(dtypes.Int64)).SetTrainable(false)

	bcast := func(v *Node) *Node { return Reshape(v, channelDims(x, chAxis, c)...) }
	var y *Node
	if scope.IsTraining(g) {
		n := x.Shape().Size() / c
		if n < 2 {
			Panicf("layers.BatchNorm(%s): training needs more than one value per channel, got input %s",
				scope.Scope(), x.Shape())
		}
		var mean, variance *Node
		y, mean, variance = batchNormTraining(x, chAxis, gamma.NodeValue(g), beta.NodeValue(g), b.epsilon)
		m := b.momentum
		// mean and variance are computed from the gradient-stopped x (see batchNormTraining): no StopGradient
		// needed, and none emitted (ONNX Runtime's session build time grows with the identities).
		bm := Reshape(mean, c)
		bv := MulScalar(Reshape(variance, c), float64(n)/float64(n-1))
		runMean.SetNodeValue(Add(MulScalar(runMean.NodeValue(g), 1-m), MulScalar(bm, m)))
		runVar.SetNodeValue(Add(MulScalar(runVar.NodeValue(g), 1-m), MulScalar(bv, m)))
		tracked.SetNodeValue(AddScalar(tracked.NodeValue(g), 1))
	} else {
		// y = x*a + b with per-channel a = γ/sqrt(var+eps), b = β - mean*a. On ONNX Runtime (channels first) x*a
		// is a depthwise 1x1 convolution, to which ONNX Runtime adds b and fuses the ReLU after it, all in its
		// blocked layout (NCHWc). A per-channel Mul and Add are folded into the convolution before them only where
		// that convolution's output has no other use; elsewhere (a sum with a shortcut, a residual stream) they
		// convert the tensor to NCHW and back.
		mean, variance := bcast(runMean.NodeValue(g)), bcast(runVar.NodeValue(g))
		a := Mul(bcast(gamma.NodeValue(g)), Inverse(Sqrt(AddScalar(variance, b.epsilon))))
		shift := Sub(bcast(beta.NodeValue(g)), Mul(mean, a))
		if x.Rank() == 4 && chAxis == 1 && loweringFromScope(scope).resolve(g) == LoweringONNX {
			y = Add(nativeConv(x, Reshape(a, 1, 1, 1, c), NCHW, 1, c, [][2]int{{0, 0}, {0, 0}}), shift)
		} else {
			y = Add(Mul(x, a), shift)
		}
	}
	recordOp(g, OpRecord{Scope: scope.Scope(), Kind: OpBatchNorm, Out: recordDims(y, layoutFromScope(scope)),
		Params: int64(2 * c), Elems: perImage(x), Detail: fmt.Sprintf("batchnorm %d", c)})
	return y
}

// batchNormTraining normalises x with its batch statistics over all axes but chAxis (mean and biased
// variance, both returned with the reduced axes kept as 1s) and applies the per-channel affine γ, β ([C]). Its
// gradient is written by hand, the textbook batch-norm backward pass folded into per-channel coefficients:
//
//	dx = a*dy + c1*xc + c0,  c0 = -a*mean(dy),  c1 = -a*s²*mean(dy*xc),  dγ = s*Σ dy*xc,  dβ = Σ dy
//
// with xc = x - mean, s = 1/sqrt(var+eps) and a = γ*s: the forward pass is y = a*x + (β - a*mean), the backward
// pass four tensor-sized ops besides its two sums, about half of what differentiating the forward graph
// produces. 1/Sqrt replaces Rsqrt (which has no gradient in GoMLX v0.28).
func batchNormTraining(x *Node, chAxis int, gamma, beta *Node, epsilon float64) (y, mean, variance *Node) {
	c := x.Shape().Dim(chAxis)
	n := float64(x.Shape().Size() / c)
	dims := channelDims(x, chAxis, c)
	sum := func(v *Node) *Node { return sumExcept(v, chAxis) }
	// The statistics are computed from a gradient-stopped x: the whole input gradient comes from xs below.
	xd := StopGradient(x)
	mean = MulScalar(sum(xd), 1/n)
	xc := Sub(xd, mean)
	variance = MulScalar(sum(Mul(xc, xc)), 1/n)
	s := Inverse(Sqrt(AddScalar(variance, epsilon)))

	// Autodiff visits nodes in reverse creation order: xs's gradient (created last) runs before γ's and β's and
	// stashes Σ dy and Σ dy*xc for them. Under gradient checkpointing xs's gradient receives a rematerialized
	// copy of x and recomputes xc from it, so the forward xc need not be kept for the backward pass. The
	// identities wrap the [C] variables themselves (ONNX Runtime's basic graph optimizations break an identity
	// between a reshape and its consumer).
	var dy, xs, sumDy, sumDyXc *Node
	stash := func(xcu *Node) {
		if sumDy == nil {
			sumDy, sumDyXc = sum(dy), sum(Mul(dy, xcu))
		}
	}
	gs := IdentityWithCustomGradient(gamma, func(_, _ *Node) *Node {
		stash(xc)
		return Reshape(Mul(sumDyXc, s), c)
	})
	bs := IdentityWithCustomGradient(beta, func(_, _ *Node) *Node {
		stash(xc)
		return Reshape(sumDy, c)
	})
	a := Mul(Reshape(gs, dims...), s)
	xs = IdentityWithCustomGradient(x, func(node, _ *Node) *Node {
		xcu := xc
		if node != xs { // a rematerialized x (gradient checkpointing)
			xcu = Sub(node, mean)
		}
		stash(xcu)
		c0 := MulScalar(Mul(a, sumDy), -1/n)
		c1 := MulScalar(Mul(a, Mul(sumDyXc, Mul(s, s))), -1/n)
		return Add(Add(Mul(dy, a), Mul(xcu, c1)), c0)
	})
	// The forward value through the identities, so that autodiff reaches them; their default gradients are
	// never used and the backend drops them.
	y = Add(Mul(xs, a), Sub(Reshape(bs, dims...), Mul(mean, a)))
	return captureGradient(y, &dy), mean, variance
}

// sumExcept sums x over all axes but chAxis, keeping them (as 1s). With the channels last it is a matrix
// product with a row of ones, which the Go backend computes with its SIMD matmul kernels: 2-9x faster there
// than its generic reduction for batch-norm shapes (BenchmarkGoBackendOps, reduce-sum vs sum-as-matmul).
// Channels first ([N, C, H, W]), it is a sum over the spatial axes and then one over the batch (on ONNX Runtime,
// 1.3-1.9x faster than a matrix-vector product or one reduction over the three axes).
func sumExcept(x *Node, chAxis int) *Node {
	c := x.Shape().Dim(chAxis)
	dims := channelDims(x, chAxis, c)
	if chAxis == x.Rank()-1 {
		m := x.Shape().Size() / c
		ones := Ones(x.Graph(), shapes.Make(x.DType(), 1, m))
		return Reshape(DotGeneral(ones, []int{1}, nil, Reshape(x, m, c), []int{0}, nil), dims...)
	}
	var inner []int
	for axis := chAxis + 1; axis < x.Rank(); axis++ {
		inner = append(inner, axis)
	}
	var outer []int
	for axis := range chAxis {
		outer = append(outer, axis)
	}
	return Reshape(ReduceSum(ReduceSum(x, inner...), outer...), dims...)
}

// sumRows sums x [..., C] over all axes but the last, keeping them (as 1s).
func sumRows(x *Node) *Node { return sumExcept(x, x.Rank()-1) }

// channelDims is the shape [1, ..., c, ..., 1] of x's rank with c at chAxis: per-channel values broadcast
// against x.
func channelDims(x *Node, chAxis, c int) []int {
	dims := make([]int, x.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[chAxis] = c
	return dims
}
