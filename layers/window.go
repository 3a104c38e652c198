package layers

import . "github.com/gomlx/gomlx/support/exceptions"

// The window rule of a SeqConv layer: which channels of the sequence [x, E_0, ..., E_{n-1}] each filter reads.
// View is its one home; the implementations (seqPlan), the models (the dense-equivalent window) and the
// analysis of trained layers (heat maps) all derive from it.

// View returns the sequence channels [lo, hi) that filter j of a SeqConv layer reads. The sequence is the
// layer input x (cin channels) followed by the filters' outputs E_0, E_1, ... (k channels each), so filter j
// can read channels [0, cin + j*k): x and its predecessors' outputs E_0..E_{j-1}.
//
//   - Dense aggregation (window <= 0), the paper's Eq. 2: filter j reads the whole sequence,
//     E_j = F_j([x, E_0, ..., E_{j-1}]), that is [0, cin + j*k).
//   - Windowed aggregation (window > 0 channels), Eq. 3: filter j reads the last window channels of the
//     sequence, E_j = F_j([x, E_0, ..., E_{j-1}][cin + j*k - window : cin + j*k]), or the whole sequence
//     while it is narrower than the window. The authors' layer uses window = cin; Window(g') sets g'*k.
func View(cin, k, window, j int) (lo, hi int) {
	hi = cin + j*k
	if window > 0 && hi > window {
		lo = hi - window
	}
	return lo, hi
}

// DenseWindowGroups returns the fewest groups g' of k channels whose window W = g'*k reads every sequence of
// up to seq channels whole: with it, View gives every filter whose sequence is at most seq channels wide
// (cin + j*k <= seq) what dense aggregation gives it: ceil(seq / k). k must be positive.
func DenseWindowGroups(seq, k int) int {
	if k <= 0 {
		Panicf("layers.DenseWindowGroups: the granularity must be positive, got %d", k)
	}
	return (seq + k - 1) / k
}

// seqPlan is the channel bookkeeping of a SeqConv layer of n filters: the sequence is x (cin channels)
// followed by the filters' k-wide outputs, and filter j reads the sequence channels [lo, hi) of view(j).
type seqPlan struct {
	cin, k, n int
	window    int // in channels, see View; <= 0: dense
}

// view returns the sequence channels [lo, hi) filter j reads (see View).
func (p seqPlan) view(j int) (lo, hi int) { return View(p.cin, p.k, p.window, j) }

// piece returns the sequence channels [start, start+width) of piece i: 0 is x, i > 0 is filter i-1's output.
func (p seqPlan) piece(i int) (start, width int) {
	if i == 0 {
		return 0, p.cin
	}
	return p.cin + (i-1)*p.k, p.k
}

// firstPiece returns the first piece filter j's view touches (it touches all pieces from there to j).
func (p seqPlan) firstPiece(j int) int {
	lo, _ := p.view(j)
	if lo < p.cin {
		return 0
	}
	return 1 + (lo-p.cin)/p.k
}
