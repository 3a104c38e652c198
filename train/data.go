package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqconv/seqconv/data"
)

// DataSpec is a parsed data set name (see ParseDataName).
type DataSpec struct {
	// Kind is one of data.KindMNIST, data.KindCIFAR10, data.KindCIFAR100 and data.KindFolder.
	Kind string
	// Name is the canonical name a run records in config.json: the kind, or the absolute path of an image
	// folder.
	Name string
	// Channels and Classes are known before loading, but for the classes of a folder (0).
	Channels, Classes int
}

// ErrUnknownDataset is returned by ParseDataName for a name that is neither a known data set nor a folder.
var ErrUnknownDataset = errors.New("unknown dataset")

// knownData are the data sets ParseDataName knows by name.
var knownData = map[string]DataSpec{
	"mnist":     {Kind: data.KindMNIST, Name: data.KindMNIST, Channels: 1, Classes: 10},
	"cifar10":   {Kind: data.KindCIFAR10, Name: data.KindCIFAR10, Channels: 3, Classes: 10},
	"cifar-10":  {Kind: data.KindCIFAR10, Name: data.KindCIFAR10, Channels: 3, Classes: 10},
	"cifar100":  {Kind: data.KindCIFAR100, Name: data.KindCIFAR100, Channels: 3, Classes: 100},
	"cifar-100": {Kind: data.KindCIFAR100, Name: data.KindCIFAR100, Channels: 3, Classes: 100},
}

// ParseDataName parses a data set name: mnist, cifar10 (or cifar-10), cifar100 (or cifar-100), or the path of
// an image folder.
func ParseDataName(name string) (DataSpec, error) {
	if spec, ok := knownData[strings.ToLower(name)]; ok {
		return spec, nil
	}
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		abs, err := filepath.Abs(name)
		if err != nil {
			return DataSpec{}, fmt.Errorf("%s: %w", name, err)
		}
		return DataSpec{Kind: data.KindFolder, Name: abs, Channels: 3}, nil
	}
	return DataSpec{}, fmt.Errorf("%w %q: expected mnist, cifar10, cifar100 or the path of an image folder (with "+
		"train/ and val/ holding one folder per class)", ErrUnknownDataset, name)
}

// ParseRecordedDataName is ParseDataName for the data name a run recorded in its config.json, where an image
// folder is recorded by its absolute path: the error says when that folder is gone.
func ParseRecordedDataName(name string) (DataSpec, error) {
	spec, err := ParseDataName(name)
	if err == nil || !filepath.IsAbs(name) {
		return spec, err
	}
	if _, statErr := os.Stat(name); statErr != nil {
		return DataSpec{}, fmt.Errorf("the image folder %s is gone (%w)", name, statErr)
	}
	return DataSpec{}, fmt.Errorf("%s, the image folder, is not a directory", name)
}

// TrainedWithRandomResizedCrop reports whether a run of c trained with random resized crops: whether its
// recorded augmentation, parsed by data.ParseAugmentation for its data set, starts with rrc. A run that
// records none (imported weights), or one that does not parse, did not. The data set's kind comes from its
// name alone (a name that is not a known data set is an image folder), so the folder need not exist.
func (c Config) TrainedWithRandomResizedCrop() bool {
	if c.Augmentation == "" {
		return false
	}
	kind := data.KindFolder
	if spec, ok := knownData[strings.ToLower(c.Data)]; ok {
		kind = spec.Kind
	}
	a, err := data.ParseAugmentation(c.Augmentation, kind)
	return err == nil && a.RandomResizedCrop
}

// CheckFolderLayout checks that the image-folder data set at root has train/ and val/ folders.
func CheckFolderLayout(root string) error {
	for _, sub := range []string{"train", "val"} {
		st, err := os.Stat(filepath.Join(root, sub))
		if err != nil || !st.IsDir() {
			return fmt.Errorf("no %s/ folder: an image-folder dataset has train/ and val/, each with one folder per "+
				"class", sub)
		}
	}
	return nil
}

