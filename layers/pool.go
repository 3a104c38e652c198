package layers

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// MaxPool2d is PyTorch's nn.MaxPool2d(kernel, stride, padding) on x [N,H,W,C] (floor mode, no dilation): the
// maximum over each kernel x kernel window, with implicit -inf padding. It returns [N,Ho,Wo,C] with
// Ho = (H + 2*padding - kernel)/stride + 1, and records an OpMaxPool (THOP 2019 counts kernel ops per output
// element). PyTorch's rule padding <= kernel/2 applies.
//
// With LoweringIm2Col (the default on the Go backend, whose ReduceWindow has no gradient) it is the running
// maximum of kernel² strided slices of x padded with copies of its edge rows and columns (which never changes
// a window's maximum, since every window holding padding also holds the edge); the gradient of each output
// goes to the first maximal element of its window in row-major order, as in PyTorch. With LoweringNative it
// is GoMLX's MaxPool (the backend's ReduceWindow; the Go backend runs it but cannot differentiate it). The
// lowering comes from the scope parameter ParamLowering.
func MaxPool2d(scope *model.Scope, x *Node, kernel, stride, padding int) *Node {
	ho, wo := checkPool("MaxPool2d", scope, x, kernel, stride, padding)
	var out *Node
	if loweringFromScope(scope).resolve(x.Graph()) == LoweringNative {
		out = MaxPool(x).Window(kernel).Strides(stride).
			PaddingPerDim([][2]int{{padding, padding}, {padding, padding}}).Done()
	} else {
		xp := padEdges(x, padding)
		for _, s := range windowSlices(xp, kernel, stride, ho, wo) {
			if out == nil {
				out = s
			} else {
				out = Max(out, s)
			}
		}
	}
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpMaxPool, Out: out.Shape().Dimensions,
		Elems: perImage(x), Kernel: kernel,
		Detail: fmt.Sprintf("maxpool %dx%d s%d p%d", kernel, kernel, stride, padding)})
	return out
}

// AvgPool2d is PyTorch's nn.AvgPool2d(kernel, stride, padding) on x [N,H,W,C] with its defaults (floor mode,
// count_include_pad=True: zero padding counts in the kernel² divisor). It returns [N,Ho,Wo,C] and records an
// OpAvgPool (THOP 2019 counts kernel + 1 ops per output element).
//
// A non-overlapping unpadded pool (stride == kernel, padding 0, e.g. DenseNet's 2x2 transition pool) is a
// reshape and a mean on every backend; otherwise it is the sum of kernel² strided slices of the zero-padded x
// (LoweringIm2Col) or GoMLX's SumPool (LoweringNative; the Go backend runs it but cannot differentiate it),
// divided by kernel².
func AvgPool2d(scope *model.Scope, x *Node, kernel, stride, padding int) *Node {
	ho, wo := checkPool("AvgPool2d", scope, x, kernel, stride, padding)
	var out *Node
	switch {
	case stride == kernel && padding == 0:
		n, c := x.Shape().Dim(0), x.Shape().Dim(3)
		xc := x
		if x.Shape().Dim(1) != ho*kernel || x.Shape().Dim(2) != wo*kernel {
			xc = Slice(x, AxisRange(), AxisRange(0, ho*kernel), AxisRange(0, wo*kernel), AxisRange())
		}
		out = ReduceMean(Reshape(xc, n, ho, kernel, wo, kernel, c), 2, 4)
	case loweringFromScope(scope).resolve(x.Graph()) == LoweringNative:
		out = SumPool(x).Window(kernel).Strides(stride).
			PaddingPerDim([][2]int{{padding, padding}, {padding, padding}}).Done()
		out = DivScalar(out, float64(kernel*kernel))
	default:
		for _, s := range windowSlices(padZeros(x, padding, padding), kernel, stride, ho, wo) {
			if out == nil {
				out = s
			} else {
				out = Add(out, s)
			}
		}
		out = DivScalar(out, float64(kernel*kernel))
	}
	recordOp(x.Graph(), OpRecord{Scope: scope.Scope(), Kind: OpAvgPool, Out: out.Shape().Dimensions,
		Elems: perImage(x), Kernel: kernel,
		Detail: fmt.Sprintf("avgpool %dx%d s%d p%d", kernel, kernel, stride, padding)})
	return out
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
	ho = (x.Shape().Dim(1)+2*padding-kernel)/stride + 1
	wo = (x.Shape().Dim(2)+2*padding-kernel)/stride + 1
	if x.Shape().Dim(1)+2*padding < kernel || x.Shape().Dim(2)+2*padding < kernel {
		Panicf("layers.%s(%s): input %s is too small for a %dx%d window with padding %d",
			name, scope.Scope(), x.Shape(), kernel, kernel, padding)
	}
	return ho, wo
}

// windowSlices returns, for each offset (u, v) of a kernel x kernel window in row-major order, the strided
// slice [N, ho, wo, C] of the padded xp holding that window element of every output position.
func windowSlices(xp *Node, kernel, stride, ho, wo int) []*Node {
	out := make([]*Node, 0, kernel*kernel)
	for u := range kernel {
		for v := range kernel {
			out = append(out, Slice(xp, AxisRange(),
				AxisRange(u, u+stride*(ho-1)+1).Stride(stride),
				AxisRange(v, v+stride*(wo-1)+1).Stride(stride),
				AxisRange()))
		}
	}
	return out
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

// FunctionalGlobalAvgPool is GlobalAvgPool applied as a function (PyTorch's F.adaptive_avg_pool2d in
// DenseNet's forward): recorded with Functional set, which the paper's FLOPs skip.
func FunctionalGlobalAvgPool(scope *model.Scope, x *Node) *Node {
	return tagRecords(x.Graph(), func(r *OpRecord) { r.Functional = true },
		func() *Node { return GlobalAvgPool(scope, x) })
}

// tagRecords runs build and applies tag to the records it appended to g's Profile (if any).
func tagRecords(g *Graph, tag func(*OpRecord), build func() *Node) *Node {
	p := profileOf(g)
	n := 0
	if p != nil {
		n = len(p.Records)
	}
	out := build()
	if p != nil {
		for i := n; i < len(p.Records); i++ {
			tag(&p.Records[i])
		}
	}
	return out
}

// profileOf returns the Profile attached to g, or nil.
func profileOf(g *Graph) *Profile {
	v, found := model.GetGraphParam(g, profileParam)
	if !found {
		return nil
	}
	p, _ := v.(*Profile)
	return p
}
