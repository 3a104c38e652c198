package inference

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/internal/testrun"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// float64Store returns a store with cfg's variables in float64: random weights and random batch-norm
// statistics (so that every layer matters in eval mode).
func float64Store(t *testing.T, backend compute.Backend, cfg models.Config) *model.Store {
	t.Helper()
	store := model.NewStore()
	if err := store.SetRNGStateFromSeed(3); err != nil {
		t.Fatal(err)
	}
	err := exceptions.TryCatch[error](func() {
		g := NewGraph(backend, "variables")
		model.SetStore(g, store)
		store.SetTraining(g, false)
		cfg.Build(store.RootScope(), Parameter(g, "x", shapes.Make(dtypes.Float64, 1, cfg.Resolution, cfg.Resolution,
			cfg.InChannels)))
		g.Finalize()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for v := range store.IterVariables() {
		lo, width := 0.0, 0.0
		switch {
		case strings.HasSuffix(v.Path(), "/running_mean"):
			lo, width = -0.2, 0.4
		case strings.HasSuffix(v.Path(), "/running_var"):
			lo, width = 0.5, 1
		default:
			continue
		}
		vals := make([]float64, v.Shape().Size())
		for i := range vals {
			vals[i] = lo + width*rng.Float64()
		}
		if v.Shape().DType != dtypes.Float64 {
			t.Fatalf("%s is %s, want float64", v.Path(), v.Shape().DType)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
	return store
}

// directLogits computes the logits of x [n, h, w, c] with a new executor of cfg's inference graph on
// store, in one forward pass: the network as it was run at its config size before any size was allowed.
func directLogits(t *testing.T, backend compute.Backend, cfg models.Config, store *model.Store, x []float64,
	n, h, w int) []float64 {
	t.Helper()
	exec, err := model.NewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
		scope.Store().SetTraining(x.Graph(), false)
		return cfg.Build(scope, x)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Call(tensors.FromFlatDataAndDimensions(x, n, h, w, cfg.InChannels))
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float64](out[0])
}

// TestAnySize runs models at their config size and at other sizes, in float64 on the Go backend: the
// Predictor's logits, computed MaxBatch images at a time with the graph compiled once per shape, equal
// those of the same network built directly on the whole batch (as "seqconv infer" ran it, at the config
// size only, before); a size below the minimum and a wrong channel count are refused with one line saying
// what the model takes.
func TestAnySize(t *testing.T) {
	backend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Finalize()
	imagenet := models.Config{Name: "small-imagenet", Family: models.FamilyImageNet, Classes: 5,
		BlocksPerStage: []int{1, 0, 0, 1}, Widening: 0.25, Granularity: models.IntList{8, 8, 16, 16}}.WithDefaults()
	densenet := models.Config{Name: "small-densenet", Family: models.FamilyDenseNet, Classes: 4, Resolution: 32,
		BlocksPerStage: []int{1, 1, 1}, GrowthRate: 4, BNSize: 1, InitFeatures: 8}.WithDefaults()
	for _, tc := range []struct {
		cfg   models.Config
		sizes [][2]int // the config size first
	}{
		{testrun.ColorModel(), [][2]int{{16, 16}, {1, 1}, {2, 3}, {23, 17}, {40, 40}}},
		{imagenet, [][2]int{{64, 64}, {1, 1}, {5, 9}, {33, 47}}}, // 224 by default: 64 is the golden size of TestGolden
		{densenet, [][2]int{{32, 32}, {13, 13}, {20, 31}}},
	} {
		t.Run(tc.cfg.Name, func(t *testing.T) {
			cfg := tc.cfg
			store := float64Store(t, backend, cfg)
			recipe, err := RecipeFor(train.Config{Model: cfg}, 0)
			if err != nil {
				t.Fatal(err)
			}
			classes := make([]string, cfg.Classes)
			const n, maxBatch = 5, 4 // Batches of 4 and 1.
			p := newPredictor(backend, cfg, store, recipe, classes, Options{MaxBatch: maxBatch, CachedSizes: 2},
				dtypes.Float64)
			defer p.Close()
			rng := rand.New(rand.NewPCG(1, uint64(cfg.Classes)))
			for round := range 2 { // The second round reuses the graphs of the sizes still cached.
				for _, hw := range tc.sizes {
					h, w := hw[0], hw[1]
					x := make([]float64, n*h*w*cfg.InChannels)
					x32 := make([]float32, len(x))
					for i := range x {
						x32[i] = float32(rng.NormFloat64())
						x[i] = float64(x32[i])
					}
					got, err := p.Logits(context.Background(), x32, n, h, w, cfg.InChannels)
					if err != nil {
						t.Fatalf("%dx%d: %v", h, w, err)
					}
					want := directLogits(t, backend, cfg, store, x, n, h, w)
					if len(got) != n*cfg.Classes {
						t.Fatalf("%dx%d: %d logits, want %d", h, w, len(got), n*cfg.Classes)
					}
					var maxDiff, maxAbs float64
					for i := range got {
						maxDiff = max(maxDiff, math.Abs(got[i]-want[i]))
						maxAbs = max(maxAbs, math.Abs(want[i]))
					}
					if maxDiff > 1e-12*max(maxAbs, 1) || maxAbs == 0 || math.IsNaN(maxDiff) {
						t.Errorf("round %d, %dx%d: logits differ from the network run at that size by %.3g (max |logit| %.3g)",
							round, h, w, maxDiff, maxAbs)
					}
				}
			}
			// Two rounds over more sizes than the cache keeps: 2 graphs (batches of 4 and 1) per size and round.
			if got, want := p.execs.compilations, 2*2*len(tc.sizes); got != want {
				t.Errorf("%d graphs compiled, want %d", got, want)
			}
			// The same size again compiles nothing.
			before := p.execs.compilations
			last := tc.sizes[len(tc.sizes)-1]
			if _, err := p.Logits(context.Background(), make([]float32, 4*last[0]*last[1]*cfg.InChannels), 4, last[0],
				last[1], cfg.InChannels); err != nil {
				t.Fatal(err)
			}
			if p.execs.compilations != before {
				t.Errorf("a cached shape was compiled again")
			}

			m := cfg.MinInputSize()
			for _, in := range [][3]int{{cfg.InChannels, m - 1, m}, {cfg.InChannels + 1, m, m}} {
				c, h, w := in[0], in[1], in[2]
				_, err := p.Logits(context.Background(), make([]float32, max(c*h*w, 0)), 1, h, w, c)
				want := fmt.Sprintf("takes %d-channel images of at least %dx%d pixels", cfg.InChannels, m, m)
				if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Errorf("%d channels, %dx%d: error %v, want one line saying %q", c, h, w, err, want)
				}
			}
		})
	}
}
