package data

import (
	"math/rand/v2"
	"sync"
)

// Augmenter transforms one normalised image.
//
// Augment reads the h x w x c image src (HWC order, already normalised as
// (x/255 - mean)/std) and writes the augmented image, of the same shape, to
// dst. src and dst have length h*w*c and must not overlap; Augment must write
// every element of dst and must not modify src.
//
// All randomness must come from rng: the Loader derives it deterministically
// from (seed, epoch, position of the image in the epoch), so augmentation is
// reproducible and independent of the number of workers. An Augmenter is
// called concurrently from several goroutines, so it must not mutate shared
// state.
type Augmenter interface {
	Augment(rng *rand.Rand, h, w, c int, src, dst []float32)
}

// NormalizationBinder is implemented by Augmenters that need to know the
// per-channel normalisation of the images they transform (for example
// RandomCrop, to pad with the normalised value of a black pixel).
//
// NewLoader calls BindNormalization with the set's per-channel mean and std
// (each of length C) and uses the returned Augmenter.
type NormalizationBinder interface {
	BindNormalization(mean, std []float32) Augmenter
}

// bindNormalization binds aug to the normalisation if it supports it.
func bindNormalization(aug Augmenter, mean, std []float32) Augmenter {
	if b, ok := aug.(NormalizationBinder); ok {
		return b.BindNormalization(mean, std)
	}
	return aug
}

// RandomCrop pads the image by Pad pixels on each side and crops a random
// h x w window back out of it, like torchvision's RandomCrop(size, padding=Pad).
// Both offsets are drawn uniformly from [0, 2*Pad], vertical first.
type RandomCrop struct {
	// Pad is the number of padding pixels on each side. Pad <= 0 copies the
	// image unchanged.
	Pad int

	// Fill is the per-channel value of the padded pixels, on the normalised
	// scale; length c, or 1 for all channels. When nil, the Loader sets it
	// (through BindNormalization) to the normalised value of a 0 pixel,
	// (0-mean)/std, which is what padding the raw image with zeros and then
	// normalising gives. A nil Fill used outside a Loader pads with 0.
	Fill []float32
}

// BindNormalization implements NormalizationBinder: if Fill is nil it
// returns a copy of r with Fill[c] = -mean[c]/std[c].
func (r RandomCrop) BindNormalization(mean, std []float32) Augmenter {
	if r.Fill != nil {
		return r
	}
	fill := make([]float32, len(mean))
	for ch := range fill {
		fill[ch] = (0 - mean[ch]) / std[ch]
	}
	r.Fill = fill
	return r
}

// Augment implements Augmenter.
func (r RandomCrop) Augment(rng *rand.Rand, h, w, c int, src, dst []float32) {
	if r.Pad <= 0 {
		copy(dst[:h*w*c], src[:h*w*c])
		return
	}
	dy := rng.IntN(2*r.Pad + 1)
	dx := rng.IntN(2*r.Pad + 1)
	r.cropAt(h, w, c, src, dst, dy, dx)
}

// cropAt writes to dst the h x w window at (dy, dx) of the image padded by
// r.Pad: dst[y,x] = src[y+dy-Pad, x+dx-Pad], or the fill value outside src.
func (r RandomCrop) cropAt(h, w, c int, src, dst []float32, dy, dx int) {
	fill := func(ch int) float32 {
		switch len(r.Fill) {
		case 0:
			return 0
		case 1:
			return r.Fill[0]
		default:
			return r.Fill[ch]
		}
	}
	// Source column range that lands inside the output, for every row.
	sx0 := dx - r.Pad
	xLo, xHi := max(0, -sx0), min(w, w-sx0) // output columns with a source pixel.
	for y := range h {
		row := dst[y*w*c : (y+1)*w*c]
		sy := y + dy - r.Pad
		if sy < 0 || sy >= h || xLo >= xHi {
			for i := range row {
				row[i] = fill(i % c)
			}
			continue
		}
		for i := 0; i < xLo*c; i++ {
			row[i] = fill(i % c)
		}
		copy(row[xLo*c:xHi*c], src[(sy*w+xLo+sx0)*c:(sy*w+xHi+sx0)*c])
		for i := xHi * c; i < w*c; i++ {
			row[i] = fill(i % c)
		}
	}
}

// HFlip mirrors the image horizontally (left-right) with probability 0.5.
type HFlip struct{}

// Augment implements Augmenter: it flips if rng.Float64() < 0.5 and copies
// otherwise.
func (HFlip) Augment(rng *rand.Rand, h, w, c int, src, dst []float32) {
	if rng.Float64() >= 0.5 {
		copy(dst[:h*w*c], src[:h*w*c])
		return
	}
	hflip(h, w, c, src, dst)
}

func hflip(h, w, c int, src, dst []float32) {
	for y := range h {
		for x := range w {
			s := (y*w + w - 1 - x) * c
			copy(dst[(y*w+x)*c:(y*w+x+1)*c], src[s:s+c])
		}
	}
}

// Compose returns an Augmenter applying augs in order (nil entries are
// skipped; with none it copies the image). All draw from the same rng, in
// order. It implements NormalizationBinder by binding each of augs.
func Compose(augs ...Augmenter) Augmenter {
	list := make([]Augmenter, 0, len(augs))
	for _, a := range augs {
		if a != nil {
			list = append(list, a)
		}
	}
	return &composed{augs: list}
}

type composed struct {
	augs []Augmenter
	pool sync.Pool // of *[]float32 scratch buffers.
}

// BindNormalization implements NormalizationBinder.
func (cp *composed) BindNormalization(mean, std []float32) Augmenter {
	bound := make([]Augmenter, len(cp.augs))
	for i, a := range cp.augs {
		bound[i] = bindNormalization(a, mean, std)
	}
	return &composed{augs: bound}
}

// Augment implements Augmenter.
func (cp *composed) Augment(rng *rand.Rand, h, w, c int, src, dst []float32) {
	size := h * w * c
	switch {
	case size == 0:
		return
	case len(cp.augs) == 0:
		copy(dst[:size], src[:size])
		return
	case len(cp.augs) == 1:
		cp.augs[0].Augment(rng, h, w, c, src, dst)
		return
	}
	// Ping-pong between two scratch buffers; the last step writes dst.
	bufA, bufB := cp.getBuf(size), cp.getBuf(size)
	defer cp.pool.Put(bufA)
	defer cp.pool.Put(bufB)
	in, out := src, (*bufA)[:size]
	for i, a := range cp.augs {
		if i == len(cp.augs)-1 {
			out = dst
		}
		a.Augment(rng, h, w, c, in, out)
		in = out
		if &out[0] == &(*bufA)[0] {
			out = (*bufB)[:size]
		} else {
			out = (*bufA)[:size]
		}
	}
}

func (cp *composed) getBuf(size int) *[]float32 {
	if b, ok := cp.pool.Get().(*[]float32); ok && cap(*b) >= size {
		*b = (*b)[:size]
		return b
	}
	b := make([]float32, size)
	return &b
}
