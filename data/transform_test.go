package data

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMakeCoeffs(t *testing.T) {
	approx := func(got []float32, want ...float64) bool {
		for i, w := range want {
			if math.Abs(float64(got[i])-w) > 1e-7 {
				return false
			}
		}
		return true
	}
	// Same size: identity taps (weight 1, then 0).
	c := makeCoeffs(5, 5, 0, 5, 1)
	for o := range 5 {
		if c.start[o] != o || c.w[o*c.k] != 1 || (c.n[o] > 1 && c.w[o*c.k+1] != 0) {
			t.Errorf("identity output %d: start %d n %d w %v", o, c.start[o], c.n[o], c.w[o*c.k:o*c.k+c.n[o]])
		}
	}
	// Halving (PIL's antialiased bilinear): triangle of half-width 2.
	c = makeCoeffs(4, 2, 0, 2, 1)
	if c.start[0] != 0 || c.n[0] != 3 || !approx(c.w[0:], 3./7, 3./7, 1./7) ||
		c.start[1] != 1 || c.n[1] != 3 || !approx(c.w[c.k:], 1./7, 3./7, 3./7) {
		t.Errorf("4->2: %+v", c)
	}
	// Doubling: plain bilinear with half-pixel centres.
	c = makeCoeffs(2, 4, 0, 4, 1)
	if c.start[0] != 0 || c.n[0] != 1 || !approx(c.w[0:], 1) ||
		c.start[1] != 0 || c.n[1] != 2 || !approx(c.w[c.k:], 0.75, 0.25) ||
		c.start[2] != 0 || c.n[2] != 2 || !approx(c.w[2*c.k:], 0.25, 0.75) ||
		c.start[3] != 1 || c.n[3] != 1 || !approx(c.w[3*c.k:], 1) {
		t.Errorf("2->4: %+v", c)
	}
	// A sub-range of outputs has the same taps as the full range.
	full, part := makeCoeffs(9, 4, 0, 4, 1), makeCoeffs(9, 4, 2, 2, 1)
	if part.start[0] != full.start[2] || part.n[1] != full.n[3] || !equalSlices(part.w, full.w[2*full.k:]) {
		t.Errorf("sub-range taps differ: %+v vs %+v", part, full)
	}
}

func TestResampleUpscaleRow(t *testing.T) {
	img := RawImage{H: 1, W: 2, C: 1, Pix: []uint8{0, 200}}
	dst := make([]float32, 4)
	resampleBox(img, 0, 0, 1, 2, 1, 4, 0, 0, 1, 4, dst)
	if ok, i := closeSlices(dst, []float32{0, 50. / 255, 150. / 255, 200. / 255}, 1e-7); !ok {
		t.Errorf("1x2 -> 1x4: %v (index %d)", dst, i)
	}
}

func constantImage(h, w int, rgb ...uint8) RawImage {
	img := RawImage{H: h, W: w, C: len(rgb), Pix: make([]uint8, h*w*len(rgb))}
	for i := range img.Pix {
		img.Pix[i] = rgb[i%len(rgb)]
	}
	return img
}

func TestResizeConstantImage(t *testing.T) {
	img := constantImage(37, 23, 200, 100, 0)
	want := []float32{200. / 255, 100. / 255, 0}
	check := func(desc string, dst []float32) {
		t.Helper()
		for i, v := range dst {
			if math.Abs(float64(v-want[i%3])) > 1e-6 {
				t.Fatalf("%s: value %d = %v, want %v", desc, i, v, want[i%3])
			}
		}
	}
	for _, tr := range []Transform{ResizeCenterCrop{Size: 16}, ResizeCenterCrop{Size: 16, Resize: 100}, ResizeCenterCrop{Size: 3, Resize: 7}} {
		h, w := tr.OutputSize()
		dst := make([]float32, h*w*3)
		tr.Apply(nil, img, dst)
		check("ResizeCenterCrop", dst)
	}
	dst := make([]float32, 16*16*3)
	for seed := range uint64(50) {
		RandomResizedCrop{Size: 16}.Apply(rand.New(rand.NewPCG(seed, 0)), img, dst)
		check("RandomResizedCrop", dst)
	}
}

