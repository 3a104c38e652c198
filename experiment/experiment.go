// Package experiment runs the reproducible experiments of seqconv as library calls; the command
// "seqconv experiment" only parses their flags and prints what they return.
//
// RunWindowedVsDense reproduces, at a small scale, the poster's weight-visualization claim: that
// windowed aggregation uses the groups it aggregates more evenly than dense aggregation. It trains the
// same small SeqResNet twice on the embedded MNIST with the same settings and seed, once with the
// authors' windowed aggregation and once with dense aggregation in every SeqConv layer (a window wider
// than any sequence, checked on the built models' weight shapes), compares the layers' utilization
// after training with the same measure at initialization, and writes the two run directories, the heat
// maps, the utilization CSVs, report.html and summary.json into one output directory.
package experiment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/internal/outfile"
	"github.com/seqconv/seqconv/internal/text"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// WindowedVsDense is the name of the windowed-vs-dense experiment.
const WindowedVsDense = "windowed-vs-dense"

// Variant names of the windowed-vs-dense experiment, also the names of their run directories and files.
const (
	VariantWindowed = "windowed"
	VariantDense    = "dense"
)

// Files the experiment writes in its output directory (besides the two run directories).
const (
	ReportFile        = "report.html"
	SummaryFile       = "summary.json"
	HeatmapSuffix     = "-heatmap.png"     // <variant>-heatmap.png: the variant's heat maps (jet colour map).
	UtilizationSuffix = "-utilization.csv" // <variant>-utilization.csv: the variant's utilization per layer.
)

// Options configure RunWindowedVsDense.
type Options struct {
	// Model is the model both variants are made of: a config CheckModel accepts. Name names it in the
	// variants' names, the report and summary.json.
	Model models.Config
	Name  string
	// Granularity, when > 0, sets the granularity k of every stage (see Variants).
	Granularity int

	// Recipe is how both variants are trained (its augmentation parsed by data.ParseAugmentation for
	// MNIST; "default": random crops with 2 pixels of padding); the experiment sets the model, run
	// directory, data, epochs, seed, image limits and progress line of each.
	Recipe train.Recipe
	// Epochs is the number of training epochs of each variant (>= 1).
	Epochs int
	// MaxTrainImages and MaxEvalImages limit training and evaluation to the first images of MNIST's
	// training and test sets (0: all).
	MaxTrainImages, MaxEvalImages int
	// Seed seeds both runs: initialization, shuffling and augmentation.
	Seed int64

	// Out is the output directory; it must exist, and should be empty.
	Out string
	// Command is the command line that reproduces the run, quoted in the report and summary.json.
	Command string
	// Environment describes the program for the report (versions, host, backend).
	Environment []analysis.KeyValue

	// TrainLog receives the training lines of each epoch (nil: none), and Progress asks for a
	// self-updating progress line there.
	TrainLog io.Writer
	Progress bool
	// Started, when set, is called once the variants are checked and the data loaded, with the
	// summary's settings filled in. TrainStart and TrainDone, when set, are called before and after
	// each variant is trained: before, the variant's name, model and size are set; after, its results.
	Started               func(*Summary)
	TrainStart, TrainDone func(*Variant)
}

// variantConfig returns the training config of variant cfg: the recipe's settings with the
// experiment's model, run directory, data, epochs, image limits, seed and progress line.
func (o *Options) variantConfig(cfg models.Config, runDir string) train.Config {
	r := o.Recipe
	r.Epochs = o.Epochs // before Config: a recipe's milestones may depend on the epochs.
	c := r.Config(cfg, runDir)
	c.Data, c.Seed, c.Progress = data.KindMNIST, o.Seed, o.Progress
	c.MaxTrainImages, c.MaxEvalImages = o.MaxTrainImages, o.MaxEvalImages
	return c
}

