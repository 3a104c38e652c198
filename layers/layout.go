package layers

import (
	"fmt"

	. "github.com/gomlx/gomlx/core/graph"
	timage "github.com/gomlx/gomlx/core/tensors/images"
	"github.com/gomlx/gomlx/ml/model"
)

// Layout is the axis order of the image tensors a layer reads and returns. Kernels are [kh, kw, Cin/groups,
// Cout] (HWIO) in both, so a model's variables do not depend on it.
type Layout int

const (
	// NHWC is channels last, [N, H, W, C]: the default, and the fastest on the Go backend (whose
	// convolutions are matrix products over the channel axis).
	NHWC Layout = iota
	// NCHW is channels first, [N, C, H, W]: ONNX Runtime's own layout, in which its convolutions need no
	// transposition.
	NCHW
)

// String implements fmt.Stringer.
func (l Layout) String() string {
	switch l {
	case NHWC:
		return "nhwc"
	case NCHW:
		return "nchw"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout converts a name ("nhwc", "nchw") to a Layout.
func ParseLayout(name string) (Layout, error) { return parseEnum("image layout", name, NHWC, NCHW) }

// UnmarshalText implements encoding.TextUnmarshaler with ParseLayout, so that ParamLayout may hold a name
// (see scopeParam).
func (l *Layout) UnmarshalText(text []byte) (err error) {
	*l, err = ParseLayout(string(text))
	return err
}

// ParamLayout is the scope hyperparameter (a Layout or its name) that gives the layout of the images the
// layers built in that scope read and return. It defaults to NHWC; models.Config.Build sets it to
// PreferredLayout.
const ParamLayout = "layout"

// layoutFromScope returns the layout set in scope (NHWC by default).
func layoutFromScope(scope *model.Scope) Layout {
	return scopeParam(scope, ParamLayout, NHWC)
}

// PreferredLayout is the layout a model built in scope should use on g's backend: NCHW where the
// convolution lowering resolves to LoweringONNX (ONNX Runtime), NHWC elsewhere.
func PreferredLayout(scope *model.Scope, g *Graph) Layout {
	if loweringFromScope(scope).resolve(g) == LoweringONNX {
		return NCHW
	}
	return NHWC
}

// channelAxis is the axis of the channels of a rank-4 image tensor.
func (l Layout) channelAxis() int {
	if l == NCHW {
		return 1
	}
	return 3
}

// spatialAxes are the axes of the height and width of a rank-4 image tensor.
func (l Layout) spatialAxes() (int, int) {
	if l == NCHW {
		return 2, 3
	}
	return 1, 2
}

// dims returns the batch, height, width and channels of a rank-4 image tensor x.
func (l Layout) dims(x *Node) (n, h, w, c int) {
	ah, aw := l.spatialAxes()
	return x.Shape().Dim(0), x.Shape().Dim(ah), x.Shape().Dim(aw), x.Shape().Dim(l.channelAxis())
}

// shape returns the dimensions of an image tensor with the given batch, height, width and channels.
func (l Layout) shape(n, h, w, c int) []int {
	if l == NCHW {
		return []int{n, c, h, w}
	}
	return []int{n, h, w, c}
}

// nhwc returns the dimensions of a rank-4 image tensor x in NHWC order (the order of OpRecord.Out).
func (l Layout) nhwc(x *Node) []int {
	n, h, w, c := l.dims(x)
	return []int{n, h, w, c}
}

// FromNHWC transposes images x [N, H, W, C] to layout l.
func (l Layout) FromNHWC(x *Node) *Node {
	if l == NCHW {
		return TransposeAllAxes(x, 0, 3, 1, 2)
	}
	return x
}

// ToNHWC transposes images x in layout l to [N, H, W, C].
func (l Layout) ToNHWC(x *Node) *Node {
	if l == NCHW {
		return TransposeAllAxes(x, 0, 2, 3, 1)
	}
	return x
}

// spatialAxesOf returns the spatial axes of the images of scope's layout.
func spatialAxesOf(scope *model.Scope) []int {
	ah, aw := layoutFromScope(scope).spatialAxes()
	return []int{ah, aw}
}

// imagesAxis is GoMLX's name of the layout, for its pooling builders.
func (l Layout) imagesAxis() timage.ChannelsAxisConfig {
	if l == NCHW {
		return timage.ChannelsFirst
	}
	return timage.ChannelsLast
}

// ChannelAxis returns the axis of the channels of the images of scope's layout (see ParamLayout): 3 for NHWC,
// 1 for NCHW.
func ChannelAxis(scope *model.Scope) int { return layoutFromScope(scope).channelAxis() }
