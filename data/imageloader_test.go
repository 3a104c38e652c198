package data

import (
	"fmt"
	"image"
	"iter"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"
)

func closeSlices(a, b []float32, tol float64) (bool, int) {
	if len(a) != len(b) {
		return false, -1
	}
	for i := range a {
		if math.Abs(float64(a[i]-b[i])) > tol {
			return false, i
		}
	}
	return true, 0
}

// An ImageSet served by an ImageLoader with an identity transform gives the
// Loader's batches: same order, same normalisation, same augmentation.
func TestImageLoaderImageSetMatchesLoader(t *testing.T) {
	set := tinySet(23, 5, 5, 3)
	aug := Compose(RandomCrop{Pad: 1}, HFlip{})
	for _, augment := range []Augmenter{nil, aug} {
		want := collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 4, Shuffle: true, Seed: 9, Augment: augment, Workers: 2}).Iter())
		l := NewImageLoader(set, ImageLoaderOptions{BatchSize: 4, Shuffle: true, Seed: 9, Augment: augment, Workers: 3,
			Transform: ResizeCenterCrop{Size: 5, Resize: 5}})
		if l.Name() != "tiny" || l.NumBatches() != 6 {
			t.Errorf("Name()=%q NumBatches()=%d", l.Name(), l.NumBatches())
		}
		got := collectEpoch(t, l.Iter())
		if !slices.EqualFunc(got.shapes, want.shapes, slices.Equal) || !equalSlices(got.labels, want.labels) {
			t.Fatalf("augment=%v: shapes %v labels %v, want %v %v", augment != nil, got.shapes, got.labels, want.shapes, want.labels)
		}
		if ok, i := closeSlices(got.inputs, want.inputs, 1e-5); !ok {
			t.Errorf("augment=%v: input %d = %v, want %v", augment != nil, i, got.inputs[i], want.inputs[i])
		}
	}
}

// imageFolder writes 3 classes of 4 images of various sizes (PNG and JPEG).
func imageFolder(t *testing.T) string {
	root := t.TempDir()
	files := map[string][]byte{}
	for c, class := range []string{"ant", "bee", "cow"} {
		for i := range 4 {
			img := testImage(20+7*i+c, 30-5*i, 4*c+i)
			if i%2 == 0 {
				files[fmt.Sprintf("%s/%d.png", class, i)] = encodePNG(t, img)
			} else {
				files[fmt.Sprintf("%s/%d.JPEG", class, i)] = encodeJPEG(t, img, 90)
			}
		}
	}
	writeTree(t, root, files)
	return root
}

func TestImageLoaderFolderTrain(t *testing.T) {
	root := imageFolder(t)
	s, err := LoadImageFolder(root, FolderOptions{Name: "tiny-folder"})
	if err != nil {
		t.Fatal(err)
	}
	var ref []epochData
	for _, workers := range []int{1, 2, 5} {
		opts := ImageNetTrainOptions(5, 16, 3)
		opts.Workers = workers
		l := NewImageLoader(s, opts)
		if l.Name() != "tiny-folder" || l.NumBatches() != 3 {
			t.Errorf("Name()=%q NumBatches()=%d", l.Name(), l.NumBatches())
		}
		l.SetEpoch(4)
		got := []epochData{collectEpoch(t, l.Iter()), collectEpoch(t, l.Iter())}
		if l.Epoch() != 6 {
			t.Errorf("Epoch() = %d", l.Epoch())
		}
		if ref == nil {
			ref = got
			continue
		}
		for e := range got {
			if !equalSlices(got[e].inputs, ref[e].inputs) || !equalSlices(got[e].labels, ref[e].labels) {
				t.Errorf("workers=%d: epoch %d differs from workers=1", workers, e+4)
			}
		}
	}
	d := ref[0]
	if !slices.EqualFunc(d.shapes, [][]int{{5, 16, 16, 3}, {5, 16, 16, 3}, {2, 16, 16, 3}}, slices.Equal) {
		t.Errorf("shapes %v", d.shapes)
	}
	if sorted := slices.Sorted(slices.Values(d.labels)); !equalSlices(sorted, []int32{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}) {
		t.Errorf("labels %v", d.labels)
	}
	if slices.IsSorted(d.labels) && slices.IsSorted(ref[1].labels) {
		t.Error("not shuffled")
	}
	if equalSlices(ref[0].inputs, ref[1].inputs) {
		t.Error("two epochs gave the same inputs")
	}
	for i, v := range d.inputs {
		if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 5 {
			t.Fatalf("input %d = %v", i, v)
		}
	}
	// A replayed epoch and a fresh loader reproduce the inputs.
	l := NewImageLoader(s, ImageNetTrainOptions(5, 16, 3))
	l.SetEpoch(4)
	if again := collectEpoch(t, l.Iter()); !equalSlices(again.inputs, d.inputs) {
		t.Error("epoch 4 not reproduced")
	}
	// Another seed differs.
	if other := collectEpoch(t, NewImageLoader(s, ImageNetTrainOptions(5, 16, 4)).Iter()); equalSlices(other.inputs, collectEpoch(t, NewImageLoader(s, ImageNetTrainOptions(5, 16, 3)).Iter()).inputs) {
		t.Error("seeds 3 and 4 gave the same inputs")
	}
}

