// Package engine chooses and creates the compute backend that seqconv runs on: ONNX Runtime on the CPU
// when its library is installed, GoMLX's pure Go backend otherwise, or the engine that $GOMLX_BACKEND
// names (for instance XLA with a CUDA PJRT plugin).
//
// It also holds VariablesAsParameters, which graphs that are run again after their variables change
// must call.
package engine

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/gomlx/compute"
	onnxbackend "github.com/gomlx/compute-onnx"
	_ "github.com/gomlx/compute/gobackend" // The pure Go backend, always available.
	"github.com/seqconv/seqconv/internal/text"

	// XLA/PJRT: selected with GOMLX_BACKEND=xla:<plugin>, e.g. a CUDA PJRT plugin given by its absolute path.
	_ "github.com/gomlx/go-xla/compute/xla"
)

// EnvVar names the environment variable that selects the backend explicitly (GoMLX's own).
const EnvVar = compute.ConfigEnvVar

// Go is the configuration of GoMLX's pure Go backend.
const Go = "go"

// Choice is the backend New created and how it came to be chosen.
type Choice struct {
	// Backend is the created backend.
	Backend compute.Backend
	// Config is the configuration it was created with (e.g. "go" or "onnx:cpu,/path/libonnxruntime.so").
	Config string
	// Explicit is true when $GOMLX_BACKEND (or the caller) named the backend.
	Explicit bool
	// Note explains a fallback of the automatic choice (e.g. an ONNX Runtime library that failed to
	// load); empty otherwise.
	Note string
}

// String describes the choice in one line, e.g. "onnx (ONNX Runtime 1.30.0 CPU), automatic choice".
func (c Choice) String() string {
	how := "automatic choice"
	if c.Explicit {
		how = "from $" + EnvVar
	}
	s := fmt.Sprintf("%s (%s), %s", c.Backend.Name(), text.OneLine(c.Backend.Description()), how)
	if c.Note != "" {
		s += "; " + c.Note
	}
	return s
}

// New creates the backend for training: NewFor(Training).
func New() (Choice, error) { return NewFor(Training) }

// NewFor creates the backend for workload w: the one $GOMLX_BACKEND names, if set (an error if it cannot be
// created: a user who asked for a GPU must not train on the CPU by surprise; ONNX Runtime gets w's
// ONNXOptions for the keys it does not set); otherwise ONNX Runtime on the CPU when its library is found (see
// FindONNXRuntime), falling back to the pure Go backend with a Note when it cannot be loaded; otherwise the
// pure Go backend.
func NewFor(w Workload) (Choice, error) {
	if config := strings.TrimSpace(os.Getenv(EnvVar)); config != "" {
		config = withONNXDefaults(config, w)
		b, err := NewWithConfig(config)
		if err != nil {
			return Choice{}, err
		}
		return Choice{Backend: b, Config: config, Explicit: true}, nil
	}
	var note string
	if lib, err := FindONNXRuntime(); err == nil {
		config := ONNXConfig(lib, w)
		b, err := NewWithConfig(config)
		if err == nil {
			return Choice{Backend: b, Config: config}, nil
		}
		note = fmt.Sprintf("ONNX Runtime at %s could not be used (%s); using the pure Go backend. %s",
			lib, text.OneLine(err.Error()), InstallHint)
	} else if !errors.Is(err, ErrNoONNXRuntime) {
		note = text.OneLine(err.Error()) + "; using the pure Go backend. " + InstallHint
	}
	b, err := NewWithConfig(Go)
	if err != nil {
		return Choice{}, err
	}
	return Choice{Backend: b, Config: Go, Note: note}, nil
}

// MustNew is New for tests and examples: it panics on error.
func MustNew() compute.Backend {
	c, err := New()
	if err != nil {
		panic(err)
	}
	return c.Backend
}

// NewWithConfig creates the backend of a GoMLX backend configuration ("go", "onnx:cpu,<library>",
// "xla:<PJRT plugin>"), without any automatic download.
func NewWithConfig(config string) (b compute.Backend, err error) {
	name, _, _ := strings.Cut(config, ":")
	if !isKnown(name) {
		return nil, fmt.Errorf("unknown backend %q in $%s=%q: expected go, onnx:cpu,<path of libonnxruntime.so> "+
			"or xla:<PJRT plugin>", name, EnvVar, config)
	}
	if name == "onnx" || name == "onnxruntime" {
		// Never a silent download (it hangs or fails without a network): the library must be installed.
		onnxbackend.EnableAutoInstall(false)
	}
	defer func() { // compute.NewWithConfig and some backends panic on bad configurations.
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
		if err != nil {
			err = fmt.Errorf("creating the %q backend (%s=%q): %s", name, EnvVar, config, text.OneLine(err.Error()))
		}
	}()
	raw, err := compute.NewWithConfig(config)
	if err != nil {
		if raw != nil {
			finalizeQuietly(raw)
		}
		return nil, err
	}
	if raw == nil {
		return nil, errors.New("no backend returned")
	}
	return raw, nil
}

// isKnown reports whether name is a registered backend.
func isKnown(name string) bool {
	for _, n := range compute.List() {
		if n == name {
			return true
		}
	}
	return name == "onnxruntime"
}

// IsONNX reports whether b is the ONNX Runtime backend.
func IsONNX(b compute.Backend) bool {
	_, ok := b.(*onnxbackend.Backend)
	return ok
}

// IsGo reports whether b is GoMLX's pure Go backend (named "Go Backend"; it registers as "go").
func IsGo(b compute.Backend) bool {
	name := strings.ToLower(b.Name())
	return name == Go || strings.HasPrefix(name, Go+" ")
}

// finalizeQuietly finalizes a backend returned along with an error, which may be in a broken state.
func finalizeQuietly(b compute.Backend) {
	defer func() { _ = recover() }()
	b.Finalize()
}

// MustNewForTest returns the backend that tests run on: the one $GOMLX_BACKEND names (ONNX Runtime with the
// Training workload's ONNXOptions for the keys it does not set), or the pure Go backend when it is unset (so
// that a machine with ONNX Runtime installed runs the same suite as one without; CI runs the suite again with
// $GOMLX_BACKEND naming ONNX Runtime). It panics on error.
func MustNewForTest() compute.Backend {
	config := strings.TrimSpace(os.Getenv(EnvVar))
	if config == "" {
		config = Go
	}
	b, err := NewWithConfig(withONNXDefaults(config, Training))
	if err != nil {
		panic(err)
	}
	return b
}
