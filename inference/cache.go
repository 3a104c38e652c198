package inference

import (
	"fmt"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/models"
)

// A model graph is compiled once per input shape: one executor (model.Exec) per image size, each
// holding the graphs of the batch sizes used with it (see batchChunks). The executors of the most
// recently used sizes are kept; the others are finalized when no call uses them any more.

// DefaultCachedSizes is how many image sizes keep their compiled graphs by default.
const DefaultCachedSizes = 8

// sizeKey identifies the executor of one image size.
type sizeKey struct{ h, w int }

// execEntry is the executor of one image size.
type execEntry struct {
	exec     *model.Exec
	users    int          // calls using exec; guarded by execCache.mu
	lastUse  uint64       // execCache.clock at the last acquire; guarded by execCache.mu
	evicted  bool         // finalize exec when users drops to 0; guarded by execCache.mu
	compiled map[int]bool // batch sizes compiled; guarded by execCache.mu
}

// execCache holds the executors of the most recently used image sizes.
type execCache struct {
	backend compute.Backend
	store   *model.Store
	cfg     models.Config
	dtype   dtypes.DType
	max     int

	mu      sync.Mutex
	entries map[sizeKey]*execEntry
	clock   uint64
	closed  bool

	compilations int // graphs compiled so far, for tests; guarded by mu

	// compileMu serializes graph building: the graphs of all sizes read the same store.
	compileMu sync.Mutex
}

func newExecCache(backend compute.Backend, store *model.Store, cfg models.Config, dtype dtypes.DType,
	maxSizes int) *execCache {
	if maxSizes < 1 {
		maxSizes = DefaultCachedSizes
	}
	return &execCache{backend: backend, store: store, cfg: cfg, dtype: dtype, max: maxSizes,
		entries: map[sizeKey]*execEntry{}}
}

// acquire returns the executor of h x w images, compiled for batches of n, creating and compiling it if
// needed. Release it with release.
func (c *execCache) acquire(n, h, w int) (*execEntry, error) {
	k := sizeKey{h, w}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.clock++
	e := c.entries[k]
	if e == nil {
		exec, err := c.newExec()
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		e = &execEntry{exec: exec, compiled: map[int]bool{}}
		c.entries[k] = e
	}
	e.users++
	e.lastUse = c.clock
	c.evictLocked()
	compiled := e.compiled[n]
	c.mu.Unlock()
	if compiled {
		return e, nil
	}

	c.compileMu.Lock()
	defer c.compileMu.Unlock()
	c.mu.Lock()
	compiled = e.compiled[n] // Compiled by a concurrent call meanwhile?
	c.mu.Unlock()
	if compiled {
		return e, nil
	}
	err := exceptions.TryCatch[error](func() {
		if _, err := e.exec.Compile(shapes.Make(c.dtype, n, h, w, c.cfg.InChannels)); err != nil {
			panic(err)
		}
	})
	if err != nil {
		c.release(e)
		return nil, fmt.Errorf("compiling model %s for %d images of %dx%d: %w", c.cfg.Name, n, h, w, err)
	}
	c.mu.Lock()
	e.compiled[n] = true
	c.compilations++
	c.mu.Unlock()
	return e, nil
}

// release ends a use of e started by acquire.
func (c *execCache) release(e *execEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e.users--
	if e.evicted && e.users == 0 {
		e.exec.Finalize()
	}
}

// evictLocked drops the least recently used executors beyond c.max; c.mu must be held.
func (c *execCache) evictLocked() {
	for len(c.entries) > c.max {
		var oldK sizeKey
		var old *execEntry
		for k, e := range c.entries {
			if old == nil || e.lastUse < old.lastUse {
				oldK, old = k, e
			}
		}
		delete(c.entries, oldK)
		old.evicted = true
		if old.users == 0 {
			old.exec.Finalize()
		}
	}
}

// newExec returns an executor of the model's inference graph (eval mode: batch-norm running statistics,
// no dropout). The graphs take the variables as constants: the weights are fixed, and the engines
// prepare constant weights at compilation.
func (c *execCache) newExec() (*model.Exec, error) {
	cfg := c.cfg
	var exec *model.Exec
	err := exceptions.TryCatch[error](func() {
		var err error
		exec, err = model.NewExec(c.backend, c.store, func(scope *model.Scope, x *Node) *Node {
			scope.Store().SetTraining(x.Graph(), false)
			return cfg.Build(scope, x)
		})
		if err != nil {
			panic(err)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Name, err)
	}
	return exec.SetMaxCache(maxBatchShapes), nil
}

// close finalizes the executors that no call uses; the others are finalized by their last release.
func (c *execCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for k, e := range c.entries {
		delete(c.entries, k)
		e.evicted = true
		if e.users == 0 {
			e.exec.Finalize()
		}
	}
}

// maxBatchShapes bounds the batch sizes compiled per image size: batchChunks uses at most the powers of
// two below MaxBatch, and MaxBatch.
const maxBatchShapes = 40
