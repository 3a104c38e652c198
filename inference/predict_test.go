package inference

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/internal/testrun"
)

// encode writes img in format ("jpeg", "png" or "gif").
func encode(t *testing.T, format string, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	case "png":
		err = png.Encode(&buf, img)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	default:
		t.Fatalf("unknown format %q", format)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// loadColors trains the colour run and loads it on the Go backend (the engine the tests run on).
func loadColors(t *testing.T, opts Options) (*Predictor, string) {
	t.Helper()
	runDir := testrun.Colors(t)
	if opts.Backend == nil {
		opts.Backend = engine.MustNewForTest()
	}
	p, err := Load(runDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, runDir
}

// TestPredictFiles predicts JPEG, PNG, GIF and WebP files of known colours, of other sizes than the model's,
// through Decode and through Predict, and checks the class names, the top-k and the probabilities.
func TestPredictFiles(t *testing.T) {
	p, _ := loadColors(t, Options{TopK: 2})
	if got := p.Classes(); !slices.Equal(got, testrun.ColorNames) {
		t.Fatalf("classes %q, want those of classes.json %q", got, testrun.ColorNames)
	}
	if info := p.Info(); info.InputSize != [2]int{16, 16} || info.MinInputSize != 1 || info.Params <= 0 ||
		!strings.HasPrefix(info.Recipe, "cifar10: resize the shorter side to 16, centre crop 16x16") {
		t.Errorf("info %+v", info)
	}
	rng := rand.New(rand.NewPCG(5, 5))
	dir := t.TempDir()
	type file struct {
		path  string
		label int
	}
	var files []file
	var images []image.Image
	for i, tc := range []struct {
		format string
		label  int
		w, h   int
	}{
		{"jpeg", 0, 40, 30}, {"jpeg", 1, 16, 16}, {"jpeg", 2, 23, 57}, {"png", 0, 16, 16}, {"png", 1, 90, 64},
		{"png", 2, 9, 12}, {"gif", 1, 20, 20}, {"gif", 2, 33, 17},
	} {
		img := testrun.Color(rng, tc.label, tc.w, tc.h)
		path := filepath.Join(dir, strings.Repeat("x", i)+"."+tc.format)
		if err := os.WriteFile(path, encode(t, tc.format, img), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, file{path, tc.label})
		images = append(images, img)
	}
	// A WebP image (24x20, drawn blue on a canvas and encoded by Chromium's canvas.toDataURL("image/webp")).
	files = append(files, file{"testdata/blue.webp", 2})
	images = append(images, nil)
	var inputs []Input
	for _, f := range files {
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		in, err := p.Decode(f.path, b)
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		inputs = append(inputs, in)
	}
	fromFiles, err := p.PredictInputs(context.Background(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	fromImages, err := p.Predict(context.Background(), images[:len(images)-1])
	if err != nil {
		t.Fatal(err)
	}
	fromImages = append(fromImages, fromFiles[len(fromFiles)-1])
	lowest := 1.0
	for i, f := range files {
		for _, pred := range []Prediction{fromFiles[i], fromImages[i]} {
			top := pred.Top
			lowest = min(lowest, top[0].Probability)
			if len(top) != 2 || top[0].Index != f.label || top[0].Name != testrun.ColorNames[f.label] ||
				top[0].Probability < 0.5 || top[1].Probability > top[0].Probability || top[1].Index == top[0].Index {
				t.Errorf("%s (%s): prediction %+v, want %s first with probability >= 0.5", filepath.Base(f.path),
					testrun.ColorNames[f.label], top, testrun.ColorNames[f.label])
			}
		}
	}
	t.Logf("lowest top-1 probability: %.3f", lowest)
}

// TestDecodeBadImages checks that bad image files are errors naming the file and wrapping
// data.ErrBadImage, and that none of them panics.
func TestDecodeBadImages(t *testing.T) {
	p, _ := loadColors(t, Options{MaxPixels: 100 * 100})
	rng := rand.New(rand.NewPCG(1, 2))
	good := encode(t, "jpeg", testrun.Color(rng, 0, 40, 40))
	huge := encode(t, "png", image.NewGray(image.Rect(0, 0, 101, 100)))
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"text", []byte("hello, I am not an image"), "unknown format"},
		{"truncated jpeg", good[:len(good)/2], "decoding jpeg"},
		{"jpeg header only", good[:20], "decoding header"},
		{"too many pixels", huge, "101x100 pixels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Decode("file-"+tc.name, tc.b)
			if err == nil || !errors.Is(err, data.ErrBadImage) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), "file-"+tc.name) {
				t.Errorf("error %v, want a bad-image error naming the file and saying %q", err, tc.want)
			}
		})
	}
}

// TestPaddedPlan forces a plan that pads (batches of 4 "faster" than of 1 or 2): the logits of 3 and 5
// images are those computed without padding.
func TestPaddedPlan(t *testing.T) {
	p, _ := loadColors(t, Options{MaxBatch: 4})
	inputs := colorInputs(t, p, 5, 7)
	var x []float32
	for _, in := range inputs {
		x = append(x, in.pix...)
	}
	s := p.recipe.Size
	for _, n := range []int{3, 5} {
		p.mu.Lock()
		p.costs = nil
		p.mu.Unlock()
		want, err := p.Logits(context.Background(), x[:n*s*s*3], n, s, s, 3)
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.costs = map[int]time.Duration{1: time.Second, 2: time.Second, 4: time.Millisecond}
		p.mu.Unlock()
		if got := p.plan(n, s, s); got[len(got)-1] != 4 {
			t.Fatalf("plan(%d) = %v, want batches of 4", n, got)
		}
		got, err := p.Logits(context.Background(), x[:n*s*s*3], n, s, s, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d images: %d logits, want %d", n, len(got), len(want))
		}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-4*max(1, math.Abs(want[i])) {
				t.Fatalf("%d images: logit %d is %g padded, %g not", n, i, got[i], want[i])
			}
		}
	}
}
