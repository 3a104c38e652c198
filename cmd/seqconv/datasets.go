package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/train"
)

// Dataset kinds of --data.
const (
	kindMNIST    = data.KindMNIST
	kindCIFAR10  = data.KindCIFAR10
	kindCIFAR100 = data.KindCIFAR100
	kindFolder   = data.KindFolder
)

// MNIST's image channels and classes, to check a model before loading the data.
const (
	mnistChannels = 1
	mnistClasses  = 10
)

// dataDirEnvVar overrides the default --data-dir.
const dataDirEnvVar = "SEQCONV_DATA"

// defaultDataDirName is the default --data-dir without $SEQCONV_DATA.
const defaultDataDirName = "data"

// defaultDataDir returns $SEQCONV_DATA, or "data".
func defaultDataDir() string {
	if d := os.Getenv(dataDirEnvVar); d != "" {
		return d
	}
	return defaultDataDirName
}

// dataSpec is a parsed --data value.
type dataSpec struct {
	kind string
	// name is the canonical --data value recorded in config.json: the kind, or the absolute path
	// of an image folder.
	name string
	// channels and classes are known before loading, but for the classes of a folder (0).
	channels, classes int
}

// parseDataName parses --data: mnist, cifar10, cifar100 or the path of an image folder.
func parseDataName(name string) (dataSpec, error) {
	switch strings.ToLower(name) {
	case "mnist":
		return dataSpec{kind: kindMNIST, name: kindMNIST, channels: mnistChannels, classes: mnistClasses}, nil
	case "cifar10", "cifar-10":
		return dataSpec{kind: kindCIFAR10, name: kindCIFAR10, channels: 3, classes: 10}, nil
	case "cifar100", "cifar-100":
		return dataSpec{kind: kindCIFAR100, name: kindCIFAR100, channels: 3, classes: 100}, nil
	}
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		abs, err := filepath.Abs(name)
		if err != nil {
			return dataSpec{}, usagef("--data %s: %v", name, err)
		}
		return dataSpec{kind: kindFolder, name: abs, channels: 3}, nil
	}
	return dataSpec{}, usagef("--data: unknown dataset %q: expected mnist, cifar10, cifar100 or the path of an "+
		"image folder (with train/ and val/ holding one folder per class)", name)
}

// checkFolderLayout checks that an image-folder dataset has train/ and val/ folders.
func checkFolderLayout(root string) error {
	for _, sub := range []string{"train", "val"} {
		st, err := os.Stat(filepath.Join(root, sub))
		if err != nil || !st.IsDir() {
			return usagef("--data %s: no %s/ folder: an image-folder dataset has train/ and val/, each with one folder "+
				"per class", root, sub)
		}
	}
	return nil
}

// pipeline is a parsed --augment: the training transform and augmentation.
type pipeline struct {
	// rrc selects data.RandomResizedCrop at the model's resolution as the training transform
	// (the data is then served by data.ImageLoader, and evaluated resized and centre-cropped).
	rrc bool
	// aug augments the (transformed) training images; nil for none.
	aug data.Augmenter
	// desc is the canonical spec, recorded in config.json.
	desc string
}

// parseAugment parses --augment for a dataset kind (see data.ParseAugmentation); a bad spec is a usage error.
func parseAugment(spec, kind string) (pipeline, error) {
	a, err := data.ParseAugmentation(spec, kind)
	if err != nil {
		return pipeline{}, usagef("--augment: %v", err)
	}
	return pipeline{rrc: a.RandomResizedCrop, desc: a.Spec,
		aug: train.NameAugmenter(strings.TrimPrefix(a.Spec, "rrc+"), a.Augmenter)}, nil
}

// loadedData are the data sets of a run.
type loadedData struct {
	train, eval train.Dataset // train is nil when only the evaluation set was loaded.
	// evalSplit names the evaluation split ("test" or "val").
	evalSplit string
}

