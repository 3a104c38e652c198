package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/compute"
	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/internal/text"
)

// backendEnvVar selects the compute backend explicitly (e.g. "go", "onnx:cpu,<library>", "xla:<plugin>").
const backendEnvVar = engine.EnvVar

// newBackend creates the engine for workload w (see engine.NewFor): the one $GOMLX_BACKEND names, an error if
// it cannot be created; otherwise ONNX Runtime when its library is installed, else the pure Go backend. A
// fallback of the automatic choice is noted on stderr in one line.
func newBackend(stderr io.Writer, w engine.Workload) (compute.Backend, error) {
	c, err := engine.NewFor(w)
	if err != nil {
		return nil, err
	}
	if c.Note != "" {
		fmt.Fprintf(stderr, "seqconv: note: %s\n", c.Note)
	}
	return c.Backend, nil
}

// describeBackend is a one-line description of b.
func describeBackend(b compute.Backend) string {
	return fmt.Sprintf("%s (%s)", b.Name(), text.OneLine(b.Description()))
}

// xlaFlagsEnvVar is read by XLA (and the CUDA PJRT plugin) when the plugin is loaded.
const xlaFlagsEnvVar = "XLA_FLAGS"

// addXLAFlags registers --xla-cache and --autotune-level on fs.
func addXLAFlags(fs *flag.FlagSet, cache *string, autotune *int, defaultPlace string) {
	fs.StringVar(cache, "xla-cache", "", "XLA backend: directory of XLA's persistent autotuning cache, reused "+
		"by later runs (default: "+defaultPlace+"; off: none)")
	fs.IntVar(autotune, "autotune-level", -1, "XLA backend: XLA's GPU autotuning level 0-4 (0: no autotuning, "+
		"fastest compilation; -1: XLA's default)")
}

// configureXLA sets $XLA_FLAGS for the XLA/CUDA backend before it is created (XLA reads it once, when the
// plugin loads): the persistent caches in cacheDir (or defaultDir when cacheDir is empty; "off" for none)
// and the autotune level (-1: XLA's default). Flags already in $XLA_FLAGS win. It does nothing unless
// $GOMLX_BACKEND selects the XLA backend.
func configureXLA(cacheDir, defaultDir string, autotune int) error {
	if autotune < -1 || autotune > 4 {
		return usagef("--autotune-level must be -1 (XLA's default) or 0-4, got %d", autotune)
	}
	if !strings.HasPrefix(os.Getenv(backendEnvVar), "xla") {
		return nil
	}
	dir := cmp.Or(cacheDir, defaultDir)
	if dir == "off" {
		dir = ""
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("--xla-cache: %w", err)
		}
	}
	return os.Setenv(xlaFlagsEnvVar, xlaFlags(os.Getenv(xlaFlagsEnvVar), dir, autotune))
}

// xlaFlags returns the XLA_FLAGS value existing plus the cache flag for dir ("" for none) and the
// autotune level (-1: none), leaving out each flag existing already sets. The cache is XLA's persisted
// per-fusion autotuning (--xla_gpu_per_fusion_autotune_cache_dir, the one XLA recommends and JAX's persistent
// cache turns on): autotuning the many small convolutions of SeqConv layers is what makes their compilation
// slow. (XLA aborts on flags it does not know, so only long-standing ones are set.)
func xlaFlags(existing, dir string, autotune int) string {
	var add []string
	set := func(name, value string) {
		if !strings.Contains(existing, "--"+name+"=") && !strings.Contains(existing, "--"+name+" ") {
			add = append(add, "--"+name+"="+value)
		}
	}
	if dir != "" {
		set("xla_gpu_per_fusion_autotune_cache_dir", filepath.Join(dir, "autotune"))
	}
	if autotune >= 0 {
		set("xla_gpu_autotune_level", strconv.Itoa(autotune))
	}
	return strings.TrimSpace(strings.Join(append([]string{existing}, add...), " "))
}

// defaultXLACacheDir is the XLA cache of commands without a run directory: <user cache dir>/seqconv/xla
// ("" when the system has no user cache directory).
func defaultXLACacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "seqconv", "xla")
}
