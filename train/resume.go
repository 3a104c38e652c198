package train

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/seqconv/seqconv/checkpoint"
)

// prepareResume checks the run directory's config.json against the run's, finds the newest good
// checkpoint (setting aside incomplete and corrupt newer ones, with warnings) and restores the
// training position from it.
func (r *runner) prepareResume(opt *SGDOptimizer) error {
	dir := r.cfg.RunDir
	saved, err := ReadRunFile(dir)
	if err != nil {
		return err
	}
	diffs, err := compareConfigs(saved, r.describe(opt))
	if err != nil {
		return fmt.Errorf("resume %s: comparing configurations: %w", dir, err)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("resume %s: the run would differ from its %s: %s", dir, ConfigFile,
			strings.Join(diffs, "; "))
	}
	checkpoint.RemoveTemp(r.latestDir)
	entries, err := checkpoint.Scan(r.latestDir)
	if err != nil {
		return fmt.Errorf("resume %s: listing checkpoints: %w", dir, err)
	}
	if len(entries) > 0 && checkpoint.IsLegacy(entries) {
		return fmt.Errorf("resume %s: its checkpoints have no manifest and no training state "+
			"(written by an older seqconv): it cannot be resumed", dir)
	}
	var problems []error
	for i := len(entries) - 1; i >= 0 && r.resumeFrom == nil; i-- {
		e := entries[i]
		if !e.Complete() {
			r.warnf("checkpoint %s has no manifest (%s): it is incomplete (interrupted while saving?): "+
				"setting it aside as %s* and falling back to the previous checkpoint", e.Name,
				e.Name+checkpoint.ManifestSuffix, checkpoint.IncompletePrefix+e.Name)
			problems = append(problems, checkpoint.Corruptf("%s has no manifest %s: incomplete",
				filepath.Join(r.latestDir, e.Name), e.Name+checkpoint.ManifestSuffix))
			if err := checkpoint.SetAside(r.latestDir, e, checkpoint.IncompletePrefix); err != nil {
				return fmt.Errorf("resume %s: %w", dir, err)
			}
			continue
		}
		c, err := readCheckpoint(r.latestDir, e.Name)
		if err == nil && c.state == nil {
			err = checkpoint.Corruptf("%s has no training state", filepath.Join(r.latestDir, e.Name+checkpoint.StateSuffix))
		}
		if err == nil && c.state.StepsPerEpoch != r.steps {
			err = fmt.Errorf("checkpoint %s has %d steps per epoch, but the data and batch size give %d",
				e.Name, c.state.StepsPerEpoch, r.steps)
			return fmt.Errorf("resume %s: %w", dir, err)
		}
		if err != nil {
			problems = append(problems, err)
			r.warnf("%v: setting it aside as %s* and falling back to the previous checkpoint", err, checkpoint.CorruptPrefix+e.Name)
			if qerr := checkpoint.SetAside(r.latestDir, e, checkpoint.CorruptPrefix); qerr != nil {
				return fmt.Errorf("resume %s: %w", dir, qerr)
			}
			continue
		}
		r.resumeFrom = c
	}
	if r.resumeFrom == nil {
		if len(problems) == 0 {
			return fmt.Errorf("resume %s: no checkpoint in %s", dir, r.latestDir)
		}
		return r.noGoodCheckpoint(problems)
	}
	st := r.resumeFrom.state
	if st.Epoch > r.cfg.Epochs || (st.Epoch == r.cfg.Epochs && st.Step > 0) {
		return fmt.Errorf("resume %s: checkpoint %s is at epoch %d, beyond the run's %d epochs",
			dir, r.resumeFrom.Name, st.Epoch, r.cfg.Epochs)
	}
	r.history = slices.Clone(st.History)
	r.startEpoch, r.startStep = st.Epoch, st.Step
	r.lossSum, r.errSum, r.priorTrainTime = float64(st.TrainLossSum), float64(st.TrainErrorSum), float64(st.TrainSeconds)
	r.result.BestValidError, r.result.BestEpoch = float64(st.BestValidError), st.BestEpoch
	r.bestCheckpoint = st.BestCheckpoint
	r.savedStep = st.Step
	r.result.ResumedFrom, r.result.ResumedEpoch, r.result.ResumedStep = r.resumeFrom.Name, st.Epoch, st.Step
	r.syncBest()
	if st.Step == 0 {
		fmt.Fprintf(r.out, "resuming from %s, after epoch %d/%d\n", r.resumeFrom.Name, st.Epoch, r.cfg.Epochs)
	} else {
		fmt.Fprintf(r.out, "resuming from %s, at epoch %d/%d, step %d/%d\n", r.resumeFrom.Name, st.Epoch+1,
			r.cfg.Epochs, st.Step, r.steps)
	}
	return nil
}

// noGoodCheckpoint is the error of a resume whose checkpoints are all corrupt or incomplete: an
// errors.Join of a headline, each problem and, when best/ holds an intact checkpoint, how to use it, so
// that each can be printed on its own line.
func (r *runner) noGoodCheckpoint(problems []error) error {
	errs := []error{fmt.Errorf("resume %s: no good checkpoint left in %s (set aside with the prefixes %s and %s):",
		r.cfg.RunDir, r.latestDir, checkpoint.CorruptPrefix, checkpoint.IncompletePrefix)}
	errs = append(errs, problems...)
	if info, err := LatestCheckpointInfo(r.bestDir); err == nil {
		errs = append(errs, fmt.Errorf("%s holds an intact checkpoint, %s: copy its files into %s to resume from it, "+
			"or use it as it is with --best", r.bestDir, info, r.latestDir))
	}
	return errors.Join(errs...)
}

// syncBest makes the best directory hold the checkpoint the resumed state names as best, when
// it does not (the run was interrupted while copying it, or the resumed checkpoint is older than
// the best copied).
func (r *runner) syncBest() {
	if r.bestCheckpoint == "" {
		return
	}
	if names, _ := checkpoint.List(r.bestDir); len(names) == 1 && names[0] == r.bestCheckpoint {
		return
	}
	entries, _ := checkpoint.Scan(r.latestDir)
	for _, e := range entries {
		if e.Name == r.bestCheckpoint && e.Complete() {
			if err := checkpoint.Copy(r.latestDir, e.Name, r.bestDir); err != nil {
				r.warnf("restoring the best checkpoint %s: %v", e.Name, err)
			}
			return
		}
	}
	r.warnf("%s does not hold the best checkpoint so far (%s, epoch %d), no longer available: "+
		"it will be replaced by the next best epoch", r.bestDir, r.bestCheckpoint, r.result.BestEpoch)
}
