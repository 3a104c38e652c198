package inference

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// BenchmarkLogits times the Predictor's forward passes of the CIFAR demo model (random weights) at the
// batch sizes a server runs, on the engine engine.New chooses (ONNX Runtime when installed; set
// $GOMLX_BACKEND=go for the Go backend): the engine's own batched throughput, which the server's is
// compared with (bench/serve.sh).
//
//	GOEXPERIMENT=simd go test ./inference -run XXX -bench Logits -benchtime 10x
func BenchmarkLogits(b *testing.B) {
	cfg, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		b.Fatal(err)
	}
	choice, err := engine.NewFor(engine.Inference)
	if err != nil {
		b.Fatal(err)
	}
	defer choice.Backend.Finalize()
	b.Logf("engine: %s", choice)
	store, err := train.NewModelStore(choice.Backend, cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := store.InitializeVariables(choice.Backend, nil); err != nil {
		b.Fatal(err)
	}
	runDir := filepath.Join(b.TempDir(), "run")
	if err := train.WriteRun(runDir, cfg, store, "random weights"); err != nil {
		b.Fatal(err)
	}
	p, err := Load(runDir, Options{Backend: choice.Backend})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	r := cfg.Resolution
	for _, n := range batchSizes(64) {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			x := make([]float32, n*r*r*cfg.InChannels)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			if _, err := p.Logits(context.Background(), x, n, r, r, cfg.InChannels); err != nil { // compiles
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := p.Logits(context.Background(), x, n, r, r, cfg.InChannels); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}
