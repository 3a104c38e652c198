package train

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestScheduleValues(t *testing.T) {
	multi := MultiStep{Base: 0.1, Milestones: []int{150, 225}, Gamma: 0.1}
	cosine := Cosine{Base: 0.1, Epochs: 100}
	cosineMin := Cosine{Base: 0.1, Epochs: 100, Min: 0.001}
	testCases := []struct {
		name  string
		s     Schedule
		epoch float64
		want  float64
	}{
		{"multistep@0", multi, 0, 0.1},
		{"multistep@149", multi, 149, 0.1},
		{"multistep@149.99", multi, 149.99, 0.1},
		{"multistep@150", multi, 150, 0.01},
		{"multistep@224", multi, 224, 0.01},
		{"multistep@224.5", multi, 224.5, 0.01},
		{"multistep@225", multi, 225, 0.001},
		{"multistep@299.9", multi, 299.9, 0.001},
		{"multistep-repeated-milestone", MultiStep{Base: 1, Milestones: []int{3, 3}, Gamma: 0.5}, 3, 0.25},
		{"multistep-no-milestones", MultiStep{Base: 0.2, Gamma: 0.1}, 1000, 0.2},

		{"cosine@0", cosine, 0, 0.1},
		{"cosine@25", cosine, 25, 0.1 * (1 + math.Sqrt2/2) / 2},
		{"cosine@50", cosine, 50, 0.05},
		{"cosine@75", cosine, 75, 0.1 * (1 - math.Sqrt2/2) / 2},
		{"cosine@100", cosine, 100, 0},
		{"cosine@150", cosine, 150, 0},
		{"cosine@-1", cosine, -1, 0.1},
		{"cosine-min@0", cosineMin, 0, 0.1},
		{"cosine-min@50", cosineMin, 50, 0.0505},
		{"cosine-min@100", cosineMin, 100, 0.001},
		{"cosine-min@200", cosineMin, 200, 0.001},
		{"cosine-0-epochs", Cosine{Base: 0.1, Epochs: 0, Min: 0.01}, 0, 0.01},

		{"constant@0", Constant{Base: 0.05}, 0, 0.05},
		{"constant@1e6", Constant{Base: 0.05}, 1e6, 0.05},

		{"warmup@0", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 0, 0.1 * WarmupMinEpoch / 5},
		{"warmup@0.0005", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 0.0005, 0.1 * WarmupMinEpoch / 5},
		{"warmup@0.5", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 0.5, 0.01},
		{"warmup@2.5", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 2.5, 0.05},
		{"warmup@5", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 5, 0.1},
		{"warmup@7", Warmup{Epochs: 5, Inner: Constant{Base: 0.1}}, 7, 0.1},
		{"warmup-fractional@0.25", Warmup{Epochs: 0.5, Inner: Constant{Base: 0.1}}, 0.25, 0.05},
		{"warmup-multistep@3", Warmup{Epochs: 4, Inner: MultiStep{Base: 0.1, Milestones: []int{2}, Gamma: 0.1}}, 3, 0.0075},
		{"warmup-cosine@50", Warmup{Epochs: 5, Inner: cosine}, 50, 0.05},
		{"warmup-0-epochs", Warmup{Epochs: 0, Inner: Constant{Base: 0.1}}, 0, 0.1},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.s.LR(tc.epoch)
			if math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("%s.LR(%g) = %.17g, want %.17g", tc.s, tc.epoch, got, tc.want)
			}
		})
	}
}

