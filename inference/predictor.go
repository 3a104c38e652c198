// Package inference puts a trained run to work: Load reads a run directory (config.json, the
// checkpoint, the class names) into a Predictor, which prepares images as the run's evaluation does and
// returns the most probable classes. "seqconv predict" and "seqconv serve" use it; so can Go programs.
//
// The networks take images of any size from their minimum on (models.Config.MinInputSize): Logits
// accepts any size, and the model graph is compiled once per input shape. Predictions run on the
// fastest engine available (engine.NewFor(engine.Inference): ONNX Runtime, with its inference session options,
// when installed, else the pure Go backend) unless Options.Backend names another. A Batcher groups concurrent
// requests into batches, for servers.
package inference

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// Defaults of Options.
const (
	DefaultTopK     = 5
	DefaultMaxBatch = 64
)

// Options configure Load.
type Options struct {
	// Best loads the run's best checkpoint (best/) instead of its latest (checkpoint/).
	Best bool
	// Backend runs the model; nil creates the fastest engine available for inference
	// (engine.NewFor(engine.Inference)), which Close finalizes.
	Backend compute.Backend
	// TopK is how many classes a Prediction lists; 0 means DefaultTopK (at most the model's classes).
	TopK int
	// Size is the height and width that images are prepared at; 0 means the model's resolution (the
	// run's evaluation size).
	Size int
	// MaxBatch bounds the images of one forward pass; 0 means DefaultMaxBatch.
	MaxBatch int
	// MaxPixels bounds the images Decode accepts (width x height, read from the header before
	// decoding); 0 means data.DefaultMaxPixels.
	MaxPixels int
	// CachedSizes is how many input sizes keep their compiled graphs; 0 means DefaultCachedSizes.
	CachedSizes int
}

// Predictor computes a run's predictions. It is safe for concurrent use.
type Predictor struct {
	cfg        models.Config
	recipe     Recipe
	classes    []string
	backend    compute.Backend
	ownBackend bool
	engine     string
	params     int64
	dtype      dtypes.DType
	topK       int
	maxBatch   int
	maxPixels  int
	execs      *execCache

	mu    sync.Mutex
	costs map[int]time.Duration // forward-pass time per batch size at the prepared size (Warm); guarded by mu
}

// Info describes a Predictor's model.
type Info struct {
	Model        string   `json:"model"`
	Family       string   `json:"family"`
	Params       int64    `json:"params"`
	Classes      []string `json:"classes"`
	Channels     int      `json:"channels"`
	InputSize    [2]int   `json:"input_size"`     // height and width of prepared images
	MinInputSize int      `json:"min_input_size"` // the smallest height and width the network takes
	Resolution   int      `json:"resolution"`     // the model's default size (its config)
	Recipe       string   `json:"preprocessing"`
	Engine       string   `json:"engine"`
	TopK         int      `json:"top_k"`
	MaxBatch     int      `json:"max_batch"`
	// BatchMS is the time of a forward pass per batch size, in milliseconds, as Warm measured it.
	BatchMS map[int]float64 `json:"batch_ms,omitempty"`
}

// Class is one class of a Prediction with its probability (softmax of the logits).
type Class struct {
	Index       int     `json:"index"`
	Name        string  `json:"name"`
	Probability float64 `json:"probability"`
}

// Prediction lists the most probable classes of one image, most probable first.
type Prediction struct {
	Top []Class `json:"top"`
}

// Input is one image prepared for a Predictor's model (see Predictor.Prepare and Predictor.Decode).
type Input struct {
	pix  []float32 // HWC, normalised
	h, w int
}

var errClosed = errors.New("inference: the predictor is closed")

// Load reads the run directory runDir (written by "seqconv train" or "seqconv import") into a
// Predictor: its model config and preprocessing recipe (config.json, see RecipeFor), its checkpoint
// and its class names (see ClassNames). Close the Predictor when done.
func Load(runDir string, opts Options) (*Predictor, error) {
	tcfg, err := train.ReadConfig(runDir)
	if err != nil {
		return nil, err
	}
	recipe, err := RecipeFor(tcfg, opts.Size)
	if err != nil {
		return nil, err
	}
	classes, err := ClassNames(runDir, tcfg)
	if err != nil {
		return nil, err
	}
	backend, engineDesc, own := opts.Backend, "", false
	if backend == nil {
		choice, err := engine.NewFor(engine.Inference)
		if err != nil {
			return nil, fmt.Errorf("inference: %w", err)
		}
		backend, engineDesc, own = choice.Backend, choice.String(), true
	} else {
		engineDesc = fmt.Sprintf("%s (%s)", backend.Name(), backend.Description())
	}
	cfg, store, err := train.LoadRun(backend, runDir, opts.Best)
	if err != nil {
		if own {
			backend.Finalize()
		}
		return nil, err
	}
	p := newPredictor(backend, cfg, store, recipe, classes, opts, dtypes.Float32)
	p.ownBackend, p.engine = own, engineDesc
	return p, nil
}

