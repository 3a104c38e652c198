package data

import (
	"math/rand/v2"
	"testing"
)

const F = -9 // Fill value used in the crop tests.

func TestRandomCropCropAt(t *testing.T) {
	// 3x3 single-channel image:
	//   1 2 3
	//   4 5 6
	//   7 8 9
	src := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	crop := RandomCrop{Pad: 1, Fill: []float32{F}}
	for _, tc := range []struct {
		dy, dx int
		want   []float32
	}{
		{1, 1, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}}, // Centre: identity.
		{0, 0, []float32{F, F, F, F, 1, 2, F, 4, 5}}, // Top-left of the padded image.
		{2, 2, []float32{5, 6, F, 8, 9, F, F, F, F}}, // Bottom-right.
		{0, 2, []float32{F, F, F, 2, 3, F, 5, 6, F}}, // Top-right.
		{1, 0, []float32{F, 1, 2, F, 4, 5, F, 7, 8}}, // Middle-left.
		{2, 1, []float32{4, 5, 6, 7, 8, 9, F, F, F}}, // Bottom-centre.
	} {
		dst := make([]float32, 9)
		crop.cropAt(3, 3, 1, src, dst, tc.dy, tc.dx)
		if !equalSlices(dst, tc.want) {
			t.Errorf("cropAt(dy=%d, dx=%d) = %v, want %v", tc.dy, tc.dx, dst, tc.want)
		}
	}

	// Pad larger than the image: fully outside windows are all fill.
	dst := make([]float32, 4)
	RandomCrop{Pad: 3, Fill: []float32{F}}.cropAt(2, 2, 1, []float32{1, 2, 3, 4}, dst, 0, 0)
	if want := []float32{F, F, F, F}; !equalSlices(dst, want) {
		t.Errorf("far crop = %v, want %v", dst, want)
	}
	RandomCrop{Pad: 3, Fill: []float32{F}}.cropAt(2, 2, 1, []float32{1, 2, 3, 4}, dst, 2, 4)
	if want := []float32{F, F, 2, F}; !equalSlices(dst, want) { // dst[y,x] = src[y-1,x+1].
		t.Errorf("crop(2,4) = %v, want %v", dst, want)
	}
}

func TestRandomCropMultiChannel(t *testing.T) {
	// 2x2 image with 2 channels (HWC): pixel (y,x) = (10*y+x, -(10*y+x)) + 1.
	src := []float32{1, -1, 2, -2, 11, -11, 12, -12}
	crop := RandomCrop{Pad: 1, Fill: []float32{100, 200}}
	dst := make([]float32, 8)
	crop.cropAt(2, 2, 2, src, dst, 0, 2) // Window at (0, 2) of the padded image: dst[y,x] = src[y-1,x+1].
	want := []float32{100, 200, 100, 200, 2, -2, 100, 200}
	if !equalSlices(dst, want) {
		t.Errorf("cropAt = %v, want %v", dst, want)
	}
}

func TestRandomCropAugmentUsesRNG(t *testing.T) {
	src := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	crop := RandomCrop{Pad: 1, Fill: []float32{F}}
	seen := map[[2]int]bool{}
	for seed := range uint64(200) {
		// A twin generator predicts the offsets: dy first, then dx, in [0, 2*Pad].
		twin := rand.New(rand.NewPCG(seed, 7))
		dy, dx := twin.IntN(3), twin.IntN(3)
		seen[[2]int{dy, dx}] = true
		want := make([]float32, 9)
		crop.cropAt(3, 3, 1, src, want, dy, dx)
		got := make([]float32, 9)
		crop.Augment(rand.New(rand.NewPCG(seed, 7)), 3, 3, 1, src, got)
		if !equalSlices(got, want) {
			t.Fatalf("seed %d: Augment = %v, want cropAt(%d, %d) = %v", seed, got, dy, dx, want)
		}
	}
	if len(seen) != 9 {
		t.Errorf("only %d of the 9 offsets were drawn", len(seen))
	}
	// Pad 0 copies.
	got := make([]float32, 9)
	RandomCrop{}.Augment(rand.New(rand.NewPCG(1, 2)), 3, 3, 1, src, got)
	if !equalSlices(got, src) {
		t.Errorf("Pad 0: %v", got)
	}
}

