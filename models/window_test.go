package models

import (
	"regexp"
	"strconv"
	"testing"

	_ "github.com/gomlx/compute/gobackend"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/layers"
)

// filterConvRe matches the scope of a SeqConv filter's first conv (the one that reads the filter's view).
var filterConvRe = regexp.MustCompile(`^/?(.+)/Filters/(\d+)/(BottleneckLayer/)?LinearLayer$`)

// viewWidths returns, per SeqConv layer of c (by scope), the input widths of its filters' first convs as the
// built graph records them, and each layer's granularity.
func viewWidths(t *testing.T, c Config) (widths map[string][]int, k map[string]int) {
	t.Helper()
	s, err := Inspect(engine.MustNewForTest(), c, 0)
	if err != nil {
		t.Fatal(err)
	}
	widths, k = map[string][]int{}, map[string]int{}
	for _, r := range s.Records {
		m := filterConvRe.FindStringSubmatch(r.Scope)
		if m == nil || r.Kind != layers.OpConv {
			continue
		}
		d, ok := parseConvDetail(r.Detail)
		j, err := strconv.Atoi(m[2])
		if !ok || err != nil || j != len(widths[m[1]]) {
			t.Fatalf("record %s %q: not filter %d's first conv", r.Scope, r.Detail, len(widths[m[1]]))
		}
		widths[m[1]] = append(widths[m[1]], d.in)
		k[m[1]] = d.out
	}
	return widths, k
}

// allDense reports whether every filter of every SeqConv layer reads what dense aggregation gives it
// (layers.View with no window), and names a layer where one does not.
func allDense(widths map[string][]int, k map[string]int) (string, bool) {
	for name, ws := range widths {
		for j, w := range ws {
			if lo, hi := layers.View(ws[0], k[name], -1, j); w != hi-lo {
				return name, false
			}
		}
	}
	return "", true
}

// TestDenseWindowGroups checks that the window Config.DenseWindowGroups picks makes every SeqConv layer
// dense in the built graph, and where the equivalence starts: a window as wide as the widest sequence
// (C_in + (n-1)*k channels) is dense, one group less is not.
func TestDenseWindowGroups(t *testing.T) {
	mnist, err := Get("seqresnet-mnist")
	if err != nil {
		t.Fatal(err)
	}
	mnistK8 := mnist
	mnistK8.Granularity = IntList{8}
	demo, err := Get("seqresnet-cifar-demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		cfg     Config
		window  int // want DenseWindowGroups
		minimal int // the smallest dense window: the widest sequence in groups
	}{
		// Widths 16/32/64, k=16: Stage3's sequences reach 64 + 3*16 = 112 channels = 7 groups.
		{"seqresnet-mnist", mnist, 8, 7},
		// k=8: 64 + 7*8 = 120 channels = 15 groups.
		{"seqresnet-mnist k=8", mnistK8, 16, 15},
		// Widths 112/224/336, k=16: Stage3's 21 filters read up to 336 + 20*16 = 656 channels = 41 groups.
		{"seqresnet-cifar-demo", demo, 42, 41},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.cfg.DenseWindowGroups()
			if g != tc.window {
				t.Errorf("DenseWindowGroups = %d, want %d", g, tc.window)
			}
			for _, w := range []int{g, tc.minimal} {
				c := tc.cfg
				c.Window = w
				if name, ok := allDense(viewWidths(t, c)); !ok {
					t.Errorf("window %d groups: layer %s is not dense", w, name)
				}
			}
			c := tc.cfg
			c.Window = tc.minimal - 1
			if _, ok := allDense(viewWidths(t, c)); ok {
				t.Errorf("window %d groups (one short of the widest sequence) is dense everywhere", tc.minimal-1)
			}
			if _, ok := allDense(viewWidths(t, tc.cfg)); ok {
				t.Errorf("the authors' window is dense everywhere")
			}
		})
	}
}
