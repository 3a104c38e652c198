package layers

import (
	"fmt"
	"testing"
)

// TestView checks the window rule: the sequence channels [lo, hi) filter j reads for dense aggregation, the
// authors' window (as wide as the input), windows narrower and wider than the input, and filter 0.
func TestView(t *testing.T) {
	tests := []struct {
		name              string
		cin, k, window, j int
		wantLo, wantHi    int
	}{
		{"dense j=0", 4, 2, -1, 0, 0, 4},
		{"dense", 4, 2, -1, 3, 0, 10},
		{"dense window=0", 4, 2, 0, 3, 0, 10},
		{"authors' window j=0", 4, 2, 4, 0, 0, 4},
		{"authors' window", 4, 2, 4, 3, 6, 10},
		{"authors' window cut inside a group", 5, 2, 5, 2, 4, 9},
		{"narrower j=0", 6, 2, 4, 0, 2, 6},
		{"narrower", 6, 2, 4, 2, 6, 10},
		{"wider, not yet full", 4, 2, 6, 1, 0, 6},
		{"wider, full", 4, 2, 6, 3, 4, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lo, hi := View(tc.cin, tc.k, tc.window, tc.j)
			if lo != tc.wantLo || hi != tc.wantHi {
				t.Errorf("View(cin=%d, k=%d, window=%d, j=%d) = [%d,%d), want [%d,%d)", tc.cin, tc.k, tc.window,
					tc.j, lo, hi, tc.wantLo, tc.wantHi)
			}
		})
	}
}

// TestDenseWindowGroups checks that the window DenseWindowGroups returns reads every sequence up to seq
// channels whole (View gives what dense aggregation gives) and that one group less cuts the widest one.
func TestDenseWindowGroups(t *testing.T) {
	tests := []struct{ seq, k, want int }{{128, 16, 8}, {128, 8, 16}, {672, 16, 42}, {10, 4, 3}, {1, 4, 1}}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("seq=%d k=%d", tc.seq, tc.k), func(t *testing.T) {
			g := DenseWindowGroups(tc.seq, tc.k)
			if g != tc.want {
				t.Fatalf("DenseWindowGroups(%d, %d) = %d, want %d", tc.seq, tc.k, g, tc.want)
			}
			for cin := 1; cin <= tc.seq; cin++ {
				for j := 0; cin+j*tc.k <= tc.seq; j++ {
					lo, hi := View(cin, tc.k, g*tc.k, j)
					dlo, dhi := View(cin, tc.k, -1, j)
					if lo != dlo || hi != dhi {
						t.Fatalf("cin=%d j=%d: window of %d groups reads [%d,%d), dense [%d,%d)", cin, j, g, lo, hi,
							dlo, dhi)
					}
				}
			}
			if lo, _ := View(tc.seq, tc.k, (g-1)*tc.k, 0); g > 1 && lo == 0 {
				t.Errorf("a window of %d groups still reads a sequence of %d channels whole", g-1, tc.seq)
			}
		})
	}
}

// TestSeqPlanViews checks the channel bookkeeping of the fused implementation against the direct one's
// sliding window.
func TestSeqPlanViews(t *testing.T) {
	tests := []struct {
		cin, k, n, window int
		want              [][2]int
		first             []int
	}{
		{cin: 4, k: 2, n: 3, window: 4, want: [][2]int{{0, 4}, {2, 6}, {4, 8}}, first: []int{0, 0, 1}},
		{cin: 5, k: 2, n: 4, window: 5, want: [][2]int{{0, 5}, {2, 7}, {4, 9}, {6, 11}}, first: []int{0, 0, 0, 1}},
		{cin: 4, k: 2, n: 3, window: -1, want: [][2]int{{0, 4}, {0, 6}, {0, 8}}, first: []int{0, 0, 0}},
		{cin: 6, k: 2, n: 3, window: 4, want: [][2]int{{2, 6}, {4, 8}, {6, 10}}, first: []int{0, 0, 1}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("cin=%d k=%d window=%d", tc.cin, tc.k, tc.window), func(t *testing.T) {
			p := seqPlan{cin: tc.cin, k: tc.k, n: tc.n, window: tc.window}
			for j := range tc.n {
				lo, hi := p.view(j)
				if lo != tc.want[j][0] || hi != tc.want[j][1] {
					t.Errorf("view(%d) = [%d,%d), want %v", j, lo, hi, tc.want[j])
				}
				if got := p.firstPiece(j); got != tc.first[j] {
					t.Errorf("firstPiece(%d) = %d, want %d", j, got, tc.first[j])
				}
			}
		})
	}
}
