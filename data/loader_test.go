package data

import (
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
)

// tinySet returns n images of h x w x c whose labels are their indices
// (NumClasses = n) and whose first pixel byte is also the index mod 256.
func tinySet(n, h, w, c int) *ImageSet {
	size := h * w * c
	s := &ImageSet{Name: "tiny", N: n, H: h, W: w, C: c, NumClasses: max(n, 1),
		Pixels: make([]uint8, n*size), Labels: make([]int32, n)}
	for i := range n {
		s.Labels[i] = int32(i)
		for k := range size {
			s.Pixels[i*size+k] = uint8(i*7 + k*13)
		}
		s.Pixels[i*size] = uint8(i)
	}
	for ch := range c {
		s.Mean = append(s.Mean, 0.1*float32(ch+1))
		s.Std = append(s.Std, 0.5+0.25*float32(ch))
	}
	return s
}

// epochData is the content of one epoch, copied out of the tensors.
type epochData struct {
	shapes [][]int   // Input dimensions of each batch.
	inputs []float32 // All inputs, concatenated.
	labels []int32   // All labels, concatenated.
}

func collectEpoch(t *testing.T, seq iter.Seq2[train.Batch, error]) epochData {
	t.Helper()
	var d epochData
	for batch, err := range seq {
		if err != nil {
			t.Fatalf("Iter: %v", err)
		}
		if len(batch.Inputs) != 1 || len(batch.Labels) != 1 {
			t.Fatalf("batch has %d inputs and %d labels, want 1 and 1", len(batch.Inputs), len(batch.Labels))
		}
		in, lb := batch.Inputs[0], batch.Labels[0]
		if in.DType() != dtypes.Float32 || lb.DType() != dtypes.Int32 {
			t.Fatalf("dtypes %s / %s, want Float32 / Int32", in.DType(), lb.DType())
		}
		dims := slices.Clone(in.Shape().Dimensions)
		if lbDims := lb.Shape().Dimensions; len(lbDims) != 1 || lbDims[0] != dims[0] {
			t.Fatalf("labels shape %s does not match inputs %s", lb.Shape(), in.Shape())
		}
		d.shapes = append(d.shapes, dims)
		d.inputs = append(d.inputs, tensors.MustCopyFlatData[float32](in)...)
		d.labels = append(d.labels, tensors.MustCopyFlatData[int32](lb)...)
		if err := batch.Finalize(); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func TestLoaderShapesAndDropLast(t *testing.T) {
	set := tinySet(10, 4, 3, 2)
	for _, tc := range []struct {
		n, batch   int
		dropLast   bool
		wantShapes [][]int
	}{
		{10, 4, false, [][]int{{4, 4, 3, 2}, {4, 4, 3, 2}, {2, 4, 3, 2}}},
		{10, 4, true, [][]int{{4, 4, 3, 2}, {4, 4, 3, 2}}},
		{8, 4, false, [][]int{{4, 4, 3, 2}, {4, 4, 3, 2}}},
		{8, 4, true, [][]int{{4, 4, 3, 2}, {4, 4, 3, 2}}},
		{3, 4, false, [][]int{{3, 4, 3, 2}}},
		{3, 4, true, nil},
		{0, 4, false, nil},
		{10, 1, false, slices.Repeat([][]int{{1, 4, 3, 2}}, 10)},
	} {
		t.Run(fmt.Sprintf("n=%d,batch=%d,dropLast=%v", tc.n, tc.batch, tc.dropLast), func(t *testing.T) {
			for _, shuffle := range []bool{false, true} {
				l := NewLoader(set.Subset(0, tc.n), LoaderOptions{BatchSize: tc.batch, DropLast: tc.dropLast, Shuffle: shuffle, Workers: 3})
				d := collectEpoch(t, l.Iter())
				if !slices.EqualFunc(d.shapes, tc.wantShapes, slices.Equal) {
					t.Errorf("shuffle=%v: batch shapes %v, want %v", shuffle, d.shapes, tc.wantShapes)
				}
				if l.NumBatches() != len(tc.wantShapes) {
					t.Errorf("NumBatches() = %d, want %d", l.NumBatches(), len(tc.wantShapes))
				}
				// Labels are distinct images of the set.
				seen := map[int32]bool{}
				for _, lb := range d.labels {
					if lb < 0 || int(lb) >= tc.n || seen[lb] {
						t.Errorf("shuffle=%v: bad or repeated label %d in %v", shuffle, lb, d.labels)
					}
					seen[lb] = true
				}
				if !shuffle && !slices.IsSorted(d.labels) {
					t.Errorf("unshuffled labels out of order: %v", d.labels)
				}
			}
		})
	}
}

func TestLoaderNormalisation(t *testing.T) {
	set := &ImageSet{Name: "norm", N: 2, H: 1, W: 2, C: 3, NumClasses: 2,
		Pixels: []uint8{0, 255, 51, 255, 0, 102, 1, 2, 3, 4, 5, 6},
		Labels: []int32{1, 0},
		Mean:   []float32{0.5, 0.2, 0.1},
		Std:    []float32{0.5, 0.4, 0.2},
	}
	d := collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 2}).Iter())
	// Hand-computed (x/255 - mean)/std for the first image.
	want := []float32{-1, 2, 0.5, 1, -0.5, 1.5}
	for i, w := range want {
		if math.Abs(float64(d.inputs[i]-w)) > 1e-6 {
			t.Errorf("input[%d] = %v, want %v", i, d.inputs[i], w)
		}
	}
	// All values against the formula.
	for i, v := range set.Pixels {
		ch := i % 3
		w := (float32(v)/255 - set.Mean[ch]) / set.Std[ch]
		if math.Abs(float64(d.inputs[i]-w)) > 1e-6 {
			t.Errorf("input[%d] = %v, want %v", i, d.inputs[i], w)
		}
	}
	if !equalSlices(d.labels, []int32{1, 0}) {
		t.Errorf("labels = %v", d.labels)
	}

	// Mean/Std of length 1 broadcast, and empty means plain x/255.
	set.Mean, set.Std = []float32{0.5}, []float32{0.5}
	d = collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 2}).Iter())
	if d.inputs[1] != 1 || d.inputs[2] != -0.6 {
		t.Errorf("broadcast stats: %v", d.inputs[:3])
	}
	set.Mean, set.Std = nil, nil
	d = collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 2}).Iter())
	if d.inputs[0] != 0 || d.inputs[1] != 1 || d.inputs[2] != 0.2 {
		t.Errorf("no stats: %v", d.inputs[:3])
	}
}

