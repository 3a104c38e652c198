package models_test

import (
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

// smallFamilies are small configs of every family, with the stems and strides of the full-size models.
var smallFamilies = []struct {
	name    string
	cfg     models.Config
	minSize int
}{
	{"cifar", models.Config{Name: "cifar", Family: models.FamilyCIFAR, Classes: 3, BlocksPerStage: []int{1, 0, 0},
		PyramidFactor: []float64{1, 2, 3}, Widening: 0.5, Granularity: models.IntList{8}}, 1},
	{"cifar-stem2", models.Config{Name: "cifar-stem2", Family: models.FamilyCIFAR, Classes: 3, InChannels: 1,
		StemStride: 2, BlocksPerStage: []int{0, 0, 1}, PyramidFactor: []float64{1, 2, 4}, Widening: 0.5,
		Granularity: models.IntList{8}}, 1},
	{"imagenet", models.Config{Name: "imagenet", Family: models.FamilyImageNet, Classes: 3, BlocksPerStage: []int{1, 0, 0, 1},
		Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}}, 1},
	{"resnext", models.Config{Name: "resnext", Family: models.FamilyResNeXt, Classes: 3, BlocksPerStage: []int{0, 1, 0, 0},
		Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}, Subgroups: models.IntList{2}}, 1},
	{"resnet", models.Config{Name: "resnet", Family: models.FamilyResNet, Classes: 3, BlocksPerStage: []int{1, 1, 1, 1},
		WidthPerGroup: 4}, 1},
	// conv0 and pool0 halve (rounding up), each of the 3 transitions halves (rounding down): 29 -> 15 -> 8 -> 4 -> 2 -> 1.
	{"densenet", models.Config{Name: "densenet", Family: models.FamilyDenseNet, Classes: 3, BlocksPerStage: []int{1, 1, 1, 1},
		GrowthRate: 4, BNSize: 1, InitFeatures: 8}, 29},
	{"densenet-2", models.Config{Name: "densenet-2", Family: models.FamilyDenseNet, Classes: 3, BlocksPerStage: []int{1, 1},
		GrowthRate: 4, BNSize: 1, InitFeatures: 8, Resolution: 32}, 5},
}

// buildFeatureArea builds cfg's inference graph on one h x w image of the given channels (without
// compiling it) and returns the area (height x width) of the feature map its global average pool
// reads, or the error (GoMLX panics) of the build.
func buildFeatureArea(t *testing.T, cfg models.Config, channels, h, w int) (area int, err error) {
	t.Helper()
	backend := engine.MustNewForTest()
	prof := &layers.Profile{}
	err = exceptions.TryCatch[error](func() {
		g := NewGraph(backend, "min_input")
		store := model.NewStore()
		model.SetStore(g, store)
		store.SetTraining(g, false)
		layers.AttachProfile(g, prof)
		x := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, h, w, channels))
		cfg.Build(store.RootScope(), x)
		g.Finalize()
	})
	if err != nil {
		return 0, err
	}
	for _, r := range prof.Records {
		if r.Kind == layers.OpGAP {
			return int(r.Elems) / r.Out[len(r.Out)-1], nil
		}
	}
	t.Fatalf("%s: no global average pool recorded", cfg.Name)
	return 0, nil
}

// TestMinInputSizeBuilds checks MinInputSize and FeatureSize against built graphs of every family: the
// model builds at its minimum size, square or not, with the feature map FeatureSize predicts, and one
// pixel less is refused by Build and CheckInput with one line saying what the model takes.
func TestMinInputSizeBuilds(t *testing.T) {
	for _, tc := range smallFamilies {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg.WithDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			m := cfg.MinInputSize()
			if m != tc.minSize {
				t.Errorf("MinInputSize() = %d, want %d", m, tc.minSize)
			}
			c := cfg.InChannels
			for _, hw := range [][2]int{{m, m}, {m, m + 3}, {m + 5, m}, {m + 17, m + 40}} {
				area, err := buildFeatureArea(t, cfg, c, hw[0], hw[1])
				if err != nil {
					t.Errorf("%dx%d: %v", hw[0], hw[1], err)
					continue
				}
				if want := cfg.FeatureSize(hw[0]) * cfg.FeatureSize(hw[1]); area != want || area < 1 {
					t.Errorf("%dx%d: the last feature map has %d pixels, FeatureSize says %d", hw[0], hw[1], area, want)
				}
				if err := cfg.CheckInput(c, hw[0], hw[1]); err != nil {
					t.Errorf("CheckInput(%d, %d, %d): %v", c, hw[0], hw[1], err)
				}
			}
			want := "takes " + map[bool]string{true: "1-channel (grey)", false: "3-channel"}[c == 1] + " images of at least"
			if m > 1 {
				if _, err := buildFeatureArea(t, cfg, c, m-1, m+2); err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%dx%d: Build error %v, want one saying what the model takes", m-1, m+2, err)
				}
				if cfg.FeatureSize(m-1) != 0 {
					t.Errorf("FeatureSize(%d) = %d, want 0", m-1, cfg.FeatureSize(m-1))
				}
			}
			for _, in := range [][3]int{{c, m - 1, m}, {c, m, 0}, {c + 1, m, m}} {
				err := cfg.CheckInput(in[0], in[1], in[2])
				if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") ||
					!strings.Contains(err.Error(), cfg.Name) {
					t.Errorf("CheckInput%v = %v, want one line naming model %s and saying what it takes", in, err, cfg.Name)
				}
			}
		})
	}
}

// TestMinInputSizeRegistered checks the minimum input size of the registered models.
func TestMinInputSizeRegistered(t *testing.T) {
	for _, name := range models.Names() {
		cfg, err := models.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if cfg.Family == models.FamilyDenseNet {
			want = 29
		}
		if got := cfg.MinInputSize(); got != want {
			t.Errorf("%s: MinInputSize() = %d, want %d", name, got, want)
		}
		if cfg.FeatureSize(cfg.Resolution) < 1 {
			t.Errorf("%s: its own resolution %d is too small", name, cfg.Resolution)
		}
	}
}
