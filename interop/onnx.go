package interop

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gomlx/compute"
	onnxbackend "github.com/gomlx/compute-onnx"
	onnxpb "github.com/gomlx/compute-onnx/support/protos"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"google.golang.org/protobuf/proto"

	"github.com/seqconv/seqconv/internal/atomicfile"
	"github.com/seqconv/seqconv/models"
)

// The names of the ONNX model's input and output.
const (
	// ONNXInput names the input: float32 images [N, C, H, W] (NCHW, as PyTorch takes them), normalised as
	// the model expects (the same input as "seqconv infer").
	ONNXInput = "images"
	// ONNXOutput names the output: float32 eval-mode logits [N, classes] (no softmax).
	ONNXOutput = "logits"
)

// ONNXOptions are the options of WriteONNX.
type ONNXOptions struct {
	// Batch is the batch dimension N of the input and output (>= 1). It is fixed in the file: GoMLX's
	// ONNX graphs have static shapes (compute-onnx v0.1.13 cannot build a convolution with a dynamic batch
	// axis, and the layers reshape with the batch size), so a file runs on exactly Batch images.
	Batch int
	// Resolution is the input height and width; 0 means the model's own (models.Config.Resolution).
	Resolution int
	// Version is the seqconv version, written as the file's producer_version (producer_name is "seqconv");
	// optional.
	Version string
}

// Check checks the options; its errors start with the option's name in lower case ("batch must be >= 1").
func (o ONNXOptions) Check() error {
	if o.Batch < 1 {
		return fmt.Errorf("batch must be >= 1, got %d", o.Batch)
	}
	if o.Resolution < 0 {
		return fmt.Errorf("resolution must be >= 0 (0: the model's), got %d", o.Resolution)
	}
	return nil
}

// ONNXModel describes what WriteONNX wrote.
type ONNXModel struct {
	// Input and Output are the shapes of ONNXInput and ONNXOutput.
	Input, Output []int
	// Bytes is the size of the file.
	Bytes int
}

// WriteONNX writes the eval-mode model cfg with the weights in store as an ONNX model to w: one input
// ONNXInput, float32 [N, C, H, W] (NCHW), one output ONNXOutput, float32 logits [N, classes]. It computes
// exactly what "seqconv infer" computes: batch normalization uses the running statistics and dropout is
// off. Batch normalization is not folded into the convolutions: the weights and statistics are stored as
// initializers, as the store holds them (ONNX Runtime's constant folding precomputes what depends on them
// alone when it loads the file). The input is transposed to NHWC, the layout of the models, first thing.
//
// backend must be an ONNX Runtime backend (see engine.NewONNXRuntime), whatever backend store's values came
// from: the graph is built and compiled on it with the variables as constants, and the ONNX graph it
// compiled is written. While it runs, it changes store's VariablesAsConst and the backend's KeepModelProto
// (restored after): do not use either concurrently.
func WriteONNX(w io.Writer, backend compute.Backend, store *model.Store, cfg models.Config, opts ONNXOptions) (
	ONNXModel, error) {
	cfg = cfg.WithDefaults()
	if err := opts.Check(); err != nil {
		return ONNXModel{}, fmt.Errorf("onnx: %w", err)
	}
	if opts.Resolution > 0 {
		cfg.Resolution = opts.Resolution
	}
	if err := cfg.Validate(); err != nil {
		return ONNXModel{}, fmt.Errorf("onnx: model %s: %w", cfg.Name, err)
	}
	ort, ok := backend.(*onnxbackend.Backend)
	if !ok {
		return ONNXModel{}, fmt.Errorf("onnx: writing ONNX files needs the ONNX Runtime backend, not %q", backend.Name())
	}

	defer ort.SetKeepModelProto(ort.KeepModelProto())
	ort.SetKeepModelProto(true)
	defer store.WithVariableAsConst(store.VariablesAsConst())
	store.WithVariableAsConst(true)

	input := shapes.Make(dtypes.Float32, opts.Batch, cfg.InChannels, cfg.Resolution, cfg.Resolution)
	var modelBytes []byte
	err := exceptions.TryCatch[error](func() {
		exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
			scope.Store().SetTraining(x.Graph(), false)
			return cfg.Build(scope, TransposeAllAxes(x, 0, 2, 3, 1)) // NCHW -> NHWC.
		})
		if err != nil {
			panic(err)
		}
		defer exec.Finalize()
		g, err := exec.Compile(input)
		if err != nil {
			panic(err)
		}
		var buf bytes.Buffer
		if err := onnxbackend.SaveModel(backend, g.Executable(), &buf, []string{ONNXInput}, []string{ONNXOutput}); err != nil {
			panic(err)
		}
		modelBytes = buf.Bytes()
	})
	if err != nil {
		return ONNXModel{}, fmt.Errorf("onnx: building model %s: %w", cfg.Name, err)
	}
	modelBytes, info, err := describeONNX(modelBytes, cfg, opts)
	if err != nil {
		return ONNXModel{}, err
	}
	if _, err := w.Write(modelBytes); err != nil {
		return ONNXModel{}, err
	}
	return info, nil
}

