package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/train"
)

// outputDir is a directory a command writes its results into (train --run, experiment --out, import --out):
// it must be new or empty, so that no file of the user's is replaced. If the command fails before writing
// anything worth keeping, removeIfUseless takes away what the command created, and only that.
type outputDir struct {
	path string
	// created are the directories prepareOutputDir created, the deepest first; empty when path existed.
	created []string
}

// prepareOutputDir checks that dir, given to flag, is new or empty, creates it (with its missing parents)
// and checks that it is writable. A run directory that "seqconv train --resume" can continue gets a message
// saying so.
func prepareOutputDir(flag, dir string) (*outputDir, error) {
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return nil, usagef("%s %s: not a directory", flag, dir)
	case err == nil:
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, usagef("%s %s: %v", flag, dir, unwrapPathError(err))
		}
		if len(entries) > 0 {
			return nil, nonEmptyDirError(flag, dir, entries)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, usagef("%s %s: %v", flag, dir, unwrapPathError(err))
	}
	d := &outputDir{path: dir}
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || p == filepath.Dir(p) {
			break
		}
		d.created = append(d.created, p)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		d.removeIfUseless()
		return nil, usagef("%s %s: cannot create the directory: %v", flag, dir, unwrapPathError(err))
	}
	f, err := os.CreateTemp(dir, ".seqconv-write-test-*")
	if err == nil {
		_ = f.Close()
		err = os.Remove(f.Name())
	}
	if err != nil {
		d.removeIfUseless()
		return nil, usagef("%s %s: the directory is not writable: %v", flag, dir, unwrapPathError(err))
	}
	return d, nil
}

// nonEmptyDirError explains why a directory that is not empty is refused.
func nonEmptyDirError(flag, dir string, entries []fs.DirEntry) error {
	if m, _ := filepath.Glob(filepath.Join(dir, train.LatestDir, checkpoint.Prefix+"*")); len(m) > 0 {
		return usagef("%s %s already holds a run: continue it with \"seqconv train --resume %s\", or choose a new "+
			"or empty directory", flag, dir, dir)
	}
	names := make([]string, 0, 3)
	for _, e := range entries[:min(3, len(entries))] {
		names = append(names, e.Name())
	}
	if len(entries) > 3 {
		names = append(names, "...")
	}
	return usagef("%s %s is not empty (it holds %s): choose a new or empty directory, so that no file is replaced",
		flag, dir, strings.Join(names, ", "))
}

// hasCheckpoint reports whether the directory holds a checkpoint file, at any depth.
func hasCheckpoint(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasPrefix(e.Name(), checkpoint.Prefix) {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// removeIfUseless removes what the command wrote in the directory when it holds no checkpoint (nothing to
// resume or inspect): the directory itself and the parents prepareOutputDir created, or, when the directory
// existed (it was empty), its content. It reports whether it removed anything.
func (d *outputDir) removeIfUseless() bool {
	if d == nil || hasCheckpoint(d.path) {
		return false
	}
	if len(d.created) == 0 {
		entries, err := os.ReadDir(d.path)
		if err != nil {
			return false
		}
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(d.path, e.Name()))
		}
		return len(entries) > 0
	}
	if err := os.RemoveAll(d.created[0]); err != nil {
		return false
	}
	for _, p := range d.created[1:] {
		if os.Remove(p) != nil { // Only while empty.
			break
		}
	}
	return true
}
