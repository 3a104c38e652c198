package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/internal/outfile"
	"github.com/seqconv/seqconv/internal/text"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// The checks of the paths the user gives, with their messages, in one place: the same situation reads the
// same in every command ("--run DIR: no such directory", "--run DIR: not a run directory (no config.json)").

// errNoSuchDir is the message for a directory flag naming nothing.
func errNoSuchDir(flag, dir string) error { return usagef("%s %s: no such directory", flag, dir) }

// errNotRunDir is the message for a directory that is not a run directory.
func errNotRunDir(flag, dir string) error {
	return usagef("%s %s: not a run directory (no %s)", flag, dir, train.ConfigFile)
}

// requireFlags takes pairs of flag names and values and returns a usageError naming the flags left empty.
func requireFlags(nameValues ...string) error {
	var missing []string
	for i := 0; i+1 < len(nameValues); i += 2 {
		if nameValues[i+1] == "" {
			missing = append(missing, nameValues[i])
		}
	}
	switch len(missing) {
	case 0:
		return nil
	case 1:
		return usagef("%s is required", missing[0])
	}
	return usagef("%s are required", strings.Join(missing, ", "))
}

// checkDir checks that the directory given to flag exists and is a directory.
func checkDir(flag, dir string) error {
	if dir == "" {
		return requireFlags(flag, dir)
	}
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return errNoSuchDir(flag, dir)
	}
	if err != nil {
		return usagef("%s %s: %v", flag, dir, unwrapPathError(err))
	}
	if !st.IsDir() {
		return usagef("%s %s: not a directory", flag, dir)
	}
	return nil
}

// checkRunDirExists checks that the directory given to flag (--run, --resume) is a run directory: a
// directory with a config.json.
func checkRunDirExists(flag, dir string) error {
	if err := checkDir(flag, dir); err != nil {
		return err
	}
	if st, err := os.Stat(filepath.Join(dir, train.ConfigFile)); err != nil || !st.Mode().IsRegular() {
		return errNotRunDir(flag, dir)
	}
	return nil
}

// checkInputFile checks that the file given to flag exists and is a regular file.
func checkInputFile(flag, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return usagef("%s %s: no such file", flag, path)
	}
	if err != nil {
		return usagef("%s %s: %v", flag, path, unwrapPathError(err))
	}
	if st.IsDir() {
		return usagef("%s %s: is a directory, want a file", flag, path)
	}
	if !st.Mode().IsRegular() {
		return usagef("%s %s: not a regular file", flag, path)
	}
	return nil
}

// outputFile applies the output-file rule of package outfile to the file given to flag: format's
// extensions, symbolic links written through, only regular files replaced, never a file of a run
// directory. It returns the file to write.
func outputFile(flag, path, format string, exts ...string) (string, error) {
	target, err := outfile.Check(path, outfile.Spec{Flag: flag, Format: format, Exts: exts,
		Protected: train.ProtectedRunFile})
	if err != nil {
		return "", usagef("%v", err)
	}
	return target, nil
}

// writeOutput writes b to target, a file outputFile returned, atomically.
func writeOutput(target string, b []byte) error { return outfile.WriteFile(target, b) }

// unwrapPathError returns the cause of an *os.PathError (whose message repeats the path).
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// epochsString formats "1 epoch", "2 epochs".
func epochsString(n int) string { return text.Epochs(n) }

// fileExists reports whether path names a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// printJSON writes v to w as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openRun creates the backend for inference (a fallback noted on stderr) and loads the model and variables
// of run directory dir (its best checkpoint when best). The caller finalizes the backend.
func openRun(stderr io.Writer, dir string, best bool) (compute.Backend, models.Config, *model.Store, error) {
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return nil, models.Config{}, nil, err
	}
	cfg, store, err := train.LoadRun(backend, dir, best)
	if err != nil {
		backend.Finalize()
		return nil, models.Config{}, nil, err
	}
	return backend, cfg, store, nil
}
