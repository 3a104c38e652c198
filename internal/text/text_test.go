package text

import "testing"

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"one line", "one line"},
		{"  padded \n", "padded"},
		{"first\nsecond\r\n\tthird", "first second third"},
		{"a  b\n\n c", "a b c"},
	} {
		if got := OneLine(tc.in); got != tc.want {
			t.Errorf("OneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEpochs(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 epochs"}, {1, "1 epoch"}, {2, "2 epochs"}, {90, "90 epochs"}} {
		if got := Epochs(tc.n); got != tc.want {
			t.Errorf("Epochs(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}