func TestLoaderMNIST(t *testing.T) {
	_, testSet := loadMNISTForTest(t)
	l := NewLoader(testSet, LoaderOptions{BatchSize: 256})
	if l.Name() != "mnist-test" || l.NumBatches() != 40 {
		t.Errorf("Name()=%q NumBatches()=%d", l.Name(), l.NumBatches())
	}
	next, stop := iter.Pull2(l.Iter())
	defer stop()
	batch, err, ok := next()
	if !ok || err != nil {
		t.Fatalf("first batch: ok=%v err=%v", ok, err)
	}
	defer batch.Finalize()
	if got := batch.Inputs[0].Shape().String(); got != "(Float32)[256, 28, 28, 1]" {
		t.Errorf("inputs shape %s", got)
	}
	inputs := tensors.MustCopyFlatData[float32](batch.Inputs[0])
	labels := tensors.MustCopyFlatData[int32](batch.Labels[0])
	if !equalSlices(labels, testSet.Labels[:256]) {
		t.Errorf("labels differ from the set's first 256")
	}
	black, white := float32((0-0.1307)/0.3081), float32((1-0.1307)/0.3081)
	sawWhite := false
	for i, v := range testSet.Pixels[:256*784] {
		w := (float32(v)/255 - MNISTMean) / MNISTStd
		if math.Abs(float64(inputs[i]-w)) > 1e-6 {
			t.Fatalf("input[%d] = %v for pixel %d, want %v", i, inputs[i], v, w)
		}
		if v == 0 && math.Abs(float64(inputs[i]-black)) > 1e-5 {
			t.Fatalf("black pixel normalised to %v, want %v", inputs[i], black)
		}
		if v == 255 {
			sawWhite = true
			if math.Abs(float64(inputs[i]-white)) > 1e-5 {
				t.Fatalf("white pixel normalised to %v, want %v", inputs[i], white)
			}
		}
	}
	if !sawWhite {
		t.Error("no white pixel in the first batch")
	}
}

