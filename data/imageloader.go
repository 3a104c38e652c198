package data

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
)

// ImageLoaderOptions configures an ImageLoader.
type ImageLoaderOptions struct {
	// Name is the dataset name; by default the source's DatasetName(), if
	// it has one, or "images".
	Name string

	// BatchSize is the number of images per batch; it must be > 0.
	BatchSize int

	// Shuffle makes each epoch visit the images in a random order, a
	// deterministic function of (Seed, epoch). Without it images are
	// visited in index order.
	Shuffle bool

	// Seed seeds the shuffling and the per-image randomness.
	Seed int64

	// DropLast drops the last batch of an epoch when it has fewer than
	// BatchSize images. Otherwise the last batch is smaller.
	DropLast bool

	// Transform turns each decoded image into a fixed-size image; it is
	// required (for example RandomResizedCrop for training, ResizeCenterCrop
	// for evaluation).
	Transform Transform

	// Augment, if not nil, is applied to every transformed and normalised
	// image. If it implements NormalizationBinder it is bound to the
	// normalisation (Mean, Std).
	Augment Augmenter

	// Mean and Std are the per-channel normalisation statistics on the 0..1
	// scale (length C, 1 or 0, as for ImageSet). When both are nil the
	// source's Normalization() is used if it has one, else none (x/255).
	Mean, Std []float32

	// Workers is the number of goroutines decoding and transforming images;
	// <= 0 means runtime.NumCPU().
	Workers int

	// ReadAhead is the number of batches prepared ahead of the consumer;
	// <= 0 means 2. Each batch holds BatchSize*H*W*C float32s, and at most
	// ReadAhead+1 batches are allocated besides those the consumer holds.
	ReadAhead int
}

// ImageNetTrainOptions returns ImageLoaderOptions for the authors' ImageNet
// training pipeline at the given output size (224): shuffled batches of
// RandomResizedCrop(size, scale 0.08-1, ratio 3/4-4/3), then a random
// horizontal flip, ColorJitter(0.4, 0.4, 0.4) and PCA Lighting(0.1), with
// the source's normalisation (ImageNetMean/ImageNetStd for a FolderSet).
func ImageNetTrainOptions(batchSize, size int, seed int64) ImageLoaderOptions {
	return ImageLoaderOptions{
		BatchSize: batchSize,
		Shuffle:   true,
		Seed:      seed,
		Transform: RandomResizedCrop{Size: size},
		Augment:   Compose(HFlip{}, ColorJitter{Brightness: 0.4, Contrast: 0.4, Saturation: 0.4}, Lighting{AlphaStd: 0.1}),
	}
}

// ImageNetEvalOptions returns ImageLoaderOptions for evaluation at the given
// output size (224): the images in order, resized so that the shorter side
// is size*256/224 (256) and centre-cropped to size x size.
func ImageNetEvalOptions(batchSize, size int) ImageLoaderOptions {
	return ImageLoaderOptions{
		BatchSize: batchSize,
		Transform: ResizeCenterCrop{Size: size},
	}
}

// ImageLoader serves a Source in fixed-size batches: each image is decoded
// (Source.Decode), transformed to a fixed size (Transform), normalised and
// augmented (Augment). It implements GoMLX's train.Dataset; its batches are
// like a Loader's: Inputs[0] a float32 tensor [B, H, W, C] and Labels[0] an
// int32 tensor [B], owned by the consumer.
//
// Every call to Iter is one epoch (see Loader). The order of the images and
// the randomness given to the Transform and the Augmenter for the image at
// position i of the epoch depend only on (Seed, epoch, i), never on the
// number of workers or on timing.
//
// Images are decoded and transformed in parallel by Workers goroutines
// (each works on a few images of a batch at a time, so that all of them
// help with every batch), up to ReadAhead batches ahead of the consumer.
//
// An image whose Decode fails with an error wrapping ErrSkipImage (a bad
// image of a FolderSet with SkipBadImages) is replaced by the next image of
// the epoch's order that decodes (wrapping around), with that image's label,
// so batches keep their size and the epoch stays deterministic. Any other
// error (or panic) ends the epoch with an error naming the batch.
type ImageLoader struct {
	src    Source
	opts   ImageLoaderOptions
	epochs epochCounter
}

