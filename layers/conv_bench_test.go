package layers

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/seqconv/seqconv/engine"
)

// BenchmarkConv2DLowering times the forward and backward pass of a float32 3x3 convolution of [8, 32, 32, 32] ->
// 64 channels with the backend's native ConvGeneral and with the im2col lowering:
//
//	GOEXPERIMENT=simd go test ./layers -run XXX -bench Conv2DLowering -benchtime 2x
func BenchmarkConv2DLowering(b *testing.B) {
	backend := engine.MustNewForTest()
	rng := rand.New(rand.NewPCG(1, 2))
	x := randTensor(rng, 8, 32, 32, 32)
	kernel := randTensor(rng, 3, 3, 32, 64)
	for _, l := range []Lowering{LoweringNative, LoweringIm2Col} {
		b.Run(l.String(), func(b *testing.B) {
			exec := MustNewExec(backend, func(x, kernel *Node) []*Node {
				out := Conv2D(ConvertDType(x, dtypes.Float32), ConvertDType(kernel, dtypes.Float32), 1, 1, l)
				return Gradient(ReduceAllSum(Square(out)), x, kernel)
			})
			exec.MustCall(x, kernel) // compile
			b.ResetTimer()
			for range b.N {
				for _, t := range exec.MustCall(x, kernel) {
					t.FinalizeAll()
				}
			}
		})
	}
}
