package main

import (
	"errors"
	"fmt"
	"github.com/seqconv/seqconv/engine"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// The import, export and infer subcommands exchange weights and logits with the authors' PyTorch code:
// state_dicts as .npz archives with the authors' key names, images and logits as .npy arrays.

func init() {
	registerCommand(command{"import", "import the authors' PyTorch weights (.npz state_dict) into a run directory",
		runImport, func(w io.Writer) { printFlagsUsage(w, newImportFlags(nil)) }})
	registerCommand(command{"export", "export a run directory's weights as a PyTorch state_dict .npz",
		runExport, func(w io.Writer) { printFlagsUsage(w, newExportFlags(nil)) }})
	registerCommand(command{"infer", "compute eval-mode logits of a run's model for NCHW images in a .npy file",
		runInfer, func(w io.Writer) { printFlagsUsage(w, newInferFlags(nil)) }})
}

// maxStateProblems is how many state_dict problems an error message lists before counting the rest.
const maxStateProblems = 5

// defaultInferBatch is the default batch size of "seqconv infer".
const defaultInferBatch = 64

// importOptions are the flags of "seqconv import".
type importOptions struct {
	model, weights, out string
	classes             int
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
	fs.StringVar(&o.out, "out", "", "run directory to write; it must not hold checkpoints already (required)")
	fs.IntVar(&o.classes, "classes", 0, "number of classes of the model (0: the model's own)")
	return fs
}

// runImport implements "seqconv import".
func runImport(args []string, stdout, stderr io.Writer) int {
	var o importOptions
	fs := newImportFlags(&o)
	return runParsed(fs, args, stdout, stderr, func() error { return o.execute(stdout, stderr) })
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
	if err := checkNewRunDir(o.out); err != nil {
		return err
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return err
	}
	arrays, _, err := interop.ReadNPZ(o.weights)
	if err != nil {
		return fmt.Errorf("reading the weights: %w", err)
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

// exportOptions are the flags of "seqconv export".
type exportOptions struct {
	run, out string
	best     bool
}

func newExportFlags(o *exportOptions) *flagSet {
	if o == nil {
		o = &exportOptions{}
	}
	fs := newFlagSet("export", "seqconv export --run RUN_DIR --out FILE.npz [flags]", `
Exports the weights of a run directory (written by "seqconv train" or "seqconv import") as a PyTorch
state_dict .npz with the authors' key names and tensor layouts, in state_dict order. In Python:
npz = numpy.load(FILE); model.load_state_dict({k: torch.from_numpy(v) for k, v in npz.items()}).`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.out, "out", "", "the .npz file to write (required)")
	fs.BoolVar(&o.best, "best", false, "export the best checkpoint (best/) instead of the latest (checkpoint/)")
	return fs
}

// runExport implements "seqconv export".
func runExport(args []string, stdout, stderr io.Writer) int {
	var o exportOptions
	fs := newExportFlags(&o)
	return runParsed(fs, args, stdout, stderr, func() error { return o.execute(stdout, stderr) })
}

func (o *exportOptions) execute(stdout, stderr io.Writer) error {
	if err := requireFlags("--run", o.run, "--out", o.out); err != nil {
		return err
	}
	if err := checkRunDirExists(o.run); err != nil {
		return err
	}
	if err := checkOutputFile("--out", o.out); err != nil {
		return err
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	cfg, store, err := train.LoadRun(backend, o.run, o.best)
	if err != nil {
		return err
	}
	arrays, keys, err := interop.ExportStateWith(store, interop.OptionsFor(cfg))
	if err != nil {
		return err
	}
	if err := interop.WriteNPZ(o.out, arrays, keys); err != nil {
		return fmt.Errorf("writing the weights to %s: %w", o.out, err)
	}
	fmt.Fprintf(stdout, "exported %d arrays of model %s from %s to %s\n", len(keys), cfg.Name,
		train.RunCheckpointDir(o.run, o.best), o.out)
	return nil
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
model's channels and resolution, already normalised as the model expects. Writes the logits as a
float32 .npy array [N, classes].`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.input, "input", "", "the images, a .npy array [N, C, H, W] (required)")
	fs.StringVar(&o.output, "output", "", "the .npy file to write the logits to (required)")
	fs.BoolVar(&o.best, "best", false, "use the best checkpoint (best/) instead of the latest (checkpoint/)")
	fs.IntVar(&o.batch, "batch", defaultInferBatch, "images per forward pass (>= 1)")
	return fs
}

// runInfer implements "seqconv infer".
func runInfer(args []string, stdout, stderr io.Writer) int {
	var o inferOptions
	fs := newInferFlags(&o)
	return runParsed(fs, args, stdout, stderr, func() error { return o.execute(stdout, stderr) })
}

func (o *inferOptions) execute(stdout, stderr io.Writer) error {
	if err := requireFlags("--run", o.run, "--input", o.input, "--output", o.output); err != nil {
		return err
	}
	if o.batch < 1 {
		return usagef("--batch must be >= 1, got %d", o.batch)
	}
	if err := checkRunDirExists(o.run); err != nil {
		return err
	}
	if err := checkInputFile("--input", o.input); err != nil {
		return err
	}
	if err := checkOutputFile("--output", o.output); err != nil {
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
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	cfg, store, err := train.LoadRun(backend, o.run, o.best)
	if err != nil {
		return err
	}
	logits, err := inferLogits(backend, store, cfg, images, n, o.batch)
	if err != nil {
		return fmt.Errorf("computing the logits: %w", err)
	}
	out, err := interop.NewArray(logits, n, cfg.Classes)
	if err != nil {
		return err
	}
	if err := interop.WriteNPYFile(o.output, out); err != nil {
		return fmt.Errorf("writing the logits to %s: %w", o.output, err)
	}
	fmt.Fprintf(stdout, "wrote the logits [%d %d] of %d images (model %s, %s) to %s\n", n, cfg.Classes, n, cfg.Name,
		train.RunCheckpointDir(o.run, o.best), o.output)
	return nil
}

// nhwcImages checks that a holds NCHW float32 or float64 images of cfg's channels and resolution and
// returns them as float32 NHWC data, with their number.
func nhwcImages(a *interop.Array, cfg models.Config) ([]float32, int, error) {
	c, r := cfg.InChannels, cfg.Resolution
	want := fmt.Sprintf("want float32 or float64 images [N, %d, %d, %d] (NCHW, as PyTorch takes them) for model %s",
		c, r, r, cfg.Name)
	if a.DType != dtypes.Float32 && a.DType != dtypes.Float64 {
		return nil, 0, fmt.Errorf("dtype %s: %s", strings.ToLower(a.DType.String()), want)
	}
	if len(a.Shape) != 4 || a.Shape[1] != c || a.Shape[2] != r || a.Shape[3] != r {
		return nil, 0, fmt.Errorf("shape %v: %s", a.Shape, want)
	}
	n := a.Shape[0]
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
	hw := r * r
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

// inferLogits runs cfg's inference graph on store's variables over n NHWC images, batch images at a time,
// and returns the float32 logits [n, classes] flat.
func inferLogits(backend compute.Backend, store *model.Store, cfg models.Config, images []float32, n, batch int) (
	logits []float32, err error) {
	var exec *model.Exec
	err = exceptions.TryCatch[error](func() {
		exec, err = model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
			scope.Store().SetTraining(x.Graph(), false)
			return cfg.Build(scope, x)
		})
	})
	if err != nil {
		return nil, err
	}
	defer exec.Finalize()
	c, r := cfg.InChannels, cfg.Resolution
	per := c * r * r
	logits = make([]float32, 0, n*cfg.Classes)
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		x := tensors.FromFlatDataAndDimensions(images[start*per:end*per], end-start, r, r, c)
		var out []*tensors.Tensor
		err = exceptions.TryCatch[error](func() {
			out, err = exec.Call(x)
		})
		_ = x.FinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("images %d to %d: %w", start, end-1, err)
		}
		if len(out) != 1 {
			return nil, fmt.Errorf("the model returned %d outputs, want 1", len(out))
		}
		if dims := out[0].Shape().Dimensions; len(dims) != 2 || dims[0] != end-start || dims[1] != cfg.Classes {
			return nil, fmt.Errorf("the model returned logits %v, want [%d %d]", dims, end-start, cfg.Classes)
		}
		var got []float32
		err = exceptions.TryCatch[error](func() {
			got, err = tensors.CopyFlatData[float32](out[0])
		})
		_ = out[0].FinalizeAll()
		if err != nil {
			return nil, err
		}
		logits = append(logits, got...)
	}
	return logits, nil
}

// requireFlags takes pairs of flag names and values and returns a usageError naming the flags left empty.
func requireFlags(nameValues ...string) error {
	var missing []string
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			missing = append(missing, nameValues[i])
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usagef("%s is required", missing[0])
	}
	return usagef("%s are required", strings.Join(missing, ", "))
}

// checkInputFile checks that the file given to flag exists and is a regular file.
func checkInputFile(flag, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return usagef("%s %s: %v", flag, path, unwrapPathError(err))
	}
	if st.IsDir() {
		return usagef("%s %s: is a directory, want a file", flag, path)
	}
	return nil
}

// checkOutputFile checks that the file given to flag can be created: its directory exists and it is not a
// directory.
func checkOutputFile(flag, path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return usagef("%s %s: is a directory, want a file", flag, path)
	}
	parent := filepath.Dir(path)
	st, err := os.Stat(parent)
	if err != nil {
		return usagef("%s %s: directory %s: %v", flag, path, parent, unwrapPathError(err))
	}
	if !st.IsDir() {
		return usagef("%s %s: %s is not a directory", flag, path, parent)
	}
	return nil
}

// checkRunDirExists checks that --run names a directory with a config.json.
func checkRunDirExists(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return usagef("--run %s: %v", dir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return usagef("--run %s: not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, train.ConfigFile)); err != nil {
		return usagef("--run %s: not a run directory: no %s", dir, train.ConfigFile)
	}
	return nil
}

// checkNewRunDir checks that --out can become a new run directory: not a file, and without checkpoints.
func checkNewRunDir(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return usagef("--out %s: %v", dir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return usagef("--out %s: is a file, want a (new) run directory", dir)
	}
	for _, sub := range []string{train.LatestDir, train.BestDir} {
		if m, _ := filepath.Glob(filepath.Join(dir, sub, "checkpoint-*.json")); len(m) > 0 {
			return usagef("--out %s already holds checkpoints (%s): choose a new run directory", dir, sub)
		}
	}
	return nil
}

// unwrapPathError returns the cause of an *os.PathError (whose message repeats the path).
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