var _ train.Dataset = (*ImageLoader)(nil)

// NewImageLoader returns an ImageLoader over src. Invalid sources or options
// are reported as an error by the first batch of Iter.
func NewImageLoader(src Source, opts ImageLoaderOptions) *ImageLoader {
	l := &ImageLoader{src: src, opts: opts}
	if l.opts.Workers <= 0 {
		l.opts.Workers = runtime.NumCPU()
	}
	if l.opts.ReadAhead <= 0 {
		l.opts.ReadAhead = 2
	}
	return l
}

// Name implements train.Dataset.
func (l *ImageLoader) Name() string {
	if l.opts.Name != "" {
		return l.opts.Name
	}
	if n, ok := l.src.(interface{ DatasetName() string }); ok && !isNil(l.src) {
		return n.DatasetName()
	}
	return "images"
}

// Source returns the loader's source.
func (l *ImageLoader) Source() Source { return l.src }

// SetEpoch sets the epoch used by the next call to Iter (see Loader.SetEpoch).
func (l *ImageLoader) SetEpoch(e int) { l.epochs.set(e) }

// Epoch returns the epoch that the next call to Iter will use.
func (l *ImageLoader) Epoch() int { return l.epochs.get() }

// NumBatches returns the number of batches in one epoch (0 if the source or
// the options are invalid).
func (l *ImageLoader) NumBatches() int {
	if isNil(l.src) {
		return 0
	}
	return batchesPerEpoch(l.src.Len(), l.opts.BatchSize, l.opts.DropLast)
}

func isNil(src Source) bool {
	switch s := src.(type) {
	case nil:
		return true
	case *ImageSet:
		return s == nil
	case *FolderSet:
		return s == nil
	}
	return false
}

// Iter implements train.Dataset: it returns an iterator over the batches of
// one epoch, the current epoch counter, which it increments. Ranging over
// the returned iterator again replays the same epoch.
func (l *ImageLoader) Iter() iter.Seq2[train.Batch, error] {
	epoch := l.epochs.take()
	return func(yield func(train.Batch, error) bool) {
		p, err := l.newPlan(epoch)
		if err != nil {
			yield(train.Batch{}, err)
			return
		}
		p.run(yield)
	}
}

// imagePlan is everything needed to build the batches of one epoch.
type imagePlan struct {
	l          *ImageLoader
	name       string
	src        Source
	n          int
	epoch      int
	batchSize  int
	numBatches int
	chunk      int // Images per job.
	h, w, c    int // Output image shape.
	perm       []int
	mean, std  []float32 // Length c.
	aug        Augmenter
}

func (l *ImageLoader) newPlan(epoch int) (*imagePlan, error) {
	name := l.Name()
	if isNil(l.src) {
		return nil, fmt.Errorf("data.ImageLoader(%q): nil Source", name)
	}
	if v, ok := l.src.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("data.ImageLoader: %w", err)
		}
	}
	o := l.opts
	p := &imagePlan{l: l, name: name, src: l.src, n: l.src.Len(), epoch: epoch, batchSize: o.BatchSize,
		numBatches: l.NumBatches(), c: l.src.Channels()}
	switch {
	case o.BatchSize <= 0:
		return nil, fmt.Errorf("data.ImageLoader(%q): BatchSize=%d, expected > 0", name, o.BatchSize)
	case o.Transform == nil:
		return nil, fmt.Errorf("data.ImageLoader(%q): no Transform, expected one (e.g. RandomResizedCrop)", name)
	case p.c <= 0:
		return nil, fmt.Errorf("data.ImageLoader(%q): source has %d channels", name, p.c)
	}
	if p.h, p.w = o.Transform.OutputSize(); p.h <= 0 || p.w <= 0 {
		return nil, fmt.Errorf("data.ImageLoader(%q): Transform output size %dx%d, expected > 0", name, p.h, p.w)
	}
	mean, std := o.Mean, o.Std
	if mean == nil && std == nil {
		if s, ok := l.src.(interface{ Normalization() (mean, std []float32) }); ok {
			mean, std = s.Normalization()
		}
	}
	var err error
	if p.mean, err = expandStats(name, "Mean", mean, p.c, 0); err != nil {
		return nil, err
	}
	if p.std, err = expandStats(name, "Std", std, p.c, 1); err != nil {
		return nil, err
	}
	for ch := range p.c {
		if m, s := float64(p.mean[ch]), float64(p.std[ch]); math.IsNaN(m) || math.IsInf(m, 0) || !(s > 0) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("data.ImageLoader(%q): channel %d has Mean %g and Std %g, expected finite values and Std > 0",
				name, ch, m, s)
		}
	}
	if o.Augment != nil {
		p.aug = bindNormalization(o.Augment, p.mean, p.std)
	}
	workers := max(1, o.Workers)
	p.chunk = max(1, min(16, (p.batchSize+2*workers-1)/(2*workers)))
	if o.Shuffle {
		rng := rand.New(rand.NewPCG(seedFor(o.Seed, epoch, streamShuffle, 0), seedFor(o.Seed, epoch, streamShuffle, 1)))
		p.perm = rng.Perm(p.n)
	}
	return p, nil
}

