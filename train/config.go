package train

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/seqconv/seqconv/layers"
	"github.com/seqconv/seqconv/models"
)

// Config configures a training run (see Run). Zero values of Schedule, Gamma and EvalBatchSize
// get defaults (see WithDefaults); every other field is used as given.
type Config struct {
	// Model is the model to train.
	Model models.Config `json:"model"`

	// Epochs is the number of training epochs (>= 1) and BatchSize the training batch size (>= 1).
	// The last incomplete batch of every epoch is dropped.
	Epochs    int `json:"epochs"`
	BatchSize int `json:"batch_size"`

	// LR is the base learning rate (> 0) given to the schedule.
	LR float64 `json:"lr"`
	// Momentum, Nesterov and WeightDecay configure SGD (see SGD); NoDecayBNBias excludes
	// batch-norm parameters and biases from weight decay (see NoDecayForBNAndBias).
	Momentum      float64 `json:"momentum"`
	WeightDecay   float64 `json:"weight_decay"`
	Nesterov      bool    `json:"nesterov"`
	NoDecayBNBias bool    `json:"no_decay_bn_bias"`

	// Schedule is "multistep", "cosine" or "constant" (default: DefaultRecipe's); Milestones, Gamma
	// (default: DefaultRecipe's) and WarmupEpochs are passed to ParseSchedule. The learning rate is set once at
	// the start of every epoch e (counting from 0) to Schedule.LR(e), as PyTorch schedulers
	// stepped once per epoch do.
	Schedule     string  `json:"schedule"`
	Milestones   []int   `json:"milestones,omitempty"`
	Gamma        float64 `json:"gamma"`
	WarmupEpochs float64 `json:"warmup_epochs"`

	// LabelSmoothing in [0, 1) is applied to the training loss only (see CrossEntropyLoss).
	LabelSmoothing float64 `json:"label_smoothing"`

	// Precision is "f32" (the default, also when empty) or "bf16": bfloat16 convolutions with float32
	// accumulation, float32 master weights, batch norm and loss (see layers.PrecisionBF16).
	Precision string `json:"precision,omitempty"`

	// Recompute turns on gradient checkpointing (models.ParamRecompute): less memory, the same results.
	Recompute bool `json:"recompute,omitempty"`

	// Seed seeds the weight initialization, dropout and the data shuffling and augmentation: with
	// the same seed, config and data, runs on a deterministic backend are identical.
	Seed int64 `json:"seed"`

	// RunDir is the directory the run writes (see Run). It is created if needed; for Run it must
	// not already hold a checkpoint, for Resume it must hold one.
	RunDir string `json:"run_dir"`

	// Data names the dataset, DataDir where it was read from, Augmentation the augmentation
	// spec and Recipe the training recipe the command line used: informational (Run uses the sets
	// it is given), recorded in config.json so that a run can be resumed or evaluated on the same
	// data.
	Data         string `json:"data,omitempty"`
	DataDir      string `json:"data_dir,omitempty"`
	Augmentation string `json:"augmentation,omitempty"`
	Recipe       string `json:"recipe,omitempty"`

	// EvalBatchSize is the evaluation batch size; 0 means BatchSize.
	EvalBatchSize int `json:"eval_batch_size"`

	// Progress shows a self-updating progress line while an epoch trains.
	Progress bool `json:"progress"`

	// MaxTrainImages and MaxEvalImages, when > 0, limit training and evaluation to the first
	// images of the sets.
	MaxTrainImages int `json:"max_train_images,omitempty"`
	MaxEvalImages  int `json:"max_eval_images,omitempty"`

	// Workers is the number of data-loading goroutines; 0 means runtime.NumCPU().
	Workers int `json:"workers,omitempty"`

	// CheckpointEverySteps, when > 0, also saves a checkpoint every that many steps within an
	// epoch (a checkpoint is always saved at the end of every epoch), so that Resume loses at
	// most that many steps.
	CheckpointEverySteps int `json:"checkpoint_every_steps,omitempty"`

	// Log receives warnings, such as the checkpoints Resume skips; nil means the out writer of
	// Run or Resume.
	Log io.Writer `json:"-"`
}

// WithDefaults returns c with the defaults applied to zero-valued fields: Schedule and Gamma
// those of DefaultRecipe, EvalBatchSize BatchSize.
func (c Config) WithDefaults() Config {
	d := DefaultRecipe()
	if c.Schedule == "" {
		c.Schedule = d.Schedule
	}
	if c.Gamma == 0 {
		c.Gamma = d.Gamma
	}
	if c.EvalBatchSize == 0 {
		c.EvalBatchSize = c.BatchSize
	}
	return c
}

