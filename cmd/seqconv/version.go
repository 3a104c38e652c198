package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

func init() {
	registerCommand(command{"version", "print the versions of seqconv, Go and GoMLX", runVersion, printVersionUsage})
}

// Module paths whose versions "seqconv version" reports.
const (
	seqconvModule = "github.com/seqconv/seqconv"
	gomlxModule   = "github.com/gomlx/gomlx"
	computeModule = "github.com/gomlx/compute"
)

// develVersion is reported when the build has no module version (e.g. "go run" or "go build" in
// the source tree).
const develVersion = "(devel)"

// versions returns the versions of seqconv, GoMLX and GoMLX's compute module from the build
// information ("(devel)" or "(unknown)" when not recorded).
func versions() (seqconv, gomlx, compute string) {
	seqconv, gomlx, compute = develVersion, "(unknown)", "(unknown)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if bi.Main.Path == seqconvModule && bi.Main.Version != "" {
		seqconv = bi.Main.Version
	}
	for _, dep := range bi.Deps {
		v := dep.Version
		if dep.Replace != nil {
			v = dep.Replace.Version + " (replaced by " + dep.Replace.Path + ")"
		}
		switch dep.Path {
		case gomlxModule:
			gomlx = v
		case computeModule:
			compute = v
		case seqconvModule: // In test binaries the module is a dependency.
			if v != "" {
				seqconv = v
			}
		}
	}
	return
}

func printVersionUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: seqconv version\n\nPrints the versions of seqconv, Go, GoMLX and GoMLX's compute module.\n")
}

// runVersion implements "seqconv version".
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "seqconv version", "Prints the versions of seqconv, Go, GoMLX and GoMLX's compute module.")
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	s, g, c := versions()
	fmt.Fprintf(stdout, "seqconv %s\n", s)
	fmt.Fprintf(stdout, "go      %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "gomlx   %s\n", g)
	fmt.Fprintf(stdout, "compute %s\n", c)
	return exitOK
}
