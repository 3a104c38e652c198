package train

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

// Evaluation is what Evaluate computes: the mean cross-entropy loss and the top-1 and top-5 errors
// (in %).
type Evaluation struct {
	Loss, Top1Error, Top5Error float64
}

// Evaluate computes, in inference mode, the mean cross-entropy loss and the top-1 and top-5 errors
// (in %) of the model modelCfg with the variables of store on ds, in batches of batchSize images
// (in order, the last batch possibly smaller, with ds's evaluation pipeline): exact means over the
// images, as Run's per-epoch validation. Variables without a value are loaded by the store's loader
// (e.g. a checkpoint attached with LoadCheckpoint) or else initialized randomly. The set must have
// the model's channels and classes. It stops with ctx's error when ctx is cancelled.
func Evaluate(ctx context.Context, backend compute.Backend, store *model.Store, modelCfg models.Config,
	ds Dataset, batchSize int) (Evaluation, error) {
	if err := modelCfg.Validate(); err != nil {
		return Evaluation{}, fmt.Errorf("evaluate: model %s: %w", modelCfg.Name, err)
	}
	if batchSize < 1 {
		return Evaluation{}, fmt.Errorf("evaluate: batch size must be >= 1, got %d", batchSize)
	}
	if ds == nil {
		return Evaluation{}, errors.New("evaluate: no data set")
	}
	if err := ds.Validate(); err != nil {
		return Evaluation{}, fmt.Errorf("evaluate: %w", err)
	}
	if ds.Channels() != modelCfg.InChannels || ds.NumClasses() != modelCfg.Classes {
		return Evaluation{}, fmt.Errorf("evaluate: set %q (%d channels, %d classes) does not fit model %s (%d channels, %d classes)",
			ds.Name(), ds.Channels(), ds.NumClasses(), modelCfg.Name, modelCfg.InChannels, modelCfg.Classes)
	}
	ev, err := newEvaluator(backend, store, modelCfg)
	if err != nil {
		return Evaluation{}, fmt.Errorf("evaluate: %w", err)
	}
	defer ev.finalize()
	e, err := ev.evaluate(ctx, ds.NewLoader(LoaderOptions{BatchSize: batchSize}), ds.Name())
	if err != nil {
		return Evaluation{}, fmt.Errorf("evaluate: %w", err)
	}
	return e, nil
}

// EvaluateCheckpoint is Evaluate with the variables of the latest checkpoint in dir (for a run
// directory, filepath.Join(runDir, BestDir) or filepath.Join(runDir, LatestDir)), loaded into a
// fresh store.
func EvaluateCheckpoint(ctx context.Context, backend compute.Backend, dir string, modelCfg models.Config,
	ds Dataset, batchSize int) (Evaluation, error) {
	store := model.NewStore()
	if _, err := LoadCheckpoint(store, dir); err != nil {
		return Evaluation{}, err
	}
	return Evaluate(ctx, backend, store, modelCfg, ds, batchSize)
}

// ctxDataset wraps a Dataset so that iteration stops with ctx's error once ctx is cancelled.
type ctxDataset struct {
	gtrain.Dataset
	ctx context.Context
}

// Iter implements gtrain.Dataset.
func (d ctxDataset) Iter() iter.Seq2[gtrain.Batch, error] {
	return func(yield func(gtrain.Batch, error) bool) {
		for batch, err := range d.Dataset.Iter() {
			if err == nil {
				if cerr := d.ctx.Err(); cerr != nil {
					_ = batch.Finalize()
					yield(gtrain.Batch{}, cerr)
					return
				}
			}
			if !yield(batch, err) {
				return
			}
		}
	}
}

// evaluator computes the summed loss, top-1 and top-5 errors of batches in inference mode.
type evaluator struct {
	exec *model.Exec
}

// newEvaluator returns an evaluator of modelCfg with the variables of store; its graph is compiled
// at the first batch.
func newEvaluator(backend compute.Backend, store *model.Store, modelCfg models.Config) (*evaluator, error) {
	var exec *model.Exec
	err := catch(func() error {
		var err error
		exec, err = model.NewExec(backend, store, func(scope *model.Scope, x, labels *Node) []*Node {
			g := x.Graph()
			scope.Store().SetTraining(g, false)
			// The graph is run again after each epoch's training steps.
			engine.VariablesAsParameters(scope.Store(), g)
			logits := modelCfg.Build(scope, x)
			return []*Node{
				ReduceAllSum(SoftmaxCrossEntropy(logits, labels, 0)),
				ReduceAllSum(TopKError(logits, labels, 1)),
				ReduceAllSum(TopKError(logits, labels, 5)),
			}
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &evaluator{exec: exec}, nil
}

// finalize frees the compiled graphs.
func (ev *evaluator) finalize() {
	if ev != nil && ev.exec != nil {
		ev.exec.Finalize()
	}
}

// evaluate runs one epoch of loader and returns the mean loss and the top-1 and top-5 errors (%).
func (ev *evaluator) evaluate(ctx context.Context, loader gtrain.Dataset, name string) (Evaluation, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	var sums [3]float64
	n := 0
	for batch, err := range (ctxDataset{Dataset: loader, ctx: ctx}).Iter() {
		if err != nil {
			return Evaluation{}, err
		}
		bs := batch.Labels[0].Shape().Dim(0)
		var outs []*tensors.Tensor
		err = catch(func() error {
			var err error
			outs, err = ev.exec.Call(batch.Inputs[0], batch.Labels[0])
			return err
		})
		_ = batch.Finalize()
		if err != nil {
			return Evaluation{}, fmt.Errorf("batch of images %d-%d: %w", n, n+bs, err)
		}
		for i := range sums {
			sums[i] += scalar(outs[i])
		}
		finalizeAll(outs)
		n += bs
	}
	if n == 0 {
		return Evaluation{}, fmt.Errorf("set %q is empty", name)
	}
	return Evaluation{Loss: sums[0] / float64(n), Top1Error: 100 * sums[1] / float64(n),
		Top5Error: 100 * sums[2] / float64(n)}, nil
}
