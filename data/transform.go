package data

import (
	"math"
	"math/rand/v2"
	"sync"
)

// Transform turns one decoded image, of any size, into a fixed-size float32
// image: the geometric part of an ImageLoader's per-image pipeline.
//
// Apply writes the OutputSize() image (h x w x img.C values, HWC) to dst, on
// the 0..1 scale (pixel value / 255); the loader then normalises it and
// applies its Augmenter. All randomness must come from rng (see Augmenter).
// A Transform is called concurrently from several goroutines.
type Transform interface {
	OutputSize() (h, w int)
	Apply(rng *rand.Rand, img RawImage, dst []float32)
}

// RandomResizedCrop crops a random part of the image and resizes it to
// Size x Size, like torchvision's RandomResizedCrop(Size, Scale, Ratio) with
// bilinear interpolation: the crop has a random area, a fraction in
// [Scale[0], Scale[1]] of the image's, and a random aspect ratio
// (width/height), log-uniform in [Ratio[0], Ratio[1]]; after 10 attempts
// that do not fit, it falls back to a centre crop clamped to the ratio
// range. The resize is PIL's antialiased bilinear (triangle filter widened
// by the downscaling factor).
type RandomResizedCrop struct {
	// Size is the output height and width.
	Size int

	// Scale is the range of the crop's area relative to the image's;
	// the zero value means {0.08, 1}.
	Scale [2]float64

	// Ratio is the range of the crop's aspect ratio; the zero value means
	// {3/4, 4/3}.
	Ratio [2]float64
}

// OutputSize implements Transform.
func (r RandomResizedCrop) OutputSize() (h, w int) { return r.Size, r.Size }

// Apply implements Transform.
func (r RandomResizedCrop) Apply(rng *rand.Rand, img RawImage, dst []float32) {
	top, left, ch, cw := r.cropParams(rng, img.H, img.W)
	resampleBox(img, top, left, ch, cw, r.Size, r.Size, 0, 0, r.Size, r.Size, dst)
}

// cropParams draws the crop (torchvision's RandomResizedCrop.get_params).
func (r RandomResizedCrop) cropParams(rng *rand.Rand, height, width int) (top, left, h, w int) {
	scale, ratio := r.Scale, r.Ratio
	if scale == [2]float64{} {
		scale = [2]float64{0.08, 1}
	}
	if ratio == [2]float64{} {
		ratio = [2]float64{3.0 / 4, 4.0 / 3}
	}
	area := float64(height * width)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * (scale[0] + (scale[1]-scale[0])*rng.Float64())
		aspect := math.Exp(logLo + (logHi-logLo)*rng.Float64())
		w := int(math.RoundToEven(math.Sqrt(target * aspect)))
		h := int(math.RoundToEven(math.Sqrt(target / aspect)))
		if 0 < w && w <= width && 0 < h && h <= height {
			return rng.IntN(height - h + 1), rng.IntN(width - w + 1), h, w
		}
	}
	// Fallback: central crop.
	inRatio := float64(width) / float64(height)
	switch {
	case inRatio < min(ratio[0], ratio[1]):
		w = width
		h = int(math.RoundToEven(float64(w) / min(ratio[0], ratio[1])))
	case inRatio > max(ratio[0], ratio[1]):
		h = height
		w = int(math.RoundToEven(float64(h) * max(ratio[0], ratio[1])))
	default:
		w, h = width, height
	}
	h, w = max(1, min(h, height)), max(1, min(w, width))
	return (height - h) / 2, (width - w) / 2, h, w
}

// ResizeCenterCrop resizes the image so that its shorter side is Resize
// (keeping the aspect ratio) and crops the central Size x Size square, like
// torchvision's Resize(Resize) then CenterCrop(Size): the usual evaluation
// transform (Resize 256, Size 224). The resize is PIL's antialiased
// bilinear; only the cropped part is computed.
type ResizeCenterCrop struct {
	// Size is the output height and width.
	Size int

	// Resize is the length of the shorter side after resizing; 0 means
	// Size*256/224, and values below Size are taken as Size.
	Resize int
}

// OutputSize implements Transform.
func (r ResizeCenterCrop) OutputSize() (h, w int) { return r.Size, r.Size }

// Apply implements Transform (it draws nothing from rng).
func (r ResizeCenterCrop) Apply(_ *rand.Rand, img RawImage, dst []float32) {
	oh, ow, top, left := r.cropBox(img.H, img.W)
	resampleBox(img, 0, 0, img.H, img.W, oh, ow, top, left, r.Size, r.Size, dst)
}

// cropBox returns the resized size of an h x w image and the top-left corner
// of the crop (torchvision's Resize with an int size, then CenterCrop, which
// rounds half to even).
func (r ResizeCenterCrop) cropBox(h, w int) (oh, ow, top, left int) {
	oh, ow = r.resizedSize(h, w)
	top = int(math.RoundToEven(float64(oh-r.Size) / 2))
	left = int(math.RoundToEven(float64(ow-r.Size) / 2))
	return oh, ow, top, left
}

// resizedSize returns the image size after resizing the shorter side.
func (r ResizeCenterCrop) resizedSize(h, w int) (oh, ow int) {
	size := r.Resize
	if size == 0 {
		size = r.Size * 256 / 224
	}
	size = max(size, r.Size)
	if w < h {
		return int(float64(size) * float64(h) / float64(w)), size
	}
	return size, int(float64(size) * float64(w) / float64(h))
}

