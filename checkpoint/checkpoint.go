// Package checkpoint saves GoMLX model stores as checkpoints that can be verified, and finds, loads,
// prunes and copies them. It keeps GoMLX's file format, so that GoMLX's own checkpoint package reads
// the directories it writes, and adds a SHA-256 manifest and an optional opaque state file.
//
// A checkpoint named N (e.g. "checkpoint-n0000012-step-00000960") in a checkpoint directory is
// made of these files, written in this order, each atomically (a temporary file, fsync, rename):
//
//   - N.bin: the values of the store's variables, GoMLX's checkpoint data format, uncompressed;
//   - N.state: the caller's state (for seqconv's train package: the training position: epoch,
//     step, metric sums, history, best epoch), optional;
//   - N.json: GoMLX's checkpoint metadata (variable names, shapes, dtypes, positions);
//   - N.sha256: the manifest, in sha256sum's format: the SHA-256 of each other file. It is
//     written last: a checkpoint without it is incomplete (interrupted while saving).
//
// The .bin and .json files are GoMLX's, so GoMLX's checkpoint package can read the directory.
// Names sort in save order: Save numbers each checkpoint after those of its directory.
package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gomlxckpt "github.com/gomlx/gomlx/ml/model/checkpoint"
)

// File name parts of a checkpoint (see the package documentation).
const (
	// Prefix starts the names of checkpoints: "checkpoint-n<sequence>-step-<global step>".
	Prefix = "checkpoint-"
	// DataSuffix, StateSuffix, MetaSuffix and ManifestSuffix end the names of a checkpoint's files.
	DataSuffix     = gomlxckpt.BinDataSuffix // ".bin"
	StateSuffix    = ".state"
	MetaSuffix     = gomlxckpt.JsonNameSuffix // ".json"
	ManifestSuffix = ".sha256"
	// CorruptPrefix and IncompletePrefix prefix the files of the checkpoints SetAside sets aside.
	CorruptPrefix    = "corrupt-"
	IncompletePrefix = "incomplete-"
)

// ErrCorrupt is wrapped by the errors for checkpoints that are truncated, corrupt or
// incomplete.
var ErrCorrupt = errors.New("corrupt checkpoint")

// nameOf returns the name of checkpoint number seq, saved at globalStep. Names sort in
// save order.
func nameOf(seq int, globalStep int64) string {
	return fmt.Sprintf("%sn%07d-step-%08d", Prefix, seq, globalStep)
}

var seqRegex = regexp.MustCompile(`^checkpoint-n(\d+)-`)

// Entry lists the files of one checkpoint found in a directory (see Scan).
type Entry struct {
	// Name is the checkpoint's name: its files are Name+DataSuffix and so on.
	Name string
	// HasData, HasState, HasMeta and HasManifest tell which of its files exist.
	HasData, HasState, HasMeta, HasManifest bool
}

// seq returns the sequence number of the checkpoint's name (-1 if it has none).
func (e Entry) seq() int {
	m := seqRegex.FindStringSubmatch(e.Name)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// Complete reports whether the checkpoint was completely written: it has its manifest, written
// last (files missing then are a corruption, which Verify reports).
func (e Entry) Complete() bool { return e.HasManifest }

// Files returns the names of the existing files of the checkpoint, the manifest first.
func (e Entry) Files() []string {
	var files []string
	for _, f := range []struct {
		has    bool
		suffix string
	}{{e.HasManifest, ManifestSuffix}, {e.HasMeta, MetaSuffix}, {e.HasState, StateSuffix},
		{e.HasData, DataSuffix}} {
		if f.has {
			files = append(files, e.Name+f.suffix)
		}
	}
	return files
}

// Scan lists the checkpoints of dir (complete or not), sorted oldest first. A missing
// dir has none.
func Scan(dir string) ([]Entry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byName := map[string]*Entry{}
	for _, de := range entries {
		n := de.Name()
		if de.IsDir() || !strings.HasPrefix(n, Prefix) {
			continue
		}
		for _, s := range []string{MetaSuffix, DataSuffix, StateSuffix, ManifestSuffix} {
			base, ok := strings.CutSuffix(n, s)
			if !ok || base == Prefix {
				continue
			}
			e := byName[base]
			if e == nil {
				e = &Entry{Name: base}
				byName[base] = e
			}
			switch s {
			case MetaSuffix:
				e.HasMeta = true
			case DataSuffix:
				e.HasData = true
			case StateSuffix:
				e.HasState = true
			case ManifestSuffix:
				e.HasManifest = true
			}
			break
		}
	}
	list := make([]Entry, 0, len(byName))
	for _, e := range byName {
		list = append(list, *e)
	}
	slices.SortFunc(list, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// List returns the names of the checkpoints of dir that GoMLX would list (those with a
// metadata file), sorted oldest first. A missing dir has none.
func List(dir string) ([]string, error) {
	entries, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.HasMeta {
			names = append(names, e.Name)
		}
	}
	return names, nil
}

// IsLegacy reports whether entries are GoMLX checkpoints written without manifests (by GoMLX
// itself or an older seqconv): none has a manifest or a training state.
func IsLegacy(entries []Entry) bool {
	return !slices.ContainsFunc(entries, func(e Entry) bool { return e.HasManifest || e.HasState })
}
