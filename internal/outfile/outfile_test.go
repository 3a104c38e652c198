package outfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	existing := write("old.npz", "old")
	protected := write("keep.npz", "keep")
	if err := os.MkdirAll(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	real := write("real/target.npz", "target")
	link := filepath.Join(dir, "link.npz")
	if err := os.Symlink("real/target.npz", link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.npz")
	if err := os.Symlink("real/new.npz", dangling); err != nil {
		t.Fatal(err)
	}
	loop := filepath.Join(dir, "loop.npz")
	if err := os.Symlink("loop.npz", loop); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.npz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	devLink := filepath.Join(dir, "null.npz")
	if err := os.Symlink(os.DevNull, devLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir.npz"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Flag: "--out", Format: "npz", Exts: []string{".npz"}, Protected: func(p string) string {
		if filepath.Base(p) == "keep.npz" {
			return "a file of a run"
		}
		return ""
	}}
	for _, tc := range []struct {
		name, path, want, err string
	}{
		{"new file", filepath.Join(dir, "new.npz"), filepath.Join(dir, "new.npz"), ""},
		{"upper-case extension", filepath.Join(dir, "NEW.NPZ"), filepath.Join(dir, "NEW.NPZ"), ""},
		{"existing regular file is replaced", existing, existing, ""},
		{"symlink is followed", link, real, ""},
		{"dangling symlink writes its target", dangling, filepath.Join(dir, "real/new.npz"), ""},
		{"symlink loop", loop, "", "too many levels of symbolic links"},
		{"FIFO", fifo, "", "not a regular file (a FIFO)"},
		{"device through a symlink", devLink, "", "not a regular file (a character device)"},
		{"directory", filepath.Join(dir, "adir.npz"), "", "is a directory"},
		{"wrong extension", filepath.Join(dir, "x.json"), "", `want a npz file (.npz), not ".json"`},
		{"no extension", filepath.Join(dir, "x"), "", "want a npz file"},
		{"missing directory", filepath.Join(dir, "nope", "x.npz"), "", "no such file or directory"},
		{"parent is a file", filepath.Join(existing, "x.npz"), "", "not a directory"},
		{"protected", protected, "", "a file of a run: refusing to write it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Check(tc.path, spec)
			if tc.err != "" {
				var oe *Error
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &oe) ||
					!strings.HasPrefix(err.Error(), "--out "+tc.path+": ") {
					t.Fatalf("Check(%s) = %q, %v; want an *Error %q", tc.path, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Check(%s) = %q, %v; want %q", tc.path, got, err, tc.want)
			}
		})
	}
}

func TestWriteFileThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target.npz")
	if err := os.WriteFile(target, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.npz")
	if err := os.Symlink("target.npz", link); err != nil {
		t.Fatal(err)
	}
	to, err := Check(link, Spec{Flag: "--out", Exts: []string{".npz"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(to, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a symbolic link: %v, %v", link, st.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Errorf("target holds %q, want %q", b, "new")
	}
	// A failed write leaves the old content: the directory is read-only (not for root, who may write).
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(dir, 0o755)
		if err := WriteFile(to, []byte("newer")); err == nil || !strings.Contains(err.Error(), "writing "+to) {
			t.Errorf("WriteFile in a read-only directory: %v", err)
		}
		if b, _ := os.ReadFile(target); string(b) != "new" {
			t.Errorf("target holds %q after a failed write, want %q", b, "new")
		}
	}
}
