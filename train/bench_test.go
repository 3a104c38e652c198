package train

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/seqconv/seqconv/models"
)

// BenchmarkTrainStep times one training step (forward, backward, Nesterov SGD update, BN statistics,
// dropout) of the authors' CIFAR demo model through GoMLX's Trainer, as `seqconv train` runs it, at batch 16
// and 64 on the configured backend (the Go backend by default). The first step (graph compilation) is not
// timed. Besides ns/op it reports the median step time and images/s:
//
//	GOEXPERIMENT=simd go test ./train -run XXX -bench TrainStep -benchtime 6x
func BenchmarkTrainStep(b *testing.B) {
	for _, name := range []string{"seqresnet-cifar-demo"} {
		for _, batch := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/batch=%d", name, batch), func(b *testing.B) {
				benchmarkTrainStep(b, name, batch)
			})
		}
	}
}

func benchmarkTrainStep(b *testing.B, name string, batch int) {
	backend, err := compute.New()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := models.Get(name)
	if err != nil {
		b.Fatal(err)
	}
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(1); err != nil {
		b.Fatal(err)
	}
	opt := SGD().LearningRate(0.1).Momentum(0.9).Nesterov(true).WeightDecay(1e-4).Done()
	trainer := gtrain.NewTrainer(backend, store, func(scope *model.Scope, x *Node) *Node { return cfg.Build(scope, x) },
		CrossEntropyLoss(0), opt, nil, nil)
	res := cfg.Resolution
	makeBatch := func(step int) gtrain.Batch {
		x := tensors.FromShape(shapes.Make(dtypes.Float32, batch, res, res, cfg.InChannels))
		tensors.MustMutableFlatData(x, func(flat []float32) {
			for i := range flat {
				flat[i] = float32((i*7+step*13)%255)/127.5 - 1
			}
		})
		labels := make([]int32, batch)
		for i := range labels {
			labels[i] = int32((i + step) % cfg.Classes)
		}
		return gtrain.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{tensors.FromValue(labels)}}
	}
	step := func(i int) {
		metrics, err := trainer.TrainStep(makeBatch(i))
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range metrics {
			m.MustFinalizeAll()
		}
	}
	start := time.Now()
	step(0) // compiles the graph
	b.ReportMetric(time.Since(start).Seconds(), "s-first-step")
	durations := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		step(i + 1)
		durations = append(durations, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durations)
	median := durations[len(durations)/2].Seconds()
	b.ReportMetric(median, "s/step-median")
	b.ReportMetric(float64(batch)/median, "images/s")
}
