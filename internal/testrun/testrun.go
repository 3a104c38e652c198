// Package testrun trains the small runs that the tests of the inference, serving and command packages
// predict with: a run whose classes are easy and known, so that a test can tell a right answer.
package testrun

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// ColorNames are the classes of the Colors run, in label order.
var ColorNames = []string{"red", "green", "blue"}

// ColorSize is the resolution of the Colors run's model.
const ColorSize = 16

// colorModel is a small SeqResNet-B (CIFAR family) for 16x16 RGB images with 3 classes.
var colorModel = models.Config{Name: "tiny-colors", Family: models.FamilyCIFAR, Variant: models.VariantB, Classes: 3,
	Resolution: ColorSize, BlocksPerStage: []int{1, 0, 0}, PyramidFactor: []float64{1, 2, 3}, Widening: 0.5,
	Granularity: models.IntList{8}}

// ColorModel returns the config of the Colors run's model.
func ColorModel() models.Config { return colorModel.WithDefaults() }

// Color returns a w x h image of class label's colour (ColorNames) with per-pixel noise drawn from rng:
// the class's channel bright, the others dark.
func Color(rng *rand.Rand, label, w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	base := 170 + rng.IntN(60)
	for y := range h {
		for x := range w {
			var c [3]uint8
			for ch := range c {
				v := rng.IntN(70)
				if ch == label {
					v = base + rng.IntN(26)
				}
				c[ch] = uint8(v)
			}
			img.SetNRGBA(x, y, color.NRGBA{c[0], c[1], c[2], 255})
		}
	}
	return img
}

// colorSet returns n labelled 16x16 colour images, with CIFAR's normalisation (the run claims to be a
// CIFAR-10 run, so that it is prepared as CIFAR runs are).
func colorSet(name string, n int, seed uint64) *data.ImageSet {
	rng := rand.New(rand.NewPCG(seed, 11))
	s := &data.ImageSet{Name: name, N: n, H: ColorSize, W: ColorSize, C: 3, NumClasses: len(ColorNames),
		ClassNames: ColorNames, Labels: make([]int32, n), Mean: data.CIFARMean[:], Std: data.CIFARStd[:]}
	for i := range n {
		label := i % len(ColorNames)
		s.Labels[i] = int32(label)
		s.Pixels = append(s.Pixels, data.RGB(Color(rng, label, ColorSize, ColorSize), nil).Pix...)
	}
	return s
}

// TrainColors trains the colour model for a few steps on the pure Go backend into the run directory
// runDir: a CIFAR-10-style run (config.json data "cifar10", classes.json ColorNames) that tells the
// three colours apart.
func TrainColors(runDir string) error {
	backend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	_, err = train.Run(context.Background(), backend, train.Config{
		Model: ColorModel(), Epochs: 4, BatchSize: 24, LR: 0.1, Momentum: 0.9, Schedule: "constant",
		Seed: 1, RunDir: runDir, Data: "cifar10", EvalBatchSize: 48, Workers: 1,
	}, train.ImageSetData(colorSet("colors-train", 192, 1), nil), train.ImageSetData(colorSet("colors-valid", 48, 2), nil),
		io.Discard)
	if err != nil {
		return fmt.Errorf("training the colour run: %w", err)
	}
	return nil
}

var (
	sharedOnce sync.Once
	sharedDir  string
	sharedErr  error
)

// Colors returns the run directory of a colour run (see TrainColors) that the tests of a package share:
// trained once per test binary, in a temporary directory that Cleanup removes. Tests must not change it.
func Colors(t testing.TB) string {
	t.Helper()
	sharedOnce.Do(func() {
		if sharedDir, sharedErr = os.MkdirTemp("", "seqconv-testrun-"); sharedErr == nil {
			sharedErr = TrainColors(filepath.Join(sharedDir, "colors"))
		}
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return filepath.Join(sharedDir, "colors")
}

// Cleanup removes the shared run of Colors; call it from TestMain after the tests.
func Cleanup() {
	if sharedDir != "" {
		_ = os.RemoveAll(sharedDir)
	}
}