// expandStats expands normalisation statistics of length 0, 1 or c to c.
func expandStats(name, field string, v []float32, c int, def float32) ([]float32, error) {
	out := make([]float32, c)
	switch len(v) {
	case 0:
		for i := range out {
			out[i] = def
		}
	case 1:
		for i := range out {
			out[i] = v[0]
		}
	case c:
		copy(out, v)
	default:
		return nil, fmt.Errorf("data.ImageLoader(%q): len(%s)=%d, expected 0, 1 or %d channels", name, field, len(v), c)
	}
	return out, nil
}

// index returns the source index of the image at position pos of the epoch.
func (p *imagePlan) index(pos int) int {
	if p.perm != nil {
		return p.perm[pos]
	}
	return pos
}

// pendingBatch is a batch being prepared.
type pendingBatch struct {
	index     int
	size      int
	inputs    *tensors.Tensor
	labels    *tensors.Tensor
	inputData []float32 // The flat storage of inputs.
	labelData []int32   // The flat storage of labels.
	remaining atomic.Int32
	ready     chan struct{} // Closed when every job is done.

	mu     sync.Mutex
	err    error
	errPos int
}

func (pb *pendingBatch) setErr(pos int, err error) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.err == nil || pos < pb.errPos {
		pb.err, pb.errPos = err, pos
	}
}

func (pb *pendingBatch) finalize() {
	if pb.inputs != nil {
		_ = pb.inputs.FinalizeAll()
		_ = pb.labels.FinalizeAll()
	}
}

// newBatch allocates batch b's tensors; the workers write straight into
// their storage, which no one else accesses until the batch is delivered.
func (p *imagePlan) newBatch(b int) *pendingBatch {
	start := b * p.batchSize
	size := min(p.batchSize, p.n-start)
	pb := &pendingBatch{index: b, size: size, ready: make(chan struct{})}
	pb.inputs = tensors.FromShape(shapes.Make(dtypes.Float32, size, p.h, p.w, p.c))
	pb.labels = tensors.FromShape(shapes.Make(dtypes.Int32, size))
	_ = tensors.MutableFlatData(pb.inputs, func(flat []float32) { pb.inputData = flat })
	_ = tensors.MutableFlatData(pb.labels, func(flat []int32) { pb.labelData = flat })
	jobs := (size + p.chunk - 1) / p.chunk
	pb.remaining.Store(int32(jobs))
	return pb
}

type imageJob struct {
	pb         *pendingBatch
	start, end int // Positions within the batch.
}