func TestResizeCenterCrop(t *testing.T) {
	for _, tc := range []struct {
		r              ResizeCenterCrop
		h, w, oh, ow   int
		wantTop, wantL int
	}{
		{ResizeCenterCrop{Size: 224}, 375, 500, 256, 341, 16, 58},
		{ResizeCenterCrop{Size: 224}, 500, 375, 341, 256, 58, 16},
		{ResizeCenterCrop{Size: 224, Resize: 224}, 224, 300, 224, 300, 0, 38},
		{ResizeCenterCrop{Size: 2, Resize: 1}, 10, 10, 2, 2, 0, 0},
	} {
		if oh, ow, top, left := tc.r.cropBox(tc.h, tc.w); oh != tc.oh || ow != tc.ow || top != tc.wantTop || left != tc.wantL {
			t.Errorf("%+v.cropBox(%d, %d) = %d, %d, %d, %d, want %d, %d, %d, %d", tc.r, tc.h, tc.w, oh, ow, top, left,
				tc.oh, tc.ow, tc.wantTop, tc.wantL)
		}
	}

	// No resize (the shorter side is already Resize): an exact centre crop.
	// 5x7 image, 2 channels; crop 2x2 at top round(1.5)=2, left round(2.5)=2
	// (Python rounds half to even).
	img := RawImage{H: 5, W: 7, C: 2, Pix: make([]uint8, 5*7*2)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 3)
	}
	for _, tc := range []struct {
		img       RawImage
		top, left int
	}{
		{img, 2, 2},
		{RawImage{H: 4, W: 6, C: 2, Pix: img.Pix[:48]}, 1, 2},
	} {
		dst := make([]float32, 2*2*2)
		ResizeCenterCrop{Size: 2, Resize: min(tc.img.H, tc.img.W)}.Apply(nil, tc.img, dst)
		var want []float32
		for y := tc.top; y < tc.top+2; y++ {
			for x := tc.left; x < tc.left+2; x++ {
				for ch := range 2 {
					want = append(want, float32(tc.img.Pix[(y*tc.img.W+x)*2+ch])*float32(1.0/255))
				}
			}
		}
		if !equalSlices(dst, want) {
			t.Errorf("%dx%d centre crop = %v, want %v", tc.img.H, tc.img.W, dst, want)
		}
	}
}