// RunWindowedVsDense runs the windowed-vs-dense experiment on backend (see the package doc) and
// returns its summary, also written to SummaryFile in opts.Out. ctx interrupts the training.
func RunWindowedVsDense(ctx context.Context, backend compute.Backend, opts Options) (*Summary, error) {
	start := time.Now()
	if err := CheckModel(opts.Model); err != nil {
		return nil, fmt.Errorf("model %s %w", opts.Name, err)
	}
	aug, err := data.ParseAugmentation(opts.Recipe.Augmentation, data.KindMNIST)
	if err != nil {
		return nil, fmt.Errorf("augmentation: %w", err)
	}
	if aug.RandomResizedCrop {
		return nil, fmt.Errorf("augmentation %q: random resized crops (rrc) are not used on MNIST's in-memory images",
			opts.Recipe.Augmentation)
	}
	opts.Recipe.Augmentation = aug.Spec
	augment := train.NameAugmenter(aug.Spec, aug.Augmenter)
	windowedCfg, denseCfg, base, err := Variants(opts.Model, opts.Name, opts.Granularity)
	if err != nil {
		return nil, fmt.Errorf("granularity %d does not fit model %s: %w", opts.Granularity, opts.Name, err)
	}
	differ, err := checkVariants(backend, windowedCfg, denseCfg)
	if err != nil {
		return nil, fmt.Errorf("experiment %s: %w", WindowedVsDense, err)
	}
	trainSet, testSet, err := data.LoadMNIST()
	if err != nil {
		return nil, fmt.Errorf("loading mnist: %w", err)
	}
	s := &Summary{
		Experiment: WindowedVsDense, Command: opts.Command, Model: base, Granularity: windowedCfg.StageK(0),
		Data: data.KindMNIST, Epochs: opts.Epochs, TrainImages: train.ImagesUsed(trainSet.N, opts.MaxTrainImages),
		TestImages: train.ImagesUsed(testSet.N, opts.MaxEvalImages), Seed: opts.Seed, ColorMap: "jet",
		DenseWindow: denseCfg.Window, DifferingLayers: differ, UtilizationNotes: utilizationDefinition,
	}
	if opts.Started != nil {
		opts.Started(s)
	}
	trainLog := opts.TrainLog
	if trainLog == nil {
		trainLog = io.Discard
	}
	var initialMaps [][]*analysis.Heatmap
	for _, vc := range []struct {
		name string
		cfg  models.Config
	}{{VariantWindowed, windowedCfg}, {VariantDense, denseCfg}} {
		name, cfg := vc.name, vc.cfg
		v := &Variant{Name: name, Model: cfg.Name, RunDir: filepath.Join(opts.Out, name), WindowGroups: cfg.Window,
			HeatmapFile: name + HeatmapSuffix, UtilizationCSV: name + UtilizationSuffix}
		s.Variants = append(s.Variants, v)
		stats, err := models.Inspect(backend, cfg, 0)
		if err != nil {
			return nil, fmt.Errorf("inspecting %s: %w", cfg.Name, err)
		}
		v.Params, v.MACs = stats.Params, stats.MACs()
		maps, err := initialHeatmaps(backend, cfg, opts.Seed)
		if err != nil {
			return nil, err
		}
		initialMaps = append(initialMaps, maps)
		if opts.TrainStart != nil {
			opts.TrainStart(v)
		}
		res, err := train.Run(ctx, backend, opts.variantConfig(cfg, v.RunDir),
			train.ImageSetData(trainSet, augment), train.ImageSetData(testSet, nil), trainLog)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, fmt.Errorf("interrupted while training the %s variant: %w", v.Name, err)
			}
			return nil, fmt.Errorf("training the %s variant: %w", v.Name, err)
		}
		v.setResult(res)
		if opts.TrainDone != nil {
			opts.TrainDone(v)
		}
	}

	// Heat maps, utilization CSVs and the comparison.
	runs, maps := make([]analysis.ReportRun, len(s.Variants)), make([][]*analysis.Heatmap, len(s.Variants))
	names := make([]string, len(s.Variants))
	for i, v := range s.Variants {
		names[i] = v.Name
		if runs[i], err = writeHeatmaps(backend, opts.Out, v); err != nil {
			return nil, err
		}
		maps[i] = runs[i].Heatmaps
	}
	trained, err := analysis.CompareUtilization(names, maps)
	if err != nil {
		return nil, err
	}
	initial, err := analysis.CompareUtilization(names, initialMaps)
	if err != nil {
		return nil, err
	}
	s.setUtilization(trained, initial)
	s.WallSeconds = time.Since(start).Seconds()
	s.Conclusion = conclusion(trained, initial, s.Variants[0].Result, s.Variants[1].Result)
	comparison := &analysis.Comparison{
		Title: "Windowed vs dense aggregation",
		Intro: fmt.Sprintf("The same model (%s, k=%d) trained twice on MNIST with the same settings and seed %d: "+
			"%s on %s training images, tested on %s images. The windowed variant uses the authors' window "+
			"(each filter reads the last C_in channels of the sequence); the dense variant sets the window to %d groups, "+
			"wider than any sequence, so that each filter reads the whole sequence [x, E_0, ..., E_{j-1}]. "+
			"Utilization is a layer's mean normalized L1 norm over the (filter, source group) pairs it has; "+
			"\"at initialization\" is the same measure on the freshly initialized weights (same seed, no training). "+
			"The heat maps use the jet colour map.",
			base, s.Granularity, s.Seed, text.Epochs(s.Epochs), analysis.FormatThousands(int64(s.TrainImages)),
			analysis.FormatThousands(int64(s.TestImages)), s.DenseWindow),
		Command:     opts.Command,
		Utilization: trained,
		Initial:     &initial,
		Accuracy:    []float64{s.Variants[0].TestAccuracy, s.Variants[1].TestAccuracy},
		Conclusion:  s.Conclusion,
	}
	report := analysis.ReportData{
		Title:       "SeqConv experiment: windowed vs dense aggregation",
		Generated:   time.Now(),
		Runs:        runs,
		Comparison:  comparison,
		Environment: opts.Environment,
	}
	var page bytes.Buffer
	if err := analysis.WriteReport(&page, report); err != nil {
		return nil, err
	}
	if err := outfile.WriteFile(filepath.Join(opts.Out, ReportFile), page.Bytes()); err != nil {
		return nil, err
	}
	if err := s.writeJSON(filepath.Join(opts.Out, SummaryFile)); err != nil {
		return nil, err
	}
	return s, nil
}

// writeHeatmaps loads variant v's trained run from its run directory in out and writes its heat maps
// and utilization CSV there.
func writeHeatmaps(backend compute.Backend, out string, v *Variant) (analysis.ReportRun, error) {
	run, err := analysis.LoadReportRun(backend, v.RunDir, false)
	if err != nil {
		return run, err
	}
	if len(run.Heatmaps) == 0 {
		return run, fmt.Errorf("run %s has no heat map: %s", run.Dir, strings.Join(run.Notes, "; "))
	}
	run.Label = v.Name + " (" + v.Model + ")"
	var png, csv bytes.Buffer
	if err := analysis.RenderHeatmaps(run.Heatmaps, &png, analysis.FormatPNG); err != nil {
		return run, err
	}
	if err := analysis.WriteCSV(run.Heatmaps, &csv); err != nil {
		return run, err
	}
	for path, b := range map[string][]byte{
		filepath.Join(out, v.HeatmapFile):    png.Bytes(),
		filepath.Join(out, v.UtilizationCSV): csv.Bytes(),
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return run, fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return run, nil
}
