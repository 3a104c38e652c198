package layers

import (
	"math"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/seqconv/seqconv/engine"
)

// The layers tests run on the test engine (engine.MustNewForTest: the Go backend, or the one $GOMLX_BACKEND
// names). The Go backend computes in float64 and is compared with float64 references at 1e-12; ONNX Runtime
// computes convolutions in float32 only, so there the inputs are float32 and results are compared at float32
// tolerances.

// goBackend is the reference engine: GoMLX's pure Go backend, which differentiates every formulation in
// float64; b itself when it is the Go backend (a tensor used by one backend cannot be passed to another).
func goBackend(b compute.Backend) compute.Backend {
	if isGoBackend(b) {
		return b
	}
	return gobackend.GetBackend()
}

// goBackendOnly skips t in the passes of the suite on other engines ($GOMLX_BACKEND set to one): t checks the
// Go backend itself (float64 equality of formulations, graph structure, bfloat16), so another pass would only
// repeat the Go backend's.
func goBackendOnly(t *testing.T) {
	t.Helper()
	if config := strings.TrimSpace(os.Getenv(engine.EnvVar)); config != "" && config != engine.Go {
		t.Skipf("a Go-backend check (float64 formulations, graph structure or bf16): it runs in the Go backend's "+
			"pass, not with $%s=%s", engine.EnvVar, config)
	}
}

// testDType is the dtype the tests feed the engine b: float64 on the Go backend, float32 elsewhere.
func testDType(b compute.Backend) dtypes.DType {
	if isGoBackend(b) {
		return dtypes.Float64
	}
	return dtypes.Float32
}

// relTol is the tolerance, relative to the largest magnitude of the reference (at least 1), of results of
// engine b: 1e-12 on the Go backend (float64), 5e-5 elsewhere (float32 with sums of up to a few hundred terms).
func relTol(b compute.Backend) float64 {
	if isGoBackend(b) {
		return 1e-12
	}
	return 5e-5
}

// toDType converts t (float64 or float32) to dtype.
func toDType(t *tensors.Tensor, dtype dtypes.DType) *tensors.Tensor {
	if t.DType() == dtype {
		return t
	}
	f := tensors.MustCopyFlatData[float64](toFloat64(t))
	if dtype == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(f, t.Shape().Dimensions...)
	}
	out := make([]float32, len(f))
	for i, v := range f {
		out[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(out, t.Shape().Dimensions...)
}

// toFloat64 returns t as float64.
func toFloat64(t *tensors.Tensor) *tensors.Tensor {
	switch t.DType() {
	case dtypes.Float64:
		return t
	case dtypes.Float32:
		f := tensors.MustCopyFlatData[float32](t)
		out := make([]float64, len(f))
		for i, v := range f {
			out[i] = float64(v)
		}
		return tensors.FromFlatDataAndDimensions(out, t.Shape().Dimensions...)
	}
	panic("toFloat64: want a float32 or float64 tensor, got " + t.DType().String())
}

// closeTo reports the largest difference between got and want (any float dtypes, same shape) relative to
// max(1, max |want|), and whether it is within the tolerance of engine b.
func closeTo(t *testing.T, b compute.Backend, want, got *tensors.Tensor) (rel float64, ok bool) {
	t.Helper()
	w, g := toFloat64(want), toFloat64(got)
	scale := 1.0
	for _, v := range tensors.MustCopyFlatData[float64](w) {
		scale = math.Max(scale, math.Abs(v))
	}
	rel = maxAbsDiff(t, w, g) / scale
	return rel, rel <= relTol(b)
}
