package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/inference"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// The import, export and infer subcommands exchange weights and logits with the authors' PyTorch code:
// state_dicts as .npz archives with the authors' key names, images and logits as .npy arrays.

func init() {
	registerCommand(parsedCommand("import", "import the authors' PyTorch weights (.npz state_dict) into a run directory",
		newImportFlags, (*importOptions).execute))
	registerCommand(command{"export", "export a run directory as a PyTorch state_dict .npz or an ONNX model",
		runExport, flagsUsage(newExportFlags)})
	registerCommand(parsedCommand("infer", "compute eval-mode logits of a run's model for NCHW images in a .npy file",
		newInferFlags, (*inferOptions).execute))
}

// maxStateProblems is how many state_dict problems an error message lists before counting the rest.
const maxStateProblems = 5

// defaultInferBatch is the default batch size of "seqconv infer".
const defaultInferBatch = 64

// importOptions are the flags of "seqconv import".
type importOptions struct {
	model, weights, out string
	classes             int
	allowNonFinite      bool
}

func newImportFlags(o *importOptions) *flagSet {
	if o == nil {
		o = &importOptions{}
	}
	fs := newFlagSet("import", "seqconv import --model NAME|CONFIG.json --weights FILE.npz --out RUN_DIR [flags]", `
Imports a PyTorch state_dict of the authors' model, saved as .npz (numpy.savez of
{key: tensor.numpy()} for model.state_dict()), into a new run directory: config.json with the model
config and the weights as a GoMLX checkpoint in checkpoint/ and best/, which "seqconv export",
"seqconv infer" and the other commands reading run directories accept. Every key must match a
variable of the model, with its PyTorch shape, and every variable must be given.`)
	fs.StringVar(&o.model, "model", "", "registered model name (see \"seqconv models\") or path to a JSON model config (required)")
	fs.StringVar(&o.weights, "weights", "", "the state_dict .npz file (required)")
	fs.StringVar(&o.out, "out", "", "run directory to write; it must be new or empty (required)")
	fs.IntVar(&o.classes, "classes", 0, "number of classes of the model (0: the model's own)")
	fs.BoolVar(&o.allowNonFinite, "allow-non-finite", false, "import weights holding NaN or infinite values "+
		"(refused by default: such a model computes nothing useful)")
	return fs
}

// execute runs "seqconv import": it checks the flags (usageErrors), imports the weights and writes the run
// directory.
func (o *importOptions) execute(stdout, stderr io.Writer) error {
	if err := requireFlags("--model", o.model, "--weights", o.weights, "--out", o.out); err != nil {
		return err
	}
	if o.classes < 0 {
		return usagef("--classes must be >= 0 (0: the model's own), got %d", o.classes)
	}
	cfg, err := models.Get(o.model)
	if err != nil {
		return usagef("--model: %v", err)
	}
	if o.classes > 0 {
		cfg.Classes = o.classes
	}
	if err := cfg.Validate(); err != nil {
		return usagef("--model %s: %v", o.model, err)
	}
	if err := checkInputFile("--weights", o.weights); err != nil {
		return err
	}
	outDir, err := prepareOutputDir("--out", o.out)
	if err != nil {
		return err
	}
	if err := o.importInto(stdout, stderr, cfg); err != nil {
		outDir.removeIfUseless()
		return err
	}
	return nil
}

// importInto imports the weights into the prepared run directory --out.
func (o *importOptions) importInto(stdout, stderr io.Writer, cfg models.Config) error {
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return err
	}
	arrays, keys, err := interop.ReadNPZ(o.weights)
	if err != nil {
		return fmt.Errorf("reading the weights: %w", err)
	}
	if !o.allowNonFinite {
		for _, k := range keys {
			if i, v, bad := interop.FirstNonFinite(arrays[k]); bad {
				return fmt.Errorf("--weights %s: %q holds %v at %v: the weights must be finite (--allow-non-finite "+
					"imports them anyway)", o.weights, k, v, interop.Position(arrays[k].Shape, i))
			}
		}
	}
	if err := interop.ImportStateWith(store, arrays, interop.OptionsFor(cfg)); err != nil {
		return fmt.Errorf("importing %s into model %s: %w", o.weights, cfg.Name, shortStateError(err))
	}
	source := o.weights
	if abs, err := filepath.Abs(o.weights); err == nil {
		source = abs
	}
	if err := train.WriteRun(o.out, cfg, store, "imported from "+source); err != nil {
		return err
	}
	var params int64
	for v := range store.IterVariables() {
		if v.Trainable && interop.ModelVariable(v.Path()) {
			params += int64(v.Shape().Size())
		}
	}
	fmt.Fprintf(stdout, "imported %d arrays (%s trainable parameters) of model %s from %s into %s\n",
		len(arrays), thousands(params), cfg.Name, o.weights, o.out)
	return nil
}

