package data

import (
	"archive/tar"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cifarValue is the byte of plane ch (0 R, 1 G, 2 B) at position p (y*32+x)
// of test image `img`.
func cifarValue(img, ch, p int) byte { return byte(img*31 + ch*85 + p*7) }

// cifarRecords returns n records for test images first..first+n-1, with
// label bytes labels(i) (1 for CIFAR-10, 2 for CIFAR-100).
func cifarRecords(first, n int, labels func(i int) []byte) []byte {
	var b bytes.Buffer
	for i := first; i < first+n; i++ {
		b.Write(labels(i))
		for ch := range 3 {
			for p := range 1024 {
				b.WriteByte(cifarValue(i, ch, p))
			}
		}
	}
	return b.Bytes()
}

func cifar10Label(i int) []byte  { return []byte{byte(i % 10)} }
func cifar100Label(i int) []byte { return []byte{byte(i % 20), byte((i * 7) % 100)} }

// tinyCIFAR10Files returns the files of a tiny CIFAR-10 distribution: the
// five training batches with 2, 1, 3, 1 and 2 images and a test batch of 3
// (images numbered 0..8 for training and 100..102 for test).
func tinyCIFAR10Files() map[string][]byte {
	files := map[string][]byte{}
	first := 0
	for b, n := range []int{2, 1, 3, 1, 2} {
		files[fmt.Sprintf("data_batch_%d.bin", b+1)] = cifarRecords(first, n, cifar10Label)
		first += n
	}
	files["test_batch.bin"] = cifarRecords(100, 3, cifar10Label)
	return files
}

var cifar10Names = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// tarBytes returns a tar archive of files under prefix/, in sorted order.
func tarBytes(t testing.TB, prefix string, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: prefix + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		content := files[name]
		hdr := &tar.Header{Name: prefix + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// checkCIFARSet checks the set has images `ids` (see cifarValue) with
// labels from label.
func checkCIFARSet(t *testing.T, set *ImageSet, name string, numClasses int, ids []int, label func(int) int32) {
	t.Helper()
	if err := set.Validate(); err != nil {
		t.Fatal(err)
	}
	if set.Name != name || set.N != len(ids) || set.H != 32 || set.W != 32 || set.C != 3 || set.NumClasses != numClasses {
		t.Fatalf("%s: got Name=%q N=%d %dx%dx%d NumClasses=%d, want %q N=%d 32x32x3 NumClasses=%d",
			name, set.Name, set.N, set.H, set.W, set.C, set.NumClasses, name, len(ids), numClasses)
	}
	if !equalSlices(set.Mean, CIFARMean[:]) || !equalSlices(set.Std, CIFARStd[:]) {
		t.Errorf("%s: Mean %v Std %v", name, set.Mean, set.Std)
	}
	for k, id := range ids {
		if got, want := set.Labels[k], label(id); got != want {
			t.Errorf("%s: label %d = %d, want %d", name, k, got, want)
		}
		img := set.Image(k)
		for y := range 32 {
			for x := range 32 {
				for ch := range 3 {
					if got, want := img[(y*32+x)*3+ch], cifarValue(id, ch, y*32+x); got != want {
						t.Fatalf("%s: image %d pixel (%d,%d) channel %d = %d, want %d", name, k, y, x, ch, got, want)
					}
				}
			}
		}
	}
}

func TestLoadCIFAR10(t *testing.T) {
	files := tinyCIFAR10Files()
	base := t.TempDir()
	// 1. The .bin files directly in the directory, with class names.
	flat := filepath.Join(base, "flat")
	writeFiles(t, flat, files)
	writeFiles(t, flat, map[string][]byte{"batches.meta.txt": []byte(strings.Join(cifar10Names, "\n") + "\n\n")})
	// 2. The extracted archive's folder, without class names.
	extracted := filepath.Join(base, "extracted")
	writeFiles(t, filepath.Join(extracted, "cifar-10-batches-bin"), files)
	// 3. The archive in a directory, and 4. the archive itself.
	withMeta := maps2(files, "batches.meta.txt", []byte(strings.Join(cifar10Names, "\n")+"\n"))
	withMeta["readme.html"] = []byte("<html></html>")
	archive := gzipBytes(t, tarBytes(t, "cifar-10-batches-bin", withMeta))
	archiveDir := filepath.Join(base, "download")
	writeFiles(t, archiveDir, map[string][]byte{"cifar-10-binary.tar.gz": archive})

	for _, tc := range []struct {
		dir       string
		wantNames bool
	}{
		{flat, true},
		{extracted, false},
		{archiveDir, true},
		{filepath.Join(archiveDir, "cifar-10-binary.tar.gz"), true},
	} {
		trainSet, testSet, err := LoadCIFAR10(tc.dir)
		if err != nil {
			t.Fatalf("LoadCIFAR10(%s): %v", tc.dir, err)
		}
		label := func(i int) int32 { return int32(i % 10) }
		checkCIFARSet(t, trainSet, "cifar10-train", 10, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, label)
		checkCIFARSet(t, testSet, "cifar10-test", 10, []int{100, 101, 102}, label)
		if tc.wantNames {
			if !slices.Equal(trainSet.ClassNames, cifar10Names) || !slices.Equal(testSet.ClassNames, cifar10Names) {
				t.Errorf("%s: class names %q", tc.dir, trainSet.ClassNames)
			}
		} else if trainSet.ClassNames != nil {
			t.Errorf("%s: class names %q without a meta file", tc.dir, trainSet.ClassNames)
		}
	}

	// A known pixel by hand: test image 101 (second test record), pixel
	// (y=1, x=2) -> planar position 34: R = 101*31+0+34*7 = 3369 = 41 mod 256.
	_, testSet, err := LoadCIFAR10(flat)
	if err != nil {
		t.Fatal(err)
	}
	if got := testSet.Image(1)[(1*32+2)*3 : (1*32+2)*3+3]; !equalSlices(got, []uint8{41, 126, 211}) {
		t.Errorf("test image 1 pixel (1,2) = %v, want [41 126 211]", got)
	}
}

// maps2 returns a copy of m with key set to v.
func maps2(m map[string][]byte, key string, v []byte) map[string][]byte {
	out := map[string][]byte{}
	for k, x := range m {
		out[k] = x
	}
	out[key] = v
	return out
}

func TestLoadCIFAR100(t *testing.T) {
	files := map[string][]byte{
		"train.bin": cifarRecords(0, 5, cifar100Label),
		"test.bin":  cifarRecords(50, 2, cifar100Label),
	}
	var names []string
	for i := range 100 {
		names = append(names, fmt.Sprintf("class_%02d", i))
	}
	files["fine_label_names.txt"] = []byte(strings.Join(names, "\n") + "\n")
	files["coarse_label_names.txt"] = []byte("a\nb\n")
	base := t.TempDir()
	writeFiles(t, filepath.Join(base, "dir", "cifar-100-binary"), files)
	writeFiles(t, filepath.Join(base, "archive"), map[string][]byte{
		"cifar-100-binary.tar.gz": gzipBytes(t, tarBytes(t, "cifar-100-binary", files)),
	})
	for _, dir := range []string{filepath.Join(base, "dir"), filepath.Join(base, "archive")} {
		trainSet, testSet, err := LoadCIFAR100(dir)
		if err != nil {
			t.Fatalf("LoadCIFAR100(%s): %v", dir, err)
		}
		fine := func(i int) int32 { return int32((i * 7) % 100) }
		checkCIFARSet(t, trainSet, "cifar100-train", 100, []int{0, 1, 2, 3, 4}, fine)
		checkCIFARSet(t, testSet, "cifar100-test", 100, []int{50, 51}, fine)
		if !slices.Equal(trainSet.ClassNames, names) {
			t.Errorf("%s: class names %q", dir, trainSet.ClassNames)
		}
	}
}

func TestLoadCIFARErrors(t *testing.T) {
	base := t.TempDir()
	n := 0
	// dirWith writes a new directory with the tiny CIFAR-10 files, modified.
	dirWith := func(modify func(files map[string][]byte)) string {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		files := tinyCIFAR10Files()
		modify(files)
		writeFiles(t, dir, files)
		return dir
	}
	// archiveWith writes a new directory with an archive of raw bytes.
	archiveWith := func(raw []byte) string {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		writeFiles(t, dir, map[string][]byte{"cifar-10-binary.tar.gz": raw})
		return dir
	}
	load := func(dir string) error {
		_, _, err := LoadCIFAR10(dir)
		return err
	}
	tiny := tinyCIFAR10Files()
	goodTar := tarBytes(t, "cifar-10-batches-bin", tiny)
	goodArchive := gzipBytes(t, goodTar)

	wantErr(t, load(filepath.Join(base, "nope")), "loading cifar10", "nope", "no such file")
	wantErr(t, load(dirWith(func(f map[string][]byte) { clear(f) })), "no CIFAR-10 data in", "data_batch_1.bin",
		"cifar-10-batches-bin", "cifar-10-binary.tar.gz")
	wantErr(t, load(dirWith(func(f map[string][]byte) { delete(f, "data_batch_3.bin") })), "data_batch_3.bin", "no such file")
	wantErr(t, load(dirWith(func(f map[string][]byte) {
		f["data_batch_3.bin"] = cifarRecords(0, 10, cifar10Label)[:30729]
	})), "data_batch_3.bin: 30729 bytes is not a whole number of 3073-byte records")
	wantErr(t, load(dirWith(func(f map[string][]byte) { f["data_batch_2.bin"] = nil })),
		"data_batch_2.bin: empty file")
	wantErr(t, load(dirWith(func(f map[string][]byte) {
		f["test_batch.bin"] = cifarRecords(0, 3, func(i int) []byte { return []byte{byte(9 + i)} })
	})), "test_batch.bin: record 1: label 10, expected in [0, 10)")
	wantErr(t, load(dirWith(func(f map[string][]byte) {
		f["batches.meta.txt"] = []byte(strings.Join(cifar10Names[:9], "\n"))
	})), "batches.meta.txt: 9 class names, expected 10")

	// Archives.
	wantErr(t, load(archiveWith(nil)), "cifar-10-binary.tar.gz: empty file")
	wantErr(t, load(archiveWith([]byte("not gzip at all"))), "cifar-10-binary.tar.gz: not a valid gzip stream")
	wantErr(t, load(archiveWith(goodArchive[:len(goodArchive)/2])), "cifar-10-binary.tar.gz", "truncated")
	wantErr(t, load(archiveWith(goodArchive[:len(goodArchive)-4])), "cifar-10-binary.tar.gz", "unexpected EOF")
	corrupt := slices.Clone(goodArchive)
	corrupt[len(corrupt)-6] ^= 0xff // CRC-32 in the gzip trailer.
	wantErr(t, load(archiveWith(corrupt)), "cifar-10-binary.tar.gz", "checksum")
	// A tar archive cut in the middle of data_batch_2.bin, properly gzipped.
	cut := bytes.Index(goodTar, tiny["data_batch_2.bin"][:3073]) + 1000
	wantErr(t, load(archiveWith(gzipBytes(t, goodTar[:cut]))), "cifar-10-binary.tar.gz: cifar-10-batches-bin/data_batch_2.bin",
		"truncated")
	// Cut in a tar header.
	hdr := bytes.Index(goodTar, []byte("cifar-10-batches-bin/data_batch_3.bin"))
	wantErr(t, load(archiveWith(gzipBytes(t, goodTar[:hdr+100]))), "cifar-10-binary.tar.gz", "truncated")
	missing := maps2(tiny, "x", nil)
	delete(missing, "data_batch_5.bin")
	wantErr(t, load(archiveWith(gzipBytes(t, tarBytes(t, "cifar-10-batches-bin", missing)))),
		"cifar-10-binary.tar.gz: archive has no data_batch_5.bin")
	badSize := maps2(tiny, "data_batch_4.bin", make([]byte, 3074))
	wantErr(t, load(archiveWith(gzipBytes(t, tarBytes(t, "cifar-10-batches-bin", badSize)))),
		"cifar-10-binary.tar.gz: cifar-10-batches-bin/data_batch_4.bin: 3074 bytes is not a whole number of 3073-byte records")

	// CIFAR-100 labels.
	load100 := func(train []byte) error {
		n++
		dir := filepath.Join(base, fmt.Sprint(n))
		writeFiles(t, dir, map[string][]byte{"train.bin": train, "test.bin": cifarRecords(0, 1, cifar100Label)})
		_, _, err := LoadCIFAR100(dir)
		return err
	}
	wantErr(t, load100(cifarRecords(0, 2, func(i int) []byte { return []byte{0, byte(99 + i)} })),
		"loading cifar100", "train.bin: record 1: fine label 100, expected in [0, 100)")
	wantErr(t, load100(cifarRecords(0, 2, func(i int) []byte { return []byte{20, 0} })),
		"train.bin: record 0: coarse label 20, expected in [0, 20)")
	wantErr(t, load100(cifarRecords(0, 2, cifar10Label)), "train.bin: 6146 bytes is not a whole number of 3074-byte records")
}