func TestRandomCropBindNormalization(t *testing.T) {
	bound := RandomCrop{Pad: 2}.BindNormalization([]float32{0.5, 0.25}, []float32{0.5, 0.25}).(RandomCrop)
	if bound.Pad != 2 || !equalSlices(bound.Fill, []float32{-1, -1}) {
		t.Errorf("bound = %+v, want Pad 2, Fill [-1 -1]", bound)
	}
	// MNIST: padding is the normalised black pixel, as torchvision's pad-then-normalise gives.
	bound = RandomCrop{Pad: 1}.BindNormalization([]float32{MNISTMean}, []float32{MNISTStd}).(RandomCrop)
	if want := (0 - MNISTMean) / MNISTStd; bound.Fill[0] != want {
		t.Errorf("MNIST fill = %v, want %v", bound.Fill[0], want)
	}
	// An explicit Fill is kept.
	explicit := RandomCrop{Pad: 1, Fill: []float32{3}}.BindNormalization([]float32{0.5}, []float32{0.5}).(RandomCrop)
	if !equalSlices(explicit.Fill, []float32{3}) {
		t.Errorf("explicit fill replaced: %v", explicit.Fill)
	}
	// Compose binds its children.
	c := Compose(HFlip{}, RandomCrop{Pad: 1}).(NormalizationBinder).BindNormalization([]float32{0.5}, []float32{0.5}).(*composed)
	if fill := c.augs[1].(RandomCrop).Fill; !equalSlices(fill, []float32{-1}) {
		t.Errorf("Compose did not bind RandomCrop: Fill=%v", fill)
	}
}

func TestHFlip(t *testing.T) {
	// 2x3 image with 2 channels (HWC), values 10*y + x and 100 + 10*y + x.
	src := []float32{0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112}
	flipped := []float32{2, 102, 1, 101, 0, 100, 12, 112, 11, 111, 10, 110}
	flips := 0
	for seed := range uint64(200) {
		twin := rand.New(rand.NewPCG(seed, 1))
		want := src
		if twin.Float64() < 0.5 {
			want = flipped
			flips++
		}
		got := make([]float32, len(src))
		HFlip{}.Augment(rand.New(rand.NewPCG(seed, 1)), 2, 3, 2, src, got)
		if !equalSlices(got, want) {
			t.Fatalf("seed %d: HFlip = %v, want %v", seed, got, want)
		}
	}
	if flips < 70 || flips > 130 {
		t.Errorf("%d flips out of 200, want about 100", flips)
	}
	// Odd and even widths, single channel.
	got := make([]float32, 4)
	hflip(1, 4, 1, []float32{1, 2, 3, 4}, got)
	if want := []float32{4, 3, 2, 1}; !equalSlices(got, want) {
		t.Errorf("hflip = %v, want %v", got, want)
	}
}

// fixedFlip always flips; shift adds a constant. They test Compose's order.
type fixedFlip struct{}

func (fixedFlip) Augment(_ *rand.Rand, h, w, c int, src, dst []float32) { hflip(h, w, c, src, dst) }

type shift struct{ add float32 }

func (s shift) Augment(_ *rand.Rand, h, w, c int, src, dst []float32) {
	for i := range h * w * c {
		dst[i] = src[i] + s.add
	}
}

func TestCompose(t *testing.T) {
	src := []float32{1, 2, 3}
	rng := rand.New(rand.NewPCG(1, 1))
	for _, tc := range []struct {
		aug  Augmenter
		want []float32
	}{
		{Compose(), []float32{1, 2, 3}},
		{Compose(nil, shift{1}), []float32{2, 3, 4}},
		{Compose(fixedFlip{}, shift{10}), []float32{13, 12, 11}},
		{Compose(shift{1}, shift{2}, fixedFlip{}, shift{3}), []float32{9, 8, 7}},
		{Compose(fixedFlip{}, fixedFlip{}, fixedFlip{}, fixedFlip{}, fixedFlip{}), []float32{3, 2, 1}},
		{Compose(RandomCrop{Pad: 1, Fill: []float32{F}}, RandomCrop{}), nil}, // Checked below against twin.
	} {
		got := make([]float32, 3)
		tc.aug.Augment(rng, 1, 3, 1, src, got)
		if tc.want != nil && !equalSlices(got, tc.want) {
			t.Errorf("%#v: got %v, want %v", tc.aug, got, tc.want)
		}
		if !equalSlices(src, []float32{1, 2, 3}) {
			t.Fatalf("src modified: %v", src)
		}
	}
	// Randomised augmenters in a Compose draw from the shared rng in order.
	for seed := range uint64(50) {
		twin := rand.New(rand.NewPCG(seed, 3))
		crop := RandomCrop{Pad: 1, Fill: []float32{F}}
		step := make([]float32, 3)
		crop.Augment(twin, 1, 3, 1, src, step)
		want := make([]float32, 3)
		HFlip{}.Augment(twin, 1, 3, 1, step, want)
		got := make([]float32, 3)
		Compose(crop, HFlip{}).Augment(rand.New(rand.NewPCG(seed, 3)), 1, 3, 1, src, got)
		if !equalSlices(got, want) {
			t.Fatalf("seed %d: Compose(crop, flip) = %v, want %v", seed, got, want)
		}
	}
}