func TestLoaderDeterministicShuffle(t *testing.T) {
	set := tinySet(100, 2, 2, 1)
	opts := LoaderOptions{BatchSize: 16, Shuffle: true, Seed: 42, Workers: 2}
	a := NewLoader(set, opts)
	a0, a1, a2 := collectEpoch(t, a.Iter()).labels, collectEpoch(t, a.Iter()).labels, collectEpoch(t, a.Iter()).labels
	if a.Epoch() != 3 {
		t.Errorf("Epoch() = %d after 3 Iter calls", a.Epoch())
	}
	b := NewLoader(set, opts)
	b0, b1 := collectEpoch(t, b.Iter()).labels, collectEpoch(t, b.Iter()).labels
	if !equalSlices(a0, b0) || !equalSlices(a1, b1) {
		t.Error("same (seed, epoch) gave different orders")
	}
	if equalSlices(a0, a1) || equalSlices(a1, a2) {
		t.Error("different epochs gave the same order")
	}
	if slices.IsSorted(a0) {
		t.Error("epoch 0 is not shuffled")
	}
	for e, labels := range [][]int32{a0, a1, a2} {
		sorted := slices.Sorted(slices.Values(labels))
		for i, v := range sorted {
			if int(v) != i {
				t.Fatalf("epoch %d is not a permutation of the set", e)
			}
		}
	}
	// A resumed run reproduces epoch 2.
	c := NewLoader(set, opts)
	c.SetEpoch(2)
	if c2 := collectEpoch(t, c.Iter()).labels; !equalSlices(c2, a2) {
		t.Error("SetEpoch(2) did not reproduce epoch 2")
	}
	if c.Epoch() != 3 {
		t.Errorf("Epoch() = %d after SetEpoch(2) and Iter", c.Epoch())
	}
	// Ranging the same Iter() value again replays its epoch.
	seq := c.Iter()
	first, again := collectEpoch(t, seq).labels, collectEpoch(t, seq).labels
	if !equalSlices(first, again) {
		t.Error("re-ranging an Iter() value gave a different order")
	}
	// Another seed gives another order.
	opts.Seed = 43
	if d0 := collectEpoch(t, NewLoader(set, opts).Iter()).labels; equalSlices(d0, a0) {
		t.Error("seeds 42 and 43 gave the same order")
	}
}

func TestLoaderIndependentOfWorkers(t *testing.T) {
	set := tinySet(61, 5, 4, 3)
	aug := Compose(RandomCrop{Pad: 2}, HFlip{})
	var ref []epochData
	for _, workers := range []int{1, 2, 3, 8, 0} {
		l := NewLoader(set, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 7, Augment: aug, Workers: workers})
		l.SetEpoch(5)
		got := []epochData{collectEpoch(t, l.Iter()), collectEpoch(t, l.Iter())}
		if ref == nil {
			ref = got
			continue
		}
		for e := range got {
			if !equalSlices(got[e].inputs, ref[e].inputs) || !equalSlices(got[e].labels, ref[e].labels) {
				t.Errorf("workers=%d: epoch %d differs from workers=1", workers, e+5)
			}
		}
	}
	// Augmentation did something, differently per epoch, and pads with the
	// normalised 0 pixel.
	plain := collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 8, Shuffle: true, Seed: 7}).Iter())
	if equalSlices(plain.inputs, ref[0].inputs) {
		t.Error("augmentation had no effect")
	}
	if equalSlices(ref[0].inputs, ref[1].inputs) {
		t.Error("two epochs have identical augmented inputs")
	}
	fills := 0
	for i, v := range ref[0].inputs {
		if ch := i % 3; v == (0-set.Mean[ch])/set.Std[ch] {
			fills++
		}
	}
	if fills == 0 {
		t.Error("no padded pixel with the normalised-zero value")
	}
}

