package inference

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// How a batch of images is split into forward passes. Each batch size the model runs is a graph to
// compile, so only a few sizes are used: MaxBatch and the powers of two below it. Which of them is
// fastest per image depends on the engine, and not monotonically: ONNX Runtime runs some batch sizes of
// the CIFAR demo model at half the images/s of their neighbours. Warm times each size once the graphs
// are compiled, and plan then chooses, for n images of the prepared size, the forward passes of least
// total time, padding the last one with blank images when a larger batch is faster.

// batchSizes returns the batch sizes of at most maxBatch images that are compiled: the powers of two
// below maxBatch, and maxBatch.
func batchSizes(maxBatch int) []int {
	var sizes []int
	for b := 1; b < maxBatch; b *= 2 {
		sizes = append(sizes, b)
	}
	return append(sizes, maxBatch)
}

// batchChunks splits n images into forward passes of the sizes of batchSizes, largest first, without
// padding: the plan when the sizes have not been timed.
func batchChunks(n, maxBatch int) []int {
	var chunks []int
	for n > 0 {
		c := maxBatch
		if n < maxBatch {
			c = 1
			for c*2 <= n {
				c *= 2
			}
		}
		chunks = append(chunks, c)
		n -= c
	}
	return chunks
}

// planChunks returns the forward passes (batch sizes, the last one possibly padded) of least total time
// for n images, given the time of each batch size.
func planChunks(n int, costs map[int]time.Duration) []int {
	sizes := slices.Sorted(maps.Keys(costs))
	best := make([]time.Duration, n+1) // best[k]: the least time for k images
	choice := make([]int, n+1)
	for k := 1; k <= n; k++ {
		best[k] = -1
		for _, s := range sizes {
			t := costs[s] + best[max(0, k-s)]
			if best[k] < 0 || t < best[k] || (t == best[k] && s > choice[k]) {
				best[k], choice[k] = t, s
			}
		}
	}
	var chunks []int
	for k := n; k > 0; k -= choice[k] {
		chunks = append(chunks, choice[k])
	}
	slices.SortFunc(chunks, func(a, b int) int { return b - a }) // The padded one last.
	return chunks
}

// plan returns the forward passes of n images of h x w pixels: the fastest ones once Warm has timed the
// batch sizes of the prepared images' size, batchChunks otherwise.
func (p *Predictor) plan(n, h, w int) []int {
	p.mu.Lock()
	costs := p.costs
	p.mu.Unlock()
	if costs == nil || h != p.recipe.Size || w != p.recipe.Size {
		return batchChunks(n, p.maxBatch)
	}
	return planChunks(n, costs)
}

// warmRuns is how many times Warm times each batch size (the fastest counts).
const warmRuns = 3

// Warm compiles the graphs of every batch size a Batcher of at most maxBatch images runs at the prepared
// images' size (see batchSizes), so that the first requests do not wait for compilation, and times them,
// so that the batches are split into the fastest forward passes (see plan).
func (p *Predictor) Warm(ctx context.Context, maxBatch int) error {
	maxBatch = min(max(maxBatch, 1), p.maxBatch)
	s, c := p.recipe.Size, p.recipe.Channels
	costs := map[int]time.Duration{}
	for _, b := range batchSizes(maxBatch) {
		x := make([]float32, b*s*s*c)
		for range warmRuns + 1 { // The first run compiles.
			if err := ctx.Err(); err != nil {
				return err
			}
			start := time.Now()
			if _, err := p.run(x, b, s, s); err != nil {
				return fmt.Errorf("inference: warming up batches of %d: %w", b, err)
			}
			if d := time.Since(start); costs[b] == 0 || d < costs[b] {
				costs[b] = d
			}
		}
	}
	p.mu.Lock()
	p.costs = costs
	p.mu.Unlock()
	return nil
}

// BatchTimes returns the time of a forward pass of each batch size as Warm measured it (nil before).
func (p *Predictor) BatchTimes() map[int]time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.costs)
}
