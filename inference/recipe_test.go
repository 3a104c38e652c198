package inference

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func mustModel(t *testing.T, name string) models.Config {
	t.Helper()
	cfg, err := models.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestRecipeFor checks the preprocessing chosen for each kind of run.
func TestRecipeFor(t *testing.T) {
	cifar, mnist, b22 := mustModel(t, "seqresnet-cifar-demo"), mustModel(t, "seqresnet-mnist"), mustModel(t, "seqresnet-b22")
	cifarMean, imagenetMean := data.CIFARMean[:], data.ImageNetMean[:]
	for _, tc := range []struct {
		name     string
		cfg      train.Config
		size     int
		dataset  string
		resize   int // the transform's Resize (0: Size*256/224)
		outSize  int
		channels int
		mean     []float32
		err      string
	}{
		{"cifar10", train.Config{Model: cifar, Data: "cifar10", Augmentation: "crop:4+flip"}, 0, "cifar10", 32, 32, 3, cifarMean, ""},
		{"cifar100 at 48", train.Config{Model: cifar, Data: "cifar100"}, 48, "cifar100", 48, 48, 3, cifarMean, ""},
		{"cifar with rrc", train.Config{Model: cifar, Data: "cifar10", Augmentation: "rrc+flip"}, 0, "cifar10", 0, 32, 3, cifarMean, ""},
		{"mnist", train.Config{Model: mnist, Data: "mnist"}, 0, "mnist", 28, 28, 1, []float32{data.MNISTMean}, ""},
		{"folder", train.Config{Model: b22, Data: "/data/imagenet", Augmentation: "rrc+flip"}, 0, "image folder", 0, 224, 3, imagenetMean, ""},
		{"imported imagenet", train.Config{Model: b22}, 0, "imagenet", 0, 224, 3, imagenetMean, ""},
		{"imported cifar", train.Config{Model: cifar}, 0, "cifar", 32, 32, 3, cifarMean, ""},
		{"imported mnist", train.Config{Model: mnist}, 0, "mnist", 28, 28, 1, []float32{data.MNISTMean}, ""},
		{"own data set", train.Config{Model: cifar, Data: "random"}, 0, "random (unknown: prepared as cifar)", 32, 32, 3, cifarMean, ""},
		{"grey model, rgb data", train.Config{Model: mnist, Data: "cifar10"}, 0, "", 0, 0, 0, nil, "grey images"},
		{"size 0 densenet", train.Config{Model: mustModel(t, "densenet169")}, 16, "", 0, 0, 0, nil, "at least 29x29"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RecipeFor(tc.cfg, tc.size)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Dataset != tc.dataset || r.Transform.Resize != tc.resize || r.Size != tc.outSize ||
				r.Transform.Size != tc.outSize || r.Channels != tc.channels || !slices.Equal(r.Mean[:len(tc.mean)], tc.mean) ||
				len(r.Mean) != tc.channels || len(r.Std) != tc.channels {
				t.Errorf("recipe %+v", r)
			}
			if s := r.String(); !strings.HasPrefix(s, tc.dataset+": ") || strings.Contains(s, "\n") {
				t.Errorf("String() = %q", s)
			}
		})
	}
}

// TestClassNames checks where the class names come from.
func TestClassNames(t *testing.T) {
	cifar, mnist := mustModel(t, "seqresnet-cifar-demo"), mustModel(t, "seqresnet-mnist")
	cifarDir := t.TempDir()
	cifarNames := []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	if err := os.WriteFile(filepath.Join(cifarDir, "batches.meta.txt"), []byte(strings.Join(cifarNames, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	digits := []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
	generic := []string{"class 0", "class 1", "class 2", "class 3", "class 4", "class 5", "class 6", "class 7", "class 8", "class 9"}
	for _, tc := range []struct {
		name        string
		classesJSON string
		cfg         train.Config
		want        []string
		err         string
	}{
		{"classes.json", `["a","b","c","d","e","f","g","h","i","j"]`, train.Config{Model: cifar, Data: "cifar10"},
			[]string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}, ""},
		{"cifar meta", "", train.Config{Model: cifar, Data: "cifar10", DataDir: cifarDir}, cifarNames, ""},
		{"cifar meta gone", "", train.Config{Model: cifar, Data: "cifar10", DataDir: t.TempDir()}, generic, ""},
		{"mnist", "", train.Config{Model: mnist, Data: "mnist"}, digits, ""},
		{"imported mnist", "", train.Config{Model: mnist}, digits, ""},
		{"other", "", train.Config{Model: cifar, Data: "random"}, generic, ""},
		{"wrong count", `["a","b"]`, train.Config{Model: cifar}, nil, "2 class names for the 10 classes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.classesJSON != "" {
				if err := os.WriteFile(filepath.Join(dir, train.ClassesFile), []byte(tc.classesJSON), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ClassNames(dir, tc.cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ClassNames = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestBatchChunks checks how a batch is split into forward passes.
func TestBatchChunks(t *testing.T) {
	for _, tc := range []struct {
		n, max int
		want   []int
	}{
		{1, 64, []int{1}}, {64, 64, []int{64}}, {63, 64, []int{32, 16, 8, 4, 2, 1}}, {130, 64, []int{64, 64, 2}},
		{5, 4, []int{4, 1}}, {50, 48, []int{48, 2}}, {47, 48, []int{32, 8, 4, 2, 1}},
	} {
		if got := batchChunks(tc.n, tc.max); !slices.Equal(got, tc.want) {
			t.Errorf("batchChunks(%d, %d) = %v, want %v", tc.n, tc.max, got, tc.want)
		}
	}
}

// TestPlanChunks checks the forward passes chosen from the times of the batch sizes.
func TestPlanChunks(t *testing.T) {
	ms := time.Millisecond
	// As ONNX Runtime ran the CIFAR demo model: batches of 4 slower than 2+2, of 8 faster than of 4.
	costs := map[int]time.Duration{1: 10 * ms, 2: 18 * ms, 4: 69 * ms, 8: 59 * ms, 16: 132 * ms, 32: 214 * ms, 64: 465 * ms}
	for _, tc := range []struct {
		n    int
		want []int
	}{
		{1, []int{1}}, {2, []int{2}}, {3, []int{2, 1}}, {4, []int{2, 2}}, {5, []int{2, 2, 1}}, {6, []int{2, 2, 2}}, {7, []int{8}}, {8, []int{8}},
		{32, []int{32}}, {33, []int{32, 1}}, {60, []int{32, 8, 8, 8, 2, 2}}, {64, []int{32, 32}}, {100, []int{32, 32, 32, 2, 2}},
	} {
		if got := planChunks(tc.n, costs); !slices.Equal(got, tc.want) {
			t.Errorf("planChunks(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
	// Proportional times: no padding, the largest batches.
	linear := map[int]time.Duration{1: ms, 2: 2 * ms, 4: 4 * ms, 8: 8 * ms}
	if got := planChunks(13, linear); !slices.Equal(got, []int{8, 4, 1}) {
		t.Errorf("planChunks(13, linear) = %v, want [8 4 1]", got)
	}
}
