package layers

import (
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// Dropout2d zeroes whole channels of x [N,H,W,C] (or [N,C,H,W] in the scope's ParamLayout NCHW) with
// probability p in training graphs (one mask per image
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
	chAxis := x.Rank() - 1
	if x.Rank() == 4 {
		chAxis = layoutFromScope(scope).channelAxis()
	}
	maskShape := x.Shape().Clone()
	for axis := 1; axis < x.Rank(); axis++ {
		if axis != chAxis {
			maskShape.Dimensions[axis] = 1
		}
	}
	return Mul(x, channelDropMask(scope, g, maskShape, p))
}

// channelDropMask draws Dropout2d's multipliers of the given shape (1 on the spatial axes) for a training
// graph: 0 with probability p, 1/(1-p) otherwise; nil when dropout is off (p <= 0 or not training).
func channelDropMask(scope *model.Scope, g *Graph, shape shapes.Shape, p float64) *Node {
	if p <= 0 || !scope.IsTraining(g) {
		return nil
	}
	if p >= 1 {
		return Zeros(g, shape)
	}
	u := scope.RandomUniform(g, shape)
	keep := ConvertDType(GreaterOrEqual(u, Scalar(g, u.DType(), p)), shape.DType)
	return MulScalar(keep, 1/(1-p))
}
