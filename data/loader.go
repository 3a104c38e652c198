package data

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
)

// LoaderOptions configures a Loader.
type LoaderOptions struct {
	// BatchSize is the number of images per batch; it must be > 0.
	BatchSize int

	// Shuffle makes each epoch visit the images in a random order, a
	// deterministic function of (Seed, epoch). Without it images are
	// visited in storage order.
	Shuffle bool

	// Seed seeds the shuffling and the augmentation randomness.
	Seed int64

	// DropLast drops the last batch of an epoch when it has fewer than
	// BatchSize images. Otherwise the last batch is smaller.
	DropLast bool

	// Augment, if not nil, is applied to every normalised image. If it
	// implements NormalizationBinder it is bound to the set's per-channel
	// normalisation at the start of each epoch.
	Augment Augmenter

	// Workers is the number of background goroutines preparing batches;
	// <= 0 means runtime.NumCPU().
	Workers int
}

// Loader serves an ImageSet in batches. It implements GoMLX's
// train.Dataset.
//
// Every call to Iter is one epoch: the epoch counter (starting at 0, see
// SetEpoch) is taken by Iter and incremented. The order of the images (with
// Shuffle) and the randomness given to the Augmenter for the image at
// position i of the epoch depend only on (Seed, epoch, i), never on the
// number of workers or on timing.
//
// Each batch has Inputs[0], a float32 tensor [B, H, W, C] of images
// normalised as (x/255 - Mean[c]) / Std[c] (then augmented), and Labels[0],
// an int32 tensor [B] of class labels. Ownership of the tensors passes to
// the consumer.
//
// Batches are prepared by a pool of background goroutines a few batches
// ahead of the consumer. The goroutines stop, and the iteration returns,
// when the epoch ends or the consumer stops early (break out of a range
// loop, or the stop function of iter.Pull2).
//
// A Loader yields exactly one epoch per Iter call, so with GoMLX's
// train.Loop use RunEpochs (RunSteps fails when the dataset ends).
type Loader struct {
	set    *ImageSet
	opts   LoaderOptions
	epochs epochCounter
}

// epochCounter is a loader's epoch counter: each Iter takes the current epoch and increments it.
type epochCounter struct {
	mu    sync.Mutex
	epoch int
}

func (c *epochCounter) set(e int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch = e
}

func (c *epochCounter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// take returns the current epoch and increments the counter.
func (c *epochCounter) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	return c.epoch - 1
}

// batchesPerEpoch is the number of batches of batchSize in n images (0 if either is not positive).
func batchesPerEpoch(n, batchSize int, dropLast bool) int {
	if n <= 0 || batchSize <= 0 {
		return 0
	}
	if dropLast {
		return n / batchSize
	}
	return (n + batchSize - 1) / batchSize
}

var _ train.Dataset = (*Loader)(nil)

// NewLoader returns a Loader over set. Invalid sets or options are reported
// as an error by the first batch of Iter.
func NewLoader(set *ImageSet, opts LoaderOptions) *Loader {
	l := &Loader{set: set, opts: opts}
	if l.opts.Workers <= 0 {
		l.opts.Workers = runtime.NumCPU()
	}
	return l
}

// Name implements train.Dataset: it returns the set's Name.
func (l *Loader) Name() string {
	if l.set == nil {
		return "<nil>"
	}
	return l.set.Name
}

// Set returns the ImageSet served by the Loader.
func (l *Loader) Set() *ImageSet { return l.set }

// SetEpoch sets the epoch used by the next call to Iter (and then
// incremented). Use it when resuming training, so that epoch e reproduces the
// same order and augmentations.
func (l *Loader) SetEpoch(e int) { l.epochs.set(e) }

// Epoch returns the epoch that the next call to Iter will use.
func (l *Loader) Epoch() int { return l.epochs.get() }

// NumBatches returns the number of batches in one epoch (0 if the set or the
// options are invalid).
func (l *Loader) NumBatches() int {
	if l.set == nil {
		return 0
	}
	return batchesPerEpoch(l.set.N, l.opts.BatchSize, l.opts.DropLast)
}

