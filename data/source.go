package data

import (
	"errors"
	"fmt"
)

// RawImage is one decoded image: H x W x C uint8 pixels in HWC (row,
// column, channel) order, len(Pix) == H*W*C.
type RawImage struct {
	H, W, C int
	Pix     []uint8
}

// Source is a labelled collection of images of possibly different sizes,
// decoded on demand. ImageLoader serves a Source in fixed-size batches
// through a per-image Transform.
//
// Both *ImageSet (in memory, every image the same size) and *FolderSet
// (image files decoded lazily) implement it.
//
// A Source may also implement:
//
//   - DatasetName() string, the name ImageLoader reports by default;
//   - Normalization() (mean, std []float32), its default per-channel
//     normalisation statistics on the 0..1 scale;
//   - Validate() error, called by ImageLoader at the start of every epoch.
type Source interface {
	// Len returns the number of images.
	Len() int

	// Label returns the class label of image i, 0 <= i < Len().
	Label(i int) int32

	// Channels returns the number of channels of every decoded image.
	Channels() int

	// Decode returns image i, 0 <= i < Len(). It may store the pixels in buf
	// when it is large enough (so that a caller can reuse one buffer), or
	// return other storage; the caller only reads the pixels, and only until
	// its next call with the same buf. Decode is called concurrently from
	// several goroutines (with different bufs).
	//
	// An error wrapping ErrSkipImage asks the loader to replace the image by
	// another one (see ImageLoader); any other error ends the epoch.
	Decode(i int, buf []uint8) (RawImage, error)
}

var (
	// ErrBadImage is wrapped by the errors for image files that cannot be
	// used: empty, undecodable or too large.
	ErrBadImage = errors.New("bad image")

	// ErrTooManyPixels is wrapped, with ErrBadImage, by the errors for images
	// larger than the pixel limit (read from their header before decoding).
	ErrTooManyPixels = errors.New("too many pixels")

	// ErrSkipImage is wrapped by a Source's Decode error to ask the
	// ImageLoader to skip the image and use a replacement (a FolderSet does so
	// for bad images when FolderOptions.SkipBadImages is set).
	ErrSkipImage = errors.New("image skipped")
)

var _ Source = (*ImageSet)(nil)

// Label implements Source: it returns Labels[i].
func (s *ImageSet) Label(i int) int32 { return s.Labels[i] }

// Channels implements Source: it returns C.
func (s *ImageSet) Channels() int { return s.C }

// Decode implements Source: it returns image i without copying (buf is not
// used). The caller must not modify the pixels.
func (s *ImageSet) Decode(i int, _ []uint8) (RawImage, error) {
	if i < 0 || i >= s.N {
		return RawImage{}, fmt.Errorf("data: ImageSet %q: image %d out of range [0, %d)", s.Name, i, s.N)
	}
	return RawImage{H: s.H, W: s.W, C: s.C, Pix: s.Image(i)}, nil
}

// DatasetName returns s.Name (see Source).
func (s *ImageSet) DatasetName() string { return s.Name }

// Normalization returns Mean and Std expanded to one value per channel (see
// Source); if they are invalid it returns them as they are.
func (s *ImageSet) Normalization() (mean, std []float32) {
	mean, std, err := s.channelStats()
	if err != nil {
		return s.Mean, s.Std
	}
	return mean, std
}
