package data

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzCIFARRecords feeds arbitrary bytes to the CIFAR-10 and CIFAR-100
// record readers (as a .bin file) and to the archive reader (as a .tar.gz):
// they must return an error or a consistent result, never panic. The seed
// corpus is in testdata/fuzz/FuzzCIFARRecords.
func FuzzCIFARRecords(f *testing.F) {
	f.Add(cifarRecords(0, 2, cifar10Label))
	f.Add(cifarRecords(0, 1, cifar100Label))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, sp := range []*cifarSpec{cifar10Spec, cifar100Spec} {
			chunk, err := readCIFARRecords(sp, "fuzz.bin", bytes.NewReader(b), int64(len(b)))
			if err != nil {
				if !strings.HasPrefix(err.Error(), "fuzz.bin: ") {
					t.Errorf("error %q does not name the file", err)
				}
				continue
			}
			rec := sp.recordSize()
			n := len(chunk.labels)
			if n == 0 || n*rec != len(b) || len(chunk.pixels) != n*cifarPixels {
				t.Fatalf("%s: %d bytes gave %d labels and %d pixels", sp.name, len(b), n, len(chunk.pixels))
			}
			for i, l := range chunk.labels {
				if l < 0 || int(l) >= sp.numClasses || l != int32(b[i*rec+sp.labelBytes-1]) {
					t.Fatalf("%s: label %d = %d, record has %d", sp.name, i, l, b[i*rec+sp.labelBytes-1])
				}
			}
			// HWC conversion of the last record's last pixel.
			last := b[(n-1)*rec+sp.labelBytes:]
			px := chunk.pixels[(n-1)*cifarPixels+1023*3:]
			if px[0] != last[1023] || px[1] != last[2047] || px[2] != last[3071] {
				t.Fatalf("%s: last pixel %v, planes have %d %d %d", sp.name, px[:3], last[1023], last[2047], last[3071])
			}
		}
		for _, sp := range []*cifarSpec{cifar10Spec, cifar100Spec} {
			parts, err := readCIFARArchive(sp, "fuzz.tar.gz", bytes.NewReader(b))
			if err != nil {
				if !strings.HasPrefix(err.Error(), "fuzz.tar.gz: ") {
					t.Errorf("error %q does not name the archive", err)
				}
				continue
			}
			for _, f := range slices.Concat(sp.trainFiles, sp.testFiles) {
				if parts.chunks[f] == nil {
					t.Fatalf("%s: archive read without %s", sp.name, f)
				}
			}
		}
	})
}

// FuzzImageFolderDecode feeds arbitrary bytes to the image decoder, as an
// image file of a FolderSet (with and without SkipBadImages) and directly,
// and runs the decoded images through both transforms: decoding must return
// an RGB image or an ErrBadImage naming the file, never panic. The seed
// corpus (small JPEGs and PNGs, valid and broken) is in
// testdata/fuzz/FuzzImageFolderDecode.
func FuzzImageFolderDecode(f *testing.F) {
	f.Add(encodePNG(f, testImage(3, 2, 1)))
	f.Add(encodeJPEG(f, testImage(5, 4, 2), 80))
	f.Add([]byte{})
	const maxPixels = 1 << 16
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := DecodeImage("fuzz.jpg", b, nil, maxPixels)
		if err != nil {
			if !errors.Is(err, ErrBadImage) || !strings.HasPrefix(err.Error(), "fuzz.jpg: bad image: ") {
				t.Fatalf("error %q does not wrap ErrBadImage or name the file", err)
			}
		} else {
			if img.C != 3 || img.H <= 0 || img.W <= 0 || img.H*img.W > maxPixels || len(img.Pix) != img.H*img.W*3 {
				t.Fatalf("decoded %dx%dx%d with %d bytes", img.H, img.W, img.C, len(img.Pix))
			}
			for _, tr := range []Transform{ResizeCenterCrop{Size: 5}, RandomResizedCrop{Size: 5}} {
				dst := make([]float32, 5*5*3)
				tr.Apply(rand.New(rand.NewPCG(uint64(len(b)), 1)), img, dst)
				for i, v := range dst {
					if !(v >= -1e-6 && v <= 1+1e-6) || math.IsNaN(float64(v)) {
						t.Fatalf("%T value %d = %v, out of [0, 1]", tr, i, v)
					}
				}
			}
		}

		// The same bytes as a file of a FolderSet.
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "c"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(root, "c", "x.jpg")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, skip := range []bool{false, true} {
			s, err := LoadImageFolder(root, FolderOptions{SkipBadImages: skip, MaxPixels: maxPixels, Logf: func(string, ...any) {}})
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Decode(0, nil)
			switch {
			case err == nil:
				if !equalSlices(got.Pix, img.Pix) {
					t.Fatal("FolderSet.Decode differs from DecodeImage")
				}
			case !errors.Is(err, ErrBadImage) || errors.Is(err, ErrSkipImage) != skip || !strings.Contains(err.Error(), path):
				t.Fatalf("skip=%v: error %q", skip, err)
			case s.BadImages() != 1:
				t.Fatalf("BadImages() = %d", s.BadImages())
			}
		}
	})
}
