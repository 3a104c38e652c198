// Writing .npy files.

package interop

import (
	"fmt"
	"io"

	"github.com/seqconv/seqconv/internal/atomicfile"
)

// WriteNPY writes a to w in NumPy .npy format (version 1.0, or 2.0 for headers over 64 KiB), as numpy.save
// does: little-endian, C order, header aligned to 64 bytes.
func WriteNPY(w io.Writer, a *Array) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if _, err := w.Write(npyHeader(a)); err != nil {
		return fmt.Errorf("npy: writing header: %w", err)
	}
	// Encode in bounded chunks to avoid doubling the memory of large arrays.
	n, _ := dataLen(a.DType, a.Data)
	t, _ := npyTypeOf(a.DType)
	step := max(1, readChunk/t.size)
	buf := make([]byte, 0, min(n, step)*t.size)
	for start := 0; start < n; start += step {
		end := min(n, start+step)
		buf = encode(buf[:0], sliceAny(a.Data, start, end))
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("npy: writing data: %w", err)
		}
	}
	return nil
}

// WriteNPYFile writes a to a .npy file atomically (see WriteNPY and WriteNPZ).
func WriteNPYFile(path string, a *Array) error {
	return atomicfile.Write(path, func(w io.Writer) error { return WriteNPY(w, a) })
}