func TestImageLoaderFolderEval(t *testing.T) {
	root := imageFolder(t)
	// A constant-colour image: every output pixel is its normalised colour.
	constant := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for i := 0; i < len(constant.Pix); i += 4 {
		copy(constant.Pix[i:], []uint8{200, 100, 50, 255})
	}
	writeTree(t, root, map[string][]byte{"dog/const.png": encodePNG(t, constant)})
	s, err := LoadImageFolder(root, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := NewImageLoader(s, ImageNetEvalOptions(4, 8))
	a, b := collectEpoch(t, l.Iter()), collectEpoch(t, l.Iter())
	if !equalSlices(a.inputs, b.inputs) || !equalSlices(a.labels, []int32{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3}) {
		t.Errorf("eval epochs differ or labels %v", a.labels)
	}
	last := a.inputs[12*8*8*3:]
	for i, v := range last {
		ch := i % 3
		want := ([]float32{200, 100, 50}[ch]/255 - ImageNetMean[ch]) / ImageNetStd[ch]
		if math.Abs(float64(v-want)) > 1e-5 {
			t.Fatalf("constant image value %d = %v, want %v", i, v, want)
		}
	}
	// Explicit normalisation overrides the source's.
	l = NewImageLoader(s, ImageLoaderOptions{BatchSize: 13, Transform: ResizeCenterCrop{Size: 8}, Mean: []float32{0}, Std: []float32{1}})
	d := collectEpoch(t, l.Iter())
	for i, v := range d.inputs[12*8*8*3:] {
		if want := []float32{200, 100, 50}[i%3] / 255; math.Abs(float64(v-want)) > 1e-6 {
			t.Fatalf("unnormalised value %d = %v, want %v", i, v, want)
		}
	}
}

func TestImageLoaderErrors(t *testing.T) {
	firstErr := func(l *ImageLoader) error {
		for _, err := range l.Iter() {
			return err
		}
		return nil
	}
	base := runtime.NumGoroutine()
	set := tinySet(10, 4, 4, 1)
	tr := ResizeCenterCrop{Size: 4}
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{Transform: tr})), `data.ImageLoader("tiny")`, "BatchSize=0")
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{BatchSize: 2})), "no Transform")
	wantErr(t, firstErr(NewImageLoader(nil, ImageLoaderOptions{BatchSize: 2, Transform: tr})), "nil Source")
	var nilSet *ImageSet
	wantErr(t, firstErr(NewImageLoader(nilSet, ImageLoaderOptions{BatchSize: 2, Transform: tr})), "nil Source")
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{BatchSize: 2, Transform: tr, Mean: []float32{0, 0}})), "len(Mean)=2")
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{BatchSize: 2, Transform: tr, Std: []float32{0}})), "channel 0", "Std 0")
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{BatchSize: 2, Transform: ResizeCenterCrop{}})), "output size 0x0")
	wantErr(t, firstErr(NewImageLoader(set, ImageLoaderOptions{BatchSize: 2, Transform: tr, Augment: Lighting{AlphaStd: 0.1}, Workers: 3})),
		"batch 0 of epoch 0", "image at position 0: panic: data.Lighting: needs 3-channel (RGB) images, got 1 channels")
	bad := tinySet(10, 4, 4, 1)
	bad.Labels[3] = 99
	wantErr(t, firstErr(NewImageLoader(bad, ImageLoaderOptions{BatchSize: 2, Transform: tr})), "label #3 is 99")
	waitGoroutines(t, base)
	if n := NewImageLoader(nil, ImageLoaderOptions{BatchSize: 2}).NumBatches(); n != 0 {
		t.Errorf("NumBatches() = %d for a nil source", n)
	}
	// Empty and DropLast.
	if d := collectEpoch(t, NewImageLoader(set.Subset(0, 0), ImageLoaderOptions{BatchSize: 2, Transform: tr}).Iter()); len(d.shapes) != 0 {
		t.Errorf("empty set gave %v", d.shapes)
	}
	d := collectEpoch(t, NewImageLoader(set, ImageLoaderOptions{BatchSize: 4, Transform: tr, DropLast: true}).Iter())
	if !slices.EqualFunc(d.shapes, [][]int{{4, 4, 4, 1}, {4, 4, 4, 1}}, slices.Equal) {
		t.Errorf("DropLast shapes %v", d.shapes)
	}
}