// run prepares the batches and yields them in order.
//
// A dispatcher goroutine allocates each batch, queues it on `order` (whose
// capacity bounds the read-ahead) and splits it into jobs of a few images
// for the workers; the last job of a batch closes its ready channel. The
// consumer waits on the batches in order. When the consumer stops, `done` is
// closed, all goroutines are waited for and the undelivered batches are
// finalized.
func (p *imagePlan) run(yield func(train.Batch, error) bool) {
	if p.numBatches == 0 {
		return
	}
	o := p.l.opts
	done := make(chan struct{})
	order := make(chan *pendingBatch, o.ReadAhead)
	jobs := make(chan imageJob, 2*o.Workers)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(order)
		defer close(jobs)
		for b := range p.numBatches {
			pb := p.newBatch(b)
			select {
			case order <- pb:
			case <-done:
				pb.finalize()
				return
			}
			for start := 0; start < pb.size; start += p.chunk {
				select {
				case jobs <- imageJob{pb: pb, start: start, end: min(start+p.chunk, pb.size)}:
				case <-done:
					return
				}
			}
		}
	})
	for range max(1, o.Workers) {
		wg.Go(func() {
			w := p.newImageWorker()
			for {
				select {
				case <-done:
					return
				case job, ok := <-jobs:
					if !ok {
						return
					}
					w.process(job)
					if job.pb.remaining.Add(-1) == 0 {
						close(job.pb.ready)
					}
				}
			}
		})
	}
	defer func() {
		close(done)
		wg.Wait()
		for pb := range order {
			pb.finalize()
		}
	}()
	for pb := range order {
		<-pb.ready
		if pb.err != nil {
			pb.finalize()
			yield(train.Batch{}, pb.err)
			return
		}
		batch := train.Batch{Inputs: []*tensors.Tensor{pb.inputs}, Labels: []*tensors.Tensor{pb.labels}}
		pb.inputs, pb.labels = nil, nil
		if !yield(batch, nil) {
			return
		}
	}
}

// imageWorker holds one goroutine's scratch state.
type imageWorker struct {
	p       *imagePlan
	pcg     *rand.PCG
	rng     *rand.Rand
	buf     []uint8   // Decoding buffer.
	scratch []float32 // Transformed image before augmentation.
}

func (p *imagePlan) newImageWorker() *imageWorker {
	w := &imageWorker{p: p, pcg: rand.NewPCG(0, 0)}
	w.rng = rand.New(w.pcg)
	if p.aug != nil {
		w.scratch = make([]float32, p.h*p.w*p.c)
	}
	return w
}

// process prepares the images of one job, recording the first error.
func (w *imageWorker) process(job imageJob) {
	p, pb := w.p, job.pb
	size := p.h * p.w * p.c
	for j := job.start; j < job.end; j++ {
		pos := pb.index*p.batchSize + j
		label, err := w.image(pos, pb.inputData[j*size:(j+1)*size])
		if err != nil {
			pb.setErr(pos, fmt.Errorf("%s: batch %d of epoch %d: %w", p.name, pb.index, p.epoch, err))
			return
		}
		pb.labelData[j] = label
	}
}

// image prepares the image at position pos of the epoch into dst and returns
// its label. Panics are returned as errors.
func (w *imageWorker) image(pos int, dst []float32) (label int32, err error) {
	p := w.p
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("image at position %d: panic: %v", pos, r)
		}
	}()
	var img RawImage
	var idx int
	for k := range p.n {
		idx = p.index((pos + k) % p.n)
		img, err = p.src.Decode(idx, w.buf)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrSkipImage) {
			return 0, err
		}
		if k == p.n-1 {
			return 0, fmt.Errorf("all %d images were skipped; last: %w", p.n, err)
		}
	}
	if n := len(img.Pix); n > cap(w.buf) && !isNil(p.src) {
		if _, inMemory := p.src.(*ImageSet); !inMemory {
			// The image did not fit: grow the buffer (always one owned by this
			// worker) so that the next ones do.
			w.buf = make([]uint8, 0, max(n, 2*cap(w.buf)))
		}
	}
	if img.C != p.c || img.H <= 0 || img.W <= 0 || len(img.Pix) != img.H*img.W*img.C {
		return 0, fmt.Errorf("image %d decoded as %dx%dx%d with %d bytes, expected %d channels",
			idx, img.H, img.W, img.C, len(img.Pix), p.c)
	}
	w.pcg.Seed(seedFor(p.l.opts.Seed, p.epoch, streamAugment, uint64(pos)), uint64(pos))
	out := dst
	if p.aug != nil {
		out = w.scratch
	}
	TransformImage(p.l.opts.Transform, w.rng, img, p.mean, p.std, out)
	if p.aug != nil {
		p.aug.Augment(w.rng, p.h, p.w, p.c, out, dst)
	}
	return p.src.Label(idx), nil
}