func TestRandomResizedCropParams(t *testing.T) {
	r := RandomResizedCrop{Size: 8}
	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		top, left, h, w := r.cropParams(rng, 375, 500)
		if h <= 0 || w <= 0 || top < 0 || left < 0 || top+h > 375 || left+w > 500 {
			t.Fatalf("seed %d: crop (%d, %d, %d, %d) out of the 375x500 image", seed, top, left, h, w)
		}
		area := float64(h*w) / (375 * 500)
		if area < 0.075 || area > 1 {
			t.Errorf("seed %d: crop area fraction %.3f", seed, area)
		}
		if ratio := float64(w) / float64(h); ratio < 0.74 || ratio > 1.35 {
			t.Errorf("seed %d: crop ratio %.3f", seed, ratio)
		}
	}
	// Impossible crops fall back to a centred crop clamped to the ratio range.
	if top, left, h, w := r.cropParams(rand.New(rand.NewPCG(1, 1)), 1, 100); top != 0 || left != 49 || h != 1 || w != 1 {
		t.Errorf("1x100 fallback = (%d, %d, %d, %d), want (0, 49, 1, 1)", top, left, h, w)
	}
	if top, left, h, w := r.cropParams(rand.New(rand.NewPCG(1, 1)), 100, 2); top != 48 || left != 0 || h != 3 || w != 2 {
		t.Errorf("100x2 fallback = (%d, %d, %d, %d), want (48, 0, 3, 2)", top, left, h, w)
	}

	// Scale and ratio 1 on a square image: the whole image, unresized.
	img := RawImage{H: 8, W: 8, C: 1, Pix: make([]uint8, 64)}
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 4)
	}
	dst := make([]float32, 64)
	RandomResizedCrop{Size: 8, Scale: [2]float64{1, 1}, Ratio: [2]float64{1, 1}}.Apply(rand.New(rand.NewPCG(3, 3)), img, dst)
	for i, v := range dst {
		if v != float32(img.Pix[i])*float32(1.0/255) {
			t.Fatalf("identity crop value %d = %v, want %v/255", i, v, img.Pix[i])
		}
	}
	// A quarter of the area at ratio 1, output at the crop's size: an exact
	// 4x4 window, at every offset.
	seen := map[[2]int]bool{}
	crop := RandomResizedCrop{Size: 4, Scale: [2]float64{0.25, 0.25}, Ratio: [2]float64{1, 1}}
	out := make([]float32, 16)
	for seed := range uint64(400) {
		crop.Apply(rand.New(rand.NewPCG(seed, 0)), img, out)
		top, left := int(math.Round(float64(out[0])*255/4))/8, int(math.Round(float64(out[0])*255/4))%8
		seen[[2]int{top, left}] = true
		for y := range 4 {
			for x := range 4 {
				if want := float32(img.Pix[(top+y)*8+left+x]) * float32(1.0/255); out[y*4+x] != want {
					t.Fatalf("seed %d: window (%d,%d) value (%d,%d) = %v, want %v", seed, top, left, y, x, out[y*4+x], want)
				}
			}
		}
	}
	if len(seen) != 25 {
		t.Errorf("%d of the 25 window offsets drawn", len(seen))
	}
}

func TestColorJitter(t *testing.T) {
	// 1x2 RGB image on the 0..1 scale.
	src := []float32{0.2, 0.4, 0.6, 0.9, 0.8, 0.1}
	dst := make([]float32, 6)
	for seed := range uint64(50) {
		twin := rand.New(rand.NewPCG(seed, 2))
		f := float32(0.6 + 0.8*twin.Float64()) // Brightness 0.4: [0.6, 1.4].
		ColorJitter{Brightness: 0.4}.Augment(rand.New(rand.NewPCG(seed, 2)), 1, 2, 3, src, dst)
		for i, v := range src {
			if want := min(max(v*f, 0), 1); math.Abs(float64(dst[i]-want)) > 1e-6 {
				t.Fatalf("seed %d brightness %v: value %d = %v, want %v", seed, f, i, dst[i], want)
			}
		}
		twin = rand.New(rand.NewPCG(seed, 2))
		f = float32(twin.Float64() * 2) // Contrast 1: [0, 2].
		ColorJitter{Contrast: 1}.Augment(rand.New(rand.NewPCG(seed, 2)), 1, 2, 3, src, dst)
		m := float32((0.299*0.2 + 0.587*0.4 + 0.114*0.6 + 0.299*0.9 + 0.587*0.8 + 0.114*0.1) / 2)
		for i, v := range src {
			if want := min(max(f*v+(1-f)*m, 0), 1); math.Abs(float64(dst[i]-want)) > 1e-6 {
				t.Fatalf("seed %d contrast %v: value %d = %v, want %v", seed, f, i, dst[i], want)
			}
		}
		twin = rand.New(rand.NewPCG(seed, 2))
		f = float32(0.5 + twin.Float64()) // Saturation 0.5: [0.5, 1.5].
		ColorJitter{Saturation: 0.5}.Augment(rand.New(rand.NewPCG(seed, 2)), 1, 2, 3, src, dst)
		for p := range 2 {
			g := 0.299*src[3*p] + 0.587*src[3*p+1] + 0.114*src[3*p+2]
			for ch := range 3 {
				if want := min(max(f*src[3*p+ch]+(1-f)*g, 0), 1); math.Abs(float64(dst[3*p+ch]-want)) > 1e-6 {
					t.Fatalf("seed %d saturation %v: pixel %d channel %d = %v, want %v", seed, f, p, ch, dst[3*p+ch], want)
				}
			}
		}
		// All three: values stay in [0, 1].
		ColorJitter{Brightness: 2, Contrast: 2, Saturation: 2}.Augment(rand.New(rand.NewPCG(seed, 2)), 1, 2, 3, src, dst)
		for i, v := range dst {
			if v < 0 || v > 1 {
				t.Fatalf("seed %d: value %d = %v out of [0, 1]", seed, i, v)
			}
		}
	}
	// One channel, bound: contrast blends with the image mean.
	grey := []float32{(0.2 - 0.5) / 0.25, (0.6 - 0.5) / 0.25}
	twin := rand.New(rand.NewPCG(7, 7))
	f := float32(twin.Float64() * 2)
	ColorJitter{Contrast: 1}.BindNormalization([]float32{0.5}, []float32{0.25}).Augment(rand.New(rand.NewPCG(7, 7)), 1, 2, 1, grey, dst[:2])
	for i, v := range []float32{0.2, 0.6} {
		if want := (min(max(f*v+(1-f)*0.4, 0), 1) - 0.5) / 0.25; math.Abs(float64(dst[i]-want)) > 1e-5 {
			t.Errorf("1-channel contrast %v: value %d = %v, want %v", f, i, dst[i], want)
		}
	}
	// Bound to a normalisation, no jitter round-trips the normalised values.
	mean, std := []float32{0.5, 0.4, 0.3}, []float32{0.2, 0.25, 0.3}
	norm := make([]float32, 6)
	for i, v := range src {
		norm[i] = (v - mean[i%3]) / std[i%3]
	}
	ColorJitter{}.BindNormalization(mean, std).Augment(rand.New(rand.NewPCG(1, 1)), 1, 2, 3, norm, dst)
	if ok, i := closeSlices(dst, norm, 1e-6); !ok {
		t.Errorf("bound identity jitter: value %d = %v, want %v", i, dst[i], norm[i])
	}
}

