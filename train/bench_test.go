package train

import (
	"fmt"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
)

// BenchmarkTrainStep times training steps (forward, backward, Nesterov SGD update, BN statistics, dropout)
// of the authors' CIFAR demo model through GoMLX's Trainer, as `seqconv train` runs them, at batch 16 and 64 on
// the configured backend (the Go backend by default). Each benchmark iteration runs Bench: a compiling first
// step, one warm-up step and 5 timed steps, and reports their median:
//
//	GOEXPERIMENT=simd go test ./train -run XXX -bench TrainStep -benchtime 1x
func BenchmarkTrainStep(b *testing.B) {
	backend := engine.MustNewForTest()
	cfg, err := models.Get("seqresnet-cifar-demo")
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{16, 64} {
		b.Run(fmt.Sprintf("%s/batch=%d", cfg.Name, batch), func(b *testing.B) {
			for range b.N {
				res, err := Bench(backend, cfg, BenchOptions{Batch: batch, Steps: 5, Warmup: 1, Train: true})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(res.MedianStepS, "s/step-median")
				b.ReportMetric(res.ImagesPerS, "images/s")
				b.ReportMetric(res.FirstStepS, "s-first-step")
			}
		})
	}
}

// TestBenchTiny checks that Bench runs and reports consistent numbers on a tiny model.
func TestBenchTiny(t *testing.T) {
	backend := engine.MustNewForTest()
	cfg, err := models.Get("seqresnet-mnist")
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []BenchOptions{{Train: true}, {Train: false}, {Train: true, Precision: "bf16"}} {
		opts.Batch, opts.Steps, opts.Warmup = 4, 3, 1
		res, err := Bench(backend, cfg, opts)
		if opts.Precision == "bf16" && engine.IsONNX(backend) {
			// ONNX Runtime has no bfloat16 convolution: a clear error.
			if err == nil || !strings.Contains(err.Error(), "bf16 precision is not supported on ONNX Runtime") {
				t.Errorf("bf16 on ONNX Runtime: got error %v, want one saying it is not supported", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.MedianStepS <= 0 || res.MinStepS > res.MedianStepS || res.FirstStepS <= 0 || res.ImagesPerS <= 0 ||
			res.PeakRSSBytes <= 0 || res.Params != 73978 || (opts.Precision == "bf16") != (res.Precision == "bf16") {
			t.Errorf("implausible result %+v", res)
		}
	}
	if _, err := Bench(backend, cfg, BenchOptions{Batch: 0, Steps: 3}); err == nil {
		t.Error("batch 0: no error")
	}
	if _, err := Bench(backend, cfg, BenchOptions{Batch: 2, Steps: 1, Precision: "fp8"}); err == nil {
		t.Error("precision fp8: no error")
	}
}
