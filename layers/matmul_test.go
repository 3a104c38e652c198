package layers

import (
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
)

// TestConcatPieces checks that splitAt's shortcut through a concatenation returns the concatenated inputs
// themselves where the cuts fall on their boundaries, and gives up (nil) everywhere else.
func TestConcatPieces(t *testing.T) {
	g := NewGraph(gobackend.GetBackend(), "concatPieces")
	param := func(name string, c int) *Node { return Parameter(g, name, shapes.Make(dtypes.Float32, 2, c, 3, 3)) }
	a, b, c := param("a", 2), param("b", 3), param("c", 1)
	abc := Concatenate([]*Node{a, b, c}, 1)
	tests := []struct {
		name string
		x    *Node
		ch   int
		cuts []int
		want [][]*Node // the inputs each piece is made of; nil: no shortcut
	}{
		{"every input", abc, 1, []int{0, 2, 5, 6}, [][]*Node{{a}, {b}, {c}}},
		{"two inputs in one piece", abc, 1, []int{0, 5, 6}, [][]*Node{{a, b}, {c}}},
		{"a cut inside an input", abc, 1, []int{0, 3, 6}, nil},
		{"another axis", abc, 2, []int{0, 1, 3}, nil},
		{"not a concatenation", a, 1, []int{0, 1, 2}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := concatPieces(tc.x, tc.ch, tc.cuts)
			if tc.want == nil {
				if got != nil {
					t.Fatalf("got %d pieces, want none", len(got))
				}
				return
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d pieces, want %d", len(got), len(tc.want))
			}
			for i, parts := range tc.want {
				if len(parts) == 1 {
					if got[i] != parts[0] {
						t.Errorf("piece %d is not the input itself", i)
					}
					continue
				}
				if got[i].Type() != NodeTypeConcatenate || len(got[i].Inputs()) != len(parts) {
					t.Fatalf("piece %d: got a %s of %d inputs, want a concatenation of %d", i, got[i].Type(),
						len(got[i].Inputs()), len(parts))
				}
				for k, in := range got[i].Inputs() {
					if in != parts[k] {
						t.Errorf("piece %d input %d is not the concatenated input", i, k)
					}
				}
			}
		})
	}
}
