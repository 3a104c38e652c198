package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/seqconv/seqconv/data"
)

// dataOptions are the flags of "seqconv data fetch".
type dataOptions struct {
	to string
}

func init() {
	registerCommand(command{"data", "download a dataset archive: data fetch cifar10|cifar100 --to DIR",
		runData, flagsUsage(newDataFlags)})
}

func newDataFlags(o *dataOptions) *flagSet {
	if o == nil {
		o = &dataOptions{}
	}
	fs := newFlagSet("data", "seqconv data fetch cifar10|cifar100 [--to DIR]", `
Downloads the official binary archive of CIFAR-10 or CIFAR-100 (cifar-10-binary.tar.gz,
cifar-100-binary.tar.gz, from the dataset authors' page) into DIR, checks its size and the MD5 checksum
the authors publish, and writes it atomically. "seqconv train --data cifar10 --data-dir DIR" reads the
archive as it is. Without a network connection it fails with a clear message: copy the archive into DIR
by other means.`)
	fs.StringVar(&o.to, "to", "", "directory to download into (default $"+dataDirEnvVar+" or "+defaultDataDirName+")")
	return fs
}

// runData implements "seqconv data".
func runData(args []string, stdout, stderr io.Writer) int {
	var o dataOptions
	fs := newDataFlags(&o)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if code, done := parseFlags(fs, args, stdout, stderr); done {
			return code
		}
		printError(stderr, usagef("data: want a subcommand: seqconv data fetch %s [--to DIR]",
			strings.Join(data.ArchiveNames(), "|")))
		return exitUsage
	}
	if args[0] != "fetch" {
		printError(stderr, usagef("data: unknown subcommand %q, expected fetch", args[0]))
		return exitUsage
	}
	args = args[1:]
	var names []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		names, args = append(names, args[0]), args[1:]
	}
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	names = append(names, fs.Args()...)
	if len(names) == 0 {
		printError(stderr, usagef("data fetch: name a dataset: %s", strings.Join(data.ArchiveNames(), "|")))
		return exitUsage
	}
	for _, n := range names {
		if _, ok := data.Archives[n]; !ok {
			printError(stderr, usagef("data fetch: unknown dataset %q, expected %s", n,
				strings.Join(data.ArchiveNames(), "|")))
			return exitUsage
		}
	}
	dir := o.to
	if dir == "" {
		dir = defaultDataDir()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	for _, n := range names {
		a := data.Archives[n]
		fmt.Fprintf(stdout, "fetching %s (%s, %.0f MB) into %s\n", n, a.URL, float64(a.Size)/1e6, dir)
		path, err := data.Fetch(ctx, n, dir, nil)
		if err != nil {
			printError(stderr, err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "%s: %s (MD5 %s verified)\n", n, path, a.MD5)
	}
	return exitOK
}
