package train_test

import (
	"fmt"

	_ "github.com/gomlx/compute/gobackend"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/train"
)

// Example_schedule shows a per-epoch multi-step schedule, and a cosine schedule with a
// per-step linear warmup driven by fractional epochs.
func Example_schedule() {
	multi, err := train.ParseSchedule("multistep", 0.1, 300, nil, 0.1, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(multi)
	for _, epoch := range []float64{0, 149, 150, 224, 225} {
		fmt.Printf("epoch %3.0f: lr=%.4g\n", epoch, multi.LR(epoch))
	}

	cosine, err := train.ParseSchedule("cosine", 0.1, 100, nil, 0, 2)
	if err != nil {
		panic(err)
	}
	fmt.Println(cosine)
	const stepsPerEpoch = 4
	for _, step := range []int{0, 1, 4, 8, 200, 400} {
		epoch := float64(step) / stepsPerEpoch
		fmt.Printf("step %3d (epoch %6.2f): lr=%.4g\n", step, epoch, cosine.LR(epoch))
	}

	// Output:
	// multistep(base=0.1, milestones=[150 225], gamma=0.1)
	// epoch   0: lr=0.1
	// epoch 149: lr=0.1
	// epoch 150: lr=0.01
	// epoch 224: lr=0.01
	// epoch 225: lr=0.001
	// warmup(epochs=2, cosine(base=0.1, epochs=100, min=0))
	// step   0 (epoch   0.00): lr=5e-05
	// step   1 (epoch   0.25): lr=0.0125
	// step   4 (epoch   1.00): lr=0.04999
	// step   8 (epoch   2.00): lr=0.0999
	// step 200 (epoch  50.00): lr=0.05
	// step 400 (epoch 100.00): lr=0
}

// ExampleSGD builds a PyTorch-style SGD optimizer (Nesterov momentum, weight decay except on
// batch-norm parameters and biases) and runs it for a few steps minimizing (w-3)^2, changing the
// learning rate between steps without rebuilding the graph.
func ExampleSGD() {
	opt := train.SGD().LearningRate(0.1).Momentum(0.9).Nesterov(true).
		WeightDecay(5e-4).WeightDecayFilter(train.NoDecayForBNAndBias).Done()
	fmt.Println(opt)

	// A scalar variable (rank 0), so NoDecayForBNAndBias excludes it from weight decay.
	store := model.NewStore()
	w := store.RootScope().VariableWithValue("w", float32(0))
	exec := model.MustNewExec(engine.MustNewForTest(), store, func(scope *model.Scope, g *Graph) *Node {
		scope.Store().SetTraining(g, true) // A training step, as GoMLX's Trainer builds it.
		loss := Square(AddScalar(w.NodeValue(g), -3))
		opt.UpdateGraph(scope, g, loss)
		return loss
	})
	defer exec.Finalize()
	for step := range 4 {
		if step == 2 {
			if err := train.SetLearningRate(store, 0.05); err != nil {
				panic(err)
			}
		}
		loss := exec.MustCall()[0]
		lr, err := train.LearningRate(store)
		if err != nil {
			panic(err)
		}
		// The learning-rate variable has the loss dtype (float32) here.
		fmt.Printf("step %d: lr=%.4g loss=%.4f w=%.4f\n", step, lr, loss.Value(), w.MustValue().Value())
	}

	// Output:
	// SGD(lr=0.1, momentum=0.9, nesterov=true, weight_decay=0.0005, decay_filter=custom)
	// step 0: lr=0.1 loss=9.0000 w=1.1400
	// step 1: lr=0.1 loss=3.4596 w=2.3328
	// step 2: lr=0.05 loss=0.4452 w=2.8289
	// step 3: lr=0.05 loss=0.0293 w=3.2479
}
