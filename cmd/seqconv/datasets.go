package main

import (
	"fmt"
	"io"
	"os"
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

// dataSpec is a parsed --data value (see train.ParseDataName).
type dataSpec = train.DataSpec

// parseDataName parses --data: mnist, cifar10, cifar100 or the path of an image folder; a bad value is a
// usage error.
func parseDataName(name string) (dataSpec, error) {
	spec, err := train.ParseDataName(name)
	if err != nil {
		return dataSpec{}, usagef("--data: %v", err)
	}
	return spec, nil
}

// parseRecordedData parses the data name recorded in the config.json of the run directory that flag gave; a
// bad one is a usage error that says where it comes from.
func parseRecordedData(flag, dir, name string) (dataSpec, error) {
	spec, err := train.ParseRecordedDataName(name)
	if err != nil {
		return dataSpec{}, usagef("%s %s: the data recorded in its %s: %v", flag, dir, train.ConfigFile, err)
	}
	return spec, nil
}

// checkFolderLayout checks that an image-folder dataset has train/ and val/ folders; a missing one is a usage
// error.
func checkFolderLayout(root string) error {
	if err := train.CheckFolderLayout(root); err != nil {
		return usagef("--data %s: %v", root, err)
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

// loadData loads the dataset of spec (from dataDir for CIFAR) as the pipeline p trains and evaluates it (see
// train.LoadData); a CIFAR set that cannot be read gets a hint about --data-dir.
func loadData(spec dataSpec, dataDir string, p pipeline, res, workers int, evalOnly bool,
	classes []string, badImages func(string, ...any)) (*train.LoadedData, error) {
	sets, err := train.LoadData(spec, train.DataOptions{Dir: dataDir, RandomResizedCrop: p.rrc, Augment: p.aug,
		Resolution: res, Workers: workers, EvalOnly: evalOnly, Classes: classes, SkipBadImage: badImages})
	if err != nil && (spec.Kind == kindCIFAR10 || spec.Kind == kindCIFAR100) {
		return nil, fmt.Errorf("%w (set --data-dir or $%s)", err, dataDirEnvVar)
	}
	return sets, err
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

// badImagesLog is how loadData reports skipped bad images: as warnings on w with --skip-bad-images, else nil
// (a bad image is then an error).
func badImagesLog(skip bool, w io.Writer) func(string, ...any) {
	if !skip {
		return nil
	}
	return func(format string, args ...any) { fmt.Fprintf(w, "seqconv: warning: "+format+"\n", args...) }
}
