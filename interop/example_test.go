package interop_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/seqconv/seqconv/interop"
)

// ExampleWriteNPZ writes a small state_dict as a .npz archive, as numpy.savez would, and reads it back.
func ExampleWriteNPZ() {
	dir, err := os.MkdirTemp("", "npz-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.npz")

	weight, _ := interop.NewArray([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	counter, _ := interop.NewArray([]int64{100}) // a scalar
	arrays := map[string]*interop.Array{"Classifier.weight": weight, "BN.num_batches_tracked": counter}
	if err := interop.WriteNPZ(path, arrays, []string{"Classifier.weight", "BN.num_batches_tracked"}); err != nil {
		panic(err)
	}

	back, keys, err := interop.ReadNPZ(path)
	if err != nil {
		panic(err)
	}
	for _, k := range keys {
		fmt.Println(k, back[k], back[k].Data)
	}
	// Output:
	// Classifier.weight float32[2 3] [1 2 3 4 5 6]
	// BN.num_batches_tracked int64[] [100]
}
