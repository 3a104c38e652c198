package train

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Schedule gives the learning rate as a function of the (fractional) epoch.
//
// Epochs count from 0: epoch e+f, with 0 <= f < 1, is the fraction f of the way through
// epoch e. A training loop that updates the learning rate every step passes
// epoch + step/stepsPerEpoch; one that updates it once per epoch passes whole epochs.
type Schedule interface {
	// LR returns the learning rate to use at the given (fractional) epoch.
	LR(epoch float64) float64
	// String describes the schedule.
	String() string
}

// MultiStep multiplies the learning rate by Gamma at every milestone epoch, with the
// semantics of PyTorch's MultiStepLR stepped once per epoch:
//
//	LR(epoch) = Base * Gamma^(number of milestones m with m <= floor(epoch))
//
// A milestone listed twice counts twice, as in PyTorch.
type MultiStep struct {
	// Base is the initial learning rate.
	Base float64
	// Milestones are the epochs at which the learning rate is multiplied by Gamma.
	Milestones []int
	// Gamma is the multiplicative factor applied at each milestone.
	Gamma float64
}

// LR implements Schedule.
func (s MultiStep) LR(epoch float64) float64 {
	e := math.Floor(epoch)
	lr := s.Base
	for _, m := range s.Milestones {
		if float64(m) <= e {
			lr *= s.Gamma
		}
	}
	return lr
}

// String implements Schedule.
func (s MultiStep) String() string {
	return fmt.Sprintf("multistep(base=%g, milestones=%v, gamma=%g)", s.Base, s.Milestones, s.Gamma)
}

// Cosine anneals the learning rate from Base to Min over Epochs epochs, as PyTorch's
// CosineAnnealingLR (closed form) with T_max=Epochs and eta_min=Min:
//
//	LR(epoch) = Min + (Base-Min) * (1 + cos(pi*epoch/Epochs)) / 2
//
// The epoch is clamped to [0, Epochs]: it returns Base before epoch 0 and Min from epoch
// Epochs on (and always Min if Epochs <= 0).
type Cosine struct {
	// Base is the initial learning rate.
	Base float64
	// Epochs is the length of the annealing, in epochs.
	Epochs int
	// Min is the final learning rate.
	Min float64
}

// LR implements Schedule.
func (s Cosine) LR(epoch float64) float64 {
	total := float64(s.Epochs)
	if epoch >= total {
		return s.Min
	}
	if epoch < 0 {
		epoch = 0
	}
	return s.Min + (s.Base-s.Min)*(1+math.Cos(math.Pi*epoch/total))/2
}

// String implements Schedule.
func (s Cosine) String() string {
	return fmt.Sprintf("cosine(base=%g, epochs=%d, min=%g)", s.Base, s.Epochs, s.Min)
}

// Constant keeps the learning rate at Base.
type Constant struct {
	// Base is the learning rate.
	Base float64
}

// LR implements Schedule.
func (s Constant) LR(float64) float64 { return s.Base }

// String implements Schedule.
func (s Constant) String() string { return fmt.Sprintf("constant(base=%g)", s.Base) }

// WarmupMinEpoch is the smallest epoch value used by Warmup to compute its factor, so
// that the learning rate is never 0 at the very first step.
const WarmupMinEpoch = 0.001

// Warmup scales the Inner schedule by a linear warmup factor during the first Epochs epochs:
//
//	LR(epoch) = Inner.LR(epoch) * min(1, max(epoch, WarmupMinEpoch) / Epochs)
//
// So the factor grows linearly from WarmupMinEpoch/Epochs at epoch 0 to 1 at epoch Epochs,
// and it is 1 afterwards. With Epochs <= 0 there is no warmup (factor 1).
// Pass fractional epochs (epoch + step/stepsPerEpoch) to warm up per step.
type Warmup struct {
	// Epochs is the length of the warmup, in (possibly fractional) epochs.
	Epochs float64
	// Inner is the schedule being warmed up.
	Inner Schedule
}

// LR implements Schedule.
func (s Warmup) LR(epoch float64) float64 {
	lr := s.Inner.LR(epoch)
	if s.Epochs <= 0 {
		return lr
	}
	return lr * min(1, max(epoch, WarmupMinEpoch)/s.Epochs)
}

// String implements Schedule.
func (s Warmup) String() string {
	return fmt.Sprintf("warmup(epochs=%g, %s)", s.Epochs, s.Inner)
}

// ParseSchedule builds a Schedule from command-line style options.
//
// kind is one of "multistep", "cosine" or "constant" (case-insensitive):
//
//   - "multistep": MultiStep{base, milestones, gamma}. With no milestones it uses the usual
//     CIFAR recipe milestones at 50% and 75% of epochs (e.g. 150 and 225 for 300 epochs).
//     gamma must be > 0; milestones must be >= 0 and are sorted.
//   - "cosine": Cosine{base, epochs, 0}; epochs must be > 0.
//   - "constant": Constant{base}.
//
// Options a kind doesn't use (milestones and gamma for cosine and constant, epochs for
// constant and multistep with explicit milestones) are ignored.
// If warmupEpochs > 0 the schedule is wrapped in Warmup{warmupEpochs, schedule}.
// base must be finite and >= 0, warmupEpochs finite and >= 0.
func ParseSchedule(kind string, base float64, epochs int, milestones []int, gamma float64,
	warmupEpochs float64) (Schedule, error) {
	if base < 0 || math.IsNaN(base) || math.IsInf(base, 0) {
		return nil, fmt.Errorf("schedule: invalid base learning rate %g, expected a finite value >= 0", base)
	}
	if warmupEpochs < 0 || math.IsNaN(warmupEpochs) || math.IsInf(warmupEpochs, 0) {
		return nil, fmt.Errorf("schedule: invalid warmup epochs %g, expected a finite value >= 0", warmupEpochs)
	}
	var s Schedule
	kind = strings.ToLower(strings.TrimSpace(kind))
	if len(milestones) > 0 && (kind == "cosine" || kind == "constant") {
		return nil, fmt.Errorf("schedule: milestones %v are only for the multistep schedule, not %s", milestones, kind)
	}
	switch kind {
	case "multistep":
		if gamma <= 0 || math.IsNaN(gamma) || math.IsInf(gamma, 0) {
			return nil, fmt.Errorf("schedule: invalid gamma %g for multistep, expected a finite value > 0", gamma)
		}
		if len(milestones) == 0 {
			if epochs <= 0 {
				return nil, fmt.Errorf("schedule: invalid epochs %d for multistep default milestones, expected > 0", epochs)
			}
			milestones = []int{epochs / 2, epochs * 3 / 4}
		} else {
			for i, m := range milestones {
				if m < 0 {
					return nil, fmt.Errorf("schedule: invalid milestone %d, expected >= 0", m)
				}
				if i > 0 && m <= milestones[i-1] {
					return nil, fmt.Errorf("schedule: milestones %v: want increasing epochs, got %d after %d",
						milestones, m, milestones[i-1])
				}
			}
			milestones = slices.Clone(milestones)
		}
		s = MultiStep{Base: base, Milestones: milestones, Gamma: gamma}
	case "cosine":
		if epochs <= 0 {
			return nil, fmt.Errorf("schedule: invalid epochs %d for cosine, expected > 0", epochs)
		}
		s = Cosine{Base: base, Epochs: epochs}
	case "constant":
		s = Constant{Base: base}
	default:
		return nil, fmt.Errorf("schedule: unknown kind %q, expected multistep|cosine|constant", kind)
	}
	if warmupEpochs > 0 {
		s = Warmup{Epochs: warmupEpochs, Inner: s}
	}
	return s, nil
}
