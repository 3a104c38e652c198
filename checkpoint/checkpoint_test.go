package checkpoint

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// testStore returns a store with one float32 variable.
func testStore(t *testing.T) *model.Store {
	t.Helper()
	store := model.NewStore()
	v := store.RootScope().VariableWithShape("w", shapes.Make(dtypes.Float32, 3))
	if err := v.SetValue(tensors.FromValue([]float32{1, 2, 3})); err != nil {
		t.Fatal(err)
	}
	return store
}

func TestVerifyDetectsCorruption(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(t *testing.T, base string)
		want   string // in the error, besides the checkpoint's name.
	}{
		{"intact", nil, ""},
		{"truncated data", func(t *testing.T, base string) { truncate(t, base+DataSuffix) }, DataSuffix},
		{"truncated metadata", func(t *testing.T, base string) { truncate(t, base+MetaSuffix) }, MetaSuffix},
		{"truncated state", func(t *testing.T, base string) { truncate(t, base+StateSuffix) }, StateSuffix},
		{"no manifest", func(t *testing.T, base string) { removeFile(t, base+ManifestSuffix) }, "incomplete"},
		{"no data", func(t *testing.T, base string) { removeFile(t, base+DataSuffix) }, "missing"},
		{"bad manifest", func(t *testing.T, base string) {
			if err := os.WriteFile(base+ManifestSuffix, []byte("xyz\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is not"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			name, err := Save(testStore(t), dir, 7, map[string]int{"epoch": 1}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if tc.modify != nil {
				tc.modify(t, filepath.Join(dir, name))
			}
			c, err := Verify(dir, name)
			if tc.want == "" {
				if err != nil || !c.Verified {
					t.Fatalf("Verify() = %v, verified %v", err, c != nil && c.Verified)
				}
				return
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify() error = %v, want one wrapping ErrCorrupt naming %s and %q", err, name, tc.want)
			}
		})
	}
}

func TestDecodeState(t *testing.T) {
	type state struct {
		Epoch int `json:"epoch"`
	}
	for _, tc := range []struct {
		name    string
		state   any
		wantHas bool
		wantErr bool
	}{
		{"none", nil, false, false},
		{"good", state{Epoch: 3}, true, false},
		{"unknown field", map[string]int{"epoch": 3, "other": 1}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := Save(testStore(t), dir, 0, tc.state, 0); err != nil {
				t.Fatal(err)
			}
			c, err := Latest(dir)
			if err != nil {
				t.Fatal(err)
			}
			var st state
			has, err := c.DecodeState(&st)
			if has != tc.wantHas || (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrCorrupt)) {
				t.Errorf("DecodeState() = %v, %v; want has %v, error %v", has, err, tc.wantHas, tc.wantErr)
			}
		})
	}
}

func TestPruneSetAsideRemoveTemp(t *testing.T) {
	dir := t.TempDir()
	store := testStore(t)
	var names []string
	for step := range 4 {
		name, err := Save(store, dir, int64(step), nil, 2)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if got, _ := List(dir); !slices.Equal(got, names[2:]) {
		t.Fatalf("List() after saving 4 keeping 2 = %v, want %v", got, names[2:])
	}
	entries, err := Scan(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := SetAside(dir, entries[1], CorruptPrefix); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, CorruptPrefix+names[3]+DataSuffix)); err != nil {
		t.Errorf("set-aside file: %v", err)
	}
	c, err := Latest(dir)
	if err != nil || c.Name != names[2] {
		t.Errorf("Latest() after setting the newest aside = %v, %v; want %s", c, err, names[2])
	}
	tmp := filepath.Join(dir, ".tmp-leftover")
	if err := os.WriteFile(tmp, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveTemp(dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemoveTemp left %s: %v", tmp, err)
	}
}

func truncate(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

// TestSetAsideKeepsEarlierFiles sets aside two checkpoints of the same name (a resumed run can write the
// same name again) and checks that both sets of files are kept.
func TestSetAsideKeepsEarlierFiles(t *testing.T) {
	dir := t.TempDir()
	name := nameOf(1, 5)
	for round, want := range []string{CorruptPrefix, CorruptPrefix + "2-"} {
		for _, suffix := range []string{DataSuffix, MetaSuffix} {
			if err := os.WriteFile(filepath.Join(dir, name+suffix), []byte{byte(round)}, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		entries, err := Scan(dir)
		if err != nil || len(entries) != 1 {
			t.Fatalf("Scan: %v, %v", entries, err)
		}
		if err := SetAside(dir, entries[0], CorruptPrefix); err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{DataSuffix, MetaSuffix} {
			b, err := os.ReadFile(filepath.Join(dir, want+name+suffix))
			if err != nil || len(b) != 1 || b[0] != byte(round) {
				t.Errorf("round %d: %s%s%s: %v, %v", round, want, name, suffix, b, err)
			}
		}
	}
}
