package inference

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of Batcher.Predict.
var (
	// ErrQueueFull is returned when the images waiting for a batch would exceed BatcherOptions.QueueSize.
	ErrQueueFull = errors.New("inference: the queue is full")
	// ErrBatcherClosed is returned after Close.
	ErrBatcherClosed = errors.New("inference: the batcher is closed")
)

// Defaults of BatcherOptions.
const (
	DefaultMaxDelay  = 5 * time.Millisecond
	DefaultQueueSize = 1024
)

// BatcherOptions configure a Batcher.
type BatcherOptions struct {
	// MaxBatch is the most images one forward pass takes; 0 means the Predictor's MaxBatch.
	MaxBatch int
	// MaxDelay is how long the first image of a batch waits for others; 0 means DefaultMaxDelay.
	MaxDelay time.Duration
	// QueueSize bounds the images waiting for a batch; 0 means DefaultQueueSize.
	QueueSize int
	// Workers is how many batches may run at the same time; 0 means 1. More than one pays when the
	// engine runs each batch on fewer threads than there are cores (see engine.NewWithThreads): batches
	// that run side by side on one thread each are less disturbed by the rest of a server's work.
	Workers int
	// Announced says that the callers announce their requests (see Batcher.Announce): a batch then waits
	// (up to MaxDelay) only while an announced request is on its way or the clients of the last batch
	// may be coming back, and runs at once otherwise, so that a lone request does not wait MaxDelay for
	// company, and clients in a loop are not split into half batches that alternate.
	Announced bool
	// OnBatch, if not nil, is called after each forward pass with its number of images, its duration
	// and its error.
	OnBatch func(size int, d time.Duration, err error)
}

// Timing says how one image of a Batcher went.
type Timing struct {
	Queue     time.Duration // from Predict to the start of its forward pass
	Inference time.Duration // the forward pass (of the whole batch)
	BatchSize int           // the images of that forward pass
}

// Batcher runs the predictions of concurrent callers in batches: the images that arrive within MaxDelay
// of the first waiting one (up to MaxBatch) go through the model together, which is how a server gets
// the throughput of batched inference from one-image requests. Workers forward passes run at a time
// (one by default). It is safe for concurrent use.
type Batcher struct {
	p    *Predictor
	opts BatcherOptions

	mu         sync.Mutex
	pending    []*batchItem
	closed     bool
	collecting bool          // a worker is collecting a batch
	arriving   int           // announced requests not yet queued (see Announce)
	returning  int           // images answered since their clients last queued any (Announced)
	wake       chan struct{} // for the idle workers: new items or Close; buffered, never blocks
	fill       chan struct{} // for the collecting worker: new items or Close; buffered, never blocks
	done       chan struct{} // closed when the workers have ended
}

// batchItem is one image waiting for a batch.
type batchItem struct {
	ctx      context.Context
	in       Input
	enqueued time.Time
	result   chan batchResult // buffered: the worker never blocks on it
}

type batchResult struct {
	pred   Prediction
	timing Timing
	err    error
}

// NewBatcher starts a Batcher of p. Close it when done (before closing p).
func NewBatcher(p *Predictor, opts BatcherOptions) *Batcher {
	if opts.MaxBatch <= 0 || opts.MaxBatch > p.maxBatch {
		opts.MaxBatch = p.maxBatch
	}
	if opts.MaxDelay <= 0 {
		opts.MaxDelay = DefaultMaxDelay
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	b := &Batcher{p: p, opts: opts, wake: make(chan struct{}, 1), fill: make(chan struct{}, 1),
		done: make(chan struct{})}
	var wg sync.WaitGroup
	for range opts.Workers {
		wg.Go(b.loop)
	}
	go func() { wg.Wait(); close(b.done) }()
	return b
}

// Options returns the options in effect (defaults applied).
func (b *Batcher) Options() BatcherOptions { return b.opts }

// Predict queues the inputs and returns their predictions, in order, once the batches holding them have
// run. It returns ErrQueueFull without queuing anything when they do not fit in the queue,
// ErrBatcherClosed after Close, and ctx's error when ctx ends first (its images are then skipped if
// they have not started).
func (b *Batcher) Predict(ctx context.Context, inputs []Input) ([]Prediction, []Timing, error) {
	return b.predict(ctx, inputs, nil)
}

// predict queues the inputs (ending arrival, if not nil) and waits for their predictions.
func (b *Batcher) predict(ctx context.Context, inputs []Input, arrival *Arrival) ([]Prediction, []Timing, error) {
	if len(inputs) == 0 {
		if arrival != nil {
			arrival.Done()
		}
		return nil, nil, nil
	}
	now := time.Now()
	items := make([]*batchItem, len(inputs))
	for i, in := range inputs {
		items[i] = &batchItem{ctx: ctx, in: in, enqueued: now, result: make(chan batchResult, 1)}
	}
	b.mu.Lock()
	if arrival != nil {
		arrival.endLocked()
	}
	switch {
	case b.closed:
		b.mu.Unlock()
		b.signal()
		return nil, nil, ErrBatcherClosed
	case len(b.pending)+len(items) > b.opts.QueueSize:
		b.mu.Unlock()
		b.signal()
		return nil, nil, ErrQueueFull
	}
	b.pending = append(b.pending, items...)
	b.returning = max(0, b.returning-len(items))
	b.mu.Unlock()
	b.signal()

	preds := make([]Prediction, len(items))
	timings := make([]Timing, len(items))
	for i, it := range items {
		select {
		case r := <-it.result:
			if r.err != nil {
				return nil, nil, r.err
			}
			preds[i], timings[i] = r.pred, r.timing
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return preds, timings, nil
}

// Arrival is a request on its way to a Batcher (see Announce).
type Arrival struct {
	b    *Batcher
	done bool // guarded by b.mu
}

// Announce tells the batcher that a request is on its way (its images being read or decoded), for
// BatcherOptions.Announced: a collecting worker waits for it, up to MaxDelay, instead of running a batch
// without it. Queue its images with Arrival.Predict, or call Arrival.Done if it gives up.
func (b *Batcher) Announce() *Arrival {
	b.mu.Lock()
	b.arriving++
	b.mu.Unlock()
	return &Arrival{b: b}
}

// Done ends the arrival without queuing anything (the request gave up); later calls do nothing.
func (a *Arrival) Done() {
	a.b.mu.Lock()
	none := a.endLocked()
	a.b.mu.Unlock()
	if none {
		a.b.signal()
	}
}

// endLocked ends the arrival, if not yet ended, and reports whether no other one is on its way; b.mu
// must be held.
func (a *Arrival) endLocked() bool {
	if a.done {
		return false
	}
	a.done = true
	a.b.arriving--
	return a.b.arriving == 0
}

// Predict queues the inputs as Batcher.Predict does, ending the arrival at the same time.
func (a *Arrival) Predict(ctx context.Context, inputs []Input) ([]Prediction, []Timing, error) {
	return a.b.predict(ctx, inputs, a)
}

// QueueLen returns the number of images waiting for a batch.
func (b *Batcher) QueueLen() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.pending)
}

// Close stops accepting images, runs the ones already queued and waits for the last batch to end.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
	<-b.done
}

