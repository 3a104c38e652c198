package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/seqconv/seqconv/internal/text"
)

// ONNXRuntimeVersion is the ONNX Runtime release that scripts/install-onnxruntime.sh installs and that
// seqconv is tested with.
const ONNXRuntimeVersion = "1.30.0"

// LibraryEnvVar names the environment variable that gives the ONNX Runtime library's path (the variable
// compute-onnx reads).
const LibraryEnvVar = "ONNXRUNTIME_SHARED_LIBRARY_PATH"

// InstallHint says how to install the ONNX Runtime library where FindONNXRuntime looks.
const InstallHint = "Install ONNX Runtime " + ONNXRuntimeVersion + " with scripts/install-onnxruntime.sh " +
	"(or set $" + LibraryEnvVar + " to its libonnxruntime.so)"

// ErrNoONNXRuntime is returned by FindONNXRuntime when no library is installed.
var ErrNoONNXRuntime = errors.New("no ONNX Runtime library found")

// DefaultLibraryPath is where scripts/install-onnxruntime.sh installs the library and where compute-onnx
// looks by default: ~/.local/lib/onnxruntime/libonnxruntime.so.
func DefaultLibraryPath() (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".local", "lib", "onnxruntime", "libonnxruntime.so"), nil
}

// FindONNXRuntime returns the absolute path of the ONNX Runtime library: $ONNXRUNTIME_SHARED_LIBRARY_PATH
// if set (an error if it is not a readable regular file), else DefaultLibraryPath if it exists, else
// ErrNoONNXRuntime.
func FindONNXRuntime() (string, error) {
	if p := os.Getenv(LibraryEnvVar); p != "" {
		if err := checkLibrary(p); err != nil {
			return "", fmt.Errorf("$%s: %w", LibraryEnvVar, err)
		}
		return filepath.Abs(p)
	}
	p, err := DefaultLibraryPath()
	if err != nil {
		return "", ErrNoONNXRuntime
	}
	if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
		return "", ErrNoONNXRuntime
	}
	if err := checkLibrary(p); err != nil {
		return "", err
	}
	return p, nil
}

// checkLibrary checks that path is a regular file that looks like a shared library (ELF, Mach-O or PE).
func checkLibrary(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if !info.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	magic := make([]byte, 4)
	if _, err := f.Read(magic); err != nil || !isLibraryMagic(magic) {
		return fmt.Errorf("%s is not a shared library (corrupt or truncated?)", path)
	}
	return nil
}

// isLibraryMagic reports whether a file starting with m is an ELF, Mach-O or PE (DLL) binary.
func isLibraryMagic(m []byte) bool {
	switch {
	case string(m) == "\x7fELF", m[0] == 'M' && m[1] == 'Z':
		return true
	case string(m) == "\xcf\xfa\xed\xfe", string(m) == "\xce\xfa\xed\xfe", string(m) == "\xca\xfe\xba\xbe":
		return true
	}
	return false
}

// Workload is what a backend will mostly run; it selects ONNX Runtime's session options (see ONNXOptions).
type Workload int

const (
	// Training graphs: forward, backward and update of a whole model, tens of thousands of nodes.
	Training Workload = iota
	// Inference graphs: the forward pass with the weights folded in as constants.
	Inference
)

// String implements fmt.Stringer.
func (w Workload) String() string {
	if w == Inference {
		return "inference"
	}
	return "training"
}

