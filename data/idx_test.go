package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// idxImages returns a raw IDX3 file with the given header fields and payload.
func idxImages(magic, n, rows, cols uint32, pixels []byte) []byte {
	var b bytes.Buffer
	for _, v := range []uint32{magic, n, rows, cols} {
		_ = binary.Write(&b, binary.BigEndian, v)
	}
	b.Write(pixels)
	return b.Bytes()
}

// idxLabels returns a raw IDX1 file with the given header fields and payload.
func idxLabels(magic, n uint32, labels []byte) []byte {
	var b bytes.Buffer
	for _, v := range []uint32{magic, n} {
		_ = binary.Write(&b, binary.BigEndian, v)
	}
	b.Write(labels)
	return b.Bytes()
}

func gzipBytes(t *testing.T, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func wantErr(t *testing.T, err error, substrs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error containing %q, got nil", substrs)
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

func TestReadIDXImagesValid(t *testing.T) {
	pixels := []byte{0, 1, 2, 3, 4, 5, 250, 251, 252, 253, 254, 255} // 2 images of 2x3.
	raw := idxImages(0x803, 2, 2, 3, pixels)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"raw", raw}, {"gzip", gzipBytes(t, raw)}} {
		t.Run(tc.name, func(t *testing.T) {
			n, rows, cols, got, err := ReadIDXImages("imgs", bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if n != 2 || rows != 2 || cols != 3 {
				t.Errorf("got n=%d rows=%d cols=%d, want 2, 2, 3", n, rows, cols)
			}
			if !bytes.Equal(got, pixels) {
				t.Errorf("pixels = %v, want %v", got, pixels)
			}
		})
	}
	// Zero images is valid.
	n, _, _, got, err := ReadIDXImages("empty", bytes.NewReader(idxImages(0x803, 0, 28, 28, nil)))
	if err != nil || n != 0 || len(got) != 0 {
		t.Errorf("empty file: n=%d len=%d err=%v", n, len(got), err)
	}
}

func TestReadIDXLabelsValid(t *testing.T) {
	labels := []byte{5, 0, 4, 1, 9}
	raw := idxLabels(0x801, 5, labels)
	for _, tc := range []struct {
		name string
		data []byte
	}{{"raw", raw}, {"gzip", gzipBytes(t, raw)}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadIDXLabels("lbls", bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, labels) {
				t.Errorf("labels = %v, want %v", got, labels)
			}
		})
	}
}

