package inference_test

import (
	"context"
	"fmt"
	"image"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/inference"
	"github.com/seqconv/seqconv/internal/testrun"
)

// Load a trained run and ask what is in an image. The run here is a small model trained on the spot to
// tell red, green and blue images apart; "seqconv train" and "seqconv import" write such run
// directories.
func Example() {
	dir, err := os.MkdirTemp("", "example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	runDir := filepath.Join(dir, "colors")
	if err := testrun.TrainColors(runDir); err != nil {
		log.Fatal(err)
	}

	// Options{} runs on the fastest engine available; the pure Go backend gives the same answer
	// everywhere.
	backend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Finalize()
	p, err := inference.Load(runDir, inference.Options{Backend: backend, TopK: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Any image.Image of any size: it is resized, cropped and normalised as the run's evaluation does.
	rng := rand.New(rand.NewPCG(1, 2))
	images := []image.Image{testrun.Color(rng, 2, 64, 48), testrun.Color(rng, 0, 10, 30)}
	preds, err := p.Predict(context.Background(), images)
	if err != nil {
		log.Fatal(err)
	}
	for i, pred := range preds {
		best := pred.Top[0]
		fmt.Printf("image %d: %s (probability > 0.9: %v; %d classes listed)\n", i, best.Name, best.Probability > 0.9,
			len(pred.Top))
	}
	// Output:
	// image 0: blue (probability > 0.9: true; 2 classes listed)
	// image 1: red (probability > 0.9: true; 2 classes listed)
}
