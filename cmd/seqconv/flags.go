package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/internal/text"
)

// flagSet is a subcommand's flag.FlagSet with its usage text.
type flagSet struct {
	*flag.FlagSet
	synopsis    string // e.g. "seqconv train [flags]".
	description string // paragraphs printed before the flags.
}

func newFlagSet(name, synopsis, description string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Errors and usage are printed by parseFlags.
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, synopsis: synopsis, description: description}
}

// printFlagsUsage prints the usage of a subcommand with every flag and its default.
func printFlagsUsage(w io.Writer, fs *flagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n", fs.synopsis)
	if fs.description != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(fs.description))
	}
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if !hasFlags {
		return
	}
	fmt.Fprintf(w, "Flags:\n")
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		fmt.Fprintf(w, "%s\n    \t%s", line, strings.ReplaceAll(usage, "\n", "\n    \t"))
		if def := f.DefValue; def != "" && def != "0" && def != "false" {
			if name == "string" {
				def = strconv.Quote(def)
			}
			fmt.Fprintf(w, " (default %s)", def)
		}
		fmt.Fprintln(w)
	})
}

// singleDashFlag matches a flag named with one dash in the flag package's messages ("-epochs").
var singleDashFlag = regexp.MustCompile(`(^|[\s:])-([A-Za-z])`)

// flagError rewrites a message of the flag package with flags named as "--flag", as in the help.
func flagError(err error) string {
	return singleDashFlag.ReplaceAllString(text.OneLine(err.Error()), "$1--$2")
}

// parseFlags parses args. It returns done=true with the exit code when the command must stop:
// after printing the usage for -h/--help (exit 0), or an error and the usage for bad flags (exit 2).
// Positional arguments are an error.
func parseFlags(fs *flagSet, args []string, stdout, stderr io.Writer) (code int, done bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printFlagsUsage(stdout, fs)
		return exitOK, true
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "seqconv %s: %s\n", fs.Name(), flagError(err))
		printFlagsUsage(stderr, fs)
		return exitUsage, true
	}
	return exitOK, false
}

// parseIntList parses a comma-separated list of non-negative integers ("" is an empty list).
func parseIntList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("want comma-separated integers >= 0, got %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// thousands formats n with "," as thousands separator.
func thousands(n int64) string { return analysis.FormatThousands(n) }

// humanCount formats a large count with a K, M or G suffix and 2 decimals.
func humanCount(n int64) string { return analysis.FormatCount(n) }

// runParsed parses args into fs (handling --help and flag errors) and then runs exec, reporting its error as
// a one-line message with the exit code the error calls for.
func runParsed(fs *flagSet, args []string, stdout, stderr io.Writer, exec func() error) int {
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	if err := exec(); err != nil {
		printError(stderr, err)
		return exitCode(err)
	}
	return exitOK
}

// runInterruptible runs exec with a context that SIGINT and SIGTERM cancel and reports its error as a one-line
// message; an interrupted run exits with exitInterrupted.
func runInterruptible(stderr io.Writer, exec func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := exec(ctx); err != nil {
		if errors.Is(err, context.Canceled) {
			// A clean interrupt: the message says where it stopped, not the context's error.
			printError(stderr, errors.New(strings.ReplaceAll(err.Error(), ": "+context.Canceled.Error(), "")))
			return exitInterrupted
		}
		printError(stderr, err)
		return exitCode(err)
	}
	return exitOK
}
