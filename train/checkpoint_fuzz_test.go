package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/checkpoint"
)

// fuzzCheckpoint is a small valid checkpoint: its name and the contents of its files.
type fuzzCheckpoint struct {
	name                  string
	meta, bin, state, sum []byte
}

var (
	fuzzSeedOnce sync.Once
	fuzzSeed     fuzzCheckpoint
	fuzzSeedErr  error
)

// validFuzzCheckpoint saves smallStore with a training state and returns its files.
func validFuzzCheckpoint(t testing.TB) fuzzCheckpoint {
	fuzzSeedOnce.Do(func() {
		dir := t.TempDir()
		st := &trainState{Format: stateFormat, Epoch: 1, Step: 2, StepsPerEpoch: 4, GlobalStep: 6,
			TrainLossSum: 1.25, TrainErrorSum: 50, BestValidError: 12.5, BestEpoch: 1,
			BestCheckpoint: "checkpoint-n0000000-step-00000004",
			History:        []EpochResult{{Epoch: 1, TrainLoss: 0.5, ValidError: 12.5, LR: 0.1}}}
		name, err := saveCheckpoint(smallStore(t), dir, st, 0)
		if err != nil {
			fuzzSeedErr = err
			return
		}
		read := func(suffix string) []byte {
			b, err := os.ReadFile(filepath.Join(dir, name+suffix))
			if err != nil {
				fuzzSeedErr = err
			}
			return b
		}
		fuzzSeed = fuzzCheckpoint{name: name, meta: read(checkpoint.MetaSuffix), bin: read(checkpoint.DataSuffix),
			state: read(checkpoint.StateSuffix), sum: read(checkpoint.ManifestSuffix)}
	})
	if fuzzSeedErr != nil {
		t.Fatal(fuzzSeedErr)
	}
	return fuzzSeed
}

// FuzzCheckpointLoad writes a checkpoint whose metadata, data and state files are the fuzzer's bytes
// and loads it. With fixManifest the manifest is recomputed for those bytes, so that the parsing and
// consistency checks behind the checksums are exercised; otherwise the manifest of the valid
// checkpoint is kept, and any change must be detected. Loading must return an error, never panic,
// and a checkpoint that loads must restore into a store.
func FuzzCheckpointLoad(f *testing.F) {
	seed := validFuzzCheckpoint(f)
	f.Add(seed.meta, seed.bin, seed.state, false)
	f.Add(seed.meta, seed.bin, seed.state, true)
	f.Add(seed.meta, seed.bin[:len(seed.bin)/2], seed.state, false)
	f.Add(seed.meta, seed.bin[:len(seed.bin)/2], seed.state, true)
	f.Add(bytes.Replace(seed.meta, []byte(`"Float32"`), []byte(`"Int4"`), 1), seed.bin, seed.state, true)
	f.Add(bytes.Replace(seed.meta, []byte(`2,`), []byte(`-2,`), 1), seed.bin, seed.state, true)
	f.Add(seed.meta, seed.bin, []byte(`{"format":1,"epoch":-1}`), true)
	// One directory per fuzzing process, rewritten by every input (faster than a new one each).
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, meta, bin, state []byte, fixManifest bool) {
		write := func(suffix string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, seed.name+suffix), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write(checkpoint.MetaSuffix, meta)
		write(checkpoint.DataSuffix, bin)
		write(checkpoint.StateSuffix, state)
		manifest := seed.sum
		if fixManifest {
			var sb strings.Builder
			for _, file := range []struct {
				suffix string
				b      []byte
			}{{checkpoint.DataSuffix, bin}, {checkpoint.StateSuffix, state}, {checkpoint.MetaSuffix, meta}} {
				sum := sha256.Sum256(file.b)
				sb.WriteString(hex.EncodeToString(sum[:]) + "  " + seed.name + file.suffix + "\n")
			}
			manifest = []byte(sb.String())
		}
		write(checkpoint.ManifestSuffix, manifest)

		changed := !bytes.Equal(meta, seed.meta) || !bytes.Equal(bin, seed.bin) || !bytes.Equal(state, seed.state)
		c, err := readCheckpoint(dir, seed.name)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrCorrupt) {
				t.Fatalf("error %v does not wrap checkpoint.ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), seed.name) {
				t.Fatalf("error %v does not name the checkpoint", err)
			}
			return
		}
		if changed && !fixManifest {
			t.Fatalf("a modified checkpoint passed the manifest check")
		}
		if err := c.Restore(model.NewStore()); err != nil && !errors.Is(err, checkpoint.ErrCorrupt) {
			t.Fatalf("restore: %v", err)
		}
		if _, err := LoadCheckpoint(model.NewStore(), dir); err != nil && !errors.Is(err, checkpoint.ErrCorrupt) {
			t.Fatalf("LoadCheckpoint: %v", err)
		}
	})
}

// TestWriteFuzzCorpus regenerates the seed corpus of FuzzCheckpointLoad in
// testdata/fuzz/FuzzCheckpointLoad when SEQCONV_WRITE_FUZZ_CORPUS=1 (after a change of the
// checkpoint format).
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("SEQCONV_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set SEQCONV_WRITE_FUZZ_CORPUS=1 to regenerate the seed corpus")
	}
	seed := validFuzzCheckpoint(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzCheckpointLoad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	flipped := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i%len(b)] ^= 0x20
		return b
	}
	cases := map[string][4]any{
		"valid":                  {seed.meta, seed.bin, seed.state, false},
		"valid-fixed":            {seed.meta, seed.bin, seed.state, true},
		"truncated-data":         {seed.meta, seed.bin[:len(seed.bin)-3], seed.state, false},
		"truncated-data-fixed":   {seed.meta, seed.bin[:len(seed.bin)-3], seed.state, true},
		"flipped-data":           {seed.meta, flipped(seed.bin, 5), seed.state, false},
		"flipped-meta-fixed":     {flipped(seed.meta, len(seed.meta)/2), seed.bin, seed.state, true},
		"truncated-meta-fixed":   {seed.meta[:len(seed.meta)/2], seed.bin, seed.state, true},
		"truncated-state-fixed":  {seed.meta, seed.bin, seed.state[:len(seed.state)/2], true},
		"empty-files-fixed":      {[]byte{}, []byte{}, []byte{}, true},
		"huge-dims-fixed":        {bytes.Replace(seed.meta, []byte("\t\t\t\t2,\n"), []byte("\t\t\t\t2000000000,\n"), 1), seed.bin, seed.state, true},
		"negative-pos-fixed":     {bytes.Replace(seed.meta, []byte(`"Pos": 0`), []byte(`"Pos": -8`), 1), seed.bin, seed.state, true},
		"packed-dtype-fixed":     {bytes.Replace(seed.meta, []byte(`"Float32"`), []byte(`"Int4"`), 1), seed.bin, seed.state, true},
		"gzip-header-data-fixed": {seed.meta, append([]byte("gomlx_checkpointss\x04gzip"), seed.bin...), seed.state, true},
	}
	for name, c := range cases {
		var sb strings.Builder
		sb.WriteString("go test fuzz v1\n")
		for _, v := range c[:3] {
			fmt.Fprintf(&sb, "[]byte(%q)\n", v.([]byte))
		}
		fmt.Fprintf(&sb, "bool(%v)\n", c[3])
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
