package inference

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// Recipe is how a run prepares an image for its model, as the run's evaluation does: a geometric
// transform to Size x Size (on the 0..1 scale), grey for 1-channel models, and the dataset's per-channel
// normalisation.
type Recipe struct {
	// Dataset is what the recipe follows: "mnist", "cifar10", "cifar100", "image folder" (ImageNet
	// style) or, for runs that do not record their data (imported weights), the model family's usual
	// dataset ("cifar", "imagenet").
	Dataset string
	// Size is the height and width of the prepared images.
	Size int
	// Channels is the number of channels of the prepared images (1: grey).
	Channels int
	// Transform brings a decoded image of any size to Size x Size.
	Transform data.ResizeCenterCrop
	// Mean and Std are the per-channel normalisation statistics on the 0..1 scale (length Channels).
	Mean, Std []float32
}

// String describes the recipe in one line.
func (r Recipe) String() string {
	grey := ""
	if r.Channels == 1 {
		grey = "grey, "
	}
	resize := r.Transform.Resize
	if resize == 0 {
		resize = r.Transform.Size * 256 / 224
	}
	return fmt.Sprintf("%s: %sresize the shorter side to %d, centre crop %dx%d, normalise with mean %v std %v",
		r.Dataset, grey, max(resize, r.Size), r.Size, r.Size, fmtFloats(r.Mean), fmtFloats(r.Std))
}

func fmtFloats(xs []float32) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatFloat(float64(x), 'g', 4, 32)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// Dataset names of config.json's "data" (as "seqconv train --data" records them: the kind, see
// train.ParseDataName).
const (
	dataMNIST    = data.KindMNIST
	dataCIFAR10  = data.KindCIFAR10
	dataCIFAR100 = data.KindCIFAR100
)

// RecipeFor returns the preprocessing of a run trained with cfg (config.json, see train.ReadConfig) at
// size x size (0: the model's resolution), as its evaluation prepares images:
//
//   - MNIST and CIFAR runs (in-memory sets, evaluated at their native size): the shorter side resized to
//     size and the centre size x size kept (an image of that size is left as it is), then the
//     dataset's normalisation; grey for MNIST;
//   - runs trained with random resized crops ("rrc" augmentation) and image-folder runs: resize to
//     size*256/224 and centre crop (ImageNet's evaluation), then ImageNet's normalisation for folders;
//   - runs that do not record their data (imported weights) or record another name: as CIFAR (or MNIST
//     for a 1-channel model) for the CIFAR family, as an image folder for the ImageNet families and the
//     baselines.
func RecipeFor(cfg train.Config, size int) (Recipe, error) {
	m := cfg.Model.WithDefaults()
	if size == 0 {
		size = m.Resolution
	}
	if size < m.MinInputSize() {
		return Recipe{}, fmt.Errorf("inference: size %d: %w", size, m.CheckInput(m.InChannels, size, size))
	}
	if m.InChannels != 1 && m.InChannels != 3 {
		return Recipe{}, fmt.Errorf("inference: model %s takes %d-channel images: only 1 (grey) and 3 (RGB) "+
			"channels can be made from image files", m.Name, m.InChannels)
	}
	r := Recipe{Dataset: strings.ToLower(cfg.Data), Size: size, Channels: m.InChannels}
	native := data.ResizeCenterCrop{Size: size, Resize: size}
	imagenet := data.ResizeCenterCrop{Size: size}
	rrc := cfg.TrainedWithRandomResizedCrop()
	switch r.Dataset {
	case dataMNIST:
		r.Mean, r.Std = []float32{data.MNISTMean}, []float32{data.MNISTStd}
	case dataCIFAR10, dataCIFAR100:
		r.Mean, r.Std = data.CIFARMean[:], data.CIFARStd[:]
	default:
		if filepath.IsAbs(cfg.Data) {
			r.Dataset, r.Mean, r.Std = "image folder", data.ImageNetMean[:], data.ImageNetStd[:]
			rrc = true // Folders are evaluated resized and centre-cropped (see "seqconv train").
			break
		}
		// No data recorded (imported weights), or a data set of a library user: the family's usual one.
		var usual string
		switch {
		case m.Family != models.FamilyCIFAR:
			usual, r.Mean, r.Std = "imagenet", data.ImageNetMean[:], data.ImageNetStd[:]
			rrc = true
		case m.InChannels == 1:
			usual, r.Mean, r.Std = dataMNIST, []float32{data.MNISTMean}, []float32{data.MNISTStd}
		default:
			usual, r.Mean, r.Std = "cifar", data.CIFARMean[:], data.CIFARStd[:]
		}
		if r.Dataset == "" {
			r.Dataset = usual
		} else {
			r.Dataset = fmt.Sprintf("%s (unknown: prepared as %s)", cfg.Data, usual)
		}
	}
	r.Transform = native
	if rrc {
		r.Transform = imagenet
	}
	if r.Channels == 1 && len(r.Mean) == 3 {
		return Recipe{}, fmt.Errorf("inference: model %s takes grey images but its data (%s) is RGB", m.Name, r.Dataset)
	}
	if r.Channels == 3 && len(r.Mean) == 1 {
		r.Mean = []float32{r.Mean[0], r.Mean[0], r.Mean[0]}
		r.Std = []float32{r.Std[0], r.Std[0], r.Std[0]}
	}
	r.Mean, r.Std = slices.Clone(r.Mean), slices.Clone(r.Std)
	return r, nil
}

// prepare brings one RGB image to the recipe's size and channels and normalises it into dst
// (Size*Size*Channels values, HWC).
func (r Recipe) prepare(img data.RawImage, dst []float32) error {
	if r.Channels == 1 {
		var err error
		if img, err = data.Grey(img, nil); err != nil {
			return err
		}
	}
	if img.C != r.Channels {
		return fmt.Errorf("a %d-channel image for a %d-channel model", img.C, r.Channels)
	}
	data.TransformImage(r.Transform, nil, img, r.Mean, r.Std, dst)
	return nil
}

// ClassNames returns the names of a run's classes: its classes.json (see train.ReadClasses); else, for
// CIFAR runs, the names in the CIFAR files' meta file in the run's data directory; the digits for
// MNIST runs; otherwise "class 0", "class 1", ... The number of names must be the model's classes.
func ClassNames(runDir string, cfg train.Config) ([]string, error) {
	n := cfg.Model.Classes
	names, err := train.ReadClasses(runDir)
	if err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	ds := strings.ToLower(cfg.Data)
	if names == nil && (ds == dataCIFAR10 || ds == dataCIFAR100) && cfg.DataDir != "" {
		if names, err = readCIFARNames(cfg.DataDir, ds == dataCIFAR100); err != nil {
			return nil, fmt.Errorf("inference: run directory %s has no %s: %w", runDir, train.ClassesFile, err)
		}
	}
	if names == nil {
		label := "class "
		if ds == dataMNIST || (ds == "" && cfg.Model.InChannels == 1 && n == 10) {
			label = "" // The digits.
		}
		names = make([]string, n)
		for i := range names {
			names[i] = label + strconv.Itoa(i)
		}
	}
	if len(names) != n {
		return nil, fmt.Errorf("inference: %s: %d class names for the %d classes of model %s",
			filepath.Join(runDir, train.ClassesFile), len(names), n, cfg.Model.Name)
	}
	return names, nil
}

// readCIFARNames reads CIFAR class names from dir, or returns nil without an error when dir does not
// hold them (a run moved to another machine).
func readCIFARNames(dir string, cifar100 bool) ([]string, error) {
	names, err := data.ReadCIFARClassNames(dir, cifar100)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return names, err
}
