// Command seqconv trains and inspects Sequentially Aggregated Convolutional Networks (SeqConv)
// with GoMLX.
//
// Usage:
//
//	seqconv train [flags]      train a model (default: seqresnet-mnist on the embedded MNIST; cifar10,
//	                           cifar100 or an image folder with --data; --resume RUN_DIR continues a run)
//	seqconv eval [flags]       evaluate a run's checkpoint: loss, top-1 and top-5 error
//	seqconv models [flags]     list the registered models with their size and cost
//	seqconv summary MODEL      print a model's per-layer output shapes, parameters and MACs
//	seqconv import [flags]     import the authors' PyTorch weights (.npz state_dict) into a run directory
//	seqconv export [flags]     export a run directory as a PyTorch state_dict .npz or an ONNX model
//	seqconv infer [flags]      compute a run's eval-mode logits for NCHW images in a .npy file
//	seqconv predict [flags] IMAGE...
//	                           print the most probable classes of image files
//	seqconv serve [flags]      serve a run's model over HTTP (JSON API, metrics, a web page)
//	seqconv bench [flags]      time training or inference steps of a model
//	seqconv heatmap [flags]    draw the weight-utilization heat maps of a run's SeqConv layers
//	seqconv plot [flags]       plot the training curves of one or more runs
//	seqconv report [flags]     write a self-contained HTML report of one or more runs
//	seqconv experiment windowed-vs-dense [flags]
//	                           train windowed and dense SeqResNets on MNIST and compare them
//	seqconv data fetch cifar10|cifar100 [--to DIR]
//	                           download a dataset's official archive (CIFAR-10, CIFAR-100)
//	seqconv version            print the versions of seqconv, Go and GoMLX
//	seqconv help [command]     print help
//
// The compute backend is chosen by $GOMLX_BACKEND: "go" (pure Go), "onnx:..." or "xla:<PJRT plugin>" (for
// instance the absolute path of a CUDA PJRT plugin); a backend named there that cannot be created is an
// error. Without it, seqconv uses ONNX Runtime when it is installed, else the Go backend.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/seqconv/seqconv/internal/text"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1   // runtime errors.
	exitUsage       = 2   // bad flags or flag values.
	exitInterrupted = 130 // interrupted (SIGINT/SIGTERM).
)

// command is a subcommand.
type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
	usage         func(w io.Writer)
}

// registered holds the subcommands, added by registerCommand from the init functions of the files that
// define them, so that each subcommand lives in its own file.
var registered []command

// registerCommand adds a subcommand; call it from an init function.
func registerCommand(c command) { registered = append(registered, c) }

// flagsUsage returns the usage function of a command whose flags newFlags defines.
func flagsUsage[T any](newFlags func(*T) *flagSet) func(io.Writer) {
	return func(w io.Writer) { printFlagsUsage(w, newFlags(nil)) }
}

// parsedCommand returns the command name whose flags newFlags binds to a fresh options value o, and whose run
// parses them and reports the error of exec(o, stdout, stderr) (see runParsed).
func parsedCommand[T any](name, summary string, newFlags func(*T) *flagSet,
	exec func(o *T, stdout, stderr io.Writer) error) command {
	run := func(args []string, stdout, stderr io.Writer) int {
		var o T
		return runParsed(newFlags(&o), args, stdout, stderr, func() error { return exec(&o, stdout, stderr) })
	}
	return command{name, summary, run, flagsUsage(newFlags)}
}

func init() {
	registerCommand(command{"help", "print this help, or the help of a command", runHelp, printUsage})
}

// commands returns the subcommands.
func commands() []command { return registered }

// run executes the command line args (without the program name) and returns the exit code.
// Panics (GoMLX reports errors by panicking) are reported as one-line errors.
func run(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			var err error
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
			printError(stderr, err)
			code = exitFailure
		}
	}()
	if len(args) == 0 {
		// As Go tools do: the usage, and the exit code of a usage error.
		printUsage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printUsage(stdout)
		return exitOK
	case "-version", "--version":
		return runVersion(args[1:], stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "seqconv: unknown command %q\n", name)
	printUsage(stderr)
	return exitUsage
}

// commandGroups orders the commands in the usage, by what they are for; commands in no group are listed
// last, under "Other".
var commandGroups = []struct {
	title string
	names []string
}{
	{"Training", []string{"train", "eval"}},
	{"Models", []string{"models", "summary", "bench"}},
	{"Weights", []string{"import", "export", "infer"}},
	{"Analysis", []string{"heatmap", "plot", "report", "experiment"}},
	{"Data", []string{"data"}},
	{"Help", []string{"version", "help"}},
}

// printUsage prints the top-level usage: the commands by group.
func printUsage(w io.Writer) {
	fmt.Fprintf(w, "seqconv trains and inspects Sequentially Aggregated Convolutional Networks (SeqConv).\n\n")
	fmt.Fprintf(w, "Usage:\n  seqconv <command> [flags]\n  seqconv --version\n")
	byName := map[string]command{}
	width := 0
	for _, c := range commands() {
		byName[c.name] = c
		width = max(width, len(c.name))
	}
	listed := map[string]bool{}
	printGroup := func(title string, cmds []command) {
		if len(cmds) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, c := range cmds {
			fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.summary)
			listed[c.name] = true
		}
	}
	for _, g := range commandGroups {
		var cmds []command
		for _, n := range g.names {
			if c, ok := byName[n]; ok {
				cmds = append(cmds, c)
			}
		}
		printGroup(g.title, cmds)
	}
	var other []command
	for _, c := range commands() {
		if !listed[c.name] {
			other = append(other, c)
		}
	}
	printGroup("Other", other)
	fmt.Fprintf(w, "\nRun \"seqconv help <command>\" or \"seqconv <command> --help\" for the flags of a command.\n")
	fmt.Fprintf(w, "The compute backend is chosen with $%s (e.g. \"go\"); a backend named there that cannot be "+
		"created is an error. Without it, seqconv uses ONNX Runtime when installed, else the Go backend.\n", backendEnvVar)
}

// runHelp implements "seqconv help [command]".
func runHelp(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stdout)
		return exitOK
	}
	if len(args) > 1 {
		fmt.Fprintf(stderr, "seqconv help: want at most one command, got %q\n", strings.Join(args, " "))
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] {
			c.usage(stdout)
			return exitOK
		}
	}
	fmt.Fprintf(stderr, "seqconv help: unknown command %q\n", args[0])
	printUsage(stderr)
	return exitUsage
}

// usageError is an invalid flag value: reported on one line with exit code exitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// exitCode returns the exit code for err.
func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitFailure
}

// printError prints err on one line, prefixed by "seqconv: ". An errors.Join of several errors is printed
// one error a line, the ones after the first indented.
func printError(w io.Writer, err error) {
	if errs := joined(err); len(errs) > 1 {
		for i, e := range errs {
			prefix := "seqconv: "
			if i > 0 {
				prefix = "  "
			}
			fmt.Fprintf(w, "%s%s\n", prefix, text.OneLine(e.Error()))
		}
		return
	}
	fmt.Fprintf(w, "seqconv: %s\n", text.OneLine(err.Error()))
}

// joined returns the errors err joins if it is an errors.Join (whose message is theirs, one a line), else
// nil. An error of fmt.Errorf with several %w also unwraps to several errors, but its message is one
// sentence that must stay whole.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return nil
	}
	errs := j.Unwrap()
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	if err.Error() != strings.Join(msgs, "\n") {
		return nil
	}
	return errs
}
