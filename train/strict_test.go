package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/checkpoint"
)

// countFiles returns the number of files in dir.
func countFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestResumeSetsAsideIncomplete checks that a checkpoint without its manifest is set aside (renamed), never
// deleted, and that an epoch resumed from the checkpoint saved before its evaluation (as after a Ctrl-C
// while evaluating) keeps the throughput of its training in results.csv.
func TestResumeSetsAsideIncomplete(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir)
	cfg.Epochs = 1
	if _, err := Run(context.Background(), b, cfg, trainSet, validSet, nil); err != nil {
		t.Fatal(err)
	}
	latest := filepath.Join(dir, LatestDir)
	entries, err := checkpoint.Scan(latest)
	if err != nil || len(entries) != 2 {
		t.Fatalf("want 2 checkpoints (before and after the evaluation), got %v, %v", entries, err)
	}
	// The newest loses its manifest: as if the run stopped while saving it, after the evaluation.
	newest := entries[1]
	if err := os.Remove(filepath.Join(latest, newest.Name+checkpoint.ManifestSuffix)); err != nil {
		t.Fatal(err)
	}
	files := countFiles(t, latest)
	var log bytes.Buffer
	cfg.Log = &log
	res, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !strings.Contains(log.String(), "has no manifest") || !strings.Contains(log.String(), "setting it aside as incomplete-") {
		t.Errorf("warnings: %s", log.String())
	}
	if res.ResumedFrom != entries[0].Name || res.ResumedStep == 0 {
		t.Errorf("resumed from %s step %d, want %s at the end of epoch 1's training", res.ResumedFrom,
			res.ResumedStep, entries[0].Name)
	}
	for _, suffix := range []string{checkpoint.DataSuffix, checkpoint.MetaSuffix, checkpoint.StateSuffix} {
		if _, err := os.Stat(filepath.Join(latest, checkpoint.IncompletePrefix+newest.Name+suffix)); err != nil {
			t.Errorf("the incomplete checkpoint's %s file was not kept: %v", suffix, err)
		}
	}
	// Nothing was deleted: the set-aside files are there besides the checkpoints the resume wrote.
	if n := countFiles(t, latest); n < files {
		t.Errorf("%s holds %d files after the resume, %d before", latest, n, files)
	}
	rows := readResults(t, dir)
	if len(rows) != 2 {
		t.Fatalf("results.csv: %q", rows)
	}
	if r := parseRow(t, rows[1]); !(r["images_per_second"] > 0) {
		t.Errorf("images_per_second %v for the epoch resumed after its training, want its throughput", r["images_per_second"])
	}
}

// TestResumeNoGoodCheckpoint checks the error when every checkpoint is corrupt: one problem per checkpoint,
// and a pointer at best/, as separate errors (printed on separate lines).
func TestResumeNoGoodCheckpoint(t *testing.T) {
	b := testBackend(t)
	trainSet, validSet := quadrantSets()
	dir := filepath.Join(t.TempDir(), "run")
	cfg := tinyConfig(t, dir)
	cfg.Epochs = 1
	if _, err := Run(context.Background(), b, cfg, trainSet, validSet, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := checkpoint.Scan(filepath.Join(dir, LatestDir))
	for _, e := range entries {
		flip(t, filepath.Join(dir, LatestDir, e.Name+checkpoint.DataSuffix))
	}
	cfg.Log = &bytes.Buffer{}
	_, err := Resume(context.Background(), b, cfg, trainSet, validSet, nil)
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("want an errors.Join, got %v", err)
	}
	errs := joined.Unwrap()
	if len(errs) != 4 {
		t.Fatalf("want a headline, 2 problems and the best/ hint, got %d errors: %v", len(errs), err)
	}
	if !strings.Contains(errs[0].Error(), "no good checkpoint left") {
		t.Errorf("headline %q", errs[0])
	}
	for i, e := range entries {
		if !strings.Contains(errs[2-i].Error(), e.Name+checkpoint.DataSuffix) {
			t.Errorf("problem %d %q does not name %s", 2-i, errs[2-i], e.Name+checkpoint.DataSuffix)
		}
	}
	if !strings.Contains(errs[3].Error(), filepath.Join(dir, BestDir)+" holds an intact checkpoint") {
		t.Errorf("best/ hint %q", errs[3])
	}
}

// TestProtectedRunFile checks which files of a run directory other commands may not replace.
func TestProtectedRunFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	for _, tc := range []struct {
		path      string
		protected bool
	}{
		{filepath.Join(dir, ConfigFile), true},
		{filepath.Join(dir, ResultsFile), true},
		{filepath.Join(dir, ResultsJSONFile), true},
		{filepath.Join(dir, ClassesFile), true},
		{filepath.Join(dir, LatestDir, "checkpoint-n0000001-step-00000001.bin"), true},
		{filepath.Join(dir, BestDir, "x.npz"), true},
		{filepath.Join(dir, "heatmaps.png"), false},
		{filepath.Join(other, ResultsFile), false},
		{filepath.Join(other, LatestDir, "x.npz"), false},
	} {
		if got := ProtectedRunFile(tc.path) != ""; got != tc.protected {
			t.Errorf("ProtectedRunFile(%s) = %q, want protected %v", tc.path, ProtectedRunFile(tc.path), tc.protected)
		}
	}
}