func TestReadIDXErrors(t *testing.T) {
	goodImgs := idxImages(0x803, 2, 2, 2, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	goodLbls := idxLabels(0x801, 3, []byte{1, 2, 3})
	corruptGzip := gzipBytes(t, goodImgs)
	corruptGzip[len(corruptGzip)-8] ^= 0xff // Flip a CRC-32 byte in the gzip trailer.

	imgCases := []struct {
		desc string
		data []byte
		want []string
	}{
		{"bad magic", idxImages(0x804, 2, 2, 2, make([]byte, 8)), []string{"bad magic", "0x00000804", "0x00000803"}},
		{"label file given as images", goodLbls, []string{"bad magic", "0x00000801", "IDX1 label file"}},
		{"empty", nil, []string{"truncated IDX3 image header", "got 0 bytes, expected 16"}},
		{"truncated header", goodImgs[:10], []string{"truncated IDX3 image header", "got 10 bytes, expected 16"}},
		{"truncated pixels", goodImgs[:20], []string{"truncated data", "expected 8 bytes", "got 4"}},
		{"truncated pixels gzip", gzipBytes(t, goodImgs[:20]), []string{"truncated data", "expected 8 bytes", "got 4"}},
		{"truncated gzip stream", gzipBytes(t, goodImgs)[:25], []string{"truncated"}},
		{"trailing data", append(bytes.Clone(goodImgs), 9), []string{"trailing data"}},
		{"zero rows", idxImages(0x803, 1, 0, 2, nil), []string{"image size 0x2"}},
		{"huge header", idxImages(0x803, 0xffffffff, 0xffffffff, 0xffffffff, nil), []string{"too large"}},
		{"implausible count", idxImages(0x803, 1_000_000, 1000, 1000, []byte{1, 2}), []string{"truncated data", "got 2"}},
		{"corrupt gzip checksum", corruptGzip, []string{"checksum"}},
		{"bad gzip header", []byte{0x1f, 0x8b, 0, 0}, []string{"invalid gzip stream"}},
	}
	for _, tc := range imgCases {
		t.Run("images/"+tc.desc, func(t *testing.T) {
			_, _, _, _, err := ReadIDXImages("my-images.idx3", bytes.NewReader(tc.data))
			wantErr(t, err, append([]string{"my-images.idx3"}, tc.want...)...)
		})
	}

	lblCases := []struct {
		desc string
		data []byte
		want []string
	}{
		{"bad magic", idxLabels(0x802, 3, []byte{1, 2, 3}), []string{"bad magic", "0x00000802", "0x00000801"}},
		{"image file given as labels", goodImgs, []string{"bad magic", "IDX3 image file"}},
		{"truncated header", goodLbls[:5], []string{"truncated IDX1 label header", "got 5 bytes, expected 8"}},
		{"truncated labels", goodLbls[:9], []string{"truncated data", "expected 3 bytes of 3 labels", "got 1"}},
		{"truncated labels gzip", gzipBytes(t, goodLbls[:10]), []string{"truncated data", "got 2"}},
		{"trailing data", append(bytes.Clone(goodLbls), 0), []string{"trailing data"}},
	}
	for _, tc := range lblCases {
		t.Run("labels/"+tc.desc, func(t *testing.T) {
			_, err := ReadIDXLabels("my-labels.idx1", bytes.NewReader(tc.data))
			wantErr(t, err, append([]string{"my-labels.idx1"}, tc.want...)...)
		})
	}
}

func TestReadIDXTruncationIsUnexpectedEOF(t *testing.T) {
	data := idxLabels(0x801, 3, []byte{1})
	_, err := ReadIDXLabels("x", bytes.NewReader(data))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("errors.Is(%v, io.ErrUnexpectedEOF) = false", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadIDXReaderError(t *testing.T) {
	boom := errors.New("boom")
	_, _, _, _, err := ReadIDXImages("f.gz", failingReader{boom})
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the reader's error", err)
	}
	wantErr(t, err, "f.gz")
	_, err = ReadIDXLabels("g.gz", io.MultiReader(bytes.NewReader(idxLabels(0x801, 4, []byte{1})), failingReader{boom}))
	if !errors.Is(err, boom) {
		t.Errorf("error %v does not wrap the reader's error", err)
	}
	wantErr(t, err, "g.gz")
	_, err = ReadIDXLabels("nil", nil)
	wantErr(t, err, "nil reader")
}

func TestImageSetFromIDX(t *testing.T) {
	imgs := idxImages(0x803, 3, 1, 2, []byte{0, 255, 10, 20, 30, 40})
	set, err := imageSetFromIDX("tiny", "i", bytes.NewReader(gzipBytes(t, imgs)), "l",
		bytes.NewReader(idxLabels(0x801, 3, []byte{2, 0, 1})), 3)
	if err != nil {
		t.Fatal(err)
	}
	if set.N != 3 || set.H != 1 || set.W != 2 || set.C != 1 || set.NumClasses != 3 {
		t.Errorf("got %+v", set)
	}
	if want := []int32{2, 0, 1}; !equalSlices(set.Labels, want) {
		t.Errorf("labels = %v, want %v", set.Labels, want)
	}
	if err := set.Validate(); err != nil {
		t.Error(err)
	}

	_, err = imageSetFromIDX("tiny", "tiny-images", bytes.NewReader(imgs), "tiny-labels",
		bytes.NewReader(idxLabels(0x801, 2, []byte{2, 0})), 3)
	wantErr(t, err, "count mismatch", "tiny-images has 3 images", "tiny-labels has 2 labels")

	_, err = imageSetFromIDX("tiny", "tiny-images", bytes.NewReader(imgs), "tiny-labels",
		bytes.NewReader(idxLabels(0x801, 3, []byte{2, 3, 0})), 3)
	wantErr(t, err, "tiny-labels", "label #1 is 3")
}

func equalSlices[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