// Iter implements train.Dataset: it returns an iterator over the batches of
// one epoch, the current epoch counter, which it increments. Ranging over the
// returned iterator again replays the same epoch.
func (l *Loader) Iter() iter.Seq2[train.Batch, error] {
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

// plan is everything needed to build the batches of one epoch.
type plan struct {
	l          *Loader
	set        *ImageSet
	epoch      int
	batchSize  int
	numBatches int
	workers    int
	readAhead  int
	perm       []int     // position in epoch -> image index; nil for storage order.
	lut        []float32 // [C*256] normalised value of each byte per channel.
	aug        Augmenter
}

func (l *Loader) newPlan(epoch int) (*plan, error) {
	if err := l.set.Validate(); err != nil {
		return nil, fmt.Errorf("data.Loader: %w", err)
	}
	set := l.set
	if l.opts.BatchSize <= 0 {
		return nil, fmt.Errorf("data.Loader(%q): BatchSize=%d, expected > 0", set.Name, l.opts.BatchSize)
	}
	mean, std, err := set.channelStats()
	if err != nil {
		return nil, fmt.Errorf("data.Loader: %w", err)
	}
	p := &plan{
		l:          l,
		set:        set,
		epoch:      epoch,
		batchSize:  l.opts.BatchSize,
		numBatches: l.NumBatches(),
	}
	if l.opts.Augment != nil {
		p.aug = bindNormalization(l.opts.Augment, mean, std)
	}
	p.workers = max(1, min(l.opts.Workers, p.numBatches))
	p.readAhead = max(4, 2*p.workers)
	p.lut = make([]float32, set.C*256)
	for c := range set.C {
		for v := range 256 {
			p.lut[c*256+v] = (float32(v)/255 - mean[c]) / std[c]
		}
	}
	if l.opts.Shuffle {
		rng := rand.New(rand.NewPCG(seedFor(l.opts.Seed, epoch, streamShuffle, 0), seedFor(l.opts.Seed, epoch, streamShuffle, 1)))
		p.perm = rng.Perm(set.N)
	}
	return p, nil
}

// Random streams derived from the seed.
const (
	streamShuffle uint64 = 1
	streamAugment uint64 = 2
)

// seedFor mixes (seed, epoch, stream, index) into a 64-bit seed with
// SplitMix64 steps, so that nearby inputs give unrelated seeds.
func seedFor(seed int64, epoch int, stream, index uint64) uint64 {
	h := uint64(0x9e3779b97f4a7c15)
	for _, v := range [...]uint64{uint64(seed), uint64(epoch), stream, index} {
		h = splitMix64(h ^ v)
	}
	return h
}

func splitMix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

type batchResult struct {
	batch train.Batch
	err   error
}

type batchJob struct {
	index  int
	result chan<- batchResult // buffered (1).
}

// run prepares the batches on p.workers goroutines and yields them in order.
//
// A dispatcher goroutine creates one result channel per batch, queues it on
// `order` (whose capacity bounds the read-ahead) and hands the job to the
// workers; the consumer reads the result channels in order. When the
// consumer stops, `done` is closed, all goroutines are waited for, and the
// batches prepared but not delivered are finalized.
func (p *plan) run(yield func(train.Batch, error) bool) {
	if p.numBatches == 0 {
		return
	}
	done := make(chan struct{})
	order := make(chan chan batchResult, p.readAhead)
	jobs := make(chan batchJob)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(order)
		defer close(jobs)
		for b := range p.numBatches {
			result := make(chan batchResult, 1)
			select {
			case order <- result:
			case <-done:
				return
			}
			select {
			case jobs <- batchJob{index: b, result: result}:
			case <-done:
				return
			}
		}
	})
	for range p.workers {
		wg.Go(func() {
			w := newWorker(p)
			for {
				select {
				case <-done:
					return
				case job, ok := <-jobs:
					if !ok {
						return
					}
					batch, err := w.build(job.index)
					job.result <- batchResult{batch, err}
				}
			}
		})
	}
	defer func() {
		close(done)
		wg.Wait()
		for result := range order {
			select {
			case r := <-result:
				_ = r.batch.Finalize()
			default:
			}
		}
	}()
	for result := range order {
		r := <-result
		if r.err != nil {
			yield(train.Batch{}, r.err)
			return
		}
		if !yield(r.batch, nil) {
			return
		}
	}
}

// worker holds one goroutine's scratch state.
type worker struct {
	p       *plan
	pcg     *rand.PCG
	rng     *rand.Rand
	inputs  []float32
	labels  []int32
	scratch []float32 // normalised image before augmentation.
}

func newWorker(p *plan) *worker {
	w := &worker{p: p, pcg: rand.NewPCG(0, 0)}
	w.rng = rand.New(w.pcg)
	if p.aug != nil {
		w.scratch = make([]float32, p.set.ImageSize())
	}
	return w
}

// build prepares batch b of the epoch. Panics (e.g. from an Augmenter) are
// returned as errors.
func (w *worker) build(b int) (batch train.Batch, err error) {
	p, set := w.p, w.p.set
	defer func() {
		if r := recover(); r != nil {
			batch = train.Batch{}
			err = fmt.Errorf("data.Loader(%q): preparing batch %d of epoch %d: panic: %v", set.Name, b, p.epoch, r)
		}
	}()
	start := b * p.batchSize
	end := min(start+p.batchSize, set.N)
	bs := end - start
	size := set.ImageSize()
	if cap(w.inputs) < bs*size {
		w.inputs = make([]float32, bs*size)
		w.labels = make([]int32, bs)
	}
	inputs, labels := w.inputs[:bs*size], w.labels[:bs]
	for j := range bs {
		pos := start + j
		idx := pos
		if p.perm != nil {
			idx = p.perm[pos]
		}
		dst := inputs[j*size : (j+1)*size]
		if p.aug == nil {
			p.normalize(set.Pixels[idx*size:(idx+1)*size], dst)
		} else {
			p.normalize(set.Pixels[idx*size:(idx+1)*size], w.scratch)
			w.pcg.Seed(seedFor(w.p.l.opts.Seed, p.epoch, streamAugment, uint64(pos)), uint64(pos))
			p.aug.Augment(w.rng, set.H, set.W, set.C, w.scratch, dst)
		}
		labels[j] = set.Labels[idx]
	}
	return train.Batch{
		Inputs: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(inputs, bs, set.H, set.W, set.C)},
		Labels: []*tensors.Tensor{tensors.FromFlatDataAndDimensions(labels, bs)},
	}, nil
}

// normalize converts one HWC uint8 image to normalised float32.
func (p *plan) normalize(src []uint8, dst []float32) {
	c := p.set.C
	if c == 1 {
		lut := p.lut[:256]
		for i, v := range src {
			dst[i] = lut[v]
		}
		return
	}
	for i, v := range src {
		dst[i] = p.lut[(i%c)*256+int(v)]
	}
}