func TestLoaderAugmentMatchesManual(t *testing.T) {
	// Without shuffle, image i of the epoch is image i of the set; check the
	// augmentation is a crop with the bound fill, by recomputing each image
	// over all crop offsets.
	set := tinySet(9, 3, 3, 1)
	mean, std := set.Mean[0], set.Std[0]
	d := collectEpoch(t, NewLoader(set, LoaderOptions{BatchSize: 4, Augment: RandomCrop{Pad: 1}, Workers: 2}).Iter())
	crop := RandomCrop{Pad: 1, Fill: []float32{-mean / std}}
	for i := range 9 {
		src := make([]float32, 9)
		for k, v := range set.Image(i) {
			src[k] = (float32(v)/255 - mean) / std
		}
		got := d.inputs[i*9 : (i+1)*9]
		match := false
		for dy := range 3 {
			for dx := range 3 {
				want := make([]float32, 9)
				crop.cropAt(3, 3, 1, src, want, dy, dx)
				match = match || equalSlices(got, want)
			}
		}
		if !match {
			t.Errorf("image %d: %v is not a padded crop of %v", i, got, src)
		}
	}
}

// waitGoroutines waits for the number of goroutines to drop to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still running, want <= %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLoaderNoGoroutineLeak(t *testing.T) {
	set := tinySet(200, 8, 8, 1)
	base := runtime.NumGoroutine()
	opts := LoaderOptions{BatchSize: 2, Shuffle: true, Workers: 6, Augment: HFlip{}}
	l := NewLoader(set, opts)

	for _, stopAfter := range []int{1, 2, 10} {
		n := 0
		for batch, err := range l.Iter() {
			if err != nil {
				t.Fatal(err)
			}
			_ = batch.Finalize()
			n++
			if n == stopAfter {
				break
			}
		}
		if n != stopAfter {
			t.Fatalf("got %d batches, want %d", n, stopAfter)
		}
		waitGoroutines(t, base)
	}

	// iter.Pull2, as train.Loop uses it.
	next, stop := iter.Pull2(l.Iter())
	for range 3 {
		batch, err, ok := next()
		if !ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		_ = batch.Finalize()
	}
	time.Sleep(10 * time.Millisecond) // Let the workers fill the read-ahead.
	stop()
	waitGoroutines(t, base)

	// Pull2 stopped before the first batch.
	_, stop = iter.Pull2(l.Iter())
	stop()
	waitGoroutines(t, base)

	// Full epoch.
	if d := collectEpoch(t, l.Iter()); len(d.labels) != 200 {
		t.Errorf("full epoch had %d images", len(d.labels))
	}
	waitGoroutines(t, base)
}

type panicky struct{}

func (panicky) Augment(*rand.Rand, int, int, int, []float32, []float32) { panic("boom") }

func TestLoaderErrors(t *testing.T) {
	firstErr := func(l *Loader) error {
		for _, err := range l.Iter() {
			return err
		}
		return nil
	}
	base := runtime.NumGoroutine()
	set := tinySet(10, 2, 2, 1)
	wantErr(t, firstErr(NewLoader(set, LoaderOptions{})), "tiny", "BatchSize=0")
	wantErr(t, firstErr(NewLoader(nil, LoaderOptions{BatchSize: 2})), "nil ImageSet")
	bad := tinySet(10, 2, 2, 1)
	bad.Labels[3] = 99
	wantErr(t, firstErr(NewLoader(bad, LoaderOptions{BatchSize: 2})), "label #3 is 99")
	err := firstErr(NewLoader(set, LoaderOptions{BatchSize: 2, Augment: panicky{}, Workers: 4}))
	wantErr(t, err, "tiny", "batch 0", "panic: boom")
	waitGoroutines(t, base)

	// After an error the iteration stops.
	n := 0
	for _, err := range NewLoader(set, LoaderOptions{BatchSize: 2, Augment: panicky{}}).Iter() {
		n++
		if err == nil || !strings.Contains(err.Error(), "boom") {
			t.Errorf("got err %v", err)
		}
	}
	if n != 1 {
		t.Errorf("%d yields after an error, want 1", n)
	}
	waitGoroutines(t, base)
}

func BenchmarkLoaderMNISTEpoch(b *testing.B) {
	trainSet, _ := loadMNISTForTest(b)
	l := NewLoader(trainSet, LoaderOptions{BatchSize: 128, Shuffle: true, Augment: RandomCrop{Pad: 2}})
	for b.Loop() {
		for batch, err := range l.Iter() {
			if err != nil {
				b.Fatal(err)
			}
			_ = batch.Finalize()
		}
	}
}
