package train

import (
	"slices"
	"testing"
)

func TestGetRecipe(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		batch      int
		schedule   string
		wantErr    bool
	}{
		{"", "", 128, "cosine", false},
		{"cifar", "cifar", 64, "multistep", false},
		{" ImageNet ", "imagenet", 256, "multistep", false},
		{"mnist", "", 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := GetRecipe(tc.name)
			if (err != nil) != tc.wantErr {
				t.Fatalf("GetRecipe(%q) error = %v, want error %v", tc.name, err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if r.Name != tc.want || r.BatchSize != tc.batch || r.Schedule != tc.schedule {
				t.Errorf("GetRecipe(%q) = %q batch %d schedule %s, want %q batch %d schedule %s",
					tc.name, r.Name, r.BatchSize, r.Schedule, tc.want, tc.batch, tc.schedule)
			}
		})
	}
	if got := RecipeNames(); !slices.Equal(got, []string{"cifar", "imagenet"}) {
		t.Errorf("RecipeNames() = %v", got)
	}
}

func TestRecipeMilestones(t *testing.T) {
	for _, tc := range []struct {
		name       string
		recipe     Recipe
		epochs     int
		milestones []int
		want       []int
	}{
		{"imagenet 100 epochs", ImageNetRecipe(), 100, nil, []int{30, 60, 90}},
		{"imagenet 90 epochs", ImageNetRecipe(), 90, nil, []int{30, 60}},
		{"imagenet short run", ImageNetRecipe(), 2, nil, []int{30}},
		{"imagenet explicit", ImageNetRecipe(), 100, []int{10, 20}, []int{10, 20}},
		{"cifar (multistep default)", CIFARRecipe(), 300, nil, nil},
		{"default (cosine)", DefaultRecipe(), 3, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.recipe
			r.Epochs, r.Milestones = tc.epochs, tc.milestones
			if got := r.EffectiveMilestones(); !slices.Equal(got, tc.want) {
				t.Errorf("EffectiveMilestones() = %v, want %v", got, tc.want)
			}
			if got := r.Config(tinyModel(t), "run").Milestones; !slices.Equal(got, tc.want) {
				t.Errorf("Config().Milestones = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestRecipeConfigDefaults checks that the default recipe is the one default: a Config without a schedule
// gets DefaultRecipe's, and DefaultRecipe's Config is valid as it is.
func TestRecipeConfigDefaults(t *testing.T) {
	d := DefaultRecipe()
	c := Config{}.WithDefaults()
	if c.Schedule != d.Schedule || c.Gamma != d.Gamma {
		t.Errorf("Config{}.WithDefaults() schedule %s gamma %g, want DefaultRecipe's %s %g", c.Schedule, c.Gamma,
			d.Schedule, d.Gamma)
	}
	cfg := d.Config(tinyModel(t), t.TempDir())
	if err := cfg.Validate(); err != nil {
		t.Errorf("DefaultRecipe().Config().Validate() = %v", err)
	}
	if cfg.Recipe != "" || cfg.Epochs != d.Epochs || cfg.EvalBatchSize != d.EvalBatchSize || cfg.LR != d.LR {
		t.Errorf("DefaultRecipe().Config() = %+v", cfg)
	}
}
