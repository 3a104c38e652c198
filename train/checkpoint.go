package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
)

// Names of the files and sub-directories Run writes in a run directory.
const (
	// ConfigFile holds the training Config (with the model config) as JSON.
	ConfigFile = "config.json"
	// ResultsFile holds one CSV row per epoch, see ResultsHeader.
	ResultsFile = "results.csv"
	// LatestDir holds GoMLX checkpoints of the latest state (weights, batch-norm statistics,
	// optimizer state, global step), the last KeepCheckpoints of them.
	LatestDir = "checkpoint"
	// BestDir holds one GoMLX checkpoint: a copy of the latest checkpoint of the epoch with the
	// lowest validation error so far.
	BestDir = "best"
)

// KeepCheckpoints is the number of checkpoints kept in a run's LatestDir.
const KeepCheckpoints = 2

const (
	checkpointPrefix = "checkpoint-"
	checkpointJSON   = checkpoint.JsonNameSuffix
	checkpointBin    = checkpoint.BinDataSuffix
)

// LoadCheckpoint attaches to store the latest GoMLX checkpoint in dir (for a run directory, use
// filepath.Join(runDir, LatestDir) or filepath.Join(runDir, BestDir)). As with
// checkpoint.Load, variable values are loaded lazily: they are set when a model graph built on
// store creates the variables. It fails if dir holds no checkpoint.
func LoadCheckpoint(store *model.Store, dir string) (*checkpoint.Handler, error) {
	h, err := checkpoint.Load(store).Dir(dir).Done()
	if err != nil {
		return nil, fmt.Errorf("train: loading checkpoint from %s: %w", dir, err)
	}
	return h, nil
}

// listCheckpoints returns the base names (without suffix) of the checkpoints in dir, sorted
// oldest first. A missing dir has no checkpoints.
func listCheckpoints(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasPrefix(n, checkpointPrefix) || !strings.HasSuffix(n, checkpointJSON) {
			continue
		}
		names = append(names, strings.TrimSuffix(n, checkpointJSON))
	}
	// os.ReadDir returns entries sorted by name, and GoMLX names sort in save order.
	return names, nil
}

// copyLatestCheckpoint copies the most recent checkpoint of srcDir into dstDir (created if needed)
// and then removes every other checkpoint of dstDir, so that dstDir holds exactly that one. The
// data file is written before the JSON file that makes the checkpoint visible, each through a
// temporary file and a rename.
func copyLatestCheckpoint(srcDir, dstDir string) error {
	names, err := listCheckpoints(srcDir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", srcDir, err)
	}
	if len(names) == 0 {
		return fmt.Errorf("no checkpoint in %s to copy", srcDir)
	}
	latest := names[len(names)-1]
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dstDir, err)
	}
	for _, suffix := range []string{checkpointBin, checkpointJSON} {
		if err := copyFileAtomic(filepath.Join(srcDir, latest+suffix), filepath.Join(dstDir, latest+suffix)); err != nil {
			return err
		}
	}
	old, err := listCheckpoints(dstDir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", dstDir, err)
	}
	for _, name := range old {
		if name == latest {
			continue
		}
		for _, suffix := range []string{checkpointJSON, checkpointBin} {
			if err := os.Remove(filepath.Join(dstDir, name+suffix)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("removing old checkpoint: %w", err)
			}
		}
	}
	return nil
}

// copyFileAtomic copies src to dst through a temporary file in dst's directory.
func copyFileAtomic(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying checkpoint: %w", err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+filepath.Base(dst)+"-*")
	if err != nil {
		return fmt.Errorf("copying checkpoint: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("copying checkpoint: %w", err)
	}
	if _, err = io.Copy(tmp, in); err != nil {
		return fmt.Errorf("copying checkpoint %s to %s: %w", src, dst, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("copying checkpoint %s to %s: %w", src, dst, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("copying checkpoint %s to %s: %w", src, dst, err)
	}
	return nil
}
