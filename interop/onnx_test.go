package interop_test

import (
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	onnxbackend "github.com/gomlx/compute-onnx"
	onnxpb "github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"google.golang.org/protobuf/proto"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// Tolerances of the ONNX export tests (float32 logits).
const (
	// onnxVsGoTol bounds max |logit difference| between the exported file on ONNX Runtime and the same
	// weights on the test backend (the same arithmetic, in another order).
	onnxVsGoTol = 1e-5
	// onnxVsTorchTol bounds max |logit difference| between the exported demo and PyTorch's logits for the
	// authors' case (1.2e-7 measured; logits up to 0.45).
	onnxVsTorchTol = 1e-5
)

// onnxRuntime returns an ONNX Runtime backend, or skips the test when the library is not installed.
func onnxRuntime(t *testing.T) compute.Backend {
	t.Helper()
	b, err := engine.NewONNXRuntime()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	t.Cleanup(b.Finalize)
	return b
}

// runONNXFile runs the ONNX model in path on ONNX Runtime for NCHW images with compute-onnx, as the
// README's Go snippet does, and returns n x classes logits.
func runONNXFile(t *testing.T, backend compute.Backend, path string, images *interop.Array, classes int) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exe, err := onnxbackend.LoadModel(backend, f)
	if err != nil {
		t.Fatalf("loading %s: %v", path, err)
	}
	defer exe.Finalize()
	in, err := backend.BufferFromFlatData(0, images.Data, shapes.Make(dtypes.Float32, images.Shape...))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exe.Execute([]compute.Buffer{in}, []bool{false}, 0)
	if err != nil || len(out) != 1 {
		t.Fatalf("running %s: %d outputs, %v", path, len(out), err)
	}
	logits := make([]float32, images.Shape[0]*classes)
	if err := out[0].ToFlatData(logits); err != nil {
		t.Fatalf("logits of %s: %v", path, err)
	}
	return logits
}

