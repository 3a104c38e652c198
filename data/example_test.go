package data_test

import (
	"fmt"

	"github.com/seqconv/seqconv/data"
)

// Load the embedded MNIST and iterate over the first batches of a shuffled,
// augmented epoch, as GoMLX's train.Loop does.
func ExampleNewLoader() {
	trainSet, testSet, err := data.LoadMNIST()
	if err != nil {
		panic(err)
	}
	fmt.Printf("train: %d images %dx%dx%d, test: %d images\n",
		trainSet.Len(), trainSet.H, trainSet.W, trainSet.C, testSet.Len())

	loader := data.NewLoader(trainSet, data.LoaderOptions{
		BatchSize: 64,
		Shuffle:   true,
		Seed:      1,
		Augment:   data.Compose(data.RandomCrop{Pad: 2}),
	})
	fmt.Printf("%s: %d batches per epoch\n", loader.Name(), loader.NumBatches())
	n := 0
	for batch, err := range loader.Iter() {
		if err != nil {
			panic(err)
		}
		fmt.Println("inputs", batch.Inputs[0].Shape(), "labels", batch.Labels[0].Shape())
		_ = batch.Finalize() // train.Loop takes ownership instead.
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// train: 60000 images 28x28x1, test: 10000 images
	// mnist-train: 938 batches per epoch
	// inputs (Float32)[64, 28, 28, 1] labels (Int32)[64]
	// inputs (Float32)[64, 28, 28, 1] labels (Int32)[64]
}
