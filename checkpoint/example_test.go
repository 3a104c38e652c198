package checkpoint_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/seqconv/seqconv/checkpoint"
)

// Example saves a store three times, keeping the newest two checkpoints, copies the newest into
// another directory and verifies and restores it.
func Example() {
	dir, err := os.MkdirTemp("", "checkpoint-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	store := model.NewStore()
	w := store.RootScope().VariableWithShape("w", shapes.Make(dtypes.Float32, 2))
	if err := w.SetValue(tensors.FromValue([]float32{1, 2})); err != nil {
		panic(err)
	}
	type position struct {
		Epoch int `json:"epoch"`
	}
	var name string
	for step := range 3 {
		if name, err = checkpoint.Save(store, filepath.Join(dir, "latest"), int64(step), position{Epoch: step}, 2); err != nil {
			panic(err)
		}
	}
	names, _ := checkpoint.List(filepath.Join(dir, "latest"))
	fmt.Println(names)
	if err := checkpoint.Copy(filepath.Join(dir, "latest"), name, filepath.Join(dir, "best")); err != nil {
		panic(err)
	}
	c, err := checkpoint.Latest(filepath.Join(dir, "best"))
	if err != nil {
		panic(err)
	}
	var pos position
	if _, err := c.DecodeState(&pos); err != nil {
		panic(err)
	}
	values, err := c.Values()
	if err != nil {
		panic(err)
	}
	fmt.Println(c.Name, c.Verified, pos.Epoch, values["/w"].Value())
	// Output:
	// [checkpoint-n0000001-step-00000001 checkpoint-n0000002-step-00000002]
	// checkpoint-n0000002-step-00000002 true 2 [1 2]
}
