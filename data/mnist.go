package data

import (
	"embed"
	"fmt"
	"io"
	"path"
)

// MNIST normalisation statistics (of the training set, on the 0..1 scale),
// as commonly used, e.g. by the PyTorch examples.
const (
	MNISTMean float32 = 0.1307
	MNISTStd  float32 = 0.3081
)

//go:embed mnist/*.gz
var mnistFS embed.FS

// LoadMNIST decodes the MNIST database embedded in the binary (see
// data/mnist/README.md): 60000 training and 10000 test images of 28x28x1
// pixels, labelled with digits 0..9, with Mean {MNISTMean} and Std
// {MNISTStd}. The sets are named "mnist-train" and "mnist-test".
//
// Each call decodes the files again and returns new sets.
func LoadMNIST() (trainSet, testSet *ImageSet, err error) {
	trainSet, err = loadEmbeddedIDX("mnist-train", "mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz")
	if err != nil {
		return nil, nil, fmt.Errorf("loading mnist: %w", err)
	}
	testSet, err = loadEmbeddedIDX("mnist-test", "mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz")
	if err != nil {
		return nil, nil, fmt.Errorf("loading mnist: %w", err)
	}
	return trainSet, testSet, nil
}

func loadEmbeddedIDX(setName, imagesFile, labelsFile string) (*ImageSet, error) {
	imgs, err := mnistFS.Open(imagesFile)
	if err != nil {
		return nil, fmt.Errorf("opening embedded %s: %w", imagesFile, err)
	}
	defer imgs.Close()
	lbls, err := mnistFS.Open(labelsFile)
	if err != nil {
		return nil, fmt.Errorf("opening embedded %s: %w", labelsFile, err)
	}
	defer lbls.Close()
	set, err := imageSetFromIDX(setName, path.Base(imagesFile), imgs, path.Base(labelsFile), lbls, 10)
	if err != nil {
		return nil, err
	}
	set.Mean = []float32{MNISTMean}
	set.Std = []float32{MNISTStd}
	return set, nil
}

// imageSetFromIDX builds a single-channel ImageSet from an IDX3 image stream
// and an IDX1 label stream, checking that their counts match and that every
// label is in [0, numClasses).
func imageSetFromIDX(setName, imagesName string, images io.Reader, labelsName string, labels io.Reader,
	numClasses int) (*ImageSet, error) {
	n, rows, cols, pixels, err := ReadIDXImages(imagesName, images)
	if err != nil {
		return nil, err
	}
	lbls, err := ReadIDXLabels(labelsName, labels)
	if err != nil {
		return nil, err
	}
	if len(lbls) != n {
		return nil, fmt.Errorf("%s: count mismatch: %s has %d images but %s has %d labels",
			setName, imagesName, n, labelsName, len(lbls))
	}
	set := &ImageSet{
		Name:       setName,
		N:          n,
		H:          rows,
		W:          cols,
		C:          1,
		NumClasses: numClasses,
		Pixels:     pixels,
		Labels:     make([]int32, n),
	}
	for i, l := range lbls {
		if int(l) >= numClasses {
			return nil, fmt.Errorf("%s: label #%d is %d, expected in [0, %d)", labelsName, i, l, numClasses)
		}
		set.Labels[i] = int32(l)
	}
	return set, nil
}
