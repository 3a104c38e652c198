package engine

import (
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
)

// VariablesAsParameters makes every variable of store that has a value a parameter of g, which must be
// under construction. Call it first thing in the graph function of any non-training graph that is run
// again after its variables change (the evaluation graph of a training loop, a metric that accumulates in
// variables).
//
// Why: the Go and ONNX Runtime backends prefer variables as constants, and GoMLX then embeds the values
// that the variables of a non-training graph have when the graph is built. Such a graph, run again after
// a training step or a Variable.SetValue, would compute with the old values. Training graphs always take
// variables as parameters. Graphs of fixed weights (inference, export) are better off with the constants.
func VariablesAsParameters(store *model.Store, g *graph.Graph) {
	if store.IsTraining(g) {
		return
	}
	// GoMLX decides constant or parameter when a variable's node is first created in a graph, by whether
	// the graph is training at that moment; the nodes are then reused for the rest of the graph.
	store.SetTraining(g, true)
	defer store.SetTraining(g, false)
	for v := range store.IterVariables() {
		if v.HasValue() {
			v.NodeValue(g)
		}
	}
}
