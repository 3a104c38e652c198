package main

import (
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/seqconv/seqconv/train"
)

// resumePlan returns the plan of "seqconv train --resume RUN_DIR": the configuration of the run's
// config.json, with the runtime flags given. Other flags must agree with the saved configuration.
func (o *trainOptions) resumePlan(fs *flagSet, set map[string]bool) (*trainPlan, error) {
	dir := o.resume
	if err := checkRunDirExists("--resume", dir); err != nil {
		return nil, err
	}
	cfg, err := train.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	if cfg.Epochs < 1 {
		return nil, usagef("--resume %s: the run was not trained by \"seqconv train\" (imported?): nothing to resume", dir)
	}
	if err := o.checkResumeFlags(fs, set, cfg); err != nil {
		return nil, err
	}
	spec, err := parseRecordedData("--resume", dir, cfg.Data)
	if err != nil {
		return nil, err
	}
	p, err := parseAugment(cfg.Augmentation, spec.Kind)
	if err != nil {
		return nil, fmt.Errorf("--resume %s: the augmentation of its %s: %w", dir, train.ConfigFile, err)
	}
	cfg.RunDir = dir
	cfg.Progress = !o.quiet
	if set["workers"] {
		if o.workers < 0 {
			return nil, usagef("--workers must be >= 0 (0: one per CPU), got %d", o.workers)
		}
		cfg.Workers = o.workers
	}
	if set["checkpoint-every-steps"] {
		if o.checkpointEvery < 0 {
			return nil, usagef("--checkpoint-every-steps must be >= 0, got %d", o.checkpointEvery)
		}
		cfg.CheckpointEverySteps = o.checkpointEvery
	}
	if set["data-dir"] {
		cfg.DataDir, _ = filepath.Abs(o.dataDir)
	}
	if (spec.Kind == kindCIFAR10 || spec.Kind == kindCIFAR100) && cfg.DataDir == "" {
		cfg.DataDir = defaultDataDir()
	}
	return &trainPlan{cfg: cfg, data: spec, pipeline: p, resume: true, quiet: o.quiet, xlaCache: o.xlaCache,
		autotune: o.autotune, skipBad: o.skipBad}, nil
}

// checkResumeFlags checks that the flags given with --resume, other than resumeFlags, have the
// values of the saved configuration.
func (o *trainOptions) checkResumeFlags(fs *flagSet, set map[string]bool, cfg train.Config) error {
	if set["run"] {
		return usagef("--run cannot be used with --resume: the run directory is --resume's")
	}
	saved := map[string]string{
		"epochs": strconv.Itoa(cfg.Epochs), "batch": strconv.Itoa(cfg.BatchSize),
		"lr": fmtFloat(cfg.LR), "momentum": fmtFloat(cfg.Momentum), "nesterov": strconv.FormatBool(cfg.Nesterov),
		"wd": fmtFloat(cfg.WeightDecay), "no-decay-bn-bias": strconv.FormatBool(cfg.NoDecayBNBias),
		"schedule": cfg.Schedule, "milestones": joinInts(cfg.Milestones), "gamma": fmtFloat(cfg.Gamma),
		"warmup": fmtFloat(cfg.WarmupEpochs), "label-smoothing": fmtFloat(cfg.LabelSmoothing),
		"seed": strconv.FormatInt(cfg.Seed, 10), "eval-batch": strconv.Itoa(cfg.EvalBatchSize),
		"max-train-images": strconv.Itoa(cfg.MaxTrainImages), "max-eval-images": strconv.Itoa(cfg.MaxEvalImages),
		"recipe": cfg.Recipe, "classes": strconv.Itoa(cfg.Model.Classes), "precision": cmp.Or(cfg.Precision, "f32"),
	}
	var names []string
	fs.Visit(func(f *flag.Flag) { names = append(names, f.Name) })
	for _, name := range names {
		if slices.Contains(resumeFlags, name) {
			continue
		}
		given := fs.Lookup(name).Value.String()
		var same bool
		var savedStr string
		switch name {
		case "data":
			spec, err := parseDataName(given)
			same, savedStr = err == nil && spec.Name == cfg.Data, cfg.Data
		case "augment":
			spec, _ := parseDataName(cfg.Data)
			p, err := parseAugment(given, spec.Kind)
			same, savedStr = err == nil && p.desc == cfg.Augmentation, cfg.Augmentation
		case "model":
			m, err := o.modelConfig()
			a, b := m, cfg.Model
			a.Name, b.Name = "", ""
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			same, savedStr = err == nil && string(ja) == string(jb), "the model config of "+train.ConfigFile
		default:
			s, ok := saved[name]
			if !ok {
				return usagef("--%s cannot be used with --resume: only %s may be given with it", name, resumeFlagList())
			}
			// Normalise both values through the flag's own type.
			var tmp trainOptions
			tfs := newTrainFlags(&tmp)
			if err := tfs.Set(name, s); err != nil {
				return fmt.Errorf("--resume: saved %s %q: %w", name, s, err)
			}
			savedStr = tfs.Lookup(name).Value.String()
			same = savedStr == given
		}
		if !same {
			return usagef("--%s %s conflicts with the run's %s (%s): a resumed run keeps its configuration; "+
				"only %s may be given with --resume", name, given, train.ConfigFile, savedStr, resumeFlagList())
		}
	}
	return nil
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}