// Validate checks the configuration (with defaults applied) and returns an error naming the
// offending field. It does not touch the file system.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("model %s: %w", c.Model.Name, err)
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	if c.Precision != "" {
		if _, err := layers.ParsePrecision(c.Precision); err != nil {
			return fmt.Errorf("precision: %w", err)
		}
	}
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("epochs must be >= 1, got %d", c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be >= 1, got %d", c.BatchSize)
	case c.EvalBatchSize < 1:
		return fmt.Errorf("eval batch size must be >= 1, got %d", c.EvalBatchSize)
	case !(c.LR > 0) || !finite(c.LR):
		return fmt.Errorf("learning rate must be a finite value > 0, got %g", c.LR)
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 || !finite(c.LabelSmoothing):
		return fmt.Errorf("label smoothing must be in [0, 1), got %g", c.LabelSmoothing)
	case c.MaxTrainImages < 0:
		return fmt.Errorf("max train images must be >= 0 (0: all), got %d", c.MaxTrainImages)
	case c.MaxEvalImages < 0:
		return fmt.Errorf("max eval images must be >= 0 (0: all), got %d", c.MaxEvalImages)
	case c.Workers < 0:
		return fmt.Errorf("workers must be >= 0 (0: one per CPU), got %d", c.Workers)
	case c.CheckpointEverySteps < 0:
		return fmt.Errorf("checkpoint every steps must be >= 0 (0: at epoch ends only), got %d",
			c.CheckpointEverySteps)
	case c.RunDir == "":
		return errors.New("the run directory is not set")
	}
	if _, err := c.optimizer(c.LR); err != nil {
		return fmt.Errorf("%w", err)
	}
	if _, err := c.schedule(); err != nil {
		return fmt.Errorf("%w", err)
	}
	return nil
}

// schedule returns the learning-rate schedule of c (with defaults applied).
func (c Config) schedule() (Schedule, error) {
	return ParseSchedule(c.Schedule, c.LR, c.Epochs, c.Milestones, c.Gamma, c.WarmupEpochs)
}

// optimizer returns the SGD optimizer of c with the given initial learning rate.
func (c Config) optimizer(lr float64) (*SGDOptimizer, error) {
	sgd := SGD().LearningRate(lr).Momentum(c.Momentum).Nesterov(c.Nesterov).WeightDecay(c.WeightDecay)
	if c.NoDecayBNBias {
		sgd = sgd.WeightDecayFilter(NoDecayForBNAndBias)
	}
	return sgd.Build()
}

// ImagesUsed returns how many images of a set of n a run limited to max images (MaxTrainImages or
// MaxEvalImages; 0: all) uses.
func ImagesUsed(n, max int) int {
	if max > 0 && max < n {
		return max
	}
	return n
}

// prepareData validates the data sets against the model and applies MaxTrainImages/MaxEvalImages.
func (c Config) prepareData(trainData, validData Dataset) (Dataset, Dataset, error) {
	for _, s := range []struct {
		name string
		set  Dataset
	}{{"training", trainData}, {"validation", validData}} {
		if s.set == nil {
			return nil, nil, fmt.Errorf("no %s set", s.name)
		}
		if err := s.set.Validate(); err != nil {
			return nil, nil, fmt.Errorf("%s set: %w", s.name, err)
		}
		if s.set.Len() == 0 {
			return nil, nil, fmt.Errorf("%s set %q is empty", s.name, s.set.Name())
		}
		if s.set.Channels() != c.Model.InChannels {
			return nil, nil, fmt.Errorf("%s set %q has %d-channel images but model %s expects %d channels",
				s.name, s.set.Name(), s.set.Channels(), c.Model.Name, c.Model.InChannels)
		}
		if s.set.NumClasses() != c.Model.Classes {
			return nil, nil, fmt.Errorf("%s set %q has %d classes but model %s has %d outputs",
				s.name, s.set.Name(), s.set.NumClasses(), c.Model.Name, c.Model.Classes)
		}
	}
	if c.MaxTrainImages > 0 {
		trainData = trainData.Head(c.MaxTrainImages)
	}
	if c.MaxEvalImages > 0 {
		validData = validData.Head(c.MaxEvalImages)
	}
	if trainData.Len() < c.BatchSize {
		return nil, nil, fmt.Errorf("the training set has %d images, fewer than one batch of %d "+
			"(incomplete batches are dropped)", trainData.Len(), c.BatchSize)
	}
	return trainData, validData, nil
}
