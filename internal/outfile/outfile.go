// Package outfile holds the one rule for the files the commands write where the user says (--out,
// --output, --csv):
//
//   - the extension must be one of the format's;
//   - a symbolic link is followed, and its final target is written (atomically, next to the target), so
//     the link stays a link;
//   - an existing target must be a regular file: a directory, FIFO, socket or device is refused, never
//     replaced or written to;
//   - a file the caller protects (the files of a run directory) is refused;
//   - any other existing regular file is replaced, as cp and numpy.save do; the replacement is atomic, so a
//     failed write leaves the old content.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/seqconv/seqconv/internal/atomicfile"
)

// maxLinks is how many symbolic links Check follows before giving up (Linux's limit).
const maxLinks = 40

// Spec describes an output file argument.
type Spec struct {
	// Flag names the argument in errors, e.g. "--out".
	Flag string
	// Format names the file format in errors, e.g. "PyTorch state_dict .npz".
	Format string
	// Exts are the accepted extensions, lower case with the dot (e.g. ".npz"); the comparison ignores case.
	// Empty: any.
	Exts []string
	// Protected, if set, returns why the file at path (the symbolic links' final target) must not be
	// replaced, or "" when it may be.
	Protected func(path string) string
}

// Error is an output path that Check refuses.
type Error struct {
	Flag, Path, Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s %s: %s", e.Flag, e.Path, e.Reason) }

// Check applies the rule to path and returns the file to write: path itself, or the final target of the
// symbolic link path is. Refusals are *Error values naming s.Flag and path.
func Check(path string, s Spec) (string, error) {
	refuse := func(format string, args ...any) (string, error) {
		return "", &Error{Flag: s.Flag, Path: path, Reason: fmt.Sprintf(format, args...)}
	}
	if path == "" {
		return refuse("empty path")
	}
	target, err := resolve(path)
	if err != nil {
		return refuse("%v", err)
	}
	if st, err := os.Stat(target); err == nil {
		switch {
		case st.IsDir():
			return refuse("is a directory, want a file")
		case !st.Mode().IsRegular():
			return refuse("is not a regular file (%s): refusing to write to it", kind(st.Mode()))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return refuse("%v", unwrap(err))
	}
	// A run's own file is named as such, whatever its extension: that says more than the extension.
	if s.Protected != nil {
		if why := s.Protected(target); why != "" {
			return refuse("%s: refusing to write it", why)
		}
	}
	if ext := strings.ToLower(filepath.Ext(path)); len(s.Exts) > 0 && !slices.Contains(s.Exts, ext) {
		return refuse("want %s %s file (%s), not %q", article(s.Format), s.Format, strings.Join(s.Exts, ", "),
			filepath.Ext(path))
	}
	dir := filepath.Dir(target)
	st, err := os.Stat(dir)
	if err != nil {
		return refuse("directory %s: %v", dir, unwrap(err))
	}
	if !st.IsDir() {
		return refuse("%s is not a directory", dir)
	}
	return target, nil
}

// article is the indefinite article of a format name: "an" before a vowel ("an ONNX model"), else "a".
func article(name string) string {
	if name != "" && strings.ContainsRune("aeiouAEIOU", rune(name[0])) {
		return "an"
	}
	return "a"
}

// resolve follows the symbolic links path may be, to the final target (which may not exist yet).
func resolve(path string) (string, error) {
	for range maxLinks {
		st, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && st.Mode()&fs.ModeSymlink == 0) {
			return path, nil
		}
		if err != nil {
			return "", unwrap(err)
		}
		link, err := os.Readlink(path)
		if err != nil {
			return "", unwrap(err)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(filepath.Dir(path), link)
		}
		path = link
	}
	return "", errors.New("too many levels of symbolic links")
}

// kind names a non-regular file mode.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}

// unwrap returns the cause of an *fs.PathError, whose message repeats the path.
func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// WriteFile writes b to target (as Check returned it) atomically: a failure leaves target as it was.
func WriteFile(target string, b []byte) error {
	err := atomicfile.Write(target, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("writing %s: %w", target, pe.Err)
	}
	return err
}
