package data

import (
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGrey checks the grey levels of PIL's convert("L") (Pillow prints these for the pure colours).
func TestGrey(t *testing.T) {
	for _, tc := range []struct {
		rgb  [3]uint8
		want uint8
	}{
		{[3]uint8{255, 0, 0}, 76}, {[3]uint8{0, 255, 0}, 150}, {[3]uint8{0, 0, 255}, 29},
		{[3]uint8{255, 255, 255}, 255}, {[3]uint8{0, 0, 0}, 0}, {[3]uint8{10, 200, 90}, 131},
	} {
		img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
		img.Set(1, 0, color.NRGBA{tc.rgb[0], tc.rgb[1], tc.rgb[2], 255})
		g, err := Grey(RGB(img, nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if g.C != 1 || g.H != 1 || g.W != 2 || g.Pix[1] != tc.want || g.Pix[0] != 0 {
			t.Errorf("Grey(%v) = %dx%dx%d %v, want grey %d", tc.rgb, g.H, g.W, g.C, g.Pix, tc.want)
		}
	}
	if _, err := Grey(RawImage{H: 1, W: 1, C: 2, Pix: []uint8{1, 2}}, nil); err == nil {
		t.Error("Grey of a 2-channel image: no error")
	}
}

// TestReadCIFARClassNames reads the class names from a folder and from the extracted distribution's folder.
func TestReadCIFARClassNames(t *testing.T) {
	dir := t.TempDir()
	names := []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}
	sub := filepath.Join(dir, "cifar-10-batches-bin")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "batches.meta.txt"), []byte(strings.Join(names, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, sub} {
		got, err := ReadCIFARClassNames(d, false)
		if err != nil || !slices.Equal(got, names) {
			t.Errorf("ReadCIFARClassNames(%s) = %v, %v", d, got, err)
		}
	}
	if _, err := ReadCIFARClassNames(dir, true); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CIFAR-100 names: error %v, want one wrapping os.ErrNotExist", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "batches.meta.txt"), []byte("cat\ndog\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCIFARClassNames(dir, false); err == nil || !strings.Contains(err.Error(), "2 class names") {
		t.Errorf("2 names: error %v", err)
	}
}
