package layers

import (
	"fmt"
	"math"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// MaxPool2d is PyTorch's nn.MaxPool2d(kernel, stride, padding) on x [N,H,W,C] (or [N,C,H,W] in the scope's
// ParamLayout NCHW; floor mode, no dilation): the maximum over each kernel x kernel window, with implicit
// -inf padding. It returns [N,Ho,Wo,C] with Ho = (H + 2*padding - kernel)/stride + 1, and records an
// OpMaxPool (THOP 2019 counts kernel ops per output element). PyTorch's rule padding <= kernel/2 applies.
//
// With LoweringIm2Col (the default on the Go backend, whose ReduceWindow has no gradient) it is the running
// maximum of kernel² strided slices of x padded with copies of its edge rows and columns (which never changes
// a window's maximum, since every window holding padding also holds the edge); the gradient of each output
// goes to the first maximal element of its window in row-major order, as in PyTorch. With LoweringNative it is
// GoMLX's MaxPool (the backend's ReduceWindow, differentiated by SelectAndScatter; the Go backend runs it but
// cannot differentiate it); with LoweringONNX the same forward pass with the gradient written by hand (see
// maxPoolExplicit). The lowering comes from the scope parameter ParamLowering.
func MaxPool2d(scope *model.Scope, x *Node, kernel, stride, padding int) *Node {
	ho, wo := checkPool("MaxPool2d", scope, x, kernel, stride, padding)
	layout := layoutFromScope(scope)
	var out *Node
	switch loweringFromScope(scope).resolve(x.Graph()) {
	case LoweringNative:
		out = nativeMaxPool(x, layout, kernel, stride, padding)
	case LoweringONNX:
		out = maxPoolExplicit(x, layout, kernel, stride, padding)
	default:
		checkIm2ColLayout("MaxPool2d", scope, layout)
		xp := padEdges(x, padding)
		for _, s := range windowSlices(xp, kernel, kernel, stride, ho, wo) {
			if out == nil {
				out = s
			} else {
				out = Max(out, s)
			}
		}
	}
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpMaxPool, Out: recordDims(out, layout),
		Elems: perImage(x), Kernel: kernel,
		Detail: fmt.Sprintf("maxpool %dx%d s%d p%d", kernel, kernel, stride, padding)})
	return out
}

// AvgPool2d is PyTorch's nn.AvgPool2d(kernel, stride, padding) on x [N,H,W,C] (or [N,C,H,W] in the scope's
// ParamLayout NCHW) with its defaults (floor mode, count_include_pad=True: zero padding counts in the kernel²
// divisor). It returns [N,Ho,Wo,C] and records an OpAvgPool (THOP 2019 counts kernel + 1 ops per output
// element).
//
// A non-overlapping unpadded pool (stride == kernel, padding 0, e.g. DenseNet's 2x2 transition pool) is a
// reshape and a mean on every backend; otherwise it is the sum of kernel² strided slices of the zero-padded x
// (LoweringIm2Col), GoMLX's SumPool (LoweringNative; the Go backend runs it but cannot differentiate it)
// divided by kernel², or a depthwise convolution with a constant 1/kernel² kernel (LoweringONNX).
func AvgPool2d(scope *model.Scope, x *Node, kernel, stride, padding int) *Node {
	ho, wo := checkPool("AvgPool2d", scope, x, kernel, stride, padding)
	layout := layoutFromScope(scope)
	ah, aw := layout.spatialAxes()
	var out *Node
	switch lowering := loweringFromScope(scope).resolve(x.Graph()); {
	case stride == kernel && padding == 0:
		xc := x
		if x.Shape().Dim(ah) != ho*kernel || x.Shape().Dim(aw) != wo*kernel {
			xc = SliceAxis(SliceAxis(x, ah, AxisRange(0, ho*kernel)), aw, AxisRange(0, wo*kernel))
		}
		n, _, _, c := layout.dims(x)
		if layout == NCHW {
			out = ReduceMean(Reshape(xc, n, c, ho, kernel, wo, kernel), 3, 5)
		} else {
			out = ReduceMean(Reshape(xc, n, ho, kernel, wo, kernel, c), 2, 4)
		}
	case lowering == LoweringONNX:
		c := x.Shape().Dim(layout.channelAxis())
		k := Ones(x.Graph(), shapes.Make(x.DType(), kernel, kernel, 1, c))
		out = conv2DExplicit(x, MulScalar(k, 1/float64(kernel*kernel)), layout, stride, c, padding, padding)
	case lowering == LoweringNative:
		out = SumPool(x).ChannelsAxis(layout.imagesAxis()).Window(kernel).Strides(stride).
			PaddingPerDim([][2]int{{padding, padding}, {padding, padding}}).Done()
		out = DivScalar(out, float64(kernel*kernel))
	default:
		checkIm2ColLayout("AvgPool2d", scope, layout)
		for _, s := range windowSlices(padZeros(x, padding, padding), kernel, kernel, stride, ho, wo) {
			if out == nil {
				out = s
			} else {
				out = Add(out, s)
			}
		}
		out = DivScalar(out, float64(kernel*kernel))
	}
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpAvgPool, Out: recordDims(out, layout),
		Elems: perImage(x), Kernel: kernel,
		Detail: fmt.Sprintf("avgpool %dx%d s%d p%d", kernel, kernel, stride, padding)})
	return out
}

