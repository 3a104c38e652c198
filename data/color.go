package data

import (
	"fmt"
	"math/rand/v2"
)

// ImageNet PCA lighting statistics (AlexNet-style "fancy PCA"): the
// eigenvalues and eigenvectors (columns) of the RGB covariance of ImageNet
// pixels on the 0..1 scale, as in fb.resnet.torch and the PyTorch ImageNet
// recipes.
var (
	ImageNetPCAEigVal = [3]float32{0.2175, 0.0188, 0.0045}
	ImageNetPCAEigVec = [3][3]float32{
		{-0.5675, 0.7192, 0.4009},
		{-0.5808, -0.0045, -0.8140},
		{-0.5836, -0.6948, 0.4203},
	}
)

// ColorJitter randomly changes the brightness, contrast and saturation of an
// image, like torchvision's ColorJitter(Brightness, Contrast, Saturation):
// each non-zero amount a draws a factor f uniformly from [max(0, 1-a), 1+a],
// and the three adjustments are applied in a random order, each clamping the
// result to [0, 1]:
//
//   - brightness: x * f;
//   - contrast: f*x + (1-f)*m, m the mean grey level of the image;
//   - saturation: f*x + (1-f)*g, g the grey level of the pixel.
//
// The grey level of an RGB pixel is 0.299 R + 0.587 G + 0.114 B (ITU-R
// 601-2, as PIL); for other channel counts it is the mean of the channels.
//
// It works on pixel values on the 0..1 scale: bound to a normalisation
// (NormalizationBinder, done by the loaders) it un-normalises the image,
// adjusts it and normalises it again; unbound it takes the values as they
// are.
type ColorJitter struct {
	Brightness, Contrast, Saturation float64

	mean, std []float32 // Bound normalisation; nil when unbound.
}

// BindNormalization implements NormalizationBinder.
func (j ColorJitter) BindNormalization(mean, std []float32) Augmenter {
	j.mean, j.std = mean, std
	return j
}

// Augment implements Augmenter.
func (j ColorJitter) Augment(rng *rand.Rand, h, w, c int, src, dst []float32) {
	size := h * w * c
	type op struct {
		kind   int
		factor float32
	}
	var ops []op
	for kind, amount := range [3]float64{j.Brightness, j.Contrast, j.Saturation} {
		if amount > 0 {
			lo := max(0, 1-amount)
			ops = append(ops, op{kind, float32(lo + (1+amount-lo)*rng.Float64())})
		}
	}
	rng.Shuffle(len(ops), func(a, b int) { ops[a], ops[b] = ops[b], ops[a] })
	img := dst[:size]
	unnormalize(j.mean, j.std, c, src[:size], img)
	for _, o := range ops {
		f := o.factor
		switch o.kind {
		case 0: // Brightness.
			for i, v := range img {
				img[i] = clamp01(v * f)
			}
		case 1: // Contrast.
			var sum float64
			for p := 0; p < size; p += c {
				sum += float64(grey(img[p : p+c]))
			}
			m := (1 - f) * float32(sum/float64(h*w))
			for i, v := range img {
				img[i] = clamp01(f*v + m)
			}
		case 2: // Saturation.
			for p := 0; p < size; p += c {
				px := img[p : p+c]
				g := (1 - f) * grey(px)
				for k, v := range px {
					px[k] = clamp01(f*v + g)
				}
			}
		}
	}
	Normalize(j.mean, j.std, c, img)
}

// grey returns the grey level of one pixel.
func grey(px []float32) float32 {
	if len(px) == 3 {
		return 0.299*px[0] + 0.587*px[1] + 0.114*px[2]
	}
	var s float32
	for _, v := range px {
		s += v
	}
	return s / float32(len(px))
}

// clamp01 clamps v to [0, 1] (branches are cheaper than min and max,
// which must handle NaNs and signed zeros).
func clamp01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}

// unnormalize writes src*std[ch] + mean[ch] to dst (a copy when mean is nil).
func unnormalize(mean, std []float32, c int, src, dst []float32) {
	if mean == nil {
		copy(dst, src)
		return
	}
	if c == 3 {
		m0, m1, m2, s0, s1, s2 := mean[0], mean[1], mean[2], std[0], std[1], std[2]
		for p := 0; p+3 <= len(src); p += 3 {
			s, d := src[p:p+3:p+3], dst[p:p+3:p+3]
			d[0], d[1], d[2] = s[0]*s0+m0, s[1]*s1+m1, s[2]*s2+m2
		}
		return
	}
	for i, v := range src {
		ch := i % c
		dst[i] = v*std[ch] + mean[ch]
	}
}

// Normalize replaces x by (x - mean[ch]) / std[ch] (nothing when mean is nil).
func Normalize(mean, std []float32, c int, img []float32) {
	if mean == nil {
		return
	}
	if c == 3 {
		m0, m1, m2, s0, s1, s2 := mean[0], mean[1], mean[2], std[0], std[1], std[2]
		for p := 0; p+3 <= len(img); p += 3 {
			d := img[p : p+3 : p+3]
			d[0], d[1], d[2] = (d[0]-m0)/s0, (d[1]-m1)/s1, (d[2]-m2)/s2
		}
		return
	}
	for i, v := range img {
		ch := i % c
		img[i] = (v - mean[ch]) / std[ch]
	}
}

// Lighting is AlexNet-style PCA lighting noise: it draws alpha_j from a
// normal distribution of standard deviation AlphaStd (j = 0, 1, 2, in that
// order) and adds sum_j EigVec[ch][j] * alpha_j * EigVal[j] to every pixel of
// channel ch, on the 0..1 scale, without clamping (as the PyTorch ImageNet
// recipes' Lighting(0.1) after ToTensor). Bound to a normalisation, the
// offset is divided by the channel's std. It needs 3-channel images (it
// panics otherwise; the loaders turn that into an error).
type Lighting struct {
	// AlphaStd is the standard deviation of the coefficients (0.1 for the
	// authors' ImageNet training).
	AlphaStd float64

	// EigVal and EigVec are the PCA eigenvalues and eigenvectors (columns);
	// all zero means ImageNetPCAEigVal and ImageNetPCAEigVec.
	EigVal [3]float32
	EigVec [3][3]float32

	std []float32 // Bound normalisation std; nil when unbound.
}

// BindNormalization implements NormalizationBinder.
func (l Lighting) BindNormalization(_, std []float32) Augmenter {
	l.std = std
	return l
}

// Augment implements Augmenter.
func (l Lighting) Augment(rng *rand.Rand, h, w, c int, src, dst []float32) {
	if c != 3 {
		panic(fmt.Sprintf("data.Lighting: needs 3-channel (RGB) images, got %d channels", c))
	}
	offset := l.offset(rng.NormFloat64()*l.AlphaStd, rng.NormFloat64()*l.AlphaStd, rng.NormFloat64()*l.AlphaStd)
	size := h * w * c
	for i, v := range src[:size] {
		dst[i] = v + offset[i%3]
	}
}

// offset returns the per-channel offset for the coefficients alpha, divided
// by the bound std.
func (l Lighting) offset(alpha ...float64) [3]float32 {
	val, vec := l.EigVal, l.EigVec
	if val == [3]float32{} && vec == [3][3]float32{} {
		val, vec = ImageNetPCAEigVal, ImageNetPCAEigVec
	}
	var off [3]float32
	for ch := range 3 {
		var s float64
		for j := range 3 {
			s += float64(vec[ch][j]) * alpha[j] * float64(val[j])
		}
		off[ch] = float32(s)
		if l.std != nil {
			off[ch] /= l.std[ch]
		}
	}
	return off
}
