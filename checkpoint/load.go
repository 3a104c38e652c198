package checkpoint

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	gomlxckpt "github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Attach attaches the checkpoint's values to store with a GoMLX checkpoint handler (which also
// restores the store's params), so that the model's variables get them when created.
func (c *Checkpoint) Attach(store *model.Store) (h *gomlxckpt.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, Corruptf("%s: %v", filepath.Join(c.Dir, c.Name+MetaSuffix), r)
		}
	}()
	err = exceptions.TryCatch[error](func() {
		var herr error
		h, herr = gomlxckpt.Build(store).FromEmbed(string(c.metaJSON), c.bin).Done()
		if herr != nil {
			panic(herr)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint %s: %w", filepath.Join(c.Dir, c.Name), err)
	}
	return h, nil
}

// Restore loads every variable of the checkpoint into store, in the saved order, as a resumed
// run needs them: the model's own variables and the optimizer, metric, step and random number
// generator state. The RNG state is marked non-trainable, as the store creates it.
func (c *Checkpoint) Restore(store *model.Store) error {
	if _, err := c.Attach(store); err != nil {
		return err
	}
	err := exceptions.TryCatch[error](func() {
		for _, v := range c.meta.Variables {
			path := strings.TrimPrefix(v.ParameterName, variableKeyPrefix)
			if store.GetVariable(path) == nil {
				panic(fmt.Errorf("variable %s could not be loaded", path))
			}
		}
		if v := store.GetVariable(model.JoinPath("/", model.RNGStateVariableName)); v != nil {
			v.SetTrainable(false)
		}
	})
	if err != nil {
		return Corruptf("%s: %v", filepath.Join(c.Dir, c.Name), err)
	}
	return nil
}

// Values returns the checkpoint's variable values by path (for tests and comparisons).
func (c *Checkpoint) Values() (map[string]*tensors.Tensor, error) {
	store := model.NewStore()
	if err := c.Restore(store); err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return nil, err
		}
		out[v.Path()] = t
	}
	return out, nil
}

// Load attaches the checkpoint to store, as Attach does, but lets GoMLX read the directory itself when
// the checkpoint is the newest one GoMLX lists there, so that the handler knows its directory. As with
// GoMLX's checkpoint.Load, variable values are loaded lazily: they are set when a model graph built on
// store creates the variables.
func (c *Checkpoint) Load(store *model.Store) (*gomlxckpt.Handler, error) {
	if names, err := List(c.Dir); err == nil && len(names) > 0 && names[len(names)-1] == c.Name {
		h, err := gomlxckpt.Load(store).Dir(c.Dir).Done()
		if err != nil {
			return nil, fmt.Errorf("loading checkpoint from %s: %w", c.Dir, err)
		}
		return h, nil
	}
	return c.Attach(store)
}
