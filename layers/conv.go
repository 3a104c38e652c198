// Package layers holds the building blocks of Sequentially Aggregated Convolutional Networks on GoMLX:
// a fast 2-D convolution, batch normalisation with PyTorch semantics, the pre-activation conv unit,
// the SeqConv layer (dense or windowed aggregation), the residual block and the downsampling layer.
//
// Every layer works on channels-last (NHWC) images and follows GoMLX's builder style:
//
//	raw, act := layers.SeqConv(scope.In("LayerA"), x).Granularity(16).Channels(112).Bottleneck(true).Done()
//
// Variables are created in the given scope under the names the authors' PyTorch code uses
// (for instance "Filters/0/BottleneckLayer/LinearLayer/weight"), so a variable's path maps one to one
// onto a key of the reference state_dict.
package layers

import (
	"encoding"
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	. "github.com/gomlx/gomlx/support/exceptions"
)

// Lowering selects how Conv2D computes a convolution.
type Lowering int

const (
	// LoweringAuto uses LoweringIm2Col on GoMLX's pure Go backend ("go"), LoweringONNX on ONNX Runtime
	// ("onnxruntime") and LoweringNative elsewhere (XLA).
	LoweringAuto Lowering = iota
	// LoweringNative uses the backend's ConvGeneral.
	LoweringNative
	// LoweringIm2Col lowers the convolution to zero-padding by concatenation, shifted (strided) slices and
	// one DotGeneral. The Go backend's native ConvGeneral is a naive loop; this is ~60x faster there
	// (BenchmarkConv2DLowering).
	LoweringIm2Col
	// LoweringONNX uses the backend's ConvGeneral for the forward pass and writes the gradients by hand without
	// the input dilation, interior padding and batch groups that GoMLX's autodiff of strided and grouped
	// convolutions needs and ONNX Runtime lacks (see conv2DExplicit). 1x1 stride-1 convolutions are one
	// matrix product.
	LoweringONNX
)

// String implements fmt.Stringer.
func (l Lowering) String() string {
	switch l {
	case LoweringAuto:
		return "auto"
	case LoweringNative:
		return "native"
	case LoweringIm2Col:
		return "im2col"
	case LoweringONNX:
		return "onnx"
	}
	return fmt.Sprintf("Lowering(%d)", int(l))
}

// ParamLowering is the scope hyperparameter (a Lowering or its name: "auto", "native", "im2col", "onnx") that
// selects the convolution lowering of every Conv built in that scope. It defaults to LoweringAuto.
const ParamLowering = "conv_lowering"

// Precision names how convolutions compute.
type Precision string

const (
	// PrecisionF32 computes in the dtype of the inputs (float32 or float64).
	PrecisionF32 Precision = "f32"
	// PrecisionBF16 computes float32 convolutions on bfloat16 copies of their input and weights, with float32
	// accumulation and float32 outputs; variables, batch norm, the classifier and the loss stay in float32.
	PrecisionBF16 Precision = "bf16"
)

// ParamPrecision is the scope hyperparameter (a Precision or its name) that selects the precision of every
// Conv built in that scope. It defaults to PrecisionF32.
const ParamPrecision = "precision"