// newPredictor returns a Predictor of cfg's model with the variables of store, computing in dtype (the
// variables' dtype).
func newPredictor(backend compute.Backend, cfg models.Config, store *model.Store, recipe Recipe, classes []string,
	opts Options, dtype dtypes.DType) *Predictor {
	p := &Predictor{cfg: cfg.WithDefaults(), recipe: recipe, classes: slices.Clone(classes), backend: backend,
		engine: backend.Name(), dtype: dtype, topK: opts.TopK, maxBatch: opts.MaxBatch, maxPixels: opts.MaxPixels}
	if p.topK <= 0 {
		p.topK = DefaultTopK
	}
	p.topK = min(p.topK, cfg.Classes)
	if p.maxBatch <= 0 {
		p.maxBatch = DefaultMaxBatch
	}
	if p.maxPixels <= 0 {
		p.maxPixels = data.DefaultMaxPixels
	}
	for v := range store.IterVariables() {
		if v.Trainable {
			p.params += int64(v.Shape().Size())
		}
	}
	p.execs = newExecCache(backend, store, p.cfg, dtype, opts.CachedSizes)
	return p
}

// Close releases the compiled graphs and, when Load created it, the engine.
func (p *Predictor) Close() error {
	p.execs.close()
	if p.ownBackend {
		p.backend.Finalize()
	}
	return nil
}

// Model returns the model's config.
func (p *Predictor) Model() models.Config { return p.cfg }

// Recipe returns how images are prepared.
func (p *Predictor) Recipe() Recipe { return p.recipe }

// Classes returns the class names (label l is element l).
func (p *Predictor) Classes() []string { return slices.Clone(p.classes) }

// MaxPixels returns the largest image (width x height) Decode accepts.
func (p *Predictor) MaxPixels() int { return p.maxPixels }

// Info describes the model, its preprocessing and the engine.
func (p *Predictor) Info() Info {
	var batchMS map[int]float64
	for b, d := range p.BatchTimes() {
		if batchMS == nil {
			batchMS = map[int]float64{}
		}
		batchMS[b] = float64(d) / float64(time.Millisecond)
	}
	return Info{BatchMS: batchMS, Model: p.cfg.Name, Family: p.cfg.Family, Params: p.params, Classes: p.Classes(),
		Channels: p.cfg.InChannels, InputSize: [2]int{p.recipe.Size, p.recipe.Size},
		MinInputSize: p.cfg.MinInputSize(), Resolution: p.cfg.Resolution, Recipe: p.recipe.String(),
		Engine: p.engine, TopK: p.topK, MaxBatch: p.maxBatch}
}

// Decode decodes an image file's contents b (JPEG, PNG, GIF or WebP, detected from the content) and
// prepares it. name identifies the image in errors. An empty, undecodable or truncated image, or one of
// more than MaxPixels pixels (read from its header before decoding), is an error naming it and wrapping
// data.ErrBadImage.
func (p *Predictor) Decode(name string, b []byte) (Input, error) {
	img, err := data.DecodeImage(name, b, nil, p.maxPixels)
	if err != nil {
		return Input{}, err
	}
	return p.prepareRaw(name, img)
}

// Prepare prepares a decoded image for the model as the run's evaluation does (see Recipe).
func (p *Predictor) Prepare(img image.Image) (Input, error) {
	if img == nil || img.Bounds().Empty() {
		return Input{}, fmt.Errorf("inference: %w: empty image", data.ErrBadImage)
	}
	return p.prepareRaw("image", data.RGB(img, nil))
}

// prepareRaw prepares an RGB image.
func (p *Predictor) prepareRaw(name string, img data.RawImage) (Input, error) {
	s := p.recipe.Size
	in := Input{pix: make([]float32, s*s*p.recipe.Channels), h: s, w: s}
	if err := p.recipe.prepare(img, in.pix); err != nil {
		return Input{}, fmt.Errorf("%s: %w", name, err)
	}
	return in, nil
}

// Predict prepares the images and returns their predictions, in order.
func (p *Predictor) Predict(ctx context.Context, images []image.Image) ([]Prediction, error) {
	inputs := make([]Input, len(images))
	for i, img := range images {
		var err error
		if inputs[i], err = p.Prepare(img); err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
	}
	return p.PredictInputs(ctx, inputs)
}