// ONNXOptions are the ONNX Runtime session options (compute-onnx configuration keys) of a workload, the one
// place where they are chosen:
//
//   - training: graph_optimization_level=0. ONNX Runtime's graph optimizer takes time that grows faster than
//     the graph (measured on the CIFAR demo's training graph of 33k nodes, 2 cores: session built in 7 s
//     unoptimized, 27 s at level 1, 37 s at level 99) for a step only 5-10% faster, because the layers
//     already emit the operations it would produce (no transposed matrix-product operands, batch norm with
//     hand-written gradients).
//   - training: mem_pattern=false. With its memory pattern ONNX Runtime plans one block for all of a step's
//     intermediate tensors; without it, its arena reuses freed ones as the step runs. On the CIFAR demo at
//     batch 64 that is 3.4 instead of 5.4 GiB at the peak and a first step 1.5-2 s shorter, for the same
//     step time (`seqconv bench --batch 64` with and without mem_pattern=false in $GOMLX_BACKEND,
//     2026-12-08).
//   - training: intra_op_num_threads set to GOMAXPROCS. Left unset, ONNX Runtime starts one thread per
//     physical core and pins each to its core, where they compete with the Go runtime's threads; with the
//     count set it pins nothing. The CIFAR demo's training step at batch 16 took 0.53-0.70 s against
//     0.60-0.74 s unpinned vs pinned, faster in 5 of 6 pairs of runs (`seqconv bench --batch 16 --steps 10`
//     with and without intra_op_num_threads=2 in $GOMLX_BACKEND, 2026-12-08, 2 cores with one thread each);
//     inference showed no difference and keeps the default. On machines with several hardware threads per
//     core GOMAXPROCS counts threads, not cores, and this was not measured there: set intra_op_num_threads
//     in $GOMLX_BACKEND to choose.
//   - inference: all optimizations (level 99, ONNX Runtime's default): batch norm and ReLU folded into the
//     convolutions, which run in ONNX Runtime's blocked channel layout; the graphs are small (2-4 s to build
//     for the CIFAR demo) and run 1.5-2x faster than unoptimized.
func ONNXOptions(w Workload) []string {
	if w == Inference {
		return []string{"graph_optimization_level=99"}
	}
	return []string{"graph_optimization_level=0", "mem_pattern=false",
		"intra_op_num_threads=" + strconv.Itoa(runtime.GOMAXPROCS(0))}
}

// ONNXConfig is the backend configuration that runs workload w on ONNX Runtime's CPU execution provider with
// the library at lib.
func ONNXConfig(lib string, w Workload) string {
	return "onnx:cpu," + strings.Join(ONNXOptions(w), ",") + "," + lib
}

// withONNXDefaults adds workload w's ONNXOptions to an ONNX Runtime backend configuration ("onnx:..." or
// "onnxruntime:...") for the keys it does not set; other configurations are returned as they are.
func withONNXDefaults(config string, w Workload) string {
	name, opts, _ := strings.Cut(config, ":")
	if name != "onnx" && name != "onnxruntime" {
		return config
	}
	set := map[string]bool{}
	var parts []string
	if opts != "" {
		parts = strings.Split(opts, ",")
	}
	for _, p := range parts {
		key, _, _ := strings.Cut(strings.TrimSpace(p), "=")
		set[canonicalONNXKey(key)] = true
	}
	var add []string
	for _, o := range ONNXOptions(w) {
		key, _, _ := strings.Cut(o, "=")
		if !set[canonicalONNXKey(key)] {
			add = append(add, o)
		}
	}
	if len(add) == 0 {
		return config
	}
	return name + ":" + strings.Join(append(add, parts...), ",")
}

// canonicalONNXKey maps compute-onnx's aliases of the option keys that ONNXOptions sets (and of their
// flag forms, such as no_mem_pattern) to one name.
func canonicalONNXKey(key string) string {
	switch strings.ToLower(key) {
	case "graph_optimization_level", "graphoptimizationlevel", "opt_level", "optlevel":
		return "graph_optimization_level"
	case "mem_pattern", "mempattern", "no_mem_pattern":
		return "mem_pattern"
	case "intra_op_num_threads", "intraopnumthreads", "intra_threads":
		return "intra_op_num_threads"
	}
	return strings.ToLower(key)
}

// NewONNXRuntime creates an ONNX Runtime backend whatever engine the rest of the program runs on, for
// work that needs ONNX Runtime itself (writing .onnx files): the one $GOMLX_BACKEND names if it is an
// ONNX Runtime configuration (so that a chosen library or execution provider is kept), else the CPU
// backend on the library FindONNXRuntime finds, with the Inference session options. Without a usable
// library, the error is one line that says how to install it (InstallHint).
func NewONNXRuntime() (compute.Backend, error) {
	config := strings.TrimSpace(os.Getenv(EnvVar))
	if name, _, _ := strings.Cut(config, ":"); name != "onnx" && name != "onnxruntime" {
		lib, err := FindONNXRuntime()
		if err != nil {
			return nil, fmt.Errorf("ONNX Runtime is needed: %s. %s", text.OneLine(err.Error()), InstallHint)
		}
		config = ONNXConfig(lib, Inference)
	}
	b, err := NewWithConfig(withONNXDefaults(config, Inference))
	if err != nil {
		return nil, fmt.Errorf("%s. %s", err.Error(), InstallHint)
	}
	return b, nil
}
