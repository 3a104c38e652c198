package data

import (
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// RGB converts a decoded image to RGB pixels (alpha dropped), in buf when it
// is large enough, as DecodeImage does.
func RGB(img image.Image, buf []uint8) RawImage { return toRGB(img, buf) }

// Grey converts an RGB image to one grey channel as PIL's convert("L") does
// (ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, rounded), in buf when
// it is large enough. Images of one channel are returned as they are.
func Grey(img RawImage, buf []uint8) (RawImage, error) {
	switch img.C {
	case 1:
		return img, nil
	case 3:
	default:
		return RawImage{}, fmt.Errorf("data.Grey: want a 1- or 3-channel image, got %d channels", img.C)
	}
	n := img.H * img.W
	if len(img.Pix) != 3*n {
		return RawImage{}, fmt.Errorf("data.Grey: %dx%dx3 image with %d bytes", img.H, img.W, len(img.Pix))
	}
	if cap(buf) < n {
		buf = make([]uint8, n)
	}
	pix := buf[:n]
	for i := range pix {
		p := img.Pix[3*i : 3*i+3 : 3*i+3]
		pix[i] = uint8((uint32(p[0])*19595 + uint32(p[1])*38470 + uint32(p[2])*7471 + 0x8000) >> 16)
	}
	return RawImage{H: img.H, W: img.W, C: 1, Pix: pix}, nil
}

// TransformImage prepares one image as ImageLoader does before augmenting
// it: the Transform (to its output size, on the 0..1 scale), then the
// per-channel normalisation (x - mean[c]) / std[c] (mean and std of length
// img.C, or nil for none). dst must hold the transform's h x w x img.C values.
func TransformImage(t Transform, rng *rand.Rand, img RawImage, mean, std []float32, dst []float32) {
	t.Apply(rng, img, dst)
	Normalize(mean, std, img.C, dst)
}

// ReadCIFARClassNames reads the class names of CIFAR-10 (batches.meta.txt)
// or, with cifar100, CIFAR-100 (fine_label_names.txt) from dir or the
// extracted folder in dir (cifar-10-batches-bin/, cifar-100-binary/). An
// error wraps os.ErrNotExist when neither holds the file.
func ReadCIFARClassNames(dir string, cifar100 bool) ([]string, error) {
	sp := cifar10Spec
	if cifar100 {
		sp = cifar100Spec
	}
	for _, d := range []string{dir, filepath.Join(dir, sp.subdir)} {
		name := filepath.Join(d, sp.metaFile)
		f, err := os.Open(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readCIFARClassNames(sp, name, f)
	}
	return nil, fmt.Errorf("%s class names: no %s in %s: %w", sp.name, sp.metaFile, dir, os.ErrNotExist)
}
