package experiment_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/experiment"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// A tiny windowed-vs-dense run: seqresnet-mnist with granularity 8, one epoch on the first 128 MNIST
// training images, tested on 100. (It trains two models, so it is compiled but not run by go test.)
func ExampleRunWindowedVsDense() {
	backend := engine.MustNew()
	defer backend.Finalize()
	model, err := models.Get("seqresnet-mnist")
	if err != nil {
		log.Fatal(err)
	}
	out, err := os.MkdirTemp("", "windowed-vs-dense-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	recipe := train.DefaultRecipe()                     // "seqconv train"'s settings: Nesterov SGD, lr 0.1 cosine, batch 128
	recipe.Augmentation = data.DefaultMNISTAugmentation // random crops with 2 pixels of padding
	s, err := experiment.RunWindowedVsDense(context.Background(), backend, experiment.Options{
		Model: model, Name: "seqresnet-mnist", Granularity: 8,
		Recipe: recipe,
		Epochs: 1, MaxTrainImages: 128, MaxEvalImages: 100, Seed: 1, Out: out,
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range s.Variants {
		fmt.Printf("%s: %.3f mean utilization, %.2f%% test accuracy\n", v.Name, v.MeanUtilization, v.TestAccuracy)
	}
	fmt.Println(s.Conclusion)
}