// DataOptions configure LoadData.
type DataOptions struct {
	// Dir holds the CIFAR binaries or archives.
	Dir string
	// RandomResizedCrop and Augment are the run's training transform and augmentation (see
	// data.ParseAugmentation).
	RandomResizedCrop bool
	Augment           data.Augmenter
	// Resolution is the model's: image folders (and, with RandomResizedCrop, the in-memory sets) are served
	// at it.
	Resolution int
	// Workers decode the images of a folder (0: the default).
	Workers int
	// EvalOnly loads the evaluation set only.
	EvalOnly bool
	// Classes, if not nil, are the class folders an image folder must have (a run's classes.json).
	Classes []string
	// SkipBadImage, if not nil, is told of each bad image of a folder (empty, undecodable, too large),
	// which is then skipped; otherwise a bad image is an error naming the file.
	SkipBadImage func(format string, args ...any)
}

// LoadedData are the data sets of a run (see LoadData).
type LoadedData struct {
	// Train is nil when only the evaluation set was loaded.
	Train, Eval Dataset
	// EvalSplit names the evaluation split ("test" or "val", or the folder's name).
	EvalSplit string
}

// LoadData loads the data set of spec as Datasets: the training and the evaluation sets, or with
// o.EvalOnly the evaluation set only.
func LoadData(spec DataSpec, o DataOptions) (*LoadedData, error) {
	switch spec.Kind {
	case data.KindMNIST, data.KindCIFAR10, data.KindCIFAR100:
		return loadImageSets(spec, o)
	case data.KindFolder:
		return loadFolder(spec, o)
	}
	return nil, fmt.Errorf("unknown dataset kind %q", spec.Kind)
}

// loadImageSets loads an in-memory data set (MNIST, CIFAR).
func loadImageSets(spec DataSpec, o DataOptions) (*LoadedData, error) {
	var trainSet, testSet *data.ImageSet
	var err error
	switch spec.Kind {
	case data.KindMNIST:
		trainSet, testSet, err = data.LoadMNIST()
	case data.KindCIFAR10:
		trainSet, testSet, err = data.LoadCIFAR10(o.Dir)
	default:
		trainSet, testSet, err = data.LoadCIFAR100(o.Dir)
	}
	if err != nil {
		return nil, err
	}
	out := &LoadedData{EvalSplit: "test"}
	if !o.RandomResizedCrop {
		out.Eval = ImageSetData(testSet, nil)
		if !o.EvalOnly {
			out.Train = ImageSetData(trainSet, o.Augment)
		}
		return out, nil
	}
	opts := func(set *data.ImageSet) SourceOptions {
		return SourceOptions{Name: set.Name, NumClasses: set.NumClasses, ClassNames: set.ClassNames,
			TrainTransform: data.RandomResizedCrop{Size: o.Resolution},
			EvalTransform:  data.ResizeCenterCrop{Size: o.Resolution}, Augment: o.Augment}
	}
	out.Eval = SourceData(testSet, opts(testSet))
	if !o.EvalOnly {
		out.Train = SourceData(trainSet, opts(trainSet))
	}
	return out, nil
}

// loadFolder loads an image-folder data set: train/ and val/ of spec.Name, or for evaluation only its val/
// (or the folder itself when it has none).
func loadFolder(spec DataSpec, o DataOptions) (*LoadedData, error) {
	var trainTransform data.Transform = data.ResizeCenterCrop{Size: o.Resolution}
	if o.RandomResizedCrop {
		trainTransform = data.RandomResizedCrop{Size: o.Resolution}
	}
	wrap := func(s *data.FolderSet) Dataset {
		return SourceData(s, SourceOptions{Name: s.DatasetName(), NumClasses: s.NumClasses(),
			ClassNames: s.ClassNames(), TrainTransform: trainTransform,
			EvalTransform: data.ResizeCenterCrop{Size: o.Resolution}, Augment: o.Augment})
	}
	name := filepath.Base(spec.Name)
	folder := data.FolderOptions{Workers: o.Workers}
	if o.SkipBadImage != nil {
		folder.SkipBadImages, folder.Logf = true, o.SkipBadImage
	}
	if !o.EvalOnly {
		folder.Name = name
		trainSet, valSet, err := data.LoadImageNet(spec.Name, folder)
		if err != nil {
			return nil, err
		}
		return &LoadedData{Train: wrap(trainSet), Eval: wrap(valSet), EvalSplit: "val"}, nil
	}
	root, split := filepath.Join(spec.Name, "val"), "val"
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		root, split = spec.Name, filepath.Base(spec.Name)
	}
	folder.Name, folder.Classes = name+"-"+split, o.Classes
	valSet, err := data.LoadImageFolder(root, folder)
	if err != nil {
		return nil, err
	}
	return &LoadedData{Eval: wrap(valSet), EvalSplit: split}, nil
}