// axisCoeffs are the resampling filter taps of one axis: output o reads the
// inputs start[o] ... start[o]+n[o]-1 with weights w[o*k ...].
type axisCoeffs struct {
	k        int
	start, n []int
	w        []float32
}

// makeCoeffs computes PIL's bilinear (triangle filter) coefficients for
// resizing an axis of inSize pixels to outSize, for the count outputs
// starting at first (ImagingResample's precompute_coeffs). The filter is
// widened by the downscaling factor (antialiasing) and renormalised at the
// borders. gain multiplies every weight.
func makeCoeffs(inSize, outSize, first, count int, gain float64) axisCoeffs {
	scale := float64(inSize) / float64(outSize)
	filterScale := max(scale, 1)
	support := filterScale // The triangle filter's support is 1.
	k := int(math.Ceil(support))*2 + 1
	c := axisCoeffs{k: k, start: make([]int, count), n: make([]int, count), w: make([]float32, count*k)}
	ws := make([]float64, k)
	for o := range count {
		center := (float64(first+o) + 0.5) * scale
		lo := max(int(math.Floor(center-support+0.5)), 0)
		hi := min(int(math.Floor(center+support+0.5)), inSize)
		n := min(max(hi-lo, 0), k)
		if n == 0 { // Cannot happen for outputs inside the axis; be safe.
			lo, n = min(max(int(center), 0), inSize-1), 1
			ws[0] = 1
		} else {
			total := 0.0
			for j := range n {
				x := (float64(lo+j) - center + 0.5) / filterScale
				ws[j] = max(0, 1-math.Abs(x))
				total += ws[j]
			}
			if total == 0 {
				total = 1
			}
			for j := range n {
				ws[j] /= total
			}
		}
		c.start[o], c.n[o] = lo, n
		for j := range n {
			c.w[o*k+j] = float32(ws[j] * gain)
		}
	}
	return c
}

// resampleScratch pools the intermediate buffers of resampleBox.
var resampleScratch = sync.Pool{New: func() any { return new([]float32) }}

// resampleBox resizes the box (top, left, boxH, boxW) of img to
// outH x outW with PIL's antialiased bilinear filter (restricted to the box,
// like cropping then resizing) and writes the cropH x cropW part of the
// result starting at (offY, offX) to dst, scaled by 1/255.
func resampleBox(img RawImage, top, left, boxH, boxW, outH, outW, offY, offX, cropH, cropW int, dst []float32) {
	cx := makeCoeffs(boxW, outW, offX, cropW, 1)
	cy := makeCoeffs(boxH, outH, offY, cropH, 1.0/255)
	resample(img, top, left, cx, cy, dst)
}

// resample applies separable coefficients to the box at (top, left) of img:
// first horizontally, into a float32 buffer of the needed input rows, then
// vertically into dst (len(cy.start) x len(cx.start) x C).
func resample(img RawImage, top, left int, cx, cy axisCoeffs, dst []float32) {
	c := img.C
	cropH, cropW := len(cy.start), len(cx.start)
	if cropH == 0 || cropW == 0 {
		return
	}
	rowLo := cy.start[0]
	rowHi := rowLo
	for o := range cropH {
		rowHi = max(rowHi, cy.start[o]+cy.n[o])
		rowLo = min(rowLo, cy.start[o])
	}
	rowLen := cropW * c
	bufp := resampleScratch.Get().(*[]float32)
	defer resampleScratch.Put(bufp)
	need := (rowHi - rowLo) * rowLen
	if cap(*bufp) < need {
		*bufp = make([]float32, need)
	}
	tmp := (*bufp)[:need]

	// Horizontal pass.
	for r := rowLo; r < rowHi; r++ {
		src := img.Pix[((top+r)*img.W+left)*c:]
		out := tmp[(r-rowLo)*rowLen : (r-rowLo+1)*rowLen]
		if c == 3 {
			for o := range cropW {
				s, n := cx.start[o], cx.n[o]
				ws := cx.w[o*cx.k : o*cx.k+n]
				p := src[3*s : 3*(s+n)]
				var a0, a1, a2 float32
				for j, w := range ws {
					a0 += w * float32(p[3*j])
					a1 += w * float32(p[3*j+1])
					a2 += w * float32(p[3*j+2])
				}
				out[3*o], out[3*o+1], out[3*o+2] = a0, a1, a2
			}
			continue
		}
		for o := range cropW {
			s, n := cx.start[o], cx.n[o]
			ws := cx.w[o*cx.k : o*cx.k+n]
			for ch := range c {
				var a float32
				for j, w := range ws {
					a += w * float32(src[(s+j)*c+ch])
				}
				out[o*c+ch] = a
			}
		}
	}

	// Vertical pass.
	for o := range cropH {
		row := dst[o*rowLen : (o+1)*rowLen]
		s, n := cy.start[o], cy.n[o]
		ws := cy.w[o*cy.k : o*cy.k+n]
		in := tmp[(s-rowLo)*rowLen : (s-rowLo+1)*rowLen]
		w0 := ws[0]
		for i, v := range in {
			row[i] = w0 * v
		}
		for j := 1; j < n; j++ {
			w := ws[j]
			in := tmp[(s+j-rowLo)*rowLen : (s+j-rowLo+1)*rowLen]
			for i, v := range in {
				row[i] += w * v
			}
		}
	}
}