// loadData loads the dataset of spec (from dataDir for CIFAR) as train.Datasets: the training and
// the evaluation sets, or with evalOnly the evaluation set only. Images are served at the model's
// resolution res by the transforms of image folders (and with p.rrc of in-memory sets). classes,
// if not nil, are the class folders an image folder must have (a run's classes.json). With badImages
// not nil, the bad images of an image folder (empty, undecodable, too large) are skipped, with a warning
// there; otherwise a bad image is an error naming the file.
func loadData(spec dataSpec, dataDir string, p pipeline, res, workers int, evalOnly bool,
	classes []string, badImages io.Writer) (*loadedData, error) {
	switch spec.kind {
	case kindMNIST, kindCIFAR10, kindCIFAR100:
		var trainSet, testSet *data.ImageSet
		var err error
		switch spec.kind {
		case kindMNIST:
			trainSet, testSet, err = data.LoadMNIST()
		case kindCIFAR10:
			trainSet, testSet, err = data.LoadCIFAR10(dataDir)
		default:
			trainSet, testSet, err = data.LoadCIFAR100(dataDir)
		}
		if err != nil {
			if spec.kind != kindMNIST {
				return nil, fmt.Errorf("%w (set --data-dir or $%s)", err, dataDirEnvVar)
			}
			return nil, err
		}
		out := &loadedData{evalSplit: "test"}
		if !p.rrc {
			out.eval = train.ImageSetData(testSet, nil)
			if !evalOnly {
				out.train = train.ImageSetData(trainSet, p.aug)
			}
			return out, nil
		}
		opts := func(set *data.ImageSet) train.SourceOptions {
			return train.SourceOptions{Name: set.Name, NumClasses: set.NumClasses, ClassNames: set.ClassNames,
				TrainTransform: data.RandomResizedCrop{Size: res}, EvalTransform: data.ResizeCenterCrop{Size: res},
				Augment: p.aug}
		}
		out.eval = train.SourceData(testSet, opts(testSet))
		if !evalOnly {
			out.train = train.SourceData(trainSet, opts(trainSet))
		}
		return out, nil
	case kindFolder:
		var trainTransform data.Transform = data.ResizeCenterCrop{Size: res}
		if p.rrc {
			trainTransform = data.RandomResizedCrop{Size: res}
		}
		wrap := func(s *data.FolderSet) train.Dataset {
			return train.SourceData(s, train.SourceOptions{Name: s.DatasetName(), NumClasses: s.NumClasses(),
				ClassNames: s.ClassNames(), TrainTransform: trainTransform, EvalTransform: data.ResizeCenterCrop{Size: res},
				Augment: p.aug})
		}
		name := filepath.Base(spec.name)
		skip := data.FolderOptions{}
		if badImages != nil {
			skip.SkipBadImages = true
			skip.Logf = func(format string, args ...any) {
				fmt.Fprintf(badImages, "seqconv: warning: "+format+"\n", args...)
			}
		}
		if !evalOnly {
			trainSet, valSet, err := data.LoadImageNet(spec.name, data.FolderOptions{Name: name, Workers: workers,
				SkipBadImages: skip.SkipBadImages, Logf: skip.Logf})
			if err != nil {
				return nil, err
			}
			return &loadedData{train: wrap(trainSet), eval: wrap(valSet), evalSplit: "val"}, nil
		}
		root, split := filepath.Join(spec.name, "val"), "val"
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			root, split = spec.name, filepath.Base(spec.name)
		}
		valSet, err := data.LoadImageFolder(root, data.FolderOptions{Name: name + "-" + split, Classes: classes,
			Workers: workers, SkipBadImages: skip.SkipBadImages, Logf: skip.Logf})
		if err != nil {
			return nil, err
		}
		return &loadedData{eval: wrap(valSet), evalSplit: split}, nil
	}
	return nil, fmt.Errorf("unknown dataset kind %q", spec.kind)
}

// readClasses reads a run directory's classes.json (nil if it has none).
func readClasses(runDir string) ([]string, error) { return train.ReadClasses(runDir) }

// checkModelFits checks the model's channels and classes against a data set.
func checkModelFits(modelName string, modelChannels, modelClasses int, ds train.Dataset, dataName string) error {
	if ds.Channels() != modelChannels {
		return usagef("--model %s takes %d-channel images, but %s has %d-channel images", modelName,
			modelChannels, dataName, ds.Channels())
	}
	if ds.NumClasses() != modelClasses {
		return usagef("--model %s has %d classes, but %s has %d classes (set --classes %d)", modelName,
			modelClasses, dataName, ds.NumClasses(), ds.NumClasses())
	}
	return nil
}

// addSkipBadImagesFlag registers --skip-bad-images on fs.
func addSkipBadImagesFlag(fs *flagSet, skip *bool) {
	fs.BoolVar(skip, "skip-bad-images", false, "image folders: skip the images that cannot be decoded (empty, "+
		"corrupt or too large), with a warning for each, instead of stopping at the first")
}

// badImagesLog is where loadData logs skipped bad images: w with --skip-bad-images, else nil (a bad image is
// an error).
func badImagesLog(skip bool, w io.Writer) io.Writer {
	if !skip {
		return nil
	}
	return w
}
