package analysis_test

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/analysis"
)

// A dense SeqConv layer with C_in = 2, k = 1 and three bottleneck filters, whose 1x1 first convs read 2, 3
// and 4 channels of [x, E_0, E_1]. The weights are set by hand (a trained store would come from
// train.LoadRun): each cell is the L1 norm of the weights reading one source group, divided by the
// layer's largest (4 here); "." marks the groups a filter does not read.
func ExampleUtilization() {
	store := model.NewStore()
	weights := [][]float32{{1, -2}, {0.5, 1, -4}, {0, 1, 2, 2}}
	for j, w := range weights {
		path := fmt.Sprintf("/Layer/Filters/%d/BottleneckLayer/LinearLayer/weight", j)
		if _, err := store.CreateVariable(path, tensors.FromFlatDataAndDimensions(w, 1, 1, len(w), 1)); err != nil {
			panic(err)
		}
	}
	for _, layer := range analysis.SeqConvLayers(store) {
		h, err := analysis.Utilization(store, layer)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%s: %s, k=%d, C_in=%d, %d filters\n", layer.Name, layer.Aggregation(), layer.K, layer.CIn,
			layer.Filters)
		fmt.Print("source group:")
		for c := range h.Cols() {
			fmt.Printf(" %5d", h.SourceGroup(c))
		}
		fmt.Println()
		for j, row := range h.Values {
			fmt.Printf("filter %d:    ", j)
			for _, v := range row {
				if math.IsNaN(v) {
					fmt.Printf("     .")
				} else {
					fmt.Printf(" %5.3f", v)
				}
			}
			fmt.Println()
		}
		fmt.Printf("utilization %.3f\n", h.Utilization)
	}
	// Output:
	// Layer: dense, k=1, C_in=2, 3 filters
	// source group:    -2    -1     0     1
	// filter 0:     0.250 0.500     .     .
	// filter 1:     0.125 0.250 1.000     .
	// filter 2:     0.000 0.250 0.500 0.500
	// utilization 0.375
}
