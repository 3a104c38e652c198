package experiment

import (
	"strings"
	"testing"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/train"
)

// TestConclusion checks the three verdicts: training widened the windowed-minus-dense gap (agrees),
// the gap was there at initialization already (neither), dense is higher (does not agree).
func TestConclusion(t *testing.T) {
	comparison := func(w, d float64) analysis.UtilizationComparison {
		return analysis.UtilizationComparison{
			Variants:      []string{"windowed", "dense"},
			Layers:        []analysis.ComparedLayer{{Name: "L", Differs: true, Utilization: []float64{w, d}}},
			MeanDiffering: []float64{w, d}, MeanAll: []float64{w, d}, Differing: 1,
		}
	}
	w, d := &train.Result{FinalValidError: 2}, &train.Result{FinalValidError: 3.5}
	for _, tc := range []struct {
		trained, initial [2]float64
		want             string
	}{
		{[2]float64{0.80, 0.70}, [2]float64{0.85, 0.84}, "this run agrees"},
		{[2]float64{0.883, 0.878}, [2]float64{0.885, 0.881}, "neither supports nor contradicts"},
		{[2]float64{0.70, 0.75}, [2]float64{0.85, 0.84}, "does not agree"},
	} {
		got := conclusion(comparison(tc.trained[0], tc.trained[1]), comparison(tc.initial[0], tc.initial[1]), w, d)
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "windowed 98.00%, dense 96.50%") {
			t.Errorf("%v after training, %v at initialization: %q, want %q", tc.trained, tc.initial, got, tc.want)
		}
	}
}