func TestImageLoaderNoGoroutineLeak(t *testing.T) {
	set := tinySet(200, 8, 8, 3)
	base := runtime.NumGoroutine()
	l := NewImageLoader(set, ImageLoaderOptions{BatchSize: 2, Shuffle: true, Workers: 6, ReadAhead: 3,
		Transform: RandomResizedCrop{Size: 6}, Augment: Compose(HFlip{}, ColorJitter{Brightness: 0.4})})
	for _, stopAfter := range []int{1, 2, 10} {
		n := 0
		for batch, err := range l.Iter() {
			if err != nil {
				t.Fatal(err)
			}
			_ = batch.Finalize()
			if n++; n == stopAfter {
				break
			}
		}
		waitGoroutines(t, base)
	}
	next, stop := iter.Pull2(l.Iter())
	for range 3 {
		batch, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		_ = batch.Finalize()
	}
	time.Sleep(10 * time.Millisecond)
	stop()
	waitGoroutines(t, base)
	if d := collectEpoch(t, l.Iter()); len(d.labels) != 200 {
		t.Errorf("full epoch had %d images", len(d.labels))
	}
	waitGoroutines(t, base)
}

// The colour-jitter and lighting augmenters see the same image as torchvision
// would: un-normalised, jittered and normalised again.
func TestImageLoaderAugmentOnUnitScale(t *testing.T) {
	set := &ImageSet{Name: "grey", N: 1, H: 2, W: 2, C: 3, NumClasses: 1, Labels: []int32{0},
		Pixels: []uint8{100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100}}
	// Saturation on a grey image is the identity, whatever the factor.
	l := NewImageLoader(set, ImageLoaderOptions{BatchSize: 1, Transform: ResizeCenterCrop{Size: 2},
		Mean: ImageNetMean[:], Std: ImageNetStd[:], Augment: ColorJitter{Saturation: 0.9}})
	d := collectEpoch(t, l.Iter())
	for i, v := range d.inputs {
		if want := (float32(100)/255 - ImageNetMean[i%3]) / ImageNetStd[i%3]; math.Abs(float64(v-want)) > 1e-5 {
			t.Fatalf("value %d = %v, want %v", i, v, want)
		}
	}
}
