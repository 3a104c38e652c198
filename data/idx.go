package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte)
// and the number of dimensions.
const (
	idxImagesMagic = 0x00000803 // unsigned bytes, 3 dimensions: count, rows, cols.
	idxLabelsMagic = 0x00000801 // unsigned bytes, 1 dimension: count.

	// idxMaxInitialAlloc bounds the buffer pre-allocated from the header's
	// claims, so that a corrupt header cannot make us allocate gigabytes before
	// we find out the data isn't there. The buffer grows as data actually
	// arrives.
	idxMaxInitialAlloc = 64 << 20
)

// ReadIDXImages reads an IDX3 unsigned-byte image file (the MNIST
// "*-images-idx3-ubyte" format) from r. The input may be gzip-compressed (it
// is detected by the gzip magic bytes 1f 8b) or raw.
//
// name identifies the input in error messages (usually the file name).
//
// It returns the number of images n, their dimensions rows x cols and the
// pixels, n*rows*cols bytes in row-major order (image, row, column).
//
// Malformed input (bad magic number, truncated header or data, trailing
// bytes after the data, corrupt gzip stream) is reported as an error that
// names the input and what was expected; it never panics.
func ReadIDXImages(name string, r io.Reader) (n, rows, cols int, pixels []uint8, err error) {
	rd, err := idxReader(name, r)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	var hdr [16]byte
	if err := readIDXHeader(name, "IDX3 image", rd, hdr[:], idxImagesMagic, "IDX3 unsigned-byte images"); err != nil {
		return 0, 0, 0, nil, err
	}
	n32 := binary.BigEndian.Uint32(hdr[4:8])
	rows32 := binary.BigEndian.Uint32(hdr[8:12])
	cols32 := binary.BigEndian.Uint32(hdr[12:16])
	if rows32 == 0 || cols32 == 0 {
		return 0, 0, 0, nil, fmt.Errorf("%s: invalid IDX3 header: image size %dx%d, expected rows and cols > 0",
			name, rows32, cols32)
	}
	hi, total := bits.Mul64(uint64(n32), uint64(rows32)*uint64(cols32))
	if hi != 0 || total > math.MaxInt {
		return 0, 0, 0, nil, fmt.Errorf("%s: invalid IDX3 header: %d images of %dx%d is too large",
			name, n32, rows32, cols32)
	}
	what := fmt.Sprintf("pixel data for %d images of %dx%d", n32, rows32, cols32)
	pixels, err = readIDXBody(name, what, rd, int64(total))
	if err != nil {
		return 0, 0, 0, nil, err
	}
	return int(n32), int(rows32), int(cols32), pixels, nil
}

// ReadIDXLabels reads an IDX1 unsigned-byte label file (the MNIST
// "*-labels-idx1-ubyte" format) from r. The input may be gzip-compressed (it
// is detected by the gzip magic bytes 1f 8b) or raw.
//
// name identifies the input in error messages (usually the file name).
//
// Malformed input (bad magic number, truncated header or data, trailing
// bytes after the data, corrupt gzip stream) is reported as an error that
// names the input and what was expected; it never panics.
func ReadIDXLabels(name string, r io.Reader) ([]uint8, error) {
	rd, err := idxReader(name, r)
	if err != nil {
		return nil, err
	}
	var hdr [8]byte
	if err := readIDXHeader(name, "IDX1 label", rd, hdr[:], idxLabelsMagic, "IDX1 unsigned-byte labels"); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[4:8])
	return readIDXBody(name, fmt.Sprintf("%d labels", n), rd, int64(n))
}

// idxReader returns a reader over the decompressed contents of r: r itself
// (buffered) if raw, or a gzip reader if r starts with the gzip magic bytes.
func idxReader(name string, r io.Reader) (io.Reader, error) {
	if r == nil {
		return nil, fmt.Errorf("%s: nil reader", name)
	}
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: reading: %w", name, err)
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: invalid gzip stream: %w", name, err)
		}
		return zr, nil
	}
	// Raw input (possibly shorter than 2 bytes: the header read reports it).
	return br, nil
}

// readIDXHeader reads len(hdr) bytes of header, checking the magic number
// (the first 4 bytes) as soon as it is read.
func readIDXHeader(name, kind string, r io.Reader, hdr []byte, wantMagic uint32, magicDesc string) error {
	if err := readFull(name, kind, r, hdr[:4], 0, len(hdr)); err != nil {
		return err
	}
	if magic := binary.BigEndian.Uint32(hdr[:4]); magic != wantMagic {
		return badMagicError(name, magic, wantMagic, magicDesc)
	}
	return readFull(name, kind, r, hdr[4:], 4, len(hdr))
}

// readFull reads the header bytes [already, already+len(buf)) of a header of
// total bytes.
func readFull(name, kind string, r io.Reader, buf []byte, already, total int) error {
	got, err := io.ReadFull(r, buf)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%s: truncated %s header: got %d bytes, expected %d: %w",
				name, kind, already+got, total, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("%s: reading %s header: %w", name, kind, err)
	}
	return nil
}

// readIDXBody reads exactly size bytes and then checks the stream ends there
// (reading to the end also makes gzip verify its checksum).
func readIDXBody(name, what string, r io.Reader, size int64) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, min(size, idxMaxInitialAlloc)))
	got, err := io.CopyN(buf, r, size)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%s: truncated data: expected %d bytes of %s, got %d: %w",
				name, size, what, got, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("%s: reading %s (%d of %d bytes read): %w", name, what, got, size, err)
	}
	var extra [1]byte
	k, err := io.ReadFull(r, extra[:])
	switch {
	case k > 0:
		return nil, fmt.Errorf("%s: unexpected trailing data after the %d bytes of %s", name, size, what)
	case err != nil && !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%s: reading end of stream after %s: %w", name, what, err)
	}
	return buf.Bytes(), nil
}

func badMagicError(name string, got, want uint32, kind string) error {
	hint := ""
	switch {
	case got == idxImagesMagic:
		hint = " (this looks like an IDX3 image file)"
	case got == idxLabelsMagic:
		hint = " (this looks like an IDX1 label file)"
	case got>>16 == 0x1f8b:
		hint = " (this looks like a gzip stream nested in another gzip stream)"
	}
	return fmt.Errorf("%s: bad magic number 0x%08x, expected 0x%08x (%s)%s", name, got, want, kind, hint)
}
