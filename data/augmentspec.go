package data

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kinds of data set, which choose the default augmentation and crop padding of ParseAugmentation.
const (
	KindMNIST    = "mnist"
	KindCIFAR10  = "cifar10"
	KindCIFAR100 = "cifar100"
	KindFolder   = "folder"
)

// Default random-crop paddings of ParseAugmentation's crop item: MNIST's, and every other kind's.
const (
	DefaultMNISTCropPad = 2
	DefaultCropPad      = 4
)

// Default augmentation specs (see ParseAugmentation): MNIST's, CIFAR's (the authors' CIFAR recipe) and image
// folders' (the authors' ImageNet recipe).
const (
	DefaultMNISTAugmentation  = "crop:2"
	DefaultCIFARAugmentation  = "crop:4+flip"
	DefaultFolderAugmentation = "rrc+flip+jitter:0.4+lighting:0.1"
)

// Augmentation is a parsed augmentation spec (see ParseAugmentation).
type Augmentation struct {
	// RandomResizedCrop selects RandomResizedCrop at the model's resolution as the training transform
	// (the images are then served by ImageLoader, and evaluated resized and centre-cropped).
	RandomResizedCrop bool
	// Augmenter augments the (transformed) training images; nil for none.
	Augmenter Augmenter
	// Spec is the canonical spec, as runs record it: "none", or the items with their values.
	Spec string
}

// ParseAugmentation parses an augmentation spec for a kind of data set: "default" or "" (the kind's
// default: mnist crop:2, cifar10/cifar100 crop:4+flip, folder rrc+flip+jitter:0.4+lighting:0.1), "none", or
// '+'-separated items among rrc (random resized crop, first), crop[:PAD] (default padding 2 for mnist, 4
// otherwise), flip, jitter[:AMOUNT] (0.4) and lighting[:STD] (0.1; RGB images only).
func ParseAugmentation(spec, kind string) (Augmentation, error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if spec == "default" || spec == "" {
		switch kind {
		case KindMNIST:
			spec = DefaultMNISTAugmentation
		case KindFolder:
			spec = DefaultFolderAugmentation
		default:
			spec = DefaultCIFARAugmentation
		}
	}
	if spec == "none" {
		return Augmentation{Spec: "none"}, nil
	}
	var a Augmentation
	var augs []Augmenter
	var items []string
	number := func(name, arg string, def float64, min float64) (float64, error) {
		if arg == "" {
			return def, nil
		}
		x, err := strconv.ParseFloat(arg, 64)
		if err != nil || !(x >= min) || x > 1e6 {
			return 0, fmt.Errorf("%s takes a number >= %g, got %q", name, min, arg)
		}
		return x, nil
	}
	for i, item := range strings.Split(spec, "+") {
		name, arg, hasArg := strings.Cut(strings.TrimSpace(item), ":")
		if hasArg && arg == "" {
			return Augmentation{}, fmt.Errorf("%q lacks its value after ':'", item)
		}
		switch {
		case name == "rrc" && !hasArg:
			if i != 0 {
				return Augmentation{}, fmt.Errorf("rrc (random resized crop) must come first, got %q", spec)
			}
			a.RandomResizedCrop = true
			items = append(items, "rrc")
		case name == "crop":
			pad := DefaultCropPad
			if kind == KindMNIST {
				pad = DefaultMNISTCropPad
			}
			if hasArg {
				n, err := strconv.Atoi(arg)
				if err != nil || n < 1 || n > 1024 {
					return Augmentation{}, fmt.Errorf("crop padding must be an integer >= 1, got %q", arg)
				}
				pad = n
			}
			augs = append(augs, RandomCrop{Pad: pad})
			items = append(items, fmt.Sprintf("crop:%d", pad))
		case name == "flip" && !hasArg:
			augs = append(augs, HFlip{})
			items = append(items, "flip")
		case name == "jitter":
			x, err := number("jitter", arg, 0.4, 0)
			if err != nil {
				return Augmentation{}, err
			}
			augs = append(augs, ColorJitter{Brightness: x, Contrast: x, Saturation: x})
			items = append(items, "jitter:"+strconv.FormatFloat(x, 'g', -1, 64))
		case name == "lighting":
			x, err := number("lighting", arg, 0.1, 0)
			if err != nil {
				return Augmentation{}, err
			}
			if kind == KindMNIST {
				return Augmentation{}, errors.New("lighting needs RGB images, but mnist is grey")
			}
			augs = append(augs, Lighting{AlphaStd: x})
			items = append(items, "lighting:"+strconv.FormatFloat(x, 'g', -1, 64))
		default:
			return Augmentation{}, fmt.Errorf("unknown augmentation %q, expected default, none, or rrc, crop[:PAD], "+
				"flip, jitter[:AMOUNT] and lighting[:STD] joined with '+'", item)
		}
	}
	a.Spec = strings.Join(items, "+")
	switch len(augs) {
	case 0:
	case 1:
		a.Augmenter = augs[0]
	default:
		a.Augmenter = Compose(augs...)
	}
	return a, nil
}
