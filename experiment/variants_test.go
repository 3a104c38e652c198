package experiment

import (
	"strings"
	"testing"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

// tinyModelConfig is a SeqResNet for MNIST whose windowed layers all have one filter: widths 8/16/24,
// k=8, no block after Stage1.
const tinyModelConfig = `{"family":"seqresnet-cifar","variant":"b","classes":10,"in_channels":1,"resolution":28,
"blocks_per_stage":[1,0,0],"pyramid_factor":[1,2,3],"widening":0.5,"granularity":8,"drop_rate":0}`

// TestDenseWindowGroups checks that the window models.Config.DenseWindowGroups picks makes every multi-filter
// SeqConv layer dense, as analysis.SeqConvLayers reads it off the weight shapes, and that the
// equivalence has the expected boundary: g'*k must cover the widest sequence C_in + (n-1)*k.
func TestDenseWindowGroups(t *testing.T) {
	backend := engine.MustNewForTest()
	defer backend.Finalize()
	mnist, err := models.Get("seqresnet-mnist")
	if err != nil {
		t.Fatal(err)
	}
	mnistK8 := mnist
	mnistK8.Granularity = models.IntList{8}
	demo, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		cfg         models.Config
		window      int // want DenseWindowGroups
		minimal     int // the smallest dense window: the widest sequence in groups
		differ      int // layers whose aggregation differs
		maxFilters  int
		totalLayers int
	}{
		// Widths 16/32/64. k=16: Stage2 (2 filters), Downsample2 extension (2), Stage3 (4) differ; the
		// widest sequence is Stage3's 64 + 3*16 = 112 channels = 7 groups.
		{"seqresnet-mnist", mnist, 8, 7, 5, 4, 9},
		// k=8: every layer but the dense Head differs; the widest sequence is 64 + 7*8 = 120 = 15 groups.
		{"seqresnet-mnist k=8", mnistK8, 16, 15, 8, 8, 9},
		// The authors' CIFAR demo: widths 112/224/336, k=16; Stage3's 21 filters read up to 336 + 20*16 = 656
		// channels = 41 groups.
		{"seqresnet-cifar-demo", demo, 42, 41, 8, 21, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.cfg.DenseWindowGroups()
			if g != tc.window {
				t.Errorf("DenseWindowGroups = %d, want %d", g, tc.window)
			}
			windowed, dense := tc.cfg, tc.cfg
			dense.Window = g
			differ, err := checkVariants(backend, windowed, dense)
			if err != nil {
				t.Fatal(err)
			}
			layers, err := variantLayers(backend, dense)
			if err != nil {
				t.Fatal(err)
			}
			maxFilters := 0
			for _, l := range layers {
				maxFilters = max(maxFilters, l.Filters)
				if l.Filters > 1 && !l.Dense {
					t.Errorf("dense variant: layer %s is not dense: %s", l.Name, l)
				}
			}
			wl, err := variantLayers(backend, windowed)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range wl {
				if l.Name != "Head" && l.Dense {
					t.Errorf("windowed variant: layer %s is dense", l.Name)
				}
			}
			if differ != tc.differ || maxFilters != tc.maxFilters || len(layers) != tc.totalLayers {
				t.Errorf("%d layers differ, at most %d filters, %d layers; want %d, %d, %d", differ, maxFilters,
					len(layers), tc.differ, tc.maxFilters, tc.totalLayers)
			}
			// The smallest dense window is still dense; one group less cuts the widest sequence.
			dense.Window = tc.minimal
			if _, err := checkVariants(backend, windowed, dense); err != nil {
				t.Errorf("window %d (the widest sequence): %v", tc.minimal, err)
			}
			dense.Window = tc.minimal - 1
			if _, err := checkVariants(backend, windowed, dense); err == nil || !strings.Contains(err.Error(), "not dense") {
				t.Errorf("window %d (one group short of the widest sequence): err %v", tc.minimal-1, err)
			}
		})
	}
	// A model whose windowed layers all have one filter (widths 8/16/24, k=8, no block after Stage1) has
	// nothing to compare.
	single, err := models.ParseConfig([]byte(tinyModelConfig))
	if err != nil {
		t.Fatal(err)
	}
	single.Name = "tiny"
	dense := single
	dense.Window = single.DenseWindowGroups()
	if _, err := checkVariants(backend, single, dense); err == nil || !strings.Contains(err.Error(), "smaller granularity") {
		t.Errorf("a model without multi-filter windowed layers: err %v", err)
	}
}
