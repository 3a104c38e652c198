package inference

import (
	"context"
	"fmt"
	"os"
)

// FileResult is the prediction of one image file, or why there is none.
type FileResult struct {
	Path       string
	Prediction Prediction
	Err        error
}

// PredictFiles reads, decodes and predicts image files, MaxBatch at a time, and returns one result per
// path, in order. A file that cannot be read or decoded gets its error (naming it, wrapping
// data.ErrBadImage for bad images) and the others are still predicted. The error returned is that of
// the model (or ctx), which stops the run.
func (p *Predictor) PredictFiles(ctx context.Context, paths []string) ([]FileResult, error) {
	results := make([]FileResult, len(paths))
	for start := 0; start < len(paths); start += p.maxBatch {
		end := min(start+p.maxBatch, len(paths))
		var inputs []Input
		var at []int
		for i := start; i < end; i++ {
			results[i].Path = paths[i]
			in, err := p.readFile(paths[i])
			if err != nil {
				results[i].Err = err
				continue
			}
			inputs = append(inputs, in)
			at = append(at, i)
		}
		preds, err := p.PredictInputs(ctx, inputs)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			results[i].Prediction = preds[j]
		}
	}
	return results, nil
}

// readFile reads and prepares one image file.
func (p *Predictor) readFile(path string) (Input, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Input{}, err // *PathError names the file.
	}
	if st.IsDir() {
		return Input{}, fmt.Errorf("%s: is a directory, want an image file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Input{}, err
	}
	return p.Decode(path, b)
}
