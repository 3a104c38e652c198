package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/seqconv/seqconv/checkpoint"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/internal/atomicfile"
	"github.com/seqconv/seqconv/models"
)

// Names of the files and sub-directories Run writes in a run directory.
const (
	// ConfigFile holds the training Config (with the model config) as JSON.
	ConfigFile = "config.json"
	// ResultsFile holds one CSV row per epoch, see ResultsHeader.
	ResultsFile = "results.csv"
	// ResultsJSONFile holds one JSON object per epoch (an EpochResult, with the keys of
	// ResultsHeader), one per line.
	ResultsJSONFile = "results.jsonl"
	// ClassesFile holds the class names of the training set as a JSON array (label l is element
	// l), when the set names its classes.
	ClassesFile = "classes.json"
	// LatestDir holds the latest checkpoints (weights, batch-norm statistics, optimizer state,
	// global step, random number generator state and training position), the last
	// KeepCheckpoints of them.
	LatestDir = "checkpoint"
	// BestDir holds one checkpoint: a copy of the checkpoint of the epoch with the lowest
	// validation error so far.
	BestDir = "best"
)

// KeepCheckpoints is the number of complete checkpoints kept in a run's LatestDir: when the
// newest is corrupt, Resume falls back to the previous one.
const KeepCheckpoints = 2

// RunFile is what a run directory's config.json (ConfigFile) holds: the training Config plus a
// description of what is not serializable and of the data actually used. Run writes it; ReadRunFile,
// Resume and the report (analysis) read it.
type RunFile struct {
	Config
	// AugmentDesc and EvalDesc describe the training and evaluation pipelines.
	AugmentDesc string `json:"augment"`
	EvalDesc    string `json:"eval_pipeline,omitempty"`
	// Backend names and describes the compute backend.
	Backend string `json:"backend"`
	// TrainData and ValidData name the sets used, of TrainImages and ValidImages images.
	TrainData   string `json:"train_data,omitempty"`
	ValidData   string `json:"valid_data,omitempty"`
	TrainImages int    `json:"train_images"`
	ValidImages int    `json:"valid_images"`
	// ScheduleDesc and Optimizer describe the learning-rate schedule and the optimizer.
	ScheduleDesc string `json:"schedule_desc"`
	Optimizer    string `json:"optimizer"`
	// StepsPerEpoch is the number of training steps of an epoch.
	StepsPerEpoch int `json:"steps_per_epoch,omitempty"`
}

// runtimeConfigKeys are the keys of config.json that a resumed run may change: they do not change
// the results (but for timings). The free-form descriptions of the data pipelines ("augment",
// "eval_pipeline") are not compared either (they may hold pointers); "augmentation", the
// command line's spec, is.
var runtimeConfigKeys = []string{"run_dir", "progress", "workers", "checkpoint_every_steps", "data_dir", "backend",
	"augment", "eval_pipeline"}

// describeAugmenter describes an augmenter for config.json.
func describeAugmenter(a data.Augmenter) string {
	if a == nil {
		return "none"
	}
	if s, ok := a.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T%+v", a, a)
}

// describe returns config.json's content for the run.
func (r *runner) describe(opt *SGDOptimizer) RunFile {
	return RunFile{
		Config:        r.cfg,
		AugmentDesc:   r.trainData.Describe(true),
		EvalDesc:      r.validData.Describe(false),
		Backend:       r.backend.Name() + ": " + r.backend.Description(),
		TrainData:     r.trainData.Name(),
		ValidData:     r.validData.Name(),
		TrainImages:   r.trainData.Len(),
		ValidImages:   r.validData.Len(),
		ScheduleDesc:  r.sched.String(),
		Optimizer:     opt.String(),
		StepsPerEpoch: r.steps,
	}
}

