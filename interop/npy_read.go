// Reading .npy files.

package interop

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// readChunk is the largest buffer growth step of ReadNPY: the data buffer never exceeds what the input actually
// held by more than this, whatever the header claims.
const readChunk = 1 << 22

// ReadNPY reads one array in NumPy .npy format (versions 1.0, 2.0 and 3.0) from r. It reads exactly the
// header and the data, nothing after them. Supported are little-endian numeric and bool dtypes in C order
// (see Array); big-endian data, fortran_order=True, structured and object dtypes are errors. Corrupt input
// (bad magic or header, truncated data, a shape larger than the data) gives an error, never a panic, and
// the data buffer only grows as bytes actually arrive.
func ReadNPY(r io.Reader) (*Array, error) {
	var pre [10]byte
	if n, err := io.ReadFull(r, pre[:8]); err != nil {
		if n == 0 && err == io.EOF {
			return nil, fmt.Errorf("npy: empty input, want the magic %q", npyMagic)
		}
		return nil, fmt.Errorf("npy: truncated preamble (%d of 8 bytes): %w", n, err)
	}
	if string(pre[:6]) != npyMagic {
		return nil, fmt.Errorf("npy: bad magic %q, want %q", pre[:6], npyMagic)
	}
	major, minor := pre[6], pre[7]
	var headerLen int
	switch major {
	case 1:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, fmt.Errorf("npy: truncated header length: %w", err)
		}
		headerLen = int(binary.LittleEndian.Uint16(pre[8:10]))
	case 2, 3:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, fmt.Errorf("npy: truncated header length: %w", err)
		}
		n := binary.LittleEndian.Uint32(l[:])
		if n > maxHeaderLen {
			return nil, fmt.Errorf("npy: header length %d exceeds the limit of %d bytes", n, maxHeaderLen)
		}
		headerLen = int(n)
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d.%d, want 1.0, 2.0 or 3.0", major, minor)
	}
	if minor != 0 {
		return nil, fmt.Errorf("npy: unsupported format version %d.%d, want 1.0, 2.0 or 3.0", major, minor)
	}
	header := make([]byte, headerLen)
	if n, err := io.ReadFull(r, header); err != nil {
		return nil, fmt.Errorf("npy: truncated header (%d of %d bytes): %w", n, headerLen, err)
	}
	h, err := parseHeader(string(header))
	if err != nil {
		return nil, fmt.Errorf("npy: header %q: %w", strings.TrimSpace(string(header)), err)
	}
	if h.fortranOrder {
		return nil, fmt.Errorf("npy: fortran_order=True is not supported, want C order (fortran_order=False)")
	}
	t, err := parseDescr(h.descr)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	count, err := checkedSize(h.shape)
	if err != nil {
		return nil, fmt.Errorf("npy: shape %v: %w", h.shape, err)
	}
	if count > math.MaxInt/t.size {
		return nil, fmt.Errorf("npy: shape %v of %s overflows the addressable size", h.shape, h.descr)
	}
	nbytes := count * t.size
	data, err := readBounded(r, nbytes)
	if err != nil {
		return nil, fmt.Errorf("npy: %s%s data: want %d bytes, got %d: truncated", h.descr, dimsString(h.shape),
			nbytes, len(data))
	}
	a := &Array{DType: t.dtype, Shape: h.shape, Data: decode(t.dtype, data, count)}
	return a, nil
}

// readBounded reads exactly n bytes from r, growing its buffer at most readChunk bytes ahead of what arrived.
// On a short read it returns what it got and a non-nil error.
func readBounded(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, readChunk))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grow := min(n-len(buf), max(readChunk, len(buf)/4))
			nb := make([]byte, len(buf), len(buf)+grow)
			copy(nb, buf)
			buf = nb
		}
		m, err := io.ReadFull(r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// ReadNPYFile reads a .npy file (see ReadNPY), which must end with the array's data: trailing bytes are an
// error (the file is not what its header describes). Errors name the file.
func ReadNPYFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	a, err := ReadNPY(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(br, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: after the array data: %w", path, err)
	}
	if n > 0 {
		more := ""
		if n == 1<<20 {
			more = " or more"
		}
		return nil, fmt.Errorf("%s: %d%s unexpected bytes after the array data of %s", path, n, more, a)
	}
	return a, nil
}
