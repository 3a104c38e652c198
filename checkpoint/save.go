package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/ml/model"
	gomlxckpt "github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/seqconv/seqconv/internal/atomicfile"
)

// Save writes the variables of store and state (nil: none; see Write) as a new checkpoint of dir,
// named after globalStep (see NextName), keeping the newest keep complete checkpoints (keep <= 0:
// nothing is removed), and returns its name.
func Save(store *model.Store, dir string, globalStep int64, state any, keep int) (string, error) {
	name, err := NextName(dir, globalStep)
	if err != nil {
		return "", err
	}
	return name, Write(store, dir, name, state, keep)
}

// NextName returns the name of the next checkpoint saved in dir at globalStep: its
// sequence number follows those of dir's checkpoints.
func NextName(dir string, globalStep int64) (string, error) {
	entries, err := Scan(dir)
	if err != nil {
		return "", fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	seq := 0
	for _, e := range entries {
		seq = max(seq, e.seq()+1)
	}
	return nameOf(seq, globalStep), nil
}

// Write writes the variables of store (every one must have a value) and the caller's state
// (nil: none; for instance a training position), as indented JSON (see Checkpoint.DecodeState), as
// checkpoint name of dir (created if needed). Each file is written
// atomically and the manifest last, then the directory is synced: an interrupted save leaves an
// incomplete checkpoint, which readers skip, never a truncated one. Then the checkpoints older than
// the newest keep complete ones are removed (keep <= 0: nothing is removed).
func Write(store *model.Store, dir, name string, state any, keep int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating checkpoint directory: %w", err)
	}
	// Variables, in the store's order, into N.bin.
	meta := metadata{BinFormat: gomlxckpt.BinUncompressed.String(), Variables: []variable{}}
	var manifest strings.Builder
	binSum, err := writeFileAtomic(dir, name+DataSuffix, func(w io.Writer) error {
		pos := 0
		for v := range store.IterVariables() {
			t, err := v.Value()
			if err != nil || t == nil {
				return fmt.Errorf("variable %s has no value", v.Path())
			}
			var n int
			var werr error
			if err := t.ConstBytes(func(b []byte) { n, werr = w.Write(b) }); err != nil {
				return fmt.Errorf("variable %s: %w", v.Path(), err)
			}
			if werr != nil {
				return werr
			}
			meta.Variables = append(meta.Variables, variable{ParameterName: variableKeyPrefix + v.Path(),
				Dimensions: slices.Clone(t.Shape().Dimensions), DType: t.DType(), Pos: pos, Length: n})
			pos += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	manifest.WriteString(manifestLine(binSum, name+DataSuffix))
	// writeJSON writes v as the file name+suffix (what the error calls it) and lists it in the manifest.
	writeJSON := func(suffix, what, indent string, v any) error {
		b, err := json.MarshalIndent(v, "", indent)
		if err != nil {
			return fmt.Errorf("encoding the %s: %w", what, err)
		}
		sum, err := writeBytesAtomic(dir, name+suffix, append(b, '\n'))
		if err != nil {
			return err
		}
		manifest.WriteString(manifestLine(sum, name+suffix))
		return nil
	}
	if state != nil {
		if err := writeJSON(StateSuffix, "training state", "  ", state); err != nil {
			return err
		}
	}
	for path, value := range store.IterParams() {
		scope, key := model.SplitPath(path)
		meta.Params = append(meta.Params, param{Scope: scope, Key: key, Value: value, ValueType: fmt.Sprintf("%T", value)})
	}
	if err := writeJSON(MetaSuffix, "checkpoint metadata", "\t", &meta); err != nil {
		return err
	}
	if _, err := writeBytesAtomic(dir, name+ManifestSuffix, []byte(manifest.String())); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return err
	}
	if keep > 0 {
		if err := Prune(dir, keep); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes dir/name atomically (see atomicfile.Write) and returns the SHA-256 of what write
// wrote.
func writeFileAtomic(dir, name string, write func(w io.Writer) error) (sum [sha256.Size]byte, err error) {
	h := sha256.New()
	err = atomicfile.Write(filepath.Join(dir, name), func(w io.Writer) error { return write(io.MultiWriter(w, h)) })
	if err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// writeBytesAtomic is writeFileAtomic for a byte slice.
func writeBytesAtomic(dir, name string, b []byte) ([sha256.Size]byte, error) {
	return writeFileAtomic(dir, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// manifestLine formats one line of a manifest (sha256sum's format).
func manifestLine(sum [sha256.Size]byte, file string) string {
	return hex.EncodeToString(sum[:]) + "  " + file + "\n"
}

// Prune removes the checkpoints of dir older than its newest keep complete ones, and
// leftover temporary files.
func Prune(dir string, keep int) error {
	entries, err := Scan(dir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	kept := 0
	cut := -1 // Entries at or before cut are removed.
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Complete() {
			kept++
			if kept == keep {
				cut = i - 1
				break
			}
		}
	}
	for _, e := range entries[:cut+1] {
		if err := remove(dir, e); err != nil {
			return err
		}
	}
	RemoveTemp(dir)
	return nil
}

// remove removes the files of a checkpoint, the manifest first.
func remove(dir string, e Entry) error {
	for _, f := range e.Files() {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing old checkpoint file: %w", err)
		}
	}
	return nil
}

// RemoveTemp removes the temporary files of interrupted writes.
func RemoveTemp(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if !de.IsDir() && strings.HasPrefix(de.Name(), atomicfile.TempPrefix) {
			_ = os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// SetAside renames the files of a corrupt or incomplete checkpoint with prefix
// (CorruptPrefix, IncompletePrefix), so that they are kept for inspection, never deleted (they may be
// the user's only copy), but no longer listed. Files set aside before under the same names (a resumed
// run can reach the same checkpoint name again) are kept too: the new ones get a numbered prefix
// ("corrupt-2-", ...).
func SetAside(dir string, e Entry, prefix string) error {
	files := e.Files()
	target := prefix
	for n := 2; ; n++ {
		taken := false
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, target+f)); err == nil {
				taken = true
				break
			}
		}
		if !taken {
			break
		}
		target = fmt.Sprintf("%s%d-", prefix, n)
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, target+f)); err != nil {
			return fmt.Errorf("setting aside checkpoint file %s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}

// Copy copies checkpoint name of srcDir into dstDir (created if needed), each file
// atomically and the manifest last, and then removes every other checkpoint of dstDir, so that it
// holds exactly that one.
func Copy(srcDir, name, dstDir string) error {
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dstDir, err)
	}
	for _, suffix := range []string{DataSuffix, StateSuffix, MetaSuffix, ManifestSuffix} {
		src := filepath.Join(srcDir, name+suffix)
		in, err := os.Open(src)
		if errors.Is(err, os.ErrNotExist) && suffix == StateSuffix {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying checkpoint: %w", err)
		}
		_, err = writeFileAtomic(dstDir, name+suffix, func(w io.Writer) error {
			_, err := io.Copy(w, in)
			return err
		})
		_ = in.Close()
		if err != nil {
			return fmt.Errorf("copying checkpoint %s to %s: %w", src, dstDir, err)
		}
	}
	if err := atomicfile.SyncDir(dstDir); err != nil {
		return err
	}
	entries, err := Scan(dstDir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", dstDir, err)
	}
	for _, e := range entries {
		if e.Name != name {
			if err := remove(dstDir, e); err != nil {
				return err
			}
		}
	}
	RemoveTemp(dstDir)
	return nil
}
