package layers

import (
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// OpKind names the kind of operation an OpRecord describes.
type OpKind string

// The operation kinds recorded while a model graph is built.
const (
	OpConv      OpKind = "conv"      // a convolution (MACs = output elements x Cin/groups x kh x kw)
	OpLinear    OpKind = "linear"    // a fully connected layer (MACs = in x out)
	OpBatchNorm OpKind = "batchnorm" // a batch normalisation (Elements = input elements)
	OpReLU      OpKind = "relu"      // a ReLU (Elements = input elements)
	OpGAP       OpKind = "gap"       // a global average pool (Elements = input elements, Out = pooled shape)
	OpMaxPool   OpKind = "maxpool"   // a max pool (Kernel = k of a k x k window, Elements = input elements)
	OpAvgPool   OpKind = "avgpool"   // an average pool (Kernel = k of a k x k window, Elements = input elements)
)

// OpRecord describes one operation of a model as it was built: its scope, kind, output shape and cost per
// image. It is the raw material of the complexity report (params, MACs, the paper's FLOPs).
type OpRecord struct {
	Scope  string // scope path of the layer that built it
	Kind   OpKind
	Out    []int // output dimensions, batch first
	MACs   int64 // multiply-accumulates per image (conv and linear only)
	Params int64 // parameters owned by the op (weights, BN affine)
	Elems  int64 // input elements per image (batchnorm, relu, gap, pools)
	Kernel int   // window size k of a k x k pool (maxpool, avgpool)
	// Module names the module instance when one module is applied several times (torchvision's Bottleneck
	// calls its single ReLU module three times). THOP 2019 overwrites a module's count on every call, so the
	// paper's FLOPs count only the last record of each Module. Empty for ops applied once.
	Module string
	// Functional marks an op that the reference applies as a function (F.relu, F.adaptive_avg_pool2d), not as a
	// module: THOP counts modules only, so the paper's FLOPs skip it.
	Functional bool
	Detail     string // human-readable description
}

// Profile collects the OpRecords of a graph under construction. Attach one to a graph with AttachProfile
// before building the model; every layer of this package appends to it.
type Profile struct {
	Records []OpRecord
}

const profileParam = "/seqconv_profile"

// AttachProfile makes the layers built in graph g append their OpRecords to p.
func AttachProfile(g *Graph, p *Profile) {
	model.SetGraphParam(g, profileParam, p)
}

// RecordOp appends r to the Profile attached to g, if any. Layers built outside this package use it to
// report their cost.
func RecordOp(g *Graph, r OpRecord) { recordOp(g, r) }

func recordOp(g *Graph, r OpRecord) {
	if p := profileOf(g); p != nil {
		r.Out = append([]int(nil), r.Out...)
		p.Records = append(p.Records, r)
	}
}

// perImage returns the number of elements of one image of x (all axes but the batch axis).
func perImage(x *Node) int64 {
	return int64(x.Shape().Size() / x.Shape().Dim(0))
}

// recordDims returns x's dimensions for an OpRecord: image tensors in layout l as [N, H, W, C].
func recordDims(x *Node, l Layout) []int {
	if x.Rank() == 4 {
		return l.nhwc(x)
	}
	return x.Shape().Dimensions
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
