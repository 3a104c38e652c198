package interop

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/seqconv/seqconv/internal/atomicfile"
)

// ReadNPZ reads a NumPy .npz archive (numpy.savez, stored, or numpy.savez_compressed, deflated): a zip
// archive of NAME.npy entries. It returns the arrays by NAME and the names in the archive's order. Every
// entry must be a valid .npy file (see ReadNPY) with nothing after its data; errors name the file and the
// entry.
func ReadNPZ(path string) (map[string]*Array, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	arrays, keys, err := ReadNPZFrom(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return arrays, keys, nil
}

// ReadNPZFrom reads a .npz archive of the given size from r; see ReadNPZ.
func ReadNPZFrom(r io.ReaderAt, size int64) (map[string]*Array, []string, error) {
	z, err := zip.NewReader(r, size)
	if err != nil {
		return nil, nil, fmt.Errorf("npz: not a valid zip archive: %w", err)
	}
	arrays := make(map[string]*Array, len(z.File))
	keys := make([]string, 0, len(z.File))
	for _, zf := range z.File {
		name := zf.Name
		key, ok := strings.CutSuffix(name, ".npy")
		if !ok || key == "" {
			return nil, nil, fmt.Errorf("npz: entry %q: want a NAME.npy entry", name)
		}
		if _, dup := arrays[key]; dup {
			return nil, nil, fmt.Errorf("npz: entry %q: duplicate key %q", name, key)
		}
		a, err := readEntry(zf)
		if err != nil {
			return nil, nil, fmt.Errorf("npz: entry %q: %w", name, err)
		}
		arrays[key] = a
		keys = append(keys, key)
	}
	return arrays, keys, nil
}

// readEntry reads one .npy entry and checks that nothing follows the array (which also has archive/zip verify
// the entry's size and CRC-32).
func readEntry(zf *zip.File) (*Array, error) {
	rc, err := zf.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<16)
	a, err := ReadNPY(br)
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(io.Discard, io.LimitReader(br, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("after the array data: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("%d unexpected bytes after the array data of %s", n, a)
	}
	return a, nil
}

// WriteNPZ writes arrays to a .npz archive at path as numpy.savez does (entries NAME.npy, stored, not
// compressed), in the order given by order, which must list every key of arrays exactly once (nil: sorted
// keys). The file is written atomically: to a temporary file in the same directory, synced, then renamed
// over path, so that readers never see a partial archive.
func WriteNPZ(path string, arrays map[string]*Array, order []string) error {
	return writeNPZ(path, arrays, order, zip.Store)
}

// WriteNPZCompressed is WriteNPZ with deflated entries, as numpy.savez_compressed writes them.
func WriteNPZCompressed(path string, arrays map[string]*Array, order []string) error {
	return writeNPZ(path, arrays, order, zip.Deflate)
}

func writeNPZ(path string, arrays map[string]*Array, order []string, method uint16) error {
	if order == nil {
		order = make([]string, 0, len(arrays))
		for k := range arrays {
			order = append(order, k)
		}
		slices.Sort(order)
	}
	if err := checkOrder(arrays, order); err != nil {
		return fmt.Errorf("npz %s: %w", path, err)
	}
	for _, k := range order {
		if err := arrays[k].Validate(); err != nil {
			return fmt.Errorf("npz %s: array %q: %w", path, k, err)
		}
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		zw := zip.NewWriter(w)
		for _, k := range order {
			fw, err := zw.CreateHeader(&zip.FileHeader{
				Name:     k + ".npy",
				Method:   method,
				Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC), // deterministic output
			})
			if err != nil {
				return fmt.Errorf("npz entry %q: %w", k+".npy", err)
			}
			if err := WriteNPY(fw, arrays[k]); err != nil {
				return fmt.Errorf("npz entry %q: %w", k+".npy", err)
			}
		}
		return zw.Close()
	})
}

// checkOrder checks that order lists every key of arrays exactly once and nothing else.
func checkOrder(arrays map[string]*Array, order []string) error {
	var problems []string
	seen := make(map[string]bool, len(order))
	for _, k := range order {
		switch {
		case k == "":
			problems = append(problems, "empty key in order")
		case seen[k]:
			problems = append(problems, fmt.Sprintf("key %q listed twice in order", k))
		case arrays[k] == nil:
			problems = append(problems, fmt.Sprintf("key %q in order has no array", k))
		}
		seen[k] = true
	}
	for k := range arrays {
		if !seen[k] {
			problems = append(problems, fmt.Sprintf("key %q missing from order", k))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}
