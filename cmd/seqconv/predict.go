package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/inference"
	"github.com/seqconv/seqconv/internal/text"
)

func init() {
	registerCommand(command{"predict", "print the most probable classes of image files (JPEG, PNG, GIF, WebP)",
		runPredict, flagsUsage(newPredictFlags)})
}

// predictOptions are the flags of "seqconv predict".
type predictOptions struct {
	run        string
	top, size  int
	jsonOutput bool
	best       bool
	images     []string
}

func newPredictFlags(o *predictOptions) *flagSet {
	if o == nil {
		o = &predictOptions{}
	}
	fs := newFlagSet("predict", "seqconv predict --run RUN_DIR [--top 5] [--json] IMAGE...", `
Prints the most probable classes of each image file (JPEG, PNG, GIF or WebP), with their probabilities,
using the class names of the run (classes.json, the CIFAR meta file, the digits for MNIST). Images are
prepared as the run's evaluation prepares them: resized and centre-cropped to the model's resolution,
grey for 1-channel models, normalised with the dataset's statistics. A file that cannot be read or
decoded is reported and the others are still predicted; the exit status is then 1.`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.IntVar(&o.top, "top", inference.DefaultTopK, "how many classes to print per image (>= 1)")
	fs.BoolVar(&o.jsonOutput, "json", false, "print JSON: {model, engine, predictions: [{file, top: [{index, name, probability}]} or {file, error}]}")
	fs.BoolVar(&o.best, "best", false, "use the best checkpoint (best/) instead of the latest (checkpoint/)")
	fs.IntVar(&o.size, "size", 0, "height and width the images are prepared at (0: the model's resolution)")
	return fs
}

// runPredict implements "seqconv predict".
func runPredict(args []string, stdout, stderr io.Writer) int {
	var o predictOptions
	fs := newPredictFlags(&o)
	images, err := parseInterspersed(fs, args)
	if errors.Is(err, errHelp) {
		printFlagsUsage(stdout, fs)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "seqconv predict: %s\n", text.OneLine(err.Error()))
		printFlagsUsage(stderr, fs)
		return exitUsage
	}
	o.images = images
	return runInterruptible(stderr, func(ctx context.Context) error { return o.execute(ctx, stdout, stderr) })
}

// errPredictFailed reports that some images could not be predicted (each was reported already).
type errPredictFailed struct{ n, total int }

func (e errPredictFailed) Error() string {
	return fmt.Sprintf("%d of %d images could not be predicted", e.n, e.total)
}

func (o *predictOptions) execute(ctx context.Context, stdout, stderr io.Writer) error {
	if err := requireFlags("--run", o.run); err != nil {
		return err
	}
	if len(o.images) == 0 {
		return usagef("no image files given: seqconv predict --run RUN_DIR IMAGE...")
	}
	if o.top < 1 {
		return usagef("--top must be >= 1, got %d", o.top)
	}
	if o.size < 0 {
		return usagef("--size must be >= 0 (0: the model's resolution), got %d", o.size)
	}
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	p, err := inference.Load(o.run, inference.Options{Backend: backend, Best: o.best, TopK: o.top, Size: o.size})
	if err != nil {
		return err
	}
	defer p.Close()
	results, err := p.PredictFiles(ctx, o.images)
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			printError(stderr, r.Err)
		}
	}
	if o.jsonOutput {
		err = printPredictionsJSON(stdout, p.Info(), results)
	} else {
		err = printPredictions(stdout, results)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return errPredictFailed{failed, len(results)}
	}
	return nil
}

// printPredictions prints one line per predicted image: "FILE: name 97.12%, name 1.50%, ...".
func printPredictions(w io.Writer, results []inference.FileResult) error {
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		parts := make([]string, len(r.Prediction.Top))
		for i, c := range r.Prediction.Top {
			parts[i] = fmt.Sprintf("%s %.2f%%", c.Name, 100*c.Probability)
		}
		if _, err := fmt.Fprintf(w, "%s: %s\n", r.Path, strings.Join(parts, ", ")); err != nil {
			return err
		}
	}
	return nil
}

// filePrediction is one element of the JSON output's predictions.
type filePrediction struct {
	File  string            `json:"file"`
	Top   []inference.Class `json:"top,omitempty"`
	Error string            `json:"error,omitempty"`
}

// printPredictionsJSON prints the model, the engine and every file's prediction or error as JSON.
func printPredictionsJSON(w io.Writer, info inference.Info, results []inference.FileResult) error {
	out := struct {
		Model       string           `json:"model"`
		Engine      string           `json:"engine"`
		Predictions []filePrediction `json:"predictions"`
	}{Model: info.Model, Engine: info.Engine, Predictions: make([]filePrediction, len(results))}
	for i, r := range results {
		out.Predictions[i] = filePrediction{File: r.Path, Top: r.Prediction.Top}
		if r.Err != nil {
			out.Predictions[i].Error = text.OneLine(r.Err.Error())
		}
	}
	return printJSON(w, out)
}

// errHelp is returned by parseInterspersed for -h and --help.
var errHelp = errors.New("help requested")

// parseInterspersed parses args into fs, allowing flags after positional arguments ("IMAGE... --top 3"),
// and returns the positional arguments; "--" ends the flags.
func parseInterspersed(fs *flagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
