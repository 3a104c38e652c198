package models

import (
	"testing"

	_ "github.com/gomlx/compute/gobackend"
	"github.com/seqconv/seqconv/engine"
)

func TestInspectCounts(t *testing.T) {
	backend := engine.MustNewForTest()
	tests := []struct {
		name         string
		classes      int
		params       int64
		convMACs, fc int64
		convLayers   int
		paperGFLOPs  string
	}{
		{"seqresnet-cifar-demo", 10, 843_834, 204_357_632, 3_360, 214, ""},
		{"seqresnet-cifar-demo", 100, 874_164, 0, 0, 0, ""},
		{"seqresnet-cifar", 10, 19_741_658, 3_133_849_600, 5_120, 740, ""},
		{"seqresnet-b22", 1000, 11_859_656, 2_881_708_032, 1_024_000, 175, "2.73"},
		{"seqresnet-b42", 1000, 25_642_696, 5_643_395_072, 1_024_000, 415, "5.33"},
		{"seqresnext-24", 1000, 26_211_784, 4_541_931_520, 2_048_000, 407, "4.32"},
	}
	for _, tc := range tests {
		c, err := Get(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		c.Classes = tc.classes
		s, err := Inspect(backend, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s/%d: params=%d conv=%d fc=%d layers=%d paper=%.4f", tc.name, tc.classes, s.Params, s.ConvMACs, s.FCMACs, s.ConvLayers, s.PaperGFLOPs)
		if s.Params != tc.params {
			t.Errorf("%s/%d classes: params = %d, want %d", tc.name, tc.classes, s.Params, tc.params)
		}
		if tc.paperGFLOPs != "" && s.PaperFLOPs() != tc.paperGFLOPs {
			t.Errorf("%s: paper FLOPs print as %s, want %s (%.4f)", tc.name, s.PaperFLOPs(), tc.paperGFLOPs, s.PaperGFLOPs)
		}
		if tc.convMACs != 0 && (s.ConvMACs != tc.convMACs || s.FCMACs != tc.fc || s.ConvLayers != tc.convLayers) {
			t.Errorf("%s: conv MACs %d FC %d layers %d, want %d %d %d", tc.name, s.ConvMACs, s.FCMACs, s.ConvLayers, tc.convMACs, tc.fc, tc.convLayers)
		}
	}
}