// ParsePrecision converts a name ("f32", "bf16") to a Precision.
func ParsePrecision(name string) (Precision, error) {
	switch p := Precision(name); p {
	case PrecisionF32, PrecisionBF16:
		return p, nil
	}
	return "", fmt.Errorf("unknown precision %q, expected f32|bf16", name)
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePrecision, so that ParamPrecision may hold a
// name (see scopeParam).
func (p *Precision) UnmarshalText(text []byte) (err error) {
	*p, err = ParsePrecision(string(text))
	return err
}

func precisionFromScope(scope *model.Scope) Precision {
	return scopeParam(scope, ParamPrecision, PrecisionF32)
}

// ParseLowering converts a name ("auto", "native", "im2col", "onnx") to a Lowering.
func ParseLowering(name string) (Lowering, error) {
	return parseEnum("convolution lowering", name, LoweringAuto, LoweringNative, LoweringIm2Col, LoweringONNX)
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseLowering, so that ParamLowering may hold a name
// (see scopeParam).
func (l *Lowering) UnmarshalText(text []byte) (err error) {
	*l, err = ParseLowering(string(text))
	return err
}

func loweringFromScope(scope *model.Scope) Lowering {
	return scopeParam(scope, ParamLowering, LoweringAuto)
}

// scopeParam returns the scope hyperparameter name as a T: a T, or a name that T's UnmarshalText parses; def
// when it is unset. Another type, or an unknown name, panics (GoMLX style, while the graph is built) with the
// parser's error, which lists the valid names. model.GetParamOr would drop that error, and convert any number.
func scopeParam[T any, PT interface {
	*T
	encoding.TextUnmarshaler
}](scope *model.Scope, name string, def T) T {
	v, found := scope.GetParam(name)
	if !found || v == nil {
		return def
	}
	switch x := v.(type) {
	case T:
		return x
	case string:
		var t T
		if err := PT(&t).UnmarshalText([]byte(x)); err != nil {
			panic(fmt.Errorf("scope parameter %q: %w", name, err))
		}
		return t
	}
	Panicf("scope parameter %q: want a %T or its name, got %T", name, def, v)
	return def
}

// parseEnum returns the value of values whose String is name, or an error naming what and the valid names.
func parseEnum[T fmt.Stringer](what, name string, values ...T) (T, error) {
	names := make([]string, len(values))
	for i, v := range values {
		if v.String() == name {
			return v, nil
		}
		names[i] = v.String()
	}
	var zero T
	return zero, fmt.Errorf("unknown %s %q, expected %s", what, name, strings.Join(names, "|"))
}

// resolve turns LoweringAuto into the concrete choice for the graph's backend.
func (l Lowering) resolve(g *Graph) Lowering {
	if l != LoweringAuto {
		return l
	}
	switch {
	case isGoBackend(g.Backend()):
		return LoweringIm2Col
	case isONNXBackend(g.Backend()):
		return LoweringONNX
	}
	return LoweringNative
}

// isGoBackend reports whether b is GoMLX's pure Go backend (its Name is "Go Backend"; it registers as "go").
func isGoBackend(b compute.Backend) bool {
	name := strings.ToLower(b.Name())
	return name == gobackend.BackendName || strings.HasPrefix(name, "go ")
}

// checkBF16 panics (at graph building) when the bf16 precision meets a lowering that cannot run it:
// ONNX Runtime's Conv has no bfloat16 kernel.
func checkBF16(scope *model.Scope, g *Graph, l Lowering) {
	if l.resolve(g) == LoweringONNX {
		Panicf("layers(%s): the bf16 precision is not supported on ONNX Runtime (its convolutions have no "+
			"bfloat16 kernel); use f32", scope.Scope())
	}
}

// isONNXBackend reports whether b is the ONNX Runtime backend of compute-onnx (it registers as "onnx" and
// is named "onnxruntime").
func isONNXBackend(b compute.Backend) bool {
	return strings.HasPrefix(strings.ToLower(b.Name()), "onnx")
}

// Conv2D convolves x [N, H, W, Cin] with kernel [kh, kw, Cin/groups, Cout] (HWIO), with the given stride,
// "same"-style zero padding of (k-1)/2 on each side (PyTorch's padding=(k-1)/2 for odd k), and grouped
// channels. It returns [N, Ho, Wo, Cout] with Ho = (H + 2*((kh-1)/2) - kh)/stride + 1.
//
// With LoweringIm2Col (the default on the Go backend) the convolution becomes padding by concatenated zeros,
// kh*kw strided slices concatenated on the channel axis and one DotGeneral (a batched one for groups > 1);
// a 1x1 stride-1 convolution is a single DotGeneral. Every op used has a gradient in GoMLX.
func Conv2D(x, kernel *Node, stride, groups int, lowering Lowering) *Node {
	return conv2D(x, kernel, NHWC, stride, groups, lowering)
}

// conv2D is Conv2D on images in layout l (LoweringIm2Col needs NHWC).
func conv2D(x, kernel *Node, l Layout, stride, groups int, lowering Lowering) *Node {
	if x.Rank() != 4 || kernel.Rank() != 4 {
		Panicf("Conv2D: want x [N,H,W,C] or [N,C,H,W] and kernel [kh,kw,Cin/groups,Cout], got %s and %s",
			x.Shape(), kernel.Shape())
	}
	kh, kw, cinG, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	_, h, w, cin := l.dims(x)
	if groups < 1 || cin%groups != 0 || cout%groups != 0 || cin/groups != cinG {
		Panicf("Conv2D: %d input channels, %d output channels and kernel %s do not fit %d groups",
			cin, cout, kernel.Shape(), groups)
	}
	if stride < 1 {
		Panicf("Conv2D: stride must be >= 1, got %d", stride)
	}
	padH, padW := (kh-1)/2, (kw-1)/2
	if h+2*padH < kh || w+2*padW < kw {
		Panicf("Conv2D: input %dx%d is too small for a %dx%d kernel", h, w, kh, kw)
	}
	switch lowering = lowering.resolve(x.Graph()); {
	case lowering == LoweringNative:
		return nativeConv(x, kernel, l, stride, groups, [][2]int{{padH, padH}, {padW, padW}})
	case lowering == LoweringONNX && l == NHWC && kh == 1 && kw == 1 && stride == 1 && groups == 1:
		return matmulLastAxis(x, Reshape(kernel, cin, cout))
	case lowering == LoweringONNX:
		return conv2DExplicit(x, kernel, l, stride, groups, padH, padW)
	case l != NHWC:
		Panicf("Conv2D: the %s lowering needs NHWC images, got %s", lowering, l)
	}
	return conv2DIm2Col(x, kernel, stride, groups, padH, padW)
}

// conv2DIm2Col is Conv2D lowered to slices and DotGeneral.
func conv2DIm2Col(x, kernel *Node, stride, groups, padH, padW int) *Node {
	n, h, w, cin := x.Shape().Dim(0), x.Shape().Dim(1), x.Shape().Dim(2), x.Shape().Dim(3)
	kh, kw, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(3)
	ho := (h+2*padH-kh)/stride + 1
	wo := (w+2*padW-kw)/stride + 1
	if groups == 1 {
		if stride == 1 && kh > 1 {
			return conv2DSame(x, kernel)
		}
		return matmulLastAxis(im2col(x, kh, kw, stride, padH, padW), Reshape(kernel, kh*kw*cin, cout))
	}
	patches := im2col(x, kh, kw, stride, padH, padW) // [N, Ho, Wo, kh*kw*Cin], ordered (u, v, c)
	cg, og := cin/groups, cout/groups
	p := Reshape(patches, n, ho, wo, kh*kw, groups, cg)
	k := Reshape(kernel, kh*kw, cg, groups, og)
	out := DotGeneral(p, []int{3, 5}, []int{4}, k, []int{0, 1}, []int{2}) // [G, N, Ho, Wo, Og]
	out = TransposeAllAxes(out, 1, 2, 3, 0, 4)                            // [N, Ho, Wo, G, Og]
	return Reshape(out, n, ho, wo, cout)
}

// im2col returns the patches [N, Ho, Wo, kh*kw*C] of x [N, H, W, C], ordered (u, v, c), for a kh x kw kernel
// with the given stride and zero padding.
func im2col(x *Node, kh, kw, stride, padH, padW int) *Node {
	h, w := x.Shape().Dim(1), x.Shape().Dim(2)
	ho := (h+2*padH-kh)/stride + 1
	wo := (w+2*padW-kw)/stride + 1
	xp := padZeros(x, padH, padW)
	if kh == 1 && kw == 1 {
		if stride == 1 {
			return xp
		}
		return Slice(xp, AxisRange(), AxisRange().Stride(stride), AxisRange().Stride(stride), AxisRange())
	}
	return Concatenate(windowSlices(xp, kh, kw, stride, ho, wo), -1)
}

// windowSlices returns, for each offset (u, v) of a kh x kw window in row-major order, the strided slice
// [N, ho, wo, C] of the padded xp holding that window element of every output position.
func windowSlices(xp *Node, kh, kw, stride, ho, wo int) []*Node {
	out := make([]*Node, 0, kh*kw)
	for u := range kh {
		for v := range kw {
			out = append(out, Slice(xp, AxisRange(),
				AxisRange(u, u+stride*(ho-1)+1).Stride(stride),
				AxisRange(v, v+stride*(wo-1)+1).Stride(stride),
				AxisRange()))
		}
	}
	return out
}

// conv2DSame is a stride-1, "same"-padded, ungrouped convolution with a hand-written gradient: the input
// gradient of such a convolution is the same convolution of the output gradient with the spatially flipped,
// transposed kernel, so it is lowered like the forward pass (slices, one concatenation, one DotGeneral)
// instead of differentiating through kh*kw slices, a concatenation and the zero padding. The kernel gradient
// comes from matmulLastAxis.
func conv2DSame(x, kernel *Node) *Node {
	kh, kw, cin, cout := kernel.Shape().Dim(0), kernel.Shape().Dim(1), kernel.Shape().Dim(2), kernel.Shape().Dim(3)
	padH, padW := (kh-1)/2, (kw-1)/2
	var dOut *Node
	xs := IdentityWithCustomGradient(x, func(_, _ *Node) *Node {
		flippedT := TransposeAllAxes(Reverse(kernel, 0, 1), 2, 0, 1, 3) // [Cin, kh, kw, Cout]
		patches := im2col(dOut, kh, kw, 1, padH, padW)
		return DotGeneral(patches, []int{3}, nil, Reshape(flippedT, cin, kh*kw*cout), []int{1}, nil)
	})
	return captureGradient(matmulLastAxis(im2col(xs, kh, kw, 1, padH, padW), Reshape(kernel, kh*kw*cin, cout)), &dOut)
}

// padZeros pads the spatial axes of x [N,H,W,C] with zeros by concatenation (GoMLX's Pad has no gradient).
func padZeros(x *Node, padH, padW int) *Node {
	if padH == 0 && padW == 0 {
		return x
	}
	g := x.Graph()
	dims := x.Shape().Dimensions
	if padH > 0 {
		z := Zeros(g, shapes.Make(x.DType(), dims[0], padH, dims[2], dims[3]))
		x = Concatenate([]*Node{z, x, z}, 1)
	}
	if padW > 0 {
		dims = x.Shape().Dimensions
		z := Zeros(g, shapes.Make(x.DType(), dims[0], dims[1], padW, dims[3]))
		x = Concatenate([]*Node{z, x, z}, 2)
	}
	return x
}

// MSRBound is the bound b of the authors' "MSR" uniform initialisation U(-b, b) of a conv weight:
// b = sqrt(3) * sqrt(2) / sqrt(fanOut) with fanOut = outChannels*kh*kw (the full output channels, also for
// grouped convolutions). Its standard deviation is sqrt(2/fanOut).
func MSRBound(outChannels, kh, kw int) float64 {
	return math.Sqrt(3) * math.Sqrt2 / math.Sqrt(float64(outChannels*kh*kw))
}

// ConvBuilder builds a bias-free 2-D convolution with its weight variable, see Conv.
type ConvBuilder struct {
	scope                    *model.Scope
	x                        *Node
	channels, kernel, stride int
	groups                   int
	junction                 bool
	weightScale              float64
	lowering                 Lowering
	loweringSet              bool
}

// Conv starts building a bias-free convolution of x [N,H,W,Cin] ([N,Cin,H,W] in the scope's ParamLayout
// NCHW) (the authors' "LinearLayer"). Its weight
// "weight" [kh, kw, Cin/groups, Cout] lives in scope and starts with the MSR fan-out uniform initialisation
// (see MSRBound). Padding is (k-1)/2, so stride 1 keeps the spatial size.
func Conv(scope *model.Scope, x *Node) *ConvBuilder {
	return &ConvBuilder{scope: scope, x: x, kernel: 3, stride: 1, groups: 1}
}

// Channels sets the number of output channels (required).
func (c *ConvBuilder) Channels(n int) *ConvBuilder { c.channels = n; return c }

// KernelSize sets the square kernel size (default 3).
func (c *ConvBuilder) KernelSize(k int) *ConvBuilder { c.kernel = k; return c }

// Stride sets the stride (default 1).
func (c *ConvBuilder) Stride(s int) *ConvBuilder { c.stride = s; return c }

// Groups sets the number of channel groups (default 1).
func (c *ConvBuilder) Groups(g int) *ConvBuilder { c.groups = g; return c }

// Junction marks the conv as a residual "junction" conv, initialised with the MSR bound multiplied by
// weightScale: weightScale 0 (the authors' default) zero-initialises it.
func (c *ConvBuilder) Junction(weightScale float64) *ConvBuilder {
	c.junction, c.weightScale = true, weightScale
	return c
}

// Lowering overrides the lowering (otherwise taken from the scope parameter ParamLowering).
func (c *ConvBuilder) Lowering(l Lowering) *ConvBuilder {
	c.lowering, c.loweringSet = l, true
	return c
}

// Done creates (or reuses) the weight variable and returns the convolution output [N, Ho, Wo, Cout] (or
// [N, Cout, Ho, Wo]).
func (c *ConvBuilder) Done() *Node {
	x := c.x
	layout := layoutFromScope(c.scope)
	if x.Rank() != 4 {
		Panicf("layers.Conv(%s): want an %s input of rank 4, got %s", c.scope.Scope(), layout, x.Shape())
	}
	_, _, _, cin := layout.dims(x)
	if c.channels <= 0 {
		Panicf("layers.Conv(%s): Channels must be set to a positive number, got %d", c.scope.Scope(), c.channels)
	}
	if c.kernel < 1 || c.kernel%2 == 0 {
		Panicf("layers.Conv(%s): kernel size must be odd and positive, got %d", c.scope.Scope(), c.kernel)
	}
	if c.groups < 1 || cin%c.groups != 0 || c.channels%c.groups != 0 {
		Panicf("layers.Conv(%s): groups=%d must divide the %d input and %d output channels",
			c.scope.Scope(), c.groups, cin, c.channels)
	}
	weight := c.weight(x.Graph(), x.DType(), cin)
	lowering := c.lowering
	if !c.loweringSet {
		lowering = loweringFromScope(c.scope)
	}
	var out *Node
	if precisionFromScope(c.scope) == PrecisionBF16 && x.DType() == dtypes.Float32 {
		checkBF16(c.scope, x.Graph(), lowering)
		// Mixed precision: the convolution reads bfloat16 copies of the float32 activations and master
		// weights (matmuls accumulate in float32) and returns float32; gradients flow back through the casts.
		out = ConvertDType(conv2D(ConvertDType(x, dtypes.BFloat16), ConvertDType(weight, dtypes.BFloat16),
			layout, c.stride, c.groups, lowering), dtypes.Float32)
	} else {
		out = conv2D(x, weight, layout, c.stride, c.groups, lowering)
	}
	c.record(out, cin)
	return out
}

// weight creates (or reuses) the conv's weight variable [kh, kw, cin/groups, Cout] and returns its value.
func (c *ConvBuilder) weight(g *Graph, dtype dtypes.DType, cin int) *Node {
	bound := MSRBound(c.channels, c.kernel, c.kernel)
	if c.junction {
		bound *= c.weightScale
	}
	shape := shapes.Make(dtype, c.kernel, c.kernel, cin/c.groups, c.channels)
	return c.scope.WithInitializer(uniformInitializer(c.scope, bound)).VariableWithShape("weight", shape).NodeValue(g)
}

// record appends the conv's OpRecord (output out, cin input channels) to its graph's Profile.
func (c *ConvBuilder) record(out *Node, cin int) {
	recordOp(out.Graph(), OpRecord{
		Scope: c.scope.Scope(), Kind: OpConv, Out: recordDims(out, layoutFromScope(c.scope)),
		MACs:   perImage(out) * int64(cin/c.groups*c.kernel*c.kernel),
		Params: int64(c.kernel * c.kernel * cin / c.groups * c.channels),
		Detail: fmt.Sprintf("conv %dx%d s%d %d->%d groups=%d", c.kernel, c.kernel, c.stride, cin, c.channels, c.groups),
	})
}

// uniformInitializer returns an initializer drawing from U(-bound, bound) with the store's RNG
// (zeros when bound is 0), as the authors' and PyTorch's uniform initialisations do.
func uniformInitializer(scope *model.Scope, bound float64) model.VariableInitializer {
	return func(g *Graph, shape shapes.Shape) *Node {
		if bound == 0 {
			return Zeros(g, shape)
		}
		u := scope.RandomUniform(g, shape)
		return MulScalar(AddScalar(MulScalar(u, 2), -1), bound)
	}
}