// WriteONNXFile writes the ONNX model of WriteONNX to path, atomically (see internal/atomicfile).
func WriteONNXFile(path string, backend compute.Backend, store *model.Store, cfg models.Config, opts ONNXOptions) (
	info ONNXModel, err error) {
	err = atomicfile.Write(path, func(w io.Writer) error {
		info, err = WriteONNX(w, backend, store, cfg, opts)
		return err
	})
	return info, err
}

// describeONNX checks the signature of the ONNX model in b (one input, one output, with the expected
// shapes) and adds the documentation: the doc strings of the model, its input and output, and the model
// config as metadata. It returns the model, re-encoded, and its description.
func describeONNX(b []byte, cfg models.Config, opts ONNXOptions) ([]byte, ONNXModel, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, ONNXModel{}, fmt.Errorf("onnx: decoding the saved model: %w", err)
	}
	g := m.GetGraph()
	if g == nil || len(g.Input) != 1 || len(g.Output) != 1 {
		return nil, ONNXModel{}, errors.New("onnx: the saved model does not have exactly one input and one output")
	}
	n, c, r := opts.Batch, cfg.InChannels, cfg.Resolution
	var info ONNXModel
	for _, v := range []struct {
		vi   *onnxpb.ValueInfoProto
		want []int
		dst  *[]int
		doc  string
	}{
		{g.Input[0], []int{n, c, r, r}, &info.Input, fmt.Sprintf(
			"float32 images [%d, %d, %d, %d] (NCHW, as PyTorch takes them), normalised as model %s expects",
			n, c, r, r, cfg.Name)},
		{g.Output[0], []int{n, cfg.Classes}, &info.Output, fmt.Sprintf(
			"float32 eval-mode logits [%d, %d] (before softmax)", n, cfg.Classes)},
	} {
		got, err := valueDims(v.vi)
		if err != nil {
			return nil, ONNXModel{}, err
		}
		if fmt.Sprint(got) != fmt.Sprint(v.want) {
			return nil, ONNXModel{}, fmt.Errorf("onnx: the saved model's %s has shape %v, want %v", v.vi.Name, got, v.want)
		}
		*v.dst = got
		v.vi.DocString = v.doc
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return nil, ONNXModel{}, err
	}
	m.ProducerName = "seqconv"
	m.ProducerVersion = opts.Version
	m.DocString = fmt.Sprintf("SeqConv model %s (%s family), eval mode (batch-norm running statistics, no dropout). "+
		"Input %q: %s. Output %q: %s.", cfg.Name, cfg.Family, ONNXInput, g.Input[0].DocString, ONNXOutput, g.Output[0].DocString)
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: "seqconv.config", Value: string(config)})
	out, err := proto.Marshal(m)
	if err != nil {
		return nil, ONNXModel{}, fmt.Errorf("onnx: encoding the model: %w", err)
	}
	info.Bytes = len(out)
	return out, info, nil
}

// valueDims returns the dimensions of a tensor value, -1 for a symbolic dimension.
func valueDims(vi *onnxpb.ValueInfoProto) ([]int, error) {
	t := vi.GetType().GetTensorType()
	if t == nil || t.ElemType != int32(onnxpb.TensorProto_FLOAT) || t.Shape == nil {
		return nil, fmt.Errorf("onnx: the saved model's %s is not a float32 tensor of known rank", vi.Name)
	}
	dims := make([]int, len(t.Shape.Dim))
	for i, d := range t.Shape.Dim {
		if _, ok := d.Value.(*onnxpb.TensorShapeProto_Dimension_DimParam); ok {
			dims[i] = -1
			continue
		}
		dims[i] = int(d.GetDimValue())
	}
	return dims, nil
}