// The formats of "seqconv export", by the extension of their files.
const (
	formatNPZ  = "npz"
	formatONNX = "onnx"
)

// exportOptions are the flags of "seqconv export".
type exportOptions struct {
	run, out, format string
	best             bool
	batch            int
	resolution       int
}

func newExportFlags(o *exportOptions) *flagSet {
	if o == nil {
		o = &exportOptions{}
	}
	fs := newFlagSet("export", "seqconv export --run RUN_DIR --out FILE.npz|FILE.onnx [flags]", `
Exports a run directory (written by "seqconv train" or "seqconv import") in one of two formats, chosen
by --format or else by the extension of --out (.npz or .onnx; npz for any other):

npz: the weights as a PyTorch state_dict with the authors' key names and tensor layouts, in state_dict
order. In Python: npz = numpy.load(FILE); model.load_state_dict({k: torch.from_numpy(v) for k, v in
npz.items()}).

onnx: the eval-mode model (batch-norm running statistics, no dropout) for ONNX Runtime or any ONNX
runtime: input "images", float32 [N, C, H, W] (NCHW, normalised as for "seqconv infer"), output
"logits", float32 [N, classes]. N is fixed in the file (--batch): run it on exactly N images. Batch
normalization is not folded: the file holds the weights and running statistics as the run does (ONNX
Runtime's constant folding precomputes what depends on them alone). Writing it needs ONNX Runtime
(scripts/install-onnxruntime.sh), whatever engine $GOMLX_BACKEND selects.`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.out, "out", "", "the file to write, FILE.npz or FILE.onnx (required); never a file of a run directory")
	fs.StringVar(&o.format, "format", "", "npz or onnx (default: from the extension of --out, else npz)")
	fs.BoolVar(&o.best, "best", false, "export the best checkpoint (best/) instead of the latest (checkpoint/)")
	fs.IntVar(&o.batch, "batch", 1, "onnx: the batch size N fixed in the file (>= 1)")
	fs.IntVar(&o.resolution, "resolution", 0, "onnx: the input height and width (0: the model's)")
	return fs
}

// runExport implements "seqconv export".
func runExport(args []string, stdout, stderr io.Writer) int {
	var o exportOptions
	fs := newExportFlags(&o)
	return runParsed(fs, args, stdout, stderr, func() error {
		onnxOnly := ""
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "batch" || f.Name == "resolution" {
				onnxOnly = "--" + f.Name
			}
		})
		return o.execute(stdout, stderr, onnxOnly)
	})
}

// execute runs "seqconv export". onnxOnly names a flag of the onnx format given on the command line ("" if
// none).
func (o *exportOptions) execute(stdout, stderr io.Writer, onnxOnly string) error {
	if err := requireFlags("--run", o.run, "--out", o.out); err != nil {
		return err
	}
	format, err := exportFormat(o.format, o.out)
	if err != nil {
		return err
	}
	if format == formatONNX {
		if err := o.onnxOptions().Check(); err != nil {
			return usagef("--%v", err) // The error starts with the option's name, the flag's.
		}
	} else if onnxOnly != "" {
		return usagef("%s applies to --format onnx only, not to %s", onnxOnly, format)
	}
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	kind, ext := "PyTorch state_dict", ".npz"
	if format == formatONNX {
		kind, ext = "ONNX model", ".onnx"
	}
	out, err := outputFile("--out", o.out, kind, ext)
	if err != nil {
		return err
	}
	if format == formatONNX {
		return o.exportONNX(stdout, out)
	}
	backend, cfg, store, err := openRun(stderr, o.run, o.best)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	arrays, keys, err := interop.ExportStateWith(store, interop.OptionsFor(cfg))
	if err != nil {
		return err
	}
	if err := interop.WriteNPZ(out, arrays, keys); err != nil {
		return fmt.Errorf("writing the weights to %s: %w", o.out, err)
	}
	fmt.Fprintf(stdout, "exported %d arrays of model %s from %s to %s\n", len(keys), cfg.Name,
		train.RunCheckpointDir(o.run, o.best), o.out)
	return nil
}

