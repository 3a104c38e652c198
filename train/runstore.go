package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/internal/atomicfile"
	"github.com/seqconv/seqconv/models"
)

// LoadRun loads a run directory written by Run or WriteRun into a new store: the model config of its
// config.json and the latest checkpoint of its LatestDir, or with best the checkpoint of its BestDir. It
// builds the model graph (inference, float32, one image at the config's resolution, without compiling it)
// on backend so that every model variable is created and holds its checkpointed value, in the model's
// construction order; it fails if the checkpoint lacks one or holds one with another shape (a config.json
// that does not match the checkpoint). The checkpoint is verified first (see LoadCheckpoint): a corrupt
// or truncated one is an error naming the file. The training state (optimizer, global step) stays in the
// checkpoint handler, the store's loader: store.IterVariables lists the model variables only.
func LoadRun(backend compute.Backend, dir string, best bool) (models.Config, *model.Store, error) {
	if backend == nil {
		return models.Config{}, nil, errors.New("load run: nil backend")
	}
	ckptDir := RunCheckpointDir(dir, best)
	names, err := checkpoint.List(ckptDir)
	if err != nil {
		return models.Config{}, nil, fmt.Errorf("run directory %s: listing checkpoints: %w", dir, err)
	}
	if len(names) == 0 {
		return models.Config{}, nil, fmt.Errorf("run directory %s: no checkpoint in %s", dir, ckptDir)
	}
	cfg, err := ReadRunConfig(dir)
	if err != nil {
		return models.Config{}, nil, err
	}
	store := model.NewStore()
	if _, err := LoadCheckpoint(store, ckptDir); err != nil {
		return models.Config{}, nil, err
	}
	if err := createVariables(backend, store, cfg); err != nil {
		return models.Config{}, nil, fmt.Errorf("run directory %s: the checkpoint in %s does not fit the model of %s: %w",
			dir, ckptDir, ConfigFile, err)
	}
	if missing := variablesWithoutValue(store); len(missing) > 0 {
		return models.Config{}, nil, fmt.Errorf("run directory %s: the checkpoint in %s does not fit the model of %s: "+
			"it has no value for %s", dir, ckptDir, ConfigFile, listSome(missing, 3))
	}
	return cfg, store, nil
}

// createVariables builds cfg's inference graph for one float32 image at cfg's resolution on store, without
// compiling it, which creates the model's variables (loading those a checkpoint handler holds).
func createVariables(backend compute.Backend, store *model.Store, cfg models.Config) error {
	cfg = cfg.WithDefaults()
	return exceptions.TryCatch[error](func() {
		g := NewGraph(backend, "create_variables")
		model.SetStore(g, store)
		store.SetTraining(g, false)
		x := Parameter(g, "x", shapes.Make(dtypes.Float32, 1, cfg.Resolution, cfg.Resolution, cfg.InChannels))
		cfg.Build(store.RootScope(), x)
		g.Finalize()
	})
}

// NewModelStore returns a new store holding the variables of cfg's model, created (by building its
// inference graph, see LoadRun) but not initialized: set every one, for instance with
// interop.ImportStateWith, before saving the store with WriteRun.
func NewModelStore(backend compute.Backend, cfg models.Config) (*model.Store, error) {
	if backend == nil {
		return nil, errors.New("nil backend")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Name, err)
	}
	store := model.NewStore()
	if err := createVariables(backend, store, cfg); err != nil {
		return nil, fmt.Errorf("model %s: %w", cfg.Name, err)
	}
	return store, nil
}

// variablesWithoutValue returns the paths of the variables of store that hold no value.
func variablesWithoutValue(store *model.Store) []string {
	var paths []string
	for v := range store.IterVariables() {
		if !v.HasValue() {
			paths = append(paths, v.Path())
		}
	}
	return paths
}

// listSome formats the first n items of a list and how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// importedRunFile is what config.json holds in a run directory written by WriteRun: the structure Run
// writes (the training fields are zero: no training happened) and where the weights came from.
type importedRunFile struct {
	RunFile
	Source string `json:"source"`
}

// WriteRun writes the model variables of store (every one must hold a value) as a run directory in the
// layout Run writes, so that LoadRun and the other tools that read run directories accept it: config.json
// (the training Config with modelCfg, zero training fields, and source, a description of where the
// weights come from) and the same GoMLX checkpoint in LatestDir and in BestDir. dir is created if needed;
// it must not hold checkpoints already.
func WriteRun(dir string, modelCfg models.Config, store *model.Store, source string) error {
	if err := modelCfg.Validate(); err != nil {
		return fmt.Errorf("model %s: %w", modelCfg.Name, err)
	}
	if missing := variablesWithoutValue(store); len(missing) > 0 {
		return fmt.Errorf("writing run directory %s: no value for %s", dir, listSome(missing, 3))
	}
	latestDir, bestDir := filepath.Join(dir, LatestDir), filepath.Join(dir, BestDir)
	for _, d := range []string{latestDir, bestDir} {
		// Any checkpoint file counts, incomplete ones too: writing the run would remove them.
		entries, err := checkpoint.Scan(d)
		if err != nil {
			return fmt.Errorf("run directory %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("run directory %s already holds checkpoints in %s: choose a new run directory",
				dir, d)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating run directory: %w", err)
	}
	desc := importedRunFile{
		RunFile: RunFile{
			Config:      Config{Model: modelCfg, RunDir: dir},
			AugmentDesc: describeAugmenter(nil),
			Optimizer:   "none",
		},
		Source: source,
	}
	b, err := json.MarshalIndent(desc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ConfigFile, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, ConfigFile), append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", ConfigFile, err)
	}
	var name string
	err = catch(func() error {
		var err error
		name, err = saveCheckpoint(store, latestDir, nil, KeepCheckpoints)
		if err != nil {
			return fmt.Errorf("saving checkpoint in %s: %w", latestDir, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := checkpoint.Copy(latestDir, name, bestDir); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}