// prepareRunDir creates the run directory, checks it holds no checkpoint, and writes config.json
// and classes.json.
func (r *runner) prepareRunDir(opt *SGDOptimizer) error {
	dir := r.cfg.RunDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating run directory: %w", err)
	}
	for _, d := range []string{r.latestDir, r.bestDir} {
		entries, err := checkpoint.Scan(d)
		if err != nil {
			return fmt.Errorf("run directory %s: %w", dir, err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("run directory %s already holds checkpoints in %s: choose a new run directory "+
				"or resume it", dir, d)
		}
	}
	b, err := json.MarshalIndent(r.describe(opt), "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ConfigFile, err)
	}
	if err := atomicfile.WriteBytes(filepath.Join(dir, ConfigFile), append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", ConfigFile, err)
	}
	if names := r.trainData.ClassNames(); len(names) > 0 {
		b, err := json.MarshalIndent(names, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding %s: %w", ClassesFile, err)
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, ClassesFile), append(b, '\n')); err != nil {
			return fmt.Errorf("writing %s: %w", ClassesFile, err)
		}
	}
	r.savedStep = -1
	return nil
}

// ReadRunConfig reads the model config of a run directory from its config.json (ConfigFile, as Run or
// WriteRun write it), with the model family's defaults applied, and validates it. Only "model" is read:
// the other keys describe the run.
func ReadRunConfig(dir string) (models.Config, error) {
	path, b, err := readConfigFile(dir)
	if err != nil {
		return models.Config{}, err
	}
	var file struct {
		Model json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return models.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return decodeModel(path, file.Model)
}

// ReadRunFile reads config.json (ConfigFile) of a run directory, as Run or WriteRun write it. Its
// model config is parsed by models.ParseConfig: with the model family's defaults applied, and
// validated.
func ReadRunFile(dir string) (RunFile, error) {
	path, b, err := readConfigFile(dir)
	if err != nil {
		return RunFile{}, err
	}
	// The outer Model field shadows the Config's: the model config is decoded once, by models.ParseConfig.
	var file struct {
		RunFile
		Model json.RawMessage `json:"model"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		return RunFile{}, fmt.Errorf("%s: %w", path, err)
	}
	if file.RunFile.Model, err = decodeModel(path, file.Model); err != nil {
		return RunFile{}, err
	}
	return file.RunFile, nil
}

// readConfigFile reads the config.json of run directory dir and returns its path and contents.
func readConfigFile(dir string) (string, []byte, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return path, nil, fmt.Errorf("run directory %s: %w", dir, err)
	}
	return path, b, nil
}

// decodeModel decodes the "model" value of the config.json at path with models.ParseConfig.
func decodeModel(path string, raw json.RawMessage) (models.Config, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return models.Config{}, fmt.Errorf("%s: no \"model\" config", path)
	}
	cfg, err := models.ParseConfig(raw)
	if err != nil {
		return models.Config{}, fmt.Errorf("%s: model config: %w", path, err)
	}
	return cfg, nil
}

// ReadConfig reads the training Config of a run directory from its config.json, as Run wrote it
// (with the model family's defaults applied to the model config), for Resume. Runs written by
// WriteRun have a Config without training fields (Epochs 0), which Resume rejects.
func ReadConfig(dir string) (Config, error) {
	file, err := ReadRunFile(dir)
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

// compareConfigs lists the differences between a saved config.json and the one a run would write,
// ignoring runtimeConfigKeys.
func compareConfigs(saved, now RunFile) ([]string, error) {
	toMap := func(c RunFile) (map[string]any, error) {
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		m := map[string]any{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		for _, k := range runtimeConfigKeys {
			delete(m, k)
		}
		return m, nil
	}
	a, err := toMap(saved)
	if err != nil {
		return nil, err
	}
	b, err := toMap(now)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(a))
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	var diffs []string
	for _, k := range keys {
		if !reflect.DeepEqual(a[k], b[k]) {
			sa, _ := json.Marshal(a[k])
			sb, _ := json.Marshal(b[k])
			diffs = append(diffs, fmt.Sprintf("%s %s (saved: %s)", k, shorten(string(sb)), shorten(string(sa))))
		}
	}
	return diffs, nil
}

// shorten truncates long strings for messages.
func shorten(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