// nativeMaxPool is GoMLX's MaxPool of images x in layout l.
func nativeMaxPool(x *Node, l Layout, kernel, stride, padding int) *Node {
	return MaxPool(x).ChannelsAxis(l.imagesAxis()).Window(kernel).Strides(stride).
		PaddingPerDim([][2]int{{padding, padding}, {padding, padding}}).Done()
}

// maxPoolExplicit is nativeMaxPool with a hand-written gradient: the gradient of each output goes to the first
// maximal element of its window in row-major order (PyTorch's choice). For each window offset (u, v), the
// outputs whose first maximum sits there send their gradient to the input positions o*stride + (u, v) -
// padding, placed by zero-interleaving and plain padding: GoMLX's gradient of a strided max pool
// (SelectAndScatter) overwrites instead of adding where windows overlap on ONNX Runtime.
func maxPoolExplicit(x *Node, l Layout, kernel, stride, padding int) *Node {
	var dOut, y *Node
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		g := x.Graph()
		ah, aw := l.spatialAxes()
		pads := make([]compute.PadAxis, 4)
		pads[ah] = compute.PadAxis{Start: padding, End: padding}
		pads[aw] = pads[ah]
		xp := Pad(x, Scalar(g, x.DType(), math.Inf(-1)), pads...)
		_, ho, wo, _ := l.dims(y)
		var taken, dx *Node
		for u := range kernel {
			for v := range kernel {
				win := SliceAxis(SliceAxis(xp, ah, AxisRange(u, u+stride*(ho-1)+1).Stride(stride)),
					aw, AxisRange(v, v+stride*(wo-1)+1).Stride(stride))
				first := Equal(win, y)
				if taken == nil {
					taken = first
				} else {
					first = LogicalAnd(first, LogicalNot(taken))
					taken = LogicalOr(taken, first)
				}
				part := placeStrided(Where(first, dOut, ZerosLike(dOut)), x.Shape(), l, stride, u-padding, v-padding)
				if dx == nil {
					dx = part
				} else {
					dx = Add(dx, part)
				}
			}
		}
		return dx
	})
	y = nativeMaxPool(StopGradient(xs), l, kernel, stride, padding)
	return captureGradient(OptimizationBarriers(y, xs)[0], &dOut)
}

// placeStrided returns v [.., ho, wo, ..] (layout l) spread over the spatial positions o*stride + (offH, offW)
// of a zero tensor of shape xShape (positions outside xShape are dropped).
func placeStrided(v *Node, xShape shapes.Shape, l Layout, stride, offH, offW int) *Node {
	g := v.Graph()
	zero := ScalarZero(g, v.DType())
	ah, aw := l.spatialAxes()
	n, ho, wo, c := l.dims(v)
	if stride > 1 { // zero-interleave: o lands on o*stride
		split := l.shape(n, ho, wo, c)
		split = append(split[:ah+1], append([]int{1}, split[ah+1:]...)...)
		split = append(split[:aw+2], append([]int{1}, split[aw+2:]...)...)
		pads := make([]compute.PadAxis, 6)
		pads[ah+1].End, pads[aw+2].End = stride-1, stride-1
		v = Reshape(Pad(Reshape(v, split...), zero, pads...), l.shape(n, ho*stride, wo*stride, c)...)
	}
	for _, a := range []struct{ axis, off int }{{ah, offH}, {aw, offW}} {
		size, want := v.Shape().Dim(a.axis), xShape.Dim(a.axis)
		front, back := a.off, want-a.off-size
		if front < 0 {
			v, size, front = SliceAxis(v, a.axis, AxisRange(-front, size)), size+front, 0
		}
		if back < 0 {
			v, back = SliceAxis(v, a.axis, AxisRange(0, size+back)), 0
		}
		pads := make([]compute.PadAxis, 4)
		pads[a.axis] = compute.PadAxis{Start: front, End: back}
		v = Pad(v, zero, pads...)
	}
	return v
}