func TestLighting(t *testing.T) {
	src := []float32{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}
	dst := make([]float32, 6)
	for seed := range uint64(20) {
		twin := rand.New(rand.NewPCG(seed, 9))
		var alpha [3]float64
		for j := range alpha {
			alpha[j] = twin.NormFloat64() * 0.1
		}
		var off [3]float64
		for ch := range 3 {
			for j := range 3 {
				off[ch] += float64(ImageNetPCAEigVec[ch][j]) * alpha[j] * float64(ImageNetPCAEigVal[j])
			}
		}
		Lighting{AlphaStd: 0.1}.Augment(rand.New(rand.NewPCG(seed, 9)), 1, 2, 3, src, dst)
		for i, v := range src {
			if want := v + float32(off[i%3]); math.Abs(float64(dst[i]-want)) > 1e-7 {
				t.Fatalf("seed %d: value %d = %v, want %v", seed, i, dst[i], want)
			}
		}
		std := []float32{0.5, 0.25, 2}
		Lighting{AlphaStd: 0.1}.BindNormalization(nil, std).Augment(rand.New(rand.NewPCG(seed, 9)), 1, 2, 3, src, dst)
		for i, v := range src {
			if want := v + float32(off[i%3])/std[i%3]; math.Abs(float64(dst[i]-want)) > 1e-6 {
				t.Fatalf("seed %d bound: value %d = %v, want %v", seed, i, dst[i], want)
			}
		}
	}
	// Custom eigen-decomposition: identity vectors, offset = alpha * value.
	l := Lighting{AlphaStd: 1, EigVal: [3]float32{1, 2, 3}, EigVec: [3][3]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}}
	if off := l.offset(1, 1, 1); off != [3]float32{1, 2, 3} {
		t.Errorf("custom offset %v", off)
	}
}
