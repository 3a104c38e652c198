package layers

import (
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/seqconv/seqconv/engine"
)

// TestDownsampleVariants checks both downsampling variants against the same computation spelled out with the
// layer's own variables: the paper's design feeds [X, E] to the shrinking conv, the released SeqResNeXt code
// [E, E] (docs/ARCHITECTURE.md, Blocks).
func TestDownsampleVariants(t *testing.T) {
	backend := engine.MustNewForTest()
	rng := rand.New(rand.NewPCG(7, 8))
	x := randTensor(rng, 2, 6, 6, 8)
	cfg := DownsampleConfig{Channels: 16, Extension: SeqConvConfig{Granularity: 4, Bottleneck: true, Subgroups: 2},
		NextK: 8, NextSubgroups: 2}
	for _, released := range []bool{false, true} {
		store := model.NewStore()
		cfg.Released = released
		layer := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) (*Node, *Node) {
			store.SetTraining(x.Graph(), false)
			return Downsample(scope.In("D"), x, cfg)
		})
		got := layer.MustCall(x)
		manual := model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) (*Node, *Node) {
			store.SetTraining(x.Graph(), false)
			_, e := SeqConv(store.Scope("/D/ExtensionLayer"), x).Granularity(4).Channels(8).Bottleneck(true).
				Subgroups(2).Done()
			first := x
			if released {
				first = e
			}
			return ConvUnit(store.Scope("/D/ShrinkingLayer"), Concatenate([]*Node{first, e}, -1)).Channels(16).
				Stride(2).Groups(16 / 8 * 2).Done()
		})
		want := manual.MustCall(x)
		for i := range want {
			if d := maxAbsDiff(t, got[i], want[i]); d != 0 {
				t.Errorf("released=%v output %d: max diff %g", released, i, d)
			}
		}
		if g := store.GetVariable("/D/ShrinkingLayer/LinearLayer/weight").Shape().Dimensions; g[2] != 4 || g[3] != 16 {
			t.Errorf("shrinking conv weight %v, want [3 3 4 16] (4 groups)", g)
		}
	}
	// The two variants differ (same seed, same weights, different inputs to the shrinking conv).
	outs := make([]*tensors.Tensor, 2)
	for i, released := range []bool{false, true} {
		store := model.NewStore()
		if err := store.SetRNGStateFromSeed(3); err != nil {
			t.Fatal(err)
		}
		cfg.Released = released
		outs[i] = model.MustNewExec(backend, store, func(scope *model.Scope, x *Node) *Node {
			store.SetTraining(x.Graph(), false)
			_, a := Downsample(scope.In("D"), x, cfg)
			return a
		}).MustCall(x)[0]
	}
	if d := maxAbsDiff(t, outs[0], outs[1]); d == 0 || math.IsNaN(d) {
		t.Errorf("paper and released variants give the same output (diff %g)", d)
	}
}
