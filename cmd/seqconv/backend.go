package main

import (
	"fmt"
	"io"
	"os"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // The pure Go backend, always available.
	// XLA/PJRT: selected with GOMLX_BACKEND=xla:<plugin>, e.g. a CUDA PJRT plugin given by its absolute path.
	_ "github.com/gomlx/go-xla/compute/xla"
)

// backendEnvVar selects the compute backend (e.g. "go", or "xla:cuda" when built with -tags xla).
const backendEnvVar = compute.ConfigEnvVar

// fallbackBackend is the backend configuration used when the configured one fails.
const fallbackBackend = "go"

// newBackend returns the backend configured by $GOMLX_BACKEND ("go", or "xla:<PJRT plugin name or absolute
// path>"); without it, the pure Go backend (GoMLX's own default would try to download an XLA plugin). If the
// configured backend cannot be created it writes a one-line note to stderr and falls back to the Go backend.
func newBackend(stderr io.Writer) (compute.Backend, error) {
	newFn := compute.New
	if os.Getenv(backendEnvVar) == "" {
		newFn = func() (compute.Backend, error) { return compute.NewWithConfig(fallbackBackend) }
	}
	b, err := tryBackend(newFn)
	if err == nil {
		return b, nil
	}
	config := os.Getenv(backendEnvVar)
	if config == "" {
		config = "default"
	}
	fmt.Fprintf(stderr, "seqconv: note: backend %q is not available (%s); using the %q backend\n",
		config, oneLine(err.Error()), fallbackBackend)
	b, err2 := tryBackend(func() (compute.Backend, error) { return compute.NewWithConfig(fallbackBackend) })
	if err2 != nil {
		return nil, fmt.Errorf("creating the compute backend: %w (and the %q fallback failed: %v)", err, fallbackBackend, err2)
	}
	return b, nil
}

// tryBackend calls newFn, converting panics (compute.NewWithConfig panics on unknown backends) to
// errors and discarding a backend returned along with an error.
func tryBackend(newFn func() (compute.Backend, error)) (b compute.Backend, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("%v", r)
		}
	}()
	b, err = newFn()
	if err != nil {
		if b != nil {
			finalizeQuietly(b)
		}
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("no backend returned")
	}
	return b, nil
}

// finalizeQuietly finalizes a backend returned along with an error, which may be in a broken state
// (the XLA backend's Finalize can then panic).
func finalizeQuietly(b compute.Backend) {
	defer func() { _ = recover() }()
	b.Finalize()
}

// describeBackend is a one-line description of b.
func describeBackend(b compute.Backend) string {
	return fmt.Sprintf("%s (%s)", b.Name(), oneLine(b.Description()))
}
