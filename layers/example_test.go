package layers_test

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
)

// A windowed SeqConv layer with bottleneck filters, 32 -> 64 channels in groups of k = 16: four filters, each
// reading the 32 most recent channels of [x, E_0, E_1, ...].
func ExampleSeqConv() {
	backend := engine.MustNewForTest()
	store := model.NewStore()
	exec := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) (*Node, *Node) {
		store.SetTraining(x.Graph(), false)
		return layers.SeqConv(scope.In("Layer"), x).Granularity(16).Channels(64).Bottleneck(true).Done()
	})
	x := tensors.FromShape(shapes.Make(dtypes.Float32, 2, 8, 8, 32))
	out := exec.MustCall(x)
	fmt.Println("raw:", out[0].Shape(), "activated:", out[1].Shape())
	fmt.Println(store.GetVariable("/Layer/Filters/3/BottleneckLayer/LinearLayer/weight").Shape())
	// Output:
	// raw: (Float32)[2, 8, 8, 64] activated: (Float32)[2, 8, 8, 64]
	// (Float32)[1, 1, 32, 16]
}

// Dense aggregation (Eq. 2): filter j reads the input and every earlier output, so its 1x1 conv widens.
func ExampleSeqConvBuilder_Dense() {
	backend := engine.MustNewForTest()
	store := model.NewStore()
	exec := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		_, act := layers.SeqConv(scope, x).Granularity(8).Channels(32).Bottleneck(true).Dense().Done()
		return act
	})
	exec.MustCall(tensors.FromShape(shapes.Make(dtypes.Float32, 2, 4, 4, 16)))
	for j := range 4 {
		fmt.Println(store.GetVariable(fmt.Sprintf("/Filters/%d/BottleneckLayer/LinearLayer/weight", j)).Shape())
	}
	// Output:
	// (Float32)[1, 1, 16, 8]
	// (Float32)[1, 1, 24, 8]
	// (Float32)[1, 1, 32, 8]
	// (Float32)[1, 1, 40, 8]
}

// A pre-activation conv unit returns the raw (residual) stream and ReLU(BN(raw)).
func ExampleConvUnit() {
	backend := engine.MustNewForTest()
	store := model.NewStore()
	exec := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) (*Node, *Node) {
		return layers.ConvUnit(scope.In("Init"), x).Channels(16).KernelSize(3).Stride(2).Done()
	})
	out := exec.MustCall(tensors.FromShape(shapes.Make(dtypes.Float32, 1, 32, 32, 3)))
	fmt.Println(out[0].Shape(), out[1].Shape())
	for _, name := range []string{"LinearLayer/weight", "BatchNormalizationLayer/weight", "BatchNormalizationLayer/running_var"} {
		fmt.Println(name, store.GetVariable("/Init/"+name).Shape())
	}
	// Output:
	// (Float32)[1, 16, 16, 16] (Float32)[1, 16, 16, 16]
	// LinearLayer/weight (Float32)[3, 3, 3, 16]
	// BatchNormalizationLayer/weight (Float32)[16]
	// BatchNormalizationLayer/running_var (Float32)[16]
}

// Conv2D is the variable-free convolution; on the Go backend it is lowered to slices and one matmul.
func ExampleConv2D() {
	backend := engine.MustNewForTest()
	exec := MustNewExec(backend, func(x, k *Node) *Node {
		return layers.Conv2D(x, k, 1, 1, layers.LoweringAuto)
	})
	x := tensors.FromFlatDataAndDimensions([]float32{1, 2, 3, 4}, 1, 2, 2, 1)
	k := tensors.FromFlatDataAndDimensions([]float32{0, 0, 0, 0, 1, 1, 0, 0, 0}, 3, 3, 1, 1) // x[i,j] + x[i,j+1]
	fmt.Println(exec.MustCall(x, k)[0].Value())
	// Output:
	// [[[[3] [2]] [[7] [4]]]]
}
