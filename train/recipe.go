package train

import (
	"fmt"
	"slices"
	"strings"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/models"
)

// Recipe is a training recipe as a typed value: the optimizer, the learning-rate schedule, the
// batch sizes, the number of epochs, the regularization and the augmentation of a run, everything
// of a Config but the model, the data and the run's runtime settings. Get one by name with
// GetRecipe (as timm's factories do), change the fields you need and turn it into a Config with
// Recipe.Config.
type Recipe struct {
	// Name names the recipe in config.json ("" for DefaultRecipe).
	Name string

	// Epochs is the number of training epochs; BatchSize the training batch size and
	// EvalBatchSize the evaluation batch size (0: BatchSize).
	Epochs, BatchSize, EvalBatchSize int

	// LR, Momentum, Nesterov, WeightDecay and NoDecayBNBias configure SGD (see Config).
	LR, Momentum, WeightDecay float64
	Nesterov, NoDecayBNBias   bool

	// Schedule, Milestones, Gamma and WarmupEpochs configure the learning-rate schedule (see
	// ParseSchedule). When Milestones is empty and MilestoneEvery > 0, the milestones are every
	// MilestoneEvery epochs, before Epochs, and at least one (see Recipe.EffectiveMilestones).
	Schedule       string
	Milestones     []int
	MilestoneEvery int
	Gamma          float64
	WarmupEpochs   float64

	// LabelSmoothing is applied to the training loss (see CrossEntropyLoss).
	LabelSmoothing float64

	// Augmentation is the training augmentation spec of "seqconv train --augment" ("default":
	// the data set's own).
	Augmentation string
}

// Names of the recipes GetRecipe knows, besides the default one ("").
const (
	RecipeCIFAR    = "cifar"
	RecipeImageNet = "imagenet"
)

// DefaultRecipe returns the recipe of "seqconv train" without flags (the default MNIST job): SGD
// with Nesterov momentum 0.9, weight decay 5e-4, learning rate 0.1 annealed with a cosine
// schedule over 3 epochs, batch 128 (500 for evaluation), the data set's default augmentation.
// Config.WithDefaults takes its defaults from it.
func DefaultRecipe() Recipe {
	return Recipe{
		Epochs: 3, BatchSize: 128, EvalBatchSize: 500,
		LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4,
		Schedule: "cosine", Gamma: 0.1,
		Augmentation: "default",
	}
}

// CIFARRecipe returns the authors' CIFAR recipe: DefaultRecipe with weight decay 1e-4, batch 64,
// 300 epochs, the learning rate multiplied by 0.1 at 50% and 75% of the epochs (multistep's
// default milestones), random crops with 4 pixels of padding and horizontal flips.
func CIFARRecipe() Recipe {
	r := DefaultRecipe()
	r.Name = RecipeCIFAR
	r.WeightDecay, r.BatchSize, r.Epochs = 1e-4, 64, 300
	r.Schedule = "multistep"
	r.Augmentation = data.DefaultCIFARAugmentation
	return r
}

// ImageNetRecipe returns the authors' ImageNet recipe: CIFARRecipe's optimizer with batch 256, 100
// epochs, the learning rate multiplied by 0.1 every 30 epochs (MilestoneEvery), random resized
// crops, flips, colour jitter 0.4 and lighting noise 0.1.
func ImageNetRecipe() Recipe {
	r := CIFARRecipe()
	r.Name = RecipeImageNet
	r.BatchSize, r.Epochs = 256, 100
	r.MilestoneEvery = 30
	r.Augmentation = data.DefaultFolderAugmentation
	return r
}

// recipes are the recipes GetRecipe knows by name.
var recipes = map[string]func() Recipe{
	"":             DefaultRecipe,
	RecipeCIFAR:    CIFARRecipe,
	RecipeImageNet: ImageNetRecipe,
}

// RecipeNames returns the names GetRecipe knows (but the default recipe's, ""), sorted.
func RecipeNames() []string {
	var names []string
	for name := range recipes {
		if name != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// GetRecipe returns the recipe of the given name, case-insensitively: "" for DefaultRecipe, or one
// of RecipeNames. Each call returns a new value, which the caller may change.
func GetRecipe(name string) (Recipe, error) {
	f, ok := recipes[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return Recipe{}, fmt.Errorf("unknown recipe %q, expected %s", name, strings.Join(RecipeNames(), " or "))
	}
	return f(), nil
}

// EffectiveMilestones returns the milestones of the recipe's schedule: Milestones when given, else
// those of the MilestoneEvery rule (every MilestoneEvery epochs before Epochs, and at least one, so
// that short runs do not get multistep's 50%/75% default), else nil (multistep's default).
func (r Recipe) EffectiveMilestones() []int {
	if len(r.Milestones) > 0 || r.MilestoneEvery <= 0 {
		return slices.Clone(r.Milestones)
	}
	ms := []int{r.MilestoneEvery}
	for e := 2 * r.MilestoneEvery; e < r.Epochs; e += r.MilestoneEvery {
		ms = append(ms, e)
	}
	return ms
}

// Config returns the training Config of the recipe for the model, writing runDir: the recipe's
// fields (with EffectiveMilestones) and its name as Config.Recipe. The other fields (the seed, the
// data, the runtime settings) are zero: set them on the result.
func (r Recipe) Config(model models.Config, runDir string) Config {
	return Config{
		Model: model, RunDir: runDir, Recipe: r.Name,
		Epochs: r.Epochs, BatchSize: r.BatchSize, EvalBatchSize: r.EvalBatchSize,
		LR: r.LR, Momentum: r.Momentum, Nesterov: r.Nesterov, WeightDecay: r.WeightDecay,
		NoDecayBNBias: r.NoDecayBNBias,
		Schedule:      r.Schedule, Milestones: r.EffectiveMilestones(), Gamma: r.Gamma,
		WarmupEpochs: r.WarmupEpochs, LabelSmoothing: r.LabelSmoothing, Augmentation: r.Augmentation,
	}
}