// PredictInputs returns the predictions of prepared images, which must all have the same size.
func (p *Predictor) PredictInputs(ctx context.Context, inputs []Input) ([]Prediction, error) {
	if len(inputs) == 0 {
		return nil, nil
	}
	h, w := inputs[0].h, inputs[0].w
	per := len(inputs[0].pix)
	x := make([]float32, 0, per*len(inputs))
	for i, in := range inputs {
		if in.h != h || in.w != w || len(in.pix) != per {
			return nil, fmt.Errorf("inference: input %d is %dx%d, input 0 %dx%d: one batch holds one size", i, in.h,
				in.w, h, w)
		}
		x = append(x, in.pix...)
	}
	logits, err := p.Logits(ctx, x, len(inputs), h, w, p.recipe.Channels)
	if err != nil {
		return nil, err
	}
	k := p.cfg.Classes
	preds := make([]Prediction, len(inputs))
	for i := range preds {
		preds[i] = p.topClasses(logits[i*k : (i+1)*k])
	}
	return preds, nil
}

// topClasses returns the p.topK most probable classes of one image's logits.
func (p *Predictor) topClasses(logits []float64) Prediction {
	probs := softmax(logits)
	order := make([]int, len(probs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case probs[a] > probs[b]:
			return -1
		case probs[a] < probs[b]:
			return 1
		}
		return 0
	})
	top := make([]Class, p.topK)
	for i := range top {
		c := order[i]
		top[i] = Class{Index: c, Name: p.classes[c], Probability: probs[c]}
	}
	return Prediction{Top: top}
}

// softmax returns the probabilities of logits.
func softmax(logits []float64) []float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = max(m, v)
	}
	out := make([]float64, len(logits))
	var sum float64
	for i, v := range logits {
		out[i] = math.Exp(v - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// Logits computes the eval-mode logits of n images of h x w pixels and c channels given as x, NHWC
// (channels last), already prepared (normalised) as the model expects: any size from the model's minimum
// on, the model's channels. It returns
// [n, classes] logits, flat. The images go through the model at most MaxBatch at a time, in the
// forward passes that plan chooses; the graph of each shape is compiled on first use and kept.
func (p *Predictor) Logits(ctx context.Context, x []float32, n, h, w, c int) ([]float64, error) {
	if err := p.cfg.CheckInput(c, h, w); err != nil {
		return nil, err
	}
	per := h * w * c
	if n < 1 || len(x) != n*per {
		return nil, fmt.Errorf("inference: %d values for %d images of %dx%dx%d", len(x), n, h, w, c)
	}
	k := p.cfg.Classes
	logits := make([]float64, 0, n*k)
	start := 0
	for _, size := range p.plan(n, h, w) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		real := min(size, n-start)
		in := x[start*per : (start+real)*per]
		if real < size { // Padded to a faster batch size: zero images, whose logits are dropped.
			in = append(slices.Clip(in), make([]float32, (size-real)*per)...)
		}
		got, err := p.run(in, size, h, w)
		if err != nil {
			return nil, fmt.Errorf("inference: images %d to %d: %w", start, start+real-1, err)
		}
		logits = append(logits, got[:real*k]...)
		start += real
	}
	return logits, nil
}

// run computes the logits of one forward pass of n images.
func (p *Predictor) run(x []float32, n, h, w int) (logits []float64, err error) {
	e, err := p.execs.acquire(n, h, w)
	if err != nil {
		return nil, err
	}
	defer p.execs.release(e)
	var in *tensors.Tensor
	if p.dtype == dtypes.Float64 {
		x64 := make([]float64, len(x))
		for i, v := range x {
			x64[i] = float64(v)
		}
		in = tensors.FromFlatDataAndDimensions(x64, n, h, w, p.cfg.InChannels)
	} else {
		in = tensors.FromFlatDataAndDimensions(x, n, h, w, p.cfg.InChannels)
	}
	defer func() { _ = in.FinalizeAll() }()
	err = exceptions.TryCatch[error](func() {
		out, err := e.exec.Call(in)
		if err != nil {
			panic(err)
		}
		defer func() {
			for _, o := range out {
				_ = o.FinalizeAll()
			}
		}()
		if len(out) != 1 {
			panic(fmt.Errorf("the model returned %d outputs, want 1", len(out)))
		}
		if dims := out[0].Shape().Dimensions; len(dims) != 2 || dims[0] != n || dims[1] != p.cfg.Classes {
			panic(fmt.Errorf("the model returned logits %v, want [%d %d]", dims, n, p.cfg.Classes))
		}
		switch out[0].DType() {
		case dtypes.Float64:
			logits, err = tensors.CopyFlatData[float64](out[0])
		default:
			var l32 []float32
			l32, err = tensors.CopyFlatData[float32](out[0])
			logits = make([]float64, len(l32))
			for i, v := range l32 {
				logits[i] = float64(v)
			}
		}
		if err != nil {
			panic(err)
		}
	})
	return logits, err
}