// exportONNX writes the run's model as an ONNX file to out, a file outputFile returned (see
// interop.WriteONNX), on ONNX Runtime whatever engine $GOMLX_BACKEND selects.
func (o *exportOptions) exportONNX(stdout io.Writer, out string) error {
	start := time.Now()
	backend, err := engine.NewONNXRuntime()
	if err != nil {
		return fmt.Errorf("--format onnx: %w", err)
	}
	defer backend.Finalize()
	cfg, store, err := train.LoadRun(backend, o.run, o.best)
	if err != nil {
		return err
	}
	info, err := interop.WriteONNXFile(out, backend, store, cfg, o.onnxOptions())
	if err != nil {
		return fmt.Errorf("writing the ONNX model to %s: %w", o.out, err)
	}
	fmt.Fprintf(stdout, "exported model %s from %s to %s (%s bytes, %.1f s): input %q float32 %v (NCHW), output %q float32 %v\n",
		cfg.Name, train.RunCheckpointDir(o.run, o.best), o.out, thousands(int64(info.Bytes)), time.Since(start).Seconds(),
		interop.ONNXInput, info.Input, interop.ONNXOutput, info.Output)
	return nil
}

// onnxOptions are the options of the onnx format.
func (o *exportOptions) onnxOptions() interop.ONNXOptions {
	seqconv, _, _ := versions()
	return interop.ONNXOptions{Batch: o.batch, Resolution: o.resolution, Version: seqconv}
}

// exportFormat returns the format of "seqconv export": flagFormat if given, which the extension of out
// must not contradict (a .npz file in the onnx format or the reverse), else the one of out's extension,
// else npz.
func exportFormat(flagFormat, out string) (string, error) {
	byExt := ""
	switch strings.ToLower(filepath.Ext(out)) {
	case ".npz":
		byExt = formatNPZ
	case ".onnx":
		byExt = formatONNX
	}
	switch flagFormat {
	case "":
		return cmp.Or(byExt, formatNPZ), nil
	case formatNPZ, formatONNX:
		if byExt != "" && byExt != flagFormat {
			return "", usagef("--format %s disagrees with --out %s: a .%s file is written by --format %s",
				flagFormat, out, byExt, byExt)
		}
		return flagFormat, nil
	}
	return "", usagef("--format must be %s or %s, got %q", formatNPZ, formatONNX, flagFormat)
}

// inferOptions are the flags of "seqconv infer".
type inferOptions struct {
	run, input, output string
	best               bool
	batch              int
}

func newInferFlags(o *inferOptions) *flagSet {
	if o == nil {
		o = &inferOptions{}
	}
	fs := newFlagSet("infer", "seqconv infer --run RUN_DIR --input X.npy --output LOGITS.npy [flags]", `
Computes the eval-mode logits (batch-norm running statistics, no dropout) of a run directory's model
for images given as PyTorch takes them: a float32 or float64 .npy array [N, C, H, W] (NCHW), with the
model's channels and any height and width from the model's minimum on (the config's resolution is
the default size, not a limit), already normalised as the model expects. Writes the logits as a
float32 .npy array [N, classes].`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.input, "input", "", "the images, a .npy array [N, C, H, W] (required)")
	fs.StringVar(&o.output, "output", "", "the .npy file to write the logits to (required)")
	fs.BoolVar(&o.best, "best", false, "use the best checkpoint (best/) instead of the latest (checkpoint/)")
	fs.IntVar(&o.batch, "batch", defaultInferBatch, "images per forward pass (>= 1)")
	return fs
}

