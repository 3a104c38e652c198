package data

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testImage returns a w x h opaque image with a smooth pattern that depends
// on seed.
func testImage(w, h, seed int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{
				R: uint8(x*255/max(w-1, 1) + seed*17),
				G: uint8(y*255/max(h-1, 1) + seed*29),
				B: uint8(seed*40 + x + y),
				A: 255,
			})
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image, quality int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeTree writes files (relative paths -> contents) under root.
func writeTree(t testing.TB, root string, files map[string][]byte) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rgbOf returns the HWC RGB bytes of img.
func rgbOf(img image.Image) []uint8 {
	r := img.Bounds()
	var out []uint8
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out = append(out, c.R, c.G, c.B)
		}
	}
	return out
}

func TestLoadImageFolder(t *testing.T) {
	root := t.TempDir()
	gray := image.NewGray(image.Rect(0, 0, 3, 2))
	copy(gray.Pix, []uint8{0, 50, 100, 150, 200, 250})
	alpha := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	copy(alpha.Pix, []uint8{10, 20, 30, 0, 40, 50, 60, 128})
	writeTree(t, root, map[string][]byte{
		"b_cat/2.png":        encodePNG(t, testImage(5, 4, 2)),
		"b_cat/1.png":        encodePNG(t, gray),
		"a_dog/x.JPEG":       encodeJPEG(t, testImage(6, 5, 3), 95),
		"a_dog/y.jpg":        encodeJPEG(t, testImage(7, 3, 4), 95),
		"a_dog/notes.txt":    []byte("not an image"),
		"a_dog/.hidden.jpg":  nil,
		"c_eel/z.PNG":        encodePNG(t, alpha),
		"c_eel/sub/deep.png": encodePNG(t, testImage(2, 2, 5)),
		"c_eel/a.jpeg":       encodeJPEG(t, testImage(4, 4, 6), 95),
		".cache/skip.jpg":    encodeJPEG(t, testImage(4, 4, 6), 95),
		"README":             []byte("ignored"),
	})
	s, err := LoadImageFolder(root, FolderOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.ClassNames(), []string{"a_dog", "b_cat", "c_eel"}; !slices.Equal(got, want) {
		t.Fatalf("ClassNames() = %q, want %q", got, want)
	}
	wantPaths := []string{"a_dog/x.JPEG", "a_dog/y.jpg", "b_cat/1.png", "b_cat/2.png", "c_eel/a.jpeg", "c_eel/z.PNG", "c_eel/sub/deep.png"}
	wantLabels := []int32{0, 0, 1, 1, 2, 2, 2}
	if s.Len() != len(wantPaths) || s.NumClasses() != 3 || s.Channels() != 3 || s.DatasetName() != root {
		t.Fatalf("Len()=%d NumClasses()=%d Channels()=%d DatasetName()=%q", s.Len(), s.NumClasses(), s.Channels(), s.DatasetName())
	}
	for i, p := range wantPaths {
		if got := s.Path(i); got != filepath.Join(root, filepath.FromSlash(p)) || s.Label(i) != wantLabels[i] {
			t.Errorf("image %d: %s label %d, want %s label %d", i, got, s.Label(i), p, wantLabels[i])
		}
	}
	if got := s.ClassCounts(); !slices.Equal(got, []int{2, 2, 3}) {
		t.Errorf("ClassCounts() = %v", got)
	}
	if mean, std := s.Normalization(); !equalSlices(mean, ImageNetMean[:]) || !equalSlices(std, ImageNetStd[:]) {
		t.Errorf("Normalization() = %v, %v", mean, std)
	}

	// PNGs decode exactly: colour, grayscale (replicated), alpha (dropped).
	for _, tc := range []struct {
		i    int
		want []uint8
		h, w int
	}{
		{3, rgbOf(testImage(5, 4, 2)), 4, 5},
		{2, []uint8{0, 0, 0, 50, 50, 50, 100, 100, 100, 150, 150, 150, 200, 200, 200, 250, 250, 250}, 2, 3},
		{5, []uint8{10, 20, 30, 40, 50, 60}, 1, 2},
	} {
		img, err := s.Decode(tc.i, nil)
		if err != nil {
			t.Fatal(err)
		}
		if img.H != tc.h || img.W != tc.w || img.C != 3 || !equalSlices(img.Pix, tc.want) {
			t.Errorf("Decode(%d) = %dx%dx%d %v, want %dx%dx3 %v", tc.i, img.H, img.W, img.C, img.Pix, tc.h, tc.w, tc.want)
		}
	}
	// JPEG decodes close to the original, into the given buffer.
	buf := make([]uint8, 1000)
	img, err := s.Decode(0, buf)
	if err != nil {
		t.Fatal(err)
	}
	if img.H != 5 || img.W != 6 || &img.Pix[0] != &buf[0] {
		t.Errorf("Decode(0) = %dx%d, in buf: %v", img.H, img.W, &img.Pix[0] == &buf[0])
	}
	decoded, err := jpeg.Decode(bytes.NewReader(encodeJPEG(t, testImage(6, 5, 3), 95)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range rgbOf(decoded) {
		if d := int(img.Pix[k]) - int(v); d < -1 || d > 1 {
			t.Fatalf("JPEG byte %d = %d, image/jpeg's colour model gives %d", k, img.Pix[k], v)
		}
	}
	if s.BadImages() != 0 {
		t.Errorf("BadImages() = %d", s.BadImages())
	}

	// The same classes are accepted; custom extensions.
	if _, err := LoadImageFolder(root, FolderOptions{Classes: []string{"a_dog", "b_cat", "c_eel"}}); err != nil {
		t.Error(err)
	}
	if some, err := LoadImageFolder(root, FolderOptions{Extensions: []string{".png", ".JPG"}}); err != nil || some.Len() != 5 {
		t.Errorf("PNG and JPG only: %v", err)
	}
	_, err = LoadImageFolder(root, FolderOptions{Extensions: []string{".png"}})
	wantErr(t, err, filepath.Join(root, "a_dog")+": class folder has no images (expected files ending in .png)")
}

func TestLoadImageFolderErrors(t *testing.T) {
	base := t.TempDir()
	img := encodePNG(t, testImage(2, 2, 0))
	dir := func(name string, files map[string][]byte) string {
		root := filepath.Join(base, name)
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		writeTree(t, root, files)
		return root
	}
	load := func(root string, opts FolderOptions) error {
		_, err := LoadImageFolder(root, opts)
		return err
	}
	wantErr(t, load(filepath.Join(base, "missing"), FolderOptions{}), "image folder", "missing", "no such file")
	wantErr(t, load(dir("none", nil), FolderOptions{}), "none: no class folders")
	wantErr(t, load(dir("flat", map[string][]byte{"a.JPEG": img, "b.png": img}), FolderOptions{}),
		"flat: no class folders but 2 images directly in it", "sorted into one folder per class")
	emptyRoot := dir("empty", map[string][]byte{"a/1.png": img, "b/readme.txt": nil})
	wantErr(t, load(emptyRoot, FolderOptions{}), filepath.Join(emptyRoot, "b")+": class folder has no images")
	if err := os.MkdirAll(filepath.Join(base, "empty2", "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(base, "empty2"), map[string][]byte{"a/1.png": img})
	wantErr(t, load(filepath.Join(base, "empty2"), FolderOptions{}), filepath.Join(base, "empty2", "c")+": class folder has no images")
	wantErr(t, load(dir("classes", map[string][]byte{"a/1.png": img, "x/1.png": img}), FolderOptions{Classes: []string{"a", "b"}}),
		"class folders (2) differ from the expected classes (2): missing b; unexpected x")

	// ImageNet layout: val/ classes must be train/'s.
	imagenet := dir("imagenet", map[string][]byte{
		"train/n01/1.JPEG": img, "train/n02/1.JPEG": img, "train/n03/1.JPEG": img,
		"val/n01/1.JPEG": img, "val/n02/1.JPEG": img, "val/n04/1.JPEG": img,
	})
	_, _, err := LoadImageNet(imagenet, FolderOptions{})
	wantErr(t, err, "validation set", filepath.Join(imagenet, "val")+": class folders (3) differ from those of "+
		filepath.Join(imagenet, "train")+" (3): missing n03; unexpected n04")
	flatVal := dir("imagenet2", map[string][]byte{"train/n01/1.JPEG": img, "val/ILSVRC2012_val_00000001.JPEG": img})
	_, _, err = LoadImageNet(flatVal, FolderOptions{})
	wantErr(t, err, "val: no class folders but 1 images directly in it")
	good := dir("imagenet3", map[string][]byte{"train/n01/1.JPEG": img, "train/n02/1.JPEG": img, "val/n01/2.JPEG": img, "val/n02/3.png": img})
	tr, val, err := LoadImageNet(good, FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.DatasetName() != "imagenet-train" || val.DatasetName() != "imagenet-val" || val.Len() != 2 || val.Label(1) != 1 {
		t.Errorf("LoadImageNet: %q %q %d", tr.DatasetName(), val.DatasetName(), val.Len())
	}
}

// badFolder returns a folder with 6 good images and 4 bad ones (empty,
// garbage, truncated JPEG, and a 60x50 image, too large for MaxPixels 2000):
// class "a" holds 2 good and 2 bad images, class "b" 4 good and 2 bad.
func badFolder(t *testing.T) string {
	root := t.TempDir()
	jpg := encodeJPEG(t, testImage(9, 7, 1), 90)
	files := map[string][]byte{
		"a/0good.png":   encodePNG(t, testImage(4, 6, 0)),
		"a/1bad.jpg":    nil,
		"a/2good.jpg":   jpg,
		"a/3bad.png":    []byte("this is not a PNG file"),
		"b/0good.png":   encodePNG(t, testImage(5, 5, 2)),
		"b/1bad.JPEG":   jpg[:len(jpg)/2],
		"b/2good.png":   encodePNG(t, testImage(8, 3, 3)),
		"b/3good.png":   encodePNG(t, testImage(3, 8, 4)),
		"b/4good.jpeg":  jpg,
		"b/5toobig.png": encodePNG(t, testImage(60, 50, 5)),
	}
	writeTree(t, root, files)
	return root
}

func TestFolderBadImages(t *testing.T) {
	root := badFolder(t)
	s, err := LoadImageFolder(root, FolderOptions{MaxPixels: 2000})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]string{
		1: "1bad.jpg: bad image: empty file",
		3: "3bad.png: bad image: decoding header: image: unknown format",
		5: "1bad.JPEG: bad image: decoding",
		9: "5toobig.png: bad image: too many pixels: png image of 60x50 pixels, expected 1 to 2000 pixels",
	} {
		_, err := s.Decode(i, nil)
		wantErr(t, err, s.Path(i), want)
		if !errors.Is(err, ErrBadImage) || errors.Is(err, ErrSkipImage) {
			t.Errorf("Decode(%d): %v does not wrap ErrBadImage only", i, err)
		}
	}
	if s.BadImages() != 4 {
		t.Errorf("BadImages() = %d, want 4", s.BadImages())
	}
	// Without skipping, the loader's epoch fails naming the file.
	l := NewImageLoader(s, ImageLoaderOptions{BatchSize: 4, Transform: ResizeCenterCrop{Size: 4}, Workers: 2})
	var epochErr error
	for _, err := range l.Iter() {
		epochErr = err
	}
	wantErr(t, epochErr, "batch 0 of epoch 0", "1bad.jpg: bad image: empty file")

	// Skipping: logged once per file, counted, replaced by the next image of
	// the epoch.
	var mu sync.Mutex
	var logs []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	var ref []epochData
	for _, workers := range []int{1, 3} {
		logs = nil
		s, err := LoadImageFolder(root, FolderOptions{SkipBadImages: true, Logf: logf, MaxPixels: 2000, Name: "bad"})
		if err != nil {
			t.Fatal(err)
		}
		l := NewImageLoader(s, ImageLoaderOptions{BatchSize: 4, Transform: ResizeCenterCrop{Size: 4}, Workers: workers,
			Augment: HFlip{}, Shuffle: true, Seed: 5})
		var got []epochData
		for range 2 {
			got = append(got, collectEpoch(t, l.Iter()))
		}
		if s.BadImages() != 4 || len(logs) != 4 {
			t.Errorf("workers=%d: BadImages()=%d, %d logs: %q", workers, s.BadImages(), len(logs), logs)
		}
		if paths := s.BadImagePaths(); len(paths) != 4 || !strings.HasSuffix(paths[0], "1bad.jpg") {
			t.Errorf("BadImagePaths() = %q", paths)
		}
		for _, msg := range logs {
			if !strings.HasPrefix(msg, "bad: skipping bad image") {
				t.Errorf("log %q", msg)
			}
		}
		if d := got[0]; !slices.EqualFunc(d.shapes, [][]int{{4, 4, 4, 3}, {4, 4, 4, 3}, {2, 4, 4, 3}}, slices.Equal) {
			t.Errorf("shapes %v", d.shapes)
		}
		if ref == nil {
			ref = got
		} else {
			for e := range got {
				if !equalSlices(got[e].inputs, ref[e].inputs) || !equalSlices(got[e].labels, ref[e].labels) {
					t.Errorf("workers=%d: epoch %d differs from workers=1", workers, e)
				}
			}
		}
	}
	// Replacements come with their labels: 10 images of which 6 good, so
	// every label of an epoch is a good image's label ("a": 2, "b": 4 good).
	for e, d := range ref {
		counts := [2]int{}
		for _, lb := range d.labels {
			counts[lb]++
		}
		if counts[0]+counts[1] != 10 || counts[0] < 2 || counts[1] < 4 {
			t.Errorf("epoch %d label counts %v", e, counts)
		}
	}

	// All images bad.
	allBad := t.TempDir()
	writeTree(t, allBad, map[string][]byte{"a/1.png": nil, "a/2.png": []byte("x")})
	s, err = LoadImageFolder(allBad, FolderOptions{SkipBadImages: true, Logf: func(string, ...any) {}})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range NewImageLoader(s, ImageLoaderOptions{BatchSize: 2, Transform: ResizeCenterCrop{Size: 2}}).Iter() {
		wantErr(t, err, "all 2 images were skipped")
	}
}

// toRGB's YCbCr fast path matches color.YCbCrToRGB exactly for every
// subsampling ratio, on whole images and on sub-images at odd offsets.
func TestYCbCrToRGB(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		for _, rect := range []image.Rectangle{image.Rect(0, 0, 13, 9), image.Rect(-3, -5, 6, 2)} {
			m := image.NewYCbCr(rect, ratio)
			for _, plane := range [][]uint8{m.Y, m.Cb, m.Cr} {
				for i := range plane {
					plane[i] = uint8(rng.Uint32())
				}
			}
			for _, img := range []*image.YCbCr{m, m.SubImage(image.Rect(rect.Min.X+1, rect.Min.Y+3, rect.Max.X-2, rect.Max.Y)).(*image.YCbCr)} {
				got := toRGB(img, nil)
				b := img.Bounds()
				if got.H != b.Dy() || got.W != b.Dx() || got.C != 3 {
					t.Fatalf("%v %v: shape %dx%dx%d", ratio, b, got.H, got.W, got.C)
				}
				i := 0
				for y := b.Min.Y; y < b.Max.Y; y++ {
					for x := b.Min.X; x < b.Max.X; x++ {
						c := img.YCbCrAt(x, y)
						r, g, bl := color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
						if got.Pix[i] != r || got.Pix[i+1] != g || got.Pix[i+2] != bl {
							t.Fatalf("%v %v: pixel (%d, %d) = %v, want %v", ratio, b, x, y, got.Pix[i:i+3], []uint8{r, g, bl})
						}
						i += 3
					}
				}
			}
		}
	}
}
