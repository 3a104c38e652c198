package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/models"
)

// ReadRunConfig reads the model config of a run directory from its config.json (ConfigFile, as Run or
// WriteRun write it), with the model family's defaults applied, and validates it.
func ReadRunConfig(dir string) (models.Config, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return models.Config{}, fmt.Errorf("run directory %s: %w", dir, err)
	}
	// Only the model config matters here: the other keys of config.json describe the run.
	var file struct {
		Model json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return models.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return decodeModelConfig(path, file.Model)
}

// decodeModelConfig decodes the "model" value of config.json with models.ParseConfig.
func decodeModelConfig(path string, raw json.RawMessage) (models.Config, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return models.Config{}, fmt.Errorf("%s: no \"model\" config", path)
	}
	cfg, err := models.ParseConfig(raw)
	if err != nil {
		return models.Config{}, fmt.Errorf("%s: model config: %w", path, err)
	}
	return cfg, nil
}

// readRunConfigFile reads config.json of a run directory written by Run.
func readRunConfigFile(dir string) (runConfigFile, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return runConfigFile{}, fmt.Errorf("run directory %s: %w", dir, err)
	}
	var file runConfigFile
	if err := json.Unmarshal(b, &file); err != nil {
		return runConfigFile{}, fmt.Errorf("%s: %w", path, err)
	}
	var raw struct {
		Model json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return runConfigFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if file.Model, err = decodeModelConfig(path, raw.Model); err != nil {
		return runConfigFile{}, err
	}
	return file, nil
}

// ReadConfig reads the training Config of a run directory from its config.json, as Run wrote it
// (with the model family's defaults applied to the model config), for Resume. Runs written by
// WriteRun have a Config without training fields (Epochs 0), which Resume rejects.
func ReadConfig(dir string) (Config, error) {
	file, err := readRunConfigFile(dir)
	if err != nil {
		return Config{}, err
	}
	return file.Config, nil
}

// ReadClasses reads the class names of a run directory from its classes.json (ClassesFile, which Run
// writes when the training set names its classes); nil when the run has none.
func ReadClasses(dir string) ([]string, error) {
	path := filepath.Join(dir, ClassesFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: run directory %s: %w", dir, err)
	}
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return nil, fmt.Errorf("train: %s: want a JSON array of class names: %w", path, err)
	}
	return names, nil
}

// RunCheckpointDir returns the checkpoint directory of a run directory: its best checkpoint (BestDir)
// or its latest ones (LatestDir).
func RunCheckpointDir(dir string, best bool) string {
	if best {
		return filepath.Join(dir, BestDir)
	}
	return filepath.Join(dir, LatestDir)
}

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
	names, err := listCheckpoints(ckptDir)
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
	runConfigFile
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
		names, err := listCheckpoints(d)
		if err != nil {
			return fmt.Errorf("run directory %s: %w", dir, err)
		}
		if len(names) > 0 {
			return fmt.Errorf("run directory %s already holds checkpoints in %s: choose a new run directory",
				dir, d)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating run directory: %w", err)
	}
	desc := importedRunFile{
		runConfigFile: runConfigFile{
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
	if _, err := writeBytesAtomic(dir, ConfigFile, append(b, '\n')); err != nil {
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
	if err := copyCheckpoint(latestDir, name, bestDir); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}

// runFiles are the files Run writes at the top of a run directory.
var runFiles = []string{ConfigFile, ClassesFile, ResultsFile, ResultsJSONFile}

// ProtectedRunFile returns why the file at path must not be replaced by another command's output, or "": it
// is one of the files Run writes in a run directory (a directory with a config.json), or a file of its
// checkpoint directories.
func ProtectedRunFile(path string) string {
	dir, base := filepath.Dir(path), filepath.Base(path)
	isRun := func(d string) bool {
		st, err := os.Stat(filepath.Join(d, ConfigFile))
		return err == nil && !st.IsDir()
	}
	if slices.Contains(runFiles, base) && isRun(dir) {
		return fmt.Sprintf("the %s of run directory %s", base, dir)
	}
	if sub := filepath.Base(dir); (sub == LatestDir || sub == BestDir) && isRun(filepath.Dir(dir)) {
		return fmt.Sprintf("a file of the checkpoints (%s) of run directory %s", sub, filepath.Dir(dir))
	}
	return ""
}
