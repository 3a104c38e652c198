package data

import (
	"math"
	"sync"
	"testing"
)

var mnistOnce = sync.OnceValues(func() ([2]*ImageSet, error) {
	trainSet, testSet, err := LoadMNIST()
	return [2]*ImageSet{trainSet, testSet}, err
})

// loadMNISTForTest decodes the embedded MNIST once per test binary.
func loadMNISTForTest(t testing.TB) (trainSet, testSet *ImageSet) {
	t.Helper()
	sets, err := mnistOnce()
	if err != nil {
		t.Fatalf("LoadMNIST: %v", err)
	}
	return sets[0], sets[1]
}

func TestLoadMNIST(t *testing.T) {
	trainSet, testSet := loadMNISTForTest(t)
	for _, tc := range []struct {
		set  *ImageSet
		name string
		n    int
	}{{trainSet, "mnist-train", 60000}, {testSet, "mnist-test", 10000}} {
		s := tc.set
		if s.Name != tc.name || s.N != tc.n || s.Len() != tc.n || s.H != 28 || s.W != 28 || s.C != 1 || s.NumClasses != 10 {
			t.Errorf("%s: got Name=%q N=%d Len=%d H=%d W=%d C=%d NumClasses=%d, want %q %d 28x28x1 10 classes",
				tc.name, s.Name, s.N, s.Len(), s.H, s.W, s.C, s.NumClasses, tc.name, tc.n)
		}
		if len(s.Pixels) != tc.n*28*28 || len(s.Labels) != tc.n {
			t.Errorf("%s: len(Pixels)=%d len(Labels)=%d", tc.name, len(s.Pixels), len(s.Labels))
		}
		if len(s.Mean) != 1 || s.Mean[0] != 0.1307 || len(s.Std) != 1 || s.Std[0] != 0.3081 {
			t.Errorf("%s: Mean=%v Std=%v, want [0.1307] [0.3081]", tc.name, s.Mean, s.Std)
		}
		var counts [10]int
		for i, l := range s.Labels {
			if l < 0 || l > 9 {
				t.Fatalf("%s: label #%d = %d, not in 0..9", tc.name, i, l)
			}
			counts[l]++
		}
		for d, c := range counts {
			if c < tc.n/20 {
				t.Errorf("%s: only %d images of digit %d", tc.name, c, d)
			}
		}
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
	}
	if trainSet.Labels[0] != 5 {
		t.Errorf("first training label = %d, want 5", trainSet.Labels[0])
	}
	if want := []int32{7, 2, 1, 0, 4}; !equalSlices(testSet.Labels[:5], want) {
		t.Errorf("first test labels = %v, want %v", testSet.Labels[:5], want)
	}
	// The documented statistics are the ones of the training pixels.
	var sum, sumSq float64
	for _, v := range trainSet.Pixels {
		x := float64(v) / 255
		sum += x
		sumSq += x * x
	}
	n := float64(len(trainSet.Pixels))
	mean := sum / n
	std := math.Sqrt(sumSq/n - mean*mean)
	if math.Abs(mean-0.1307) > 5e-4 || math.Abs(std-0.3081) > 5e-4 {
		t.Errorf("training pixel mean/std = %.4f/%.4f, want 0.1307/0.3081", mean, std)
	}
	// Border pixels of the first image are background (0), its centre is not all 0.
	img := trainSet.Image(0)
	if img[0] != 0 || img[27] != 0 || img[28*28-1] != 0 {
		t.Errorf("first image corners = %d %d %d, want 0", img[0], img[27], img[28*28-1])
	}
	maxV := uint8(0)
	for _, v := range img {
		maxV = max(maxV, v)
	}
	if maxV != 255 {
		t.Errorf("first image max pixel = %d, want 255", maxV)
	}
}

func TestImageSetSubsetSplit(t *testing.T) {
	set := tinySet(5, 2, 1, 3) // 5 images, 2x1x3.
	sub := set.Subset(1, 4)
	if sub.N != 3 || sub.Name != "tiny[1:4]" || len(sub.Pixels) != 3*6 || !equalSlices(sub.Labels, set.Labels[1:4]) {
		t.Fatalf("Subset(1,4) = %+v", sub)
	}
	if &sub.Pixels[0] != &set.Pixels[6] {
		t.Error("Subset copied the pixels")
	}
	if err := sub.Validate(); err != nil {
		t.Error(err)
	}
	first, rest := set.Split(2)
	if first.N != 2 || rest.N != 3 || rest.Labels[0] != set.Labels[2] || &rest.Pixels[0] != &set.Pixels[12] {
		t.Errorf("Split(2) = %+v, %+v", first, rest)
	}
	if empty := set.Subset(5, 5); empty.N != 0 || empty.Validate() != nil {
		t.Errorf("Subset(5,5) = %+v, %v", empty, empty.Validate())
	}
	defer func() {
		if recover() == nil {
			t.Error("Subset(3, 6) did not panic")
		}
	}()
	set.Subset(3, 6)
}

func TestImageSetValidate(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		modify func(s *ImageSet)
		want   string
	}{
		{"pixels", func(s *ImageSet) { s.Pixels = s.Pixels[1:] }, "len(Pixels)"},
		{"labels", func(s *ImageSet) { s.Labels = s.Labels[1:] }, "len(Labels)"},
		{"label range", func(s *ImageSet) { s.Labels[2] = 7 }, "label #2 is 7"},
		{"negative label", func(s *ImageSet) { s.Labels[0] = -1 }, "label #0 is -1"},
		{"dims", func(s *ImageSet) { s.C = 0 }, "invalid dimensions"},
		{"classes", func(s *ImageSet) { s.NumClasses = 0 }, "NumClasses"},
		{"mean length", func(s *ImageSet) { s.Mean = []float32{0, 0} }, "len(Mean)=2"},
		{"std zero", func(s *ImageSet) { s.Std = []float32{1, 0, 1} }, "Std[1]=0"},
	} {
		s := tinySet(3, 2, 2, 3)
		tc.modify(s)
		wantErr(t, s.Validate(), "tiny", tc.want)
	}
	var nilSet *ImageSet
	wantErr(t, nilSet.Validate(), "nil ImageSet")
}