func TestScheduleStrings(t *testing.T) {
	for _, tc := range []struct {
		s    Schedule
		want string
	}{
		{MultiStep{Base: 0.1, Milestones: []int{150, 225}, Gamma: 0.1}, "multistep(base=0.1, milestones=[150 225], gamma=0.1)"},
		{Cosine{Base: 0.1, Epochs: 200}, "cosine(base=0.1, epochs=200, min=0)"},
		{Constant{Base: 0.01}, "constant(base=0.01)"},
		{Warmup{Epochs: 5, Inner: Constant{Base: 0.01}}, "warmup(epochs=5, constant(base=0.01))"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestParseSchedule(t *testing.T) {
	type args struct {
		kind       string
		base       float64
		epochs     int
		milestones []int
		gamma      float64
		warmup     float64
	}
	testCases := []struct {
		name    string
		args    args
		want    string // Schedule.String() of the result.
		wantErr string // Substring of the error; empty for no error.
	}{
		{"multistep-default-300", args{"multistep", 0.1, 300, nil, 0.1, 0},
			"multistep(base=0.1, milestones=[150 225], gamma=0.1)", ""},
		{"multistep-default-200", args{"multistep", 0.1, 200, nil, 0.2, 0},
			"multistep(base=0.1, milestones=[100 150], gamma=0.2)", ""},
		{"multistep-explicit", args{"MultiStep", 0.05, 0, []int{60, 120, 160}, 0.2, 0},
			"multistep(base=0.05, milestones=[60 120 160], gamma=0.2)", ""},
		{"multistep-unsorted", args{"multistep", 0.05, 0, []int{120, 60, 160}, 0.2, 0}, "",
			"milestones [120 60 160]: want increasing epochs, got 60 after 120"},
		{"multistep-repeated", args{"multistep", 0.05, 0, []int{5, 5}, 0.2, 0}, "", "want increasing epochs"},
		{"cosine-milestones", args{"cosine", 0.1, 200, []int{1, 2}, 0, 0}, "",
			"milestones [1 2] are only for the multistep schedule, not cosine"},
		{"constant-milestones", args{"constant", 0.1, 200, []int{1}, 0, 0}, "", "only for the multistep schedule"},
		{"multistep-warmup", args{"multistep", 0.1, 300, nil, 0.1, 5},
			"warmup(epochs=5, multistep(base=0.1, milestones=[150 225], gamma=0.1))", ""},
		{"cosine", args{"cosine", 0.1, 200, nil, 0, 0}, "cosine(base=0.1, epochs=200, min=0)", ""},
		{"cosine-warmup", args{"cosine", 0.4, 90, nil, 0, 0.5}, "warmup(epochs=0.5, cosine(base=0.4, epochs=90, min=0))", ""},
		{"constant", args{" constant ", 0.01, 0, nil, 0, 0}, "constant(base=0.01)", ""},

		{"unknown-kind", args{"step", 0.1, 300, nil, 0.1, 0}, "",
			`schedule: unknown kind "step", expected multistep|cosine|constant`},
		{"empty-kind", args{"", 0.1, 300, nil, 0.1, 0}, "", `unknown kind ""`},
		{"multistep-bad-gamma", args{"multistep", 0.1, 300, nil, 0, 0}, "", "invalid gamma 0"},
		{"multistep-nan-gamma", args{"multistep", 0.1, 300, nil, math.NaN(), 0}, "", "invalid gamma NaN"},
		{"multistep-no-epochs", args{"multistep", 0.1, 0, nil, 0.1, 0}, "", "invalid epochs 0"},
		{"multistep-negative-milestone", args{"multistep", 0.1, 300, []int{10, -5}, 0.1, 0}, "", "invalid milestone -5"},
		{"cosine-no-epochs", args{"cosine", 0.1, -3, nil, 0, 0}, "", "invalid epochs -3 for cosine"},
		{"negative-base", args{"constant", -0.1, 10, nil, 0, 0}, "", "invalid base learning rate -0.1"},
		{"negative-warmup", args{"constant", 0.1, 10, nil, 0, -1}, "", "invalid warmup epochs -1"},
	}
	for _, tc := range testCases {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.args
			milestonesBefore := slices.Clone(a.milestones)
			s, err := ParseSchedule(a.kind, a.base, a.epochs, a.milestones, a.gamma, a.warmup)
			if !slices.Equal(a.milestones, milestonesBefore) {
				t.Errorf("ParseSchedule modified the milestones argument: %v -> %v", milestonesBefore, a.milestones)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSchedule() error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseSchedule() error: %v", err)
			}
			if got := s.String(); got != tc.want {
				t.Errorf("ParseSchedule() = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestParseScheduleMultiStepPyTorchCIFAR(t *testing.T) {
	// The 300-epoch CIFAR recipe: lr 0.1, x0.1 at epochs 150 and 225.
	s, err := ParseSchedule("multistep", 0.1, 300, nil, 0.1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch float64
		want  float64
	}{{0, 0.1}, {149, 0.1}, {150, 0.01}, {224, 0.01}, {225, 0.001}, {299, 0.001}} {
		if got := s.LR(tc.epoch); math.Abs(got-tc.want) > 1e-15 {
			t.Errorf("LR(%g) = %g, want %g", tc.epoch, got, tc.want)
		}
	}
}
