package inference

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/seqconv/seqconv/internal/testrun"
)

// colorInputs prepares n colour images (labels i % 3).
func colorInputs(t *testing.T, p *Predictor, n int, seed uint64) []Input {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	inputs := make([]Input, n)
	for i := range inputs {
		var err error
		if inputs[i], err = p.Prepare(testrun.Color(rng, i%3, 20, 20)); err != nil {
			t.Fatal(err)
		}
	}
	return inputs
}

// TestBatcherBatches sends one-image requests from many goroutines: they are answered right, in
// batches of more than one image and at most MaxBatch.
func TestBatcherBatches(t *testing.T) {
	p, _ := loadColors(t, Options{})
	var mu sync.Mutex
	var sizes []int
	b := NewBatcher(p, BatcherOptions{MaxBatch: 4, MaxDelay: 200 * time.Millisecond, OnBatch: func(n int, _ time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, n)
		if err != nil {
			t.Error(err)
		}
	}})
	defer b.Close()
	const n = 12
	inputs := colorInputs(t, p, n, 1)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			preds, timings, err := b.Predict(context.Background(), inputs[i:i+1])
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			if got := preds[0].Top[0].Index; got != i%3 {
				t.Errorf("request %d: class %d, want %d", i, got, i%3)
			}
			if bs := timings[0].BatchSize; bs < 1 || bs > 4 || timings[0].Inference <= 0 {
				t.Errorf("request %d: timing %+v", i, timings[0])
			}
		})
	}
	wg.Wait()
	total, most := 0, 0
	for _, s := range sizes {
		total += s
		most = max(most, s)
	}
	if total != n || most < 2 || most > 4 || len(sizes) > n/2 {
		t.Errorf("batch sizes %v: want %d images in batches of 2 to 4", sizes, n)
	}
}

// TestBatcherLimits fills the queue while a batch runs: the next request gets ErrQueueFull at once, a
// request whose context ends is answered with its error, and after Close the queued requests are still
// answered and new ones get ErrBatcherClosed.
func TestBatcherLimits(t *testing.T) {
	p, _ := loadColors(t, Options{})
	hold := make(chan struct{})
	started := make(chan struct{}, 10)
	b := NewBatcher(p, BatcherOptions{MaxBatch: 1, QueueSize: 2, MaxDelay: time.Millisecond,
		OnBatch: func(int, time.Duration, error) { started <- struct{}{}; <-hold }})
	inputs := colorInputs(t, p, 4, 2)
	errs := make(chan error, 3)
	go func() { _, _, err := b.Predict(context.Background(), inputs[0:1]); errs <- err }()
	<-started // The first batch has run; its worker is held.
	go func() { _, _, err := b.Predict(context.Background(), inputs[1:2]); errs <- err }()
	ctx, cancel := context.WithCancel(context.Background())
	canceled := make(chan error, 1)
	go func() { _, _, err := b.Predict(ctx, inputs[2:3]); canceled <- err }()
	for deadline := time.Now().Add(10 * time.Second); b.QueueLen() < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("queue length %d, want 2", b.QueueLen())
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, err := b.Predict(context.Background(), inputs[3:4]); !errors.Is(err, ErrQueueFull) {
		t.Errorf("full queue: error %v, want ErrQueueFull", err)
	}
	cancel()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request: error %v", err)
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, _, err := b.Predict(context.Background(), inputs[3:4]); errors.Is(err, ErrBatcherClosed) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Predict after Close: no ErrBatcherClosed")
		}
	}
	close(hold) // Let the worker go: the queued requests finish, then Close returns.
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("queued request: %v", err)
		}
	}
	<-closed
}

// TestBatcherWorkers runs two workers: two batches run at the same time, and every request is
// answered right.
func TestBatcherWorkers(t *testing.T) {
	p, _ := loadColors(t, Options{})
	var mu sync.Mutex
	running, most := 0, 0
	release := make(chan struct{})
	b := NewBatcher(p, BatcherOptions{MaxBatch: 2, MaxDelay: time.Millisecond, Workers: 2,
		OnBatch: func(int, time.Duration, error) {
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			select { // Hold each batch until another one is running, or a while.
			case <-release:
			case <-time.After(2 * time.Second):
			}
			mu.Lock()
			running--
			mu.Unlock()
		}})
	inputs := colorInputs(t, p, 8, 3)
	var wg sync.WaitGroup
	for i := range inputs {
		wg.Go(func() {
			preds, _, err := b.Predict(context.Background(), inputs[i:i+1])
			if err != nil || preds[0].Top[0].Index != i%3 {
				t.Errorf("request %d: %v, %v", i, preds, err)
			}
		})
	}
	go func() {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			mu.Lock()
			two := running == 2
			mu.Unlock()
			if two {
				close(release)
				return
			}
		}
	}()
	wg.Wait()
	b.Close()
	if most != 2 {
		t.Errorf("at most %d batches ran at the same time, want 2", most)
	}
}

// TestBatcherAnnounced checks BatcherOptions.Announced: a lone request runs at once, and a batch waits
// for an announced request (not for MaxDelay when it is queued).
func TestBatcherAnnounced(t *testing.T) {
	p, _ := loadColors(t, Options{})
	var mu sync.Mutex
	var sizes []int
	b := NewBatcher(p, BatcherOptions{MaxDelay: time.Minute, Announced: true, OnBatch: func(n int, _ time.Duration, _ error) {
		mu.Lock()
		sizes = append(sizes, n)
		mu.Unlock()
	}})
	defer b.Close()
	inputs := colorInputs(t, p, 2, 4)
	start := time.Now()
	if _, _, err := b.Predict(context.Background(), inputs[:1]); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("a lone request took %s: it waited for company", d)
	}
	arrival := b.Announce()
	errs := make(chan error, 1)
	go func() { _, _, err := b.Predict(context.Background(), inputs[:1]); errs <- err }()
	for b.QueueLen() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)                                                // The batch waits for the announced request...
	if _, _, err := arrival.Predict(context.Background(), inputs[1:2]); err != nil { // ...which joins it.
		t.Fatal(err)
	}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[1] != 2 {
		t.Errorf("batch sizes %v, want [1 2]", sizes)
	}
}