// checkIm2ColLayout panics (at graph building) unless the im2col lowering of a pool gets NHWC images.
func checkIm2ColLayout(name string, scope *model.Scope, l Layout) {
	if l != NHWC {
		Panicf("layers.%s(%s): the %s lowering needs %s images, got %s", name, scope.Scope(), LoweringIm2Col, NHWC, l)
	}
}

// checkPool validates a pool's input and settings and returns its output size.
func checkPool(name string, scope *model.Scope, x *Node, kernel, stride, padding int) (ho, wo int) {
	if x.Rank() != 4 {
		Panicf("layers.%s(%s): want an NHWC input of rank 4, got %s", name, scope.Scope(), x.Shape())
	}
	if kernel < 1 || stride < 1 || padding < 0 || 2*padding > kernel {
		Panicf("layers.%s(%s): want kernel >= 1, stride >= 1 and 0 <= padding <= kernel/2, got kernel=%d stride=%d padding=%d",
			name, scope.Scope(), kernel, stride, padding)
	}
	_, h, w, _ := layoutFromScope(scope).dims(x)
	ho = (h+2*padding-kernel)/stride + 1
	wo = (w+2*padding-kernel)/stride + 1
	if h+2*padding < kernel || w+2*padding < kernel {
		Panicf("layers.%s(%s): input %s is too small for a %dx%d window with padding %d",
			name, scope.Scope(), x.Shape(), kernel, kernel, padding)
	}
	return ho, wo
}

// padEdges pads the spatial axes of x [N,H,W,C] by p on each side with copies of its first and last rows and
// columns (by concatenation, which has a gradient on every backend).
func padEdges(x *Node, p int) *Node {
	if p == 0 {
		return x
	}
	h := x.Shape().Dim(1)
	top := Slice(x, AxisRange(), AxisRange(0, 1), AxisRange(), AxisRange())
	bottom := Slice(x, AxisRange(), AxisRange(h-1, h), AxisRange(), AxisRange())
	parts := make([]*Node, 0, 2*p+1)
	for range p {
		parts = append(parts, top)
	}
	parts = append(parts, x)
	for range p {
		parts = append(parts, bottom)
	}
	x = Concatenate(parts, 1)
	w := x.Shape().Dim(2)
	left := Slice(x, AxisRange(), AxisRange(), AxisRange(0, 1), AxisRange())
	right := Slice(x, AxisRange(), AxisRange(), AxisRange(w-1, w), AxisRange())
	parts = parts[:0]
	for range p {
		parts = append(parts, left)
	}
	parts = append(parts, x)
	for range p {
		parts = append(parts, right)
	}
	return Concatenate(parts, 2)
}

// GlobalAvgPool averages x [N,H,W,C] (or [N,C,H,W] in the scope's ParamLayout NCHW) over its spatial axes,
// returning [N,C].
func GlobalAvgPool(scope *model.Scope, x *Node) *Node {
	out := ReduceMean(x, spatialAxesOf(scope)...)
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpGAP, Out: out.Shape().Dimensions, Elems: perImage(x),
		Detail: "global average pool"})
	return out
}

// FunctionalGlobalAvgPool is GlobalAvgPool applied as a function (PyTorch's F.adaptive_avg_pool2d in
// DenseNet's forward): recorded with Functional set, which the paper's FLOPs skip.
func FunctionalGlobalAvgPool(scope *model.Scope, x *Node) *Node {
	return tagRecords(x.Graph(), func(r *OpRecord) { r.Functional = true },
		func() *Node { return GlobalAvgPool(scope, x) })
}
