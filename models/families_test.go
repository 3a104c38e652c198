package models_test

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// TestFamiliesTrainStep builds every SeqConv family at small widths, checks the logits' shape and runs a few
// training steps on the Go backend: the loss must be finite and go down on a fixed batch.
func TestFamiliesTrainStep(t *testing.T) {
	backend := engine.MustNewForTest()
	tests := []struct {
		name string
		cfg  models.Config
	}{
		{"cifar-b", models.Config{Family: models.FamilyCIFAR, Variant: models.VariantB, Classes: 5, Resolution: 16,
			BlocksPerStage: []int{1, 1, 1}, PyramidFactor: []float64{1, 2, 3}, Widening: 1, Granularity: models.IntList{8},
			DropRate: 0.1}},
		{"cifar-plain-window", models.Config{Family: models.FamilyCIFAR, Variant: models.VariantPlain, Classes: 5,
			Resolution: 16, BlocksPerStage: []int{1, 1, 0}, PyramidFactor: []float64{1, 2, 4}, Widening: 1,
			Granularity: models.IntList{8}, Window: 1}},
		{"imagenet", models.Config{Family: models.FamilyImageNet, Classes: 7, Resolution: 32,
			BlocksPerStage: []int{1, 1, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}}},
		{"resnext-released", models.Config{Family: models.FamilyResNeXt, Classes: 7, Resolution: 32,
			BlocksPerStage: []int{1, 0, 1, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16},
			Subgroups: models.IntList{2, 2, 4, 4}, Downsample: models.DownsampleReleased}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			store := model.NewStore()
			if err := store.SetRNGStateFromSeed(1); err != nil {
				t.Fatal(err)
			}
			trainer := gtrain.NewTrainer(backend, store, func(scope *model.Scope, x *Node) *Node {
				logits := cfg.Build(scope, x)
				if got := logits.Shape(); got.Dim(0) != 4 || got.Dim(1) != cfg.Classes {
					t.Errorf("logits shape %s, want [4, %d]", got, cfg.Classes)
				}
				return logits
			}, train.CrossEntropyLoss(0), train.SGD().LearningRate(0.05).Momentum(0.9).Done(), nil, nil)
			x := tensors.FromShape(shapes.Make(dtypes.Float32, 4, 32, 32, 3))
			if cfg.Family == models.FamilyCIFAR {
				x = tensors.FromShape(shapes.Make(dtypes.Float32, 4, 16, 16, 3))
			}
			tensors.MustMutableFlatData(x, func(flat []float32) {
				for i := range flat {
					flat[i] = float32(math.Sin(float64(i) * 0.37))
				}
			})
			var losses []float64
			for range 8 {
				xc, err := x.LocalClone()
				if err != nil {
					t.Fatal(err)
				}
				batch := gtrain.Batch{Inputs: []*tensors.Tensor{xc},
					Labels: []*tensors.Tensor{tensors.FromValue([]int32{0, 1, 2, 3})}}
				metrics, err := trainer.TrainStep(batch)
				if err != nil {
					t.Fatal(err)
				}
				losses = append(losses, shapes.ConvertTo[float64](metrics[0].Value()))
			}
			t.Logf("losses %v", losses)
			for _, l := range losses {
				if math.IsNaN(l) || math.IsInf(l, 0) {
					t.Fatalf("non-finite loss: %v", losses)
				}
			}
			if losses[len(losses)-1] >= losses[0] {
				t.Errorf("loss did not decrease: %v", losses)
			}
		})
	}
}
