package interop_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/interop"
	"github.com/seqconv/seqconv/train"
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

// ExampleWriteONNXFile exports a run directory's model (here the authors' weights, imported) as an ONNX
// file for deployment: input "images" [4, 3, 32, 32], output "logits" [4, 10]. It needs the ONNX Runtime
// library (scripts/install-onnxruntime.sh), so it is compiled but not run by "go test".
func ExampleWriteONNXFile() {
	backend, err := engine.NewONNXRuntime() // Whatever engine $GOMLX_BACKEND selects for the rest.
	if err != nil {
		panic(err)
	}
	defer backend.Finalize()
	cfg, store, err := train.LoadRun(backend, "runs/imported", true)
	if err != nil {
		panic(err)
	}
	info, err := interop.WriteONNXFile("seqresnet.onnx", backend, store, cfg, interop.ONNXOptions{Batch: 4})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %v -> %s %v, %d bytes\n", interop.ONNXInput, info.Input, interop.ONNXOutput, info.Output, info.Bytes)
}
