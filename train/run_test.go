package train

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

// TestWriteLoadRun writes a freshly initialized model as a run directory and loads it back, latest and
// best: same config, same variables in the same order, same values.
func TestWriteLoadRun(t *testing.T) {
	backend := engine.MustNewForTest()
	cfg, err := models.Get("seqresnet-mnist")
	if err != nil {
		t.Fatal(err)
	}
	store, err := NewModelStore(backend, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		t.Fatal(err)
	}
	var paths []string
	values := map[string][]float32{}
	for v := range store.IterVariables() {
		if strings.Contains(v.Path(), "#") {
			continue // the RNG state of the initialization is no model variable
		}
		paths = append(paths, v.Path())
		if t, err := v.Value(); err == nil && t.DType().String() == "Float32" {
			values[v.Path()] = tensors.MustCopyFlatData[float32](t)
		}
	}
	dir := filepath.Join(t.TempDir(), "run")
	if err := WriteRun(dir, cfg, store, "test"); err != nil {
		t.Fatal(err)
	}
	for _, best := range []bool{false, true} {
		got, loaded, err := LoadRun(backend, dir, best)
		if err != nil {
			t.Fatal(err)
		}
		if got.String() != cfg.String() || got.InChannels != 1 || got.Resolution != 28 {
			t.Errorf("config %s, want %s", got, cfg)
		}
		var gotPaths []string
		for v := range loaded.IterVariables() {
			gotPaths = append(gotPaths, v.Path())
			if want, ok := values[v.Path()]; ok {
				if !slices.Equal(tensors.MustCopyFlatData[float32](v.MustValue()), want) {
					t.Errorf("best=%v: %s differs", best, v.Path())
				}
			}
		}
		if !slices.Equal(gotPaths, paths) {
			t.Errorf("best=%v: %d variables, want %d in the same order", best, len(gotPaths), len(paths))
		}
	}
	// A second write into the run directory is refused.
	if err := WriteRun(dir, cfg, store, "test"); err == nil || !strings.Contains(err.Error(), "already holds checkpoints") {
		t.Errorf("second WriteRun: %v", err)
	}
	// A run directory without a best checkpoint.
	if err := os.RemoveAll(filepath.Join(dir, BestDir)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadRun(backend, dir, true); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Errorf("LoadRun without best/: %v", err)
	}
	// A store with uninitialized variables is refused.
	fresh, err := NewModelStore(backend, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRun(filepath.Join(t.TempDir(), "run"), cfg, fresh, "test"); err == nil || !strings.Contains(err.Error(), "no value") {
		t.Errorf("WriteRun of an uninitialized store: %v", err)
	}
}

// TestReadClasses reads classes.json: the names, none without the file, an error naming the file for
// bad JSON.
func TestReadClasses(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
		err        string
	}{
		{"names", `["cat", "dog"]`, []string{"cat", "dog"}, ""},
		{"no file", "", nil, ""},
		{"not an array", `{"cat": 0}`, nil, "classes.json: want a JSON array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				if err := os.WriteFile(filepath.Join(dir, ClassesFile), []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadClasses(dir)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ReadClasses = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
