package data_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/seqconv/seqconv/data"
)

// Write a tiny CIFAR-10 directory in the official binary format (one record
// per training batch, two test records), load it and batch it with the
// authors' augmentation.
func ExampleLoadCIFAR10() {
	dir, err := os.MkdirTemp("", "cifar10-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// A record: the label byte, then the 32x32 red, green and blue planes
	// (here each plane is constant).
	record := func(label, r, g, b byte) []byte {
		rec := []byte{label}
		for _, v := range []byte{r, g, b} {
			rec = append(rec, bytes.Repeat([]byte{v}, 32*32)...)
		}
		return rec
	}
	files := map[string][]byte{
		"test_batch.bin":   append(record(3, 255, 128, 0), record(9, 1, 2, 3)...),
		"batches.meta.txt": []byte("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n"),
	}
	for i := 1; i <= 5; i++ {
		files[fmt.Sprintf("data_batch_%d.bin", i)] = record(byte(i), 10*byte(i), 20, 30)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			panic(err)
		}
	}

	trainSet, testSet, err := data.LoadCIFAR10(dir)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s: %d images of %dx%dx%d, labels %v\n", trainSet.Name, trainSet.N, trainSet.H, trainSet.W, trainSet.C, trainSet.Labels)
	fmt.Printf("%s: %d images; the first is a %s, its pixel (0, 0) is RGB %v\n",
		testSet.Name, testSet.N, testSet.ClassNames[testSet.Labels[0]], testSet.Image(0)[:3])

	loader := data.NewLoader(trainSet, data.LoaderOptions{
		BatchSize: 4,
		Shuffle:   true,
		Augment:   data.Compose(data.RandomCrop{Pad: 4}, data.HFlip{}),
	})
	for batch, err := range loader.Iter() {
		if err != nil {
			panic(err)
		}
		fmt.Println("batch", batch.Inputs[0].Shape())
		_ = batch.Finalize()
	}
	// Output:
	// cifar10-train: 5 images of 32x32x3, labels [1 2 3 4 5]
	// cifar10-test: 2 images; the first is a cat, its pixel (0, 0) is RGB [255 128 0]
	// batch (Float32)[4, 32, 32, 3]
	// batch (Float32)[1, 32, 32, 3]
}