// signal wakes a waiting worker and the collecting one.
func (b *Batcher) signal() {
	for _, ch := range []chan struct{}{b.wake, b.fill} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// loop is a worker: it runs batches until Close has been called and the queue is empty.
func (b *Batcher) loop() {
	for {
		items, ok := b.next()
		if !ok {
			return
		}
		b.run(items)
	}
}

// next waits for a batch: up to MaxBatch images, taken when that many are waiting, when MaxDelay has
// passed since the first of them was queued, or at Close. One worker at a time collects a batch; the
// others wait for it to leave. It returns false once closed with nothing left.
func (b *Batcher) next() ([]*batchItem, bool) {
	b.mu.Lock()
	for len(b.pending) == 0 || b.collecting {
		if b.closed && len(b.pending) == 0 {
			b.mu.Unlock()
			b.signal() // Pass Close on to the other workers.
			return nil, false
		}
		b.mu.Unlock()
		<-b.wake
		b.mu.Lock()
	}
	b.collecting = true
	deadline := b.pending[0].enqueued.Add(b.opts.MaxDelay)
	if b.opts.Announced && b.returning > 0 {
		// The clients just answered may be back soon (in a loop): give them MaxDelay from now, so that
		// requests queued while the last batch ran do not leave without them.
		deadline = later(deadline, time.Now().Add(b.opts.MaxDelay))
	}
	var timer *time.Timer
	for len(b.pending) < b.opts.MaxBatch && !b.closed &&
		(!b.opts.Announced || b.arriving > 0 || b.returning > 0) {
		wait := time.Until(deadline)
		if wait <= 0 {
			b.returning = 0 // Those not back are not coming soon.
			break
		}
		b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-b.fill:
		case <-timer.C:
		}
		b.mu.Lock()
	}
	if timer != nil {
		timer.Stop()
	}
	n := min(len(b.pending), b.opts.MaxBatch)
	items := make([]*batchItem, n)
	copy(items, b.pending)
	b.pending = append(b.pending[:0], b.pending[n:]...)
	b.collecting = false
	more := len(b.pending) > 0 || b.closed
	b.mu.Unlock()
	if more {
		b.signal() // Another worker may collect the next batch.
	}
	return items, true
}

// run runs one batch and delivers its results; items whose caller has gone are left out.
func (b *Batcher) run(items []*batchItem) {
	live := items[:0:0]
	for _, it := range items {
		if err := it.ctx.Err(); err != nil {
			it.result <- batchResult{err: err}
			continue
		}
		live = append(live, it)
	}
	if len(live) == 0 {
		return
	}
	inputs := make([]Input, len(live))
	for i, it := range live {
		inputs[i] = it.in
	}
	start := time.Now()
	preds, err := b.forward(inputs)
	d := time.Since(start)
	if b.opts.OnBatch != nil {
		b.opts.OnBatch(len(live), d, err)
	}
	b.mu.Lock()
	b.returning = min(b.returning+len(live), b.opts.MaxBatch)
	b.mu.Unlock()
	for i, it := range live {
		r := batchResult{err: err, timing: Timing{Queue: start.Sub(it.enqueued), Inference: d, BatchSize: len(live)}}
		if err == nil {
			r.pred = preds[i]
		}
		it.result <- r
	}
}

// forward runs the Predictor on one batch; a panic is returned as an error so that the worker lives on.
func (b *Batcher) forward(inputs []Input) (preds []Prediction, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("inference: panic in a batch of %d images: %v", len(inputs), r)
		}
	}()
	return b.p.PredictInputs(context.Background(), inputs)
}

// later returns the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
