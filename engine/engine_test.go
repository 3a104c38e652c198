package engine

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestNewExplicitBackendErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(garbage, []byte("not a library"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, config, want string
	}{
		{"unknown", "bogus", `unknown backend "bogus"`},
		{"onnx missing library", "onnx:cpu," + filepath.Join(dir, "missing.so"), "onnx"},
		{"onnx corrupt library", "onnx:cpu," + garbage, "onnx"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvVar, tc.config)
			_, err := New()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() with $%s=%q: err %v, want one containing %q", EnvVar, tc.config, err, tc.want)
			}
		})
	}
}

func TestNewAutomaticFallsBackToGo(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(garbage, []byte("\x7fELF truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, lib, wantNote string
	}{
		{"library path missing", filepath.Join(dir, "missing.so"), "missing.so"},
		{"library not a library", dir, "not a regular file"},
		{"corrupt library", garbage, garbage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvVar, "")
			t.Setenv(LibraryEnvVar, tc.lib)
			c, err := New()
			if err != nil {
				t.Fatalf("New(): %v", err)
			}
			if c.Config != Go || c.Explicit {
				t.Errorf("New() chose %s (explicit %t), want the Go backend by automatic choice", c.Backend.Name(), c.Explicit)
			}
			if !strings.Contains(c.Note, tc.wantNote) || !strings.Contains(c.Note, "install-onnxruntime.sh") {
				t.Errorf("note %q should name %q and say how to install ONNX Runtime", c.Note, tc.wantNote)
			}
		})
	}
}

func TestNewAutomaticWithoutONNXRuntime(t *testing.T) {
	t.Setenv(EnvVar, "")
	t.Setenv(LibraryEnvVar, "")
	t.Setenv("HOME", t.TempDir())
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if c.Config != Go || c.Note != "" {
		t.Errorf("without ONNX Runtime: chose %s with note %q, want the Go backend silently", c.Backend.Name(), c.Note)
	}
}

func TestNewAutomaticPrefersONNXRuntime(t *testing.T) {
	lib, err := FindONNXRuntime()
	if err != nil {
		t.Skipf("ONNX Runtime is not installed (%v); scripts/install-onnxruntime.sh installs it", err)
	}
	t.Setenv(EnvVar, "")
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if !IsONNX(c.Backend) || c.Config != ONNXConfig(lib, Training) || c.Note != "" {
		t.Errorf("with ONNX Runtime at %s: chose %s (config %q, note %q), want ONNX Runtime", lib, c.Backend.Name(),
			c.Config, c.Note)
	}
}

// TestNewONNXRuntime checks that NewONNXRuntime creates ONNX Runtime whatever $GOMLX_BACKEND selects, and
// the one-line errors without a library. (A bad library in $GOMLX_BACKEND is not tested here: once a
// test has loaded ONNX Runtime, compute-onnx keeps using it.)
func TestNewONNXRuntime(t *testing.T) {
	lib, err := FindONNXRuntime()
	for _, tc := range []struct {
		name, backendEnv, libEnv string
		home                     bool // a new empty $HOME: no library where FindONNXRuntime looks.
		wantErr                  string
	}{
		{name: "whatever engine runs", backendEnv: Go},
		{name: "no library", backendEnv: Go, home: true, wantErr: "ONNX Runtime is needed: no ONNX Runtime library found"},
		{name: "bad $" + LibraryEnvVar, libEnv: "/nonexistent/libonnxruntime.so", wantErr: "/nonexistent/libonnxruntime.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvVar, tc.backendEnv)
			t.Setenv(LibraryEnvVar, tc.libEnv)
			if tc.home {
				t.Setenv("HOME", t.TempDir())
			}
			b, err2 := NewONNXRuntime()
			if tc.wantErr == "" {
				if err != nil {
					t.Skipf("ONNX Runtime is not installed (%v)", err)
				}
				if err2 != nil || !IsONNX(b) {
					t.Fatalf("with ONNX Runtime at %s: %v, %v", lib, b, err2)
				}
				b.Finalize()
				return
			}
			if err2 == nil || !strings.Contains(err2.Error(), tc.wantErr) || !strings.Contains(err2.Error(), InstallHint) ||
				strings.Contains(err2.Error(), "\n") {
				t.Errorf("error %v, want one line containing %q and %q", err2, tc.wantErr, InstallHint)
			}
		})
	}
}

func TestWithONNXDefaults(t *testing.T) {
	threads := "intra_op_num_threads=" + strconv.Itoa(runtime.GOMAXPROCS(0))
	for _, tc := range []struct {
		config string
		w      Workload
		want   string
	}{
		{"go", Training, "go"},
		{"xla:/p/plugin.so", Inference, "xla:/p/plugin.so"},
		{"onnx:cpu,/lib/libonnxruntime.so", Training, "onnx:graph_optimization_level=0,mem_pattern=false," + threads +
			",cpu,/lib/libonnxruntime.so"},
		{"onnx:cpu,/lib/libonnxruntime.so", Inference, "onnx:graph_optimization_level=99,cpu,/lib/libonnxruntime.so"},
		{"onnxruntime", Training, "onnxruntime:graph_optimization_level=0,mem_pattern=false," + threads},
		{"onnx:cpu,opt_level=2,no_mem_pattern,intra_threads=1,/lib/x.so", Training,
			"onnx:cpu,opt_level=2,no_mem_pattern,intra_threads=1,/lib/x.so"},
		{"onnx:cpu,MemPattern=true,/lib/x.so", Training, "onnx:graph_optimization_level=0," + threads +
			",cpu,MemPattern=true,/lib/x.so"},
		{"onnx:cpu,Graph_Optimization_Level=1", Inference, "onnx:cpu,Graph_Optimization_Level=1"},
	} {
		if got := withONNXDefaults(tc.config, tc.w); got != tc.want {
			t.Errorf("withONNXDefaults(%q, %s) = %q, want %q", tc.config, tc.w, got, tc.want)
		}
	}
}
