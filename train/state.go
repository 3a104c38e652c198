package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/gomlx/gomlx/ml/model"
	gomlxckpt "github.com/gomlx/gomlx/ml/model/checkpoint"

	"github.com/seqconv/seqconv/checkpoint"
)

// stateFormat is the version of the training state saved with a checkpoint.
const stateFormat = 1

// trainState is the training position saved with a checkpoint (N.state).
type trainState struct {
	Format int `json:"format"`
	// Epoch is the number of completed epochs; Step the number of steps of the next epoch
	// already trained (0 at an epoch boundary, StepsPerEpoch when its training is done but it
	// was not evaluated yet).
	Epoch         int   `json:"epoch"`
	Step          int   `json:"step"`
	StepsPerEpoch int   `json:"steps_per_epoch"`
	GlobalStep    int64 `json:"global_step"`
	// TrainLossSum and TrainErrorSum are the sums of the batch losses and errors of those Step
	// steps; TrainSeconds their training time.
	TrainLossSum  jsonFloat `json:"train_loss_sum"`
	TrainErrorSum jsonFloat `json:"train_error_sum"`
	TrainSeconds  jsonFloat `json:"train_seconds"`
	// BestValidError, BestEpoch (0: none yet) and BestCheckpoint (its checkpoint name) describe the
	// best epoch so far.
	BestValidError jsonFloat `json:"best_valid_error"`
	BestEpoch      int       `json:"best_epoch"`
	BestCheckpoint string    `json:"best_checkpoint,omitempty"`
	// History has the results of the Epoch completed epochs.
	History []EpochResult `json:"history"`
}

// Validate checks the state is consistent (checkpoint.Checkpoint.DecodeState calls it).
func (s *trainState) Validate() error {
	switch {
	case s.Format != stateFormat:
		return fmt.Errorf("state format %d, expected %d", s.Format, stateFormat)
	case s.Epoch < 0 || s.Step < 0 || s.StepsPerEpoch < 0 || s.GlobalStep < 0 || s.BestEpoch < 0:
		return errors.New("negative epoch, step or global step")
	case s.Step > s.StepsPerEpoch:
		return fmt.Errorf("step %d of an epoch of %d steps", s.Step, s.StepsPerEpoch)
	case len(s.History) != s.Epoch:
		return fmt.Errorf("%d epochs completed but a history of %d", s.Epoch, len(s.History))
	case s.BestEpoch > s.Epoch:
		return fmt.Errorf("best epoch %d after the %d completed ones", s.BestEpoch, s.Epoch)
	}
	for i, h := range s.History {
		if h.Epoch != i+1 {
			return fmt.Errorf("history entry %d is epoch %d", i+1, h.Epoch)
		}
	}
	return nil
}

// jsonFloat is a float64 whose JSON form also represents NaN and ±Inf (as strings).
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return []byte(`"NaN"`), nil
	case math.IsInf(x, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(x, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "NaN":
			*f = jsonFloat(math.NaN())
		case "+Inf", "Inf":
			*f = jsonFloat(math.Inf(1))
		case "-Inf":
			*f = jsonFloat(math.Inf(-1))
		default:
			return fmt.Errorf("invalid number %q", s)
		}
		return nil
	}
	var x float64
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*f = jsonFloat(x)
	return nil
}

// savedCheckpoint is a verified checkpoint of a run and its training state (nil when it has none:
// the checkpoints of WriteRun and of older runs).
type savedCheckpoint struct {
	*checkpoint.Checkpoint
	state *trainState
}

// withState decodes and validates the training state of c (see checkpoint.Checkpoint.DecodeState).
func withState(c *checkpoint.Checkpoint, err error) (*savedCheckpoint, error) {
	if err != nil {
		return nil, err
	}
	var st trainState
	has, err := c.DecodeState(&st)
	if err != nil {
		return nil, err
	}
	s := &savedCheckpoint{Checkpoint: c}
	if has {
		s.state = &st
	}
	return s, nil
}

// readCheckpoint reads and verifies checkpoint name of dir (see checkpoint.Verify) and its training
// state.
func readCheckpoint(dir, name string) (*savedCheckpoint, error) {
	return withState(checkpoint.Verify(dir, name))
}

// latestCheckpoint reads and verifies the newest complete checkpoint of dir (see checkpoint.Latest)
// and its training state.
func latestCheckpoint(dir string) (*savedCheckpoint, error) {
	return withState(checkpoint.Latest(dir))
}

// saveCheckpoint writes the variables of store and the training state st (nil: none) as a new
// checkpoint of dir named after st.GlobalStep, keeping the newest keep, and returns its name.
func saveCheckpoint(store *model.Store, dir string, st *trainState, keep int) (string, error) {
	if st == nil {
		return checkpoint.Save(store, dir, 0, nil, keep)
	}
	return checkpoint.Save(store, dir, st.GlobalStep, st, keep)
}

// LoadCheckpoint attaches to store the latest checkpoint in dir (for a run directory, use
// filepath.Join(runDir, LatestDir) or filepath.Join(runDir, BestDir)), after verifying it: its
// files must match the SHA-256 sums of its manifest (checkpoints without one, in a directory
// whose checkpoints have manifests, are incomplete and skipped), its metadata must describe its
// data exactly and its training state, if any, must be consistent. A truncated or corrupt
// checkpoint is an error naming the file, wrapping checkpoint.ErrCorrupt. As with GoMLX's
// checkpoint.Load, variable values are loaded lazily: they are set when a model graph built on
// store creates the variables. It fails if dir holds no checkpoint.
func LoadCheckpoint(store *model.Store, dir string) (*gomlxckpt.Handler, error) {
	c, err := latestCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint: %w", err)
	}
	return c.Load(store)
}

// CheckpointInfo describes a checkpoint.
type CheckpointInfo struct {
	// Name is the checkpoint's name (its files are Dir/Name.*).
	Name, Dir string
	// HasState tells whether it holds a training position (checkpoints of WriteRun do not): Epoch
	// completed epochs and Step steps of the next one, at GlobalStep.
	HasState    bool
	Epoch, Step int
	GlobalStep  int64
	// BestEpoch and BestValidError are the best epoch so far and its validation error.
	BestEpoch      int
	BestValidError float64
}

// String describes the checkpoint's position, e.g. "checkpoint-n0000002-step-00000042 (after
// epoch 2)".
func (c CheckpointInfo) String() string {
	switch {
	case !c.HasState:
		return c.Name
	case c.Step == 0:
		return fmt.Sprintf("%s (after epoch %d)", c.Name, c.Epoch)
	default:
		return fmt.Sprintf("%s (epoch %d, step %d)", c.Name, c.Epoch+1, c.Step)
	}
}

// LatestCheckpointInfo verifies the latest checkpoint of dir, as LoadCheckpoint does, and
// describes it.
func LatestCheckpointInfo(dir string) (CheckpointInfo, error) {
	c, err := latestCheckpoint(dir)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("%w", err)
	}
	info := CheckpointInfo{Name: c.Name, Dir: dir}
	if st := c.state; st != nil {
		info.HasState, info.Epoch, info.Step, info.GlobalStep = true, st.Epoch, st.Step, st.GlobalStep
		info.BestEpoch, info.BestValidError = st.BestEpoch, float64(st.BestValidError)
	}
	return info, nil
}