func (o *inferOptions) execute(stdout, stderr io.Writer) error {
	if err := requireFlags("--run", o.run, "--input", o.input, "--output", o.output); err != nil {
		return err
	}
	if o.batch < 1 {
		return usagef("--batch must be >= 1, got %d", o.batch)
	}
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	if err := checkInputFile("--input", o.input); err != nil {
		return err
	}
	output, err := outputFile("--output", o.output, ".npy array", ".npy")
	if err != nil {
		return err
	}
	cfg, err := train.ReadRunConfig(o.run)
	if err != nil {
		return err
	}
	input, err := interop.ReadNPYFile(o.input)
	if err != nil {
		return fmt.Errorf("reading the input: %w", err)
	}
	images, n, err := nhwcImages(input, cfg)
	if err != nil {
		return fmt.Errorf("input %s: %w", o.input, err)
	}
	if i, v, bad := interop.FirstNonFinite(input); bad {
		return fmt.Errorf("input %s: image %d holds %v at [N C H W] %v: want finite pixel values", o.input,
			i/(input.Size()/n), v, interop.Position(input.Shape, i))
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	p, err := inference.Load(o.run, inference.Options{Backend: backend, Best: o.best, MaxBatch: o.batch})
	if err != nil {
		return err
	}
	defer p.Close()
	h, w, c := input.Shape[2], input.Shape[3], input.Shape[1]
	logits64, err := p.Logits(context.Background(), images, n, h, w, c)
	if err != nil {
		return fmt.Errorf("computing the logits: %w", err)
	}
	logits := make([]float32, len(logits64))
	for i, v := range logits64 {
		logits[i] = float32(v)
	}
	out, err := interop.NewArray(logits, n, cfg.Classes)
	if err != nil {
		return err
	}
	if err := interop.WriteNPYFile(output, out); err != nil {
		return fmt.Errorf("writing the logits to %s: %w", o.output, err)
	}
	fmt.Fprintf(stdout, "wrote the logits [%d %d] of %d images (model %s, %s) to %s\n", n, cfg.Classes, n, cfg.Name,
		train.RunCheckpointDir(o.run, o.best), o.output)
	return nil
}

// nhwcImages checks that a holds NCHW float32 or float64 images that cfg's model takes (its channels,
// any height and width from its minimum on) and returns them as float32 NHWC data, with their number.
func nhwcImages(a *interop.Array, cfg models.Config) ([]float32, int, error) {
	c, m := cfg.InChannels, cfg.MinInputSize()
	want := fmt.Sprintf("want float32 or float64 images [N, %d, H, W] (NCHW, as PyTorch takes them) with H, W >= %d "+
		"for model %s (%dx%d by default)", c, m, cfg.Name, cfg.Resolution, cfg.Resolution)
	if a.DType != dtypes.Float32 && a.DType != dtypes.Float64 {
		return nil, 0, fmt.Errorf("dtype %s: %s", strings.ToLower(a.DType.String()), want)
	}
	if len(a.Shape) != 4 || cfg.CheckInput(a.Shape[1], a.Shape[2], a.Shape[3]) != nil {
		return nil, 0, fmt.Errorf("shape %v: %s", a.Shape, want)
	}
	n, h, w := a.Shape[0], a.Shape[2], a.Shape[3]
	if n == 0 {
		return nil, 0, fmt.Errorf("no images: %s with N >= 1", want)
	}
	var src []float32
	switch d := a.Data.(type) {
	case []float32:
		src = d
	case []float64:
		src = make([]float32, len(d))
		for i, x := range d {
			src[i] = float32(x)
		}
	default:
		return nil, 0, fmt.Errorf("data of type %T: %s", a.Data, want)
	}
	dst := make([]float32, len(src))
	hw := h * w
	for in := range n {
		img := src[in*c*hw : (in+1)*c*hw]
		out := dst[in*c*hw : (in+1)*c*hw]
		for ic := range c {
			for p := range hw {
				out[p*c+ic] = img[ic*hw+p]
			}
		}
	}
	return dst, n, nil
}

// shortStateError formats an *interop.StateError listing several problems on one line, separated by "; ",
// with at most maxStateProblems of them and how many more there are.
func shortStateError(err error) error {
	var se *interop.StateError
	if !errors.As(err, &se) || len(se.Problems) <= 1 {
		return err
	}
	shown := se.Problems[:min(len(se.Problems), maxStateProblems)]
	msg := fmt.Sprintf("%d problems with the state dict: %s", len(se.Problems), strings.Join(shown, "; "))
	if more := len(se.Problems) - len(shown); more > 0 {
		msg += fmt.Sprintf("; and %d more", more)
	}
	return errors.New(msg)
}