// randomizeStore gives every float32 variable of store deterministic pseudo-random values (a function of its
// path), positive for batch-norm variances, so that the running statistics matter, and the others zeros.
func randomizeStore(t *testing.T, store *model.Store) {
	t.Helper()
	for v := range store.IterVariables() {
		if v.Shape().DType != dtypes.Float32 {
			if err := v.SetValue(tensors.FromShape(v.Shape())); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := fnv.New32a()
		h.Write([]byte(v.Path()))
		phase := float64(h.Sum32() % 1000)
		data := make([]float32, v.Shape().Size())
		for j := range data {
			data[j] = 0.3 * float32(math.Sin(phase+float64(j)*0.7))
			if strings.HasSuffix(v.Path(), "running_var") {
				data[j] = 1 + data[j]*2
			}
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(data, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
}

// sinImages returns n deterministic NCHW images.
func sinImages(n, c, r int) *interop.Array {
	data := make([]float32, n*c*r*r)
	for i := range data {
		data[i] = float32(math.Sin(float64(i) * 0.37))
	}
	a, _ := interop.NewArray(data, n, c, r, r)
	return a
}

// maxAbsDiff returns max |a[i] - b[i]|.
func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// TestWriteONNX exports models with WriteONNXFile (weights on the test backend), runs the files on ONNX
// Runtime and compares their logits with the test backend's and, for the authors' case, PyTorch's. The
// Node.js run of an exported file, an independent runtime, is in cmd/seqconv (TestExportONNX).
func TestWriteONNX(t *testing.T) {
	ort := onnxRuntime(t)
	backend := engine.MustNewForTest()
	weights, _, refInput, refLogits := readRef(t)
	demo, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		cfg        models.Config
		batch, res int
		reference  bool // the authors' weights, input and logits
	}{
		{name: "authors' demo", cfg: demo, batch: 3, reference: true},
		{name: "cifar plain, 1 channel, batch 1", cfg: models.Config{Family: models.FamilyCIFAR,
			Variant: models.VariantPlain, Classes: 4, InChannels: 1, Resolution: 16, BlocksPerStage: []int{1, 1, 0},
			PyramidFactor: []float64{1, 2, 4}, Widening: 1, Granularity: models.IntList{8}, Window: 1}, batch: 1},
		{name: "resnext, grouped convs, resolution 40", cfg: models.Config{Family: models.FamilyResNeXt, Classes: 7,
			Resolution: 32, BlocksPerStage: []int{1, 0, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16},
			Subgroups: models.IntList{2, 2, 4, 4}, Downsample: models.DownsampleReleased}, batch: 2, res: 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			store, err := train.NewModelStore(backend, cfg)
			if err != nil {
				t.Fatal(err)
			}
			images := sinImages(tc.batch, cfg.InChannels, max(tc.res, cfg.Resolution))
			if tc.reference {
				if err := interop.ImportStateWith(store, weights, interop.OptionsFor(cfg)); err != nil {
					t.Fatal(err)
				}
				images = refInput
			} else {
				randomizeStore(t, store)
			}
			path := filepath.Join(t.TempDir(), "model.onnx")
			info, err := interop.WriteONNXFile(path, ort, store, cfg, interop.ONNXOptions{Batch: tc.batch,
				Resolution: tc.res, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
			if err != nil || st.Size() != int64(info.Bytes) {
				t.Errorf("%s: %v, %v; WriteONNXFile reported %d bytes", path, st, err, info.Bytes)
			}
			checkONNXSignature(t, path, images.Shape, []int{tc.batch, cfg.Classes})

			got := runONNXFile(t, ort, path, images, cfg.Classes)
			// The same weights on the test backend (NHWC input).
			if tc.res > 0 {
				cfg.Resolution = tc.res
			}
			exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
				scope.Store().SetTraining(x.Graph(), false)
				return cfg.Build(scope, x)
			})
			if err != nil {
				t.Fatal(err)
			}
			defer exec.Finalize()
			out, err := exec.Call(nchwToNHWC(t, images))
			if err != nil {
				t.Fatal(err)
			}
			want := tensors.MustCopyFlatData[float32](out[0])
			d, scale := maxAbsDiff(got, want), maxAbsDiff(want, make([]float32, len(want)))
			t.Logf("%s: %d bytes, logits up to %.3g, max |difference| with the test backend (%s) %.3g", tc.name,
				info.Bytes, scale, backend.Name(), d)
			if scale < 0.1 {
				t.Errorf("logits up to %.3g only: the comparison is too weak", scale)
			}
			if !(d <= onnxVsGoTol) {
				t.Errorf("max |logit difference| with the test backend (%s) %.3g > %g", backend.Name(), d, onnxVsGoTol)
			}
			if tc.reference {
				d := maxAbsDiff(got, refLogits.Data.([]float32))
				t.Logf("max |logit - PyTorch's logit| %.3g", d)
				if !(d <= onnxVsTorchTol) {
					t.Errorf("max |logit difference| with PyTorch's logits %.3g > %g", d, onnxVsTorchTol)
				}
			}
		})
	}
}

// checkONNXSignature checks the input and output names, shapes and documentation of the ONNX file.
func checkONNXSignature(t *testing.T, path string, in, out []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	g := m.GetGraph()
	if len(g.GetInput()) != 1 || len(g.GetOutput()) != 1 {
		t.Fatalf("%d inputs and %d outputs, want 1 and 1", len(g.GetInput()), len(g.GetOutput()))
	}
	for _, v := range []struct {
		vi   *onnxpb.ValueInfoProto
		name string
		dims []int
	}{{g.Input[0], interop.ONNXInput, in}, {g.Output[0], interop.ONNXOutput, out}} {
		var dims []int
		for _, d := range v.vi.GetType().GetTensorType().GetShape().GetDim() {
			dims = append(dims, int(d.GetDimValue()))
		}
		if v.vi.Name != v.name || !slices.Equal(dims, v.dims) || v.vi.DocString == "" {
			t.Errorf("value %q %v (doc %q), want %q %v, documented", v.vi.Name, dims, v.vi.DocString, v.name, v.dims)
		}
	}
	if m.ProducerName != "seqconv" || !strings.Contains(m.DocString, "eval mode") || len(m.MetadataProps) == 0 {
		t.Errorf("producer %q, doc %q, metadata %v", m.ProducerName, m.DocString, m.MetadataProps)
	}
}

// TestWriteONNXErrors checks the errors of WriteONNXFile, which leave no file behind; they need no ONNX
// Runtime.
func TestWriteONNXErrors(t *testing.T) {
	backend := engine.MustNewForTest()
	cfg, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		t.Fatal(err)
	}
	goBackend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		t.Fatal(err)
	}
	defer goBackend.Finalize()
	for _, tc := range []struct {
		name string
		opts interop.ONNXOptions
		want string
	}{
		{"batch 0", interop.ONNXOptions{Batch: 0}, "batch must be >= 1"},
		{"negative resolution", interop.ONNXOptions{Batch: 1, Resolution: -1}, "resolution must be >= 0"},
		{"resolution too small", interop.ONNXOptions{Batch: 1, Resolution: 3}, "resolution: want >= 4"},
		{"not ONNX Runtime", interop.ONNXOptions{Batch: 1}, "needs the ONNX Runtime backend"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := interop.WriteONNXFile(filepath.Join(dir, "m.onnx"), goBackend, store, cfg, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("files left behind: %v", left)
			}
		})
	}
}
