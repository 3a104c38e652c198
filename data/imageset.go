package data

import (
	"fmt"
	"math"
	"slices"
)

// ImageSet is an in-memory labelled image dataset with uint8 pixels.
//
// Images are stored contiguously: image i occupies
// Pixels[i*H*W*C : (i+1)*H*W*C] in HWC (row, column, channel) order.
type ImageSet struct {
	// Name identifies the set (for example "mnist-train"); the Loader uses it
	// as its dataset name.
	Name string

	// N is the number of images; H, W and C their height, width and number of
	// channels.
	N, H, W, C int

	// NumClasses is the number of classes: labels are in [0, NumClasses).
	NumClasses int

	// ClassNames optionally names the classes: nil, or NumClasses names
	// (ClassNames[l] is the name of label l).
	ClassNames []string

	// Pixels holds N*H*W*C bytes, HWC per image.
	Pixels []uint8

	// Labels holds the N class labels.
	Labels []int32

	// Mean and Std are the per-channel normalisation statistics on the 0..1
	// scale: a pixel value v of channel c is normalised as
	// (v/255 - Mean[c]) / Std[c]. Each must have length C, or 1 (the same
	// value for every channel), or 0 (Mean 0 and Std 1, i.e. just v/255).
	Mean, Std []float32
}

// Len returns the number of images in the set.
func (s *ImageSet) Len() int { return s.N }

// ImageSize returns the number of bytes (and of normalised float32 values)
// of one image: H*W*C.
func (s *ImageSet) ImageSize() int { return s.H * s.W * s.C }

// Image returns the HWC pixels of image i, without copying.
// It panics if i is out of range.
func (s *ImageSet) Image(i int) []uint8 {
	size := s.ImageSize()
	return s.Pixels[i*size : (i+1)*size]
}

// Subset returns the images [start, end) of s as a new ImageSet sharing s's
// Pixels and Labels storage (no copy of the image data). Its Name is
// s.Name with "[start:end]" appended.
//
// It panics, as slicing would, if 0 <= start <= end <= s.N does not hold.
func (s *ImageSet) Subset(start, end int) *ImageSet {
	if start < 0 || end < start || end > s.N {
		panic(fmt.Sprintf("data.ImageSet(%q).Subset(%d, %d): out of range for %d images", s.Name, start, end, s.N))
	}
	size := s.ImageSize()
	return &ImageSet{
		Name:       fmt.Sprintf("%s[%d:%d]", s.Name, start, end),
		N:          end - start,
		H:          s.H,
		W:          s.W,
		C:          s.C,
		NumClasses: s.NumClasses,
		ClassNames: slices.Clone(s.ClassNames),
		Pixels:     s.Pixels[start*size : end*size : end*size],
		Labels:     s.Labels[start:end:end],
		Mean:       slices.Clone(s.Mean),
		Std:        slices.Clone(s.Std),
	}
}

// Split returns the first n images and the remaining ones, as two Subsets
// sharing s's storage (for example to hold out a validation set).
//
// It panics if n is not in [0, s.N].
func (s *ImageSet) Split(n int) (first, rest *ImageSet) {
	return s.Subset(0, n), s.Subset(n, s.N)
}

// Validate checks that the set is consistent: positive dimensions, Pixels
// and Labels of the right lengths, labels in [0, NumClasses), ClassNames
// empty or of length NumClasses and valid normalisation statistics.
func (s *ImageSet) Validate() error {
	if s == nil {
		return fmt.Errorf("data: nil ImageSet")
	}
	if s.N < 0 || s.H <= 0 || s.W <= 0 || s.C <= 0 {
		return fmt.Errorf("data: ImageSet %q: invalid dimensions N=%d H=%d W=%d C=%d", s.Name, s.N, s.H, s.W, s.C)
	}
	if want := s.N * s.ImageSize(); len(s.Pixels) != want {
		return fmt.Errorf("data: ImageSet %q: len(Pixels)=%d, expected N*H*W*C=%d*%d*%d*%d=%d",
			s.Name, len(s.Pixels), s.N, s.H, s.W, s.C, want)
	}
	if len(s.Labels) != s.N {
		return fmt.Errorf("data: ImageSet %q: len(Labels)=%d, expected N=%d", s.Name, len(s.Labels), s.N)
	}
	if s.NumClasses <= 0 {
		return fmt.Errorf("data: ImageSet %q: NumClasses=%d, expected > 0", s.Name, s.NumClasses)
	}
	if len(s.ClassNames) != 0 && len(s.ClassNames) != s.NumClasses {
		return fmt.Errorf("data: ImageSet %q: len(ClassNames)=%d, expected 0 or NumClasses=%d",
			s.Name, len(s.ClassNames), s.NumClasses)
	}
	for i, l := range s.Labels {
		if l < 0 || int(l) >= s.NumClasses {
			return fmt.Errorf("data: ImageSet %q: label #%d is %d, expected in [0, %d)", s.Name, i, l, s.NumClasses)
		}
	}
	if _, _, err := s.channelStats(); err != nil {
		return err
	}
	return nil
}

// channelStats returns Mean and Std expanded to one value per channel.
func (s *ImageSet) channelStats() (mean, std []float32, err error) {
	expand := func(field string, v []float32, def float32) ([]float32, error) {
		out := make([]float32, s.C)
		switch len(v) {
		case 0:
			for i := range out {
				out[i] = def
			}
		case 1:
			for i := range out {
				out[i] = v[0]
			}
		case s.C:
			copy(out, v)
		default:
			return nil, fmt.Errorf("data: ImageSet %q: len(%s)=%d, expected 0, 1 or C=%d", s.Name, field, len(v), s.C)
		}
		return out, nil
	}
	if mean, err = expand("Mean", s.Mean, 0); err != nil {
		return nil, nil, err
	}
	if std, err = expand("Std", s.Std, 1); err != nil {
		return nil, nil, err
	}
	for c := range s.C {
		if m := float64(mean[c]); math.IsNaN(m) || math.IsInf(m, 0) {
			return nil, nil, fmt.Errorf("data: ImageSet %q: Mean[%d]=%g is not finite", s.Name, c, m)
		}
		if sd := float64(std[c]); !(sd > 0) || math.IsInf(sd, 0) {
			return nil, nil, fmt.Errorf("data: ImageSet %q: Std[%d]=%g, expected a finite value > 0", s.Name, c, sd)
		}
	}
	return mean, std, nil
}
