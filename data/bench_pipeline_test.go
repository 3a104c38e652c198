package data

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPipelineCIFAR measures the CIFAR training pipeline: a shuffled
// epoch of 10000 32x32x3 images, normalised, 4-pixel-pad random crop and
// horizontal flip, in batches of 128, on all cores.
func BenchmarkPipelineCIFAR(b *testing.B) {
	const n = 10000
	rng := rand.New(rand.NewPCG(1, 2))
	set := &ImageSet{Name: "cifar-bench", N: n, H: 32, W: 32, C: 3, NumClasses: 10,
		Pixels: make([]uint8, n*cifarPixels), Labels: make([]int32, n), Mean: CIFARMean[:], Std: CIFARStd[:]}
	for i := range set.Pixels {
		set.Pixels[i] = uint8(rng.Uint32())
	}
	for i := range set.Labels {
		set.Labels[i] = int32(i % 10)
	}
	l := NewLoader(set, LoaderOptions{BatchSize: 128, Shuffle: true, Augment: Compose(RandomCrop{Pad: 4}, HFlip{})})
	images := 0
	for b.Loop() {
		for batch, err := range l.Iter() {
			if err != nil {
				b.Fatal(err)
			}
			images += int(batch.Inputs[0].Shape().Dimensions[0])
			_ = batch.Finalize()
		}
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}

// benchPhoto returns a 500x375 photo-like image: smooth colour waves plus
// noise, which JPEG-compresses to roughly ImageNet's file sizes.
func benchPhoto(seed uint64) *image.NRGBA {
	const w, h = 500, 375
	rng := rand.New(rand.NewPCG(seed, 3))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	fx, fy, phase := 10+rng.Float64()*40, 10+rng.Float64()*40, rng.Float64()*6
	for y := range h {
		for x := range w {
			v := func(k float64) uint8 {
				s := 128 + 90*math.Sin(float64(x)/fx+k+phase)*math.Cos(float64(y)/fy-k) + rng.NormFloat64()*12
				return uint8(min(max(s, 0), 255))
			}
			img.SetNRGBA(x, y, color.NRGBA{R: v(0), G: v(1), B: v(2), A: 255})
		}
	}
	return img
}

// benchFolder writes n photo-like 500x375 JPEGs in 4 classes under dir.
func benchFolder(b *testing.B, dir string, n int) (bytes int) {
	for i := range n {
		jpg := encodeJPEG(b, benchPhoto(uint64(i)), 90)
		p := filepath.Join(dir, fmt.Sprintf("class%d", i%4), fmt.Sprintf("img%03d.JPEG", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, jpg, 0o644); err != nil {
			b.Fatal(err)
		}
		bytes += len(jpg)
	}
	return bytes
}

// BenchmarkPipelineImageNetJPEG measures the ImageNet training pipeline on
// all cores: shuffled epochs of 48 500x375 JPEG files (generated in
// b.TempDir()), decoded, RandomResizedCrop 224, flip, ColorJitter(0.4, 0.4,
// 0.4), PCA lighting and normalisation, in batches of 16.
func BenchmarkPipelineImageNetJPEG(b *testing.B) {
	dir := b.TempDir()
	size := benchFolder(b, dir, 48)
	b.Logf("48 JPEGs, %.0f KB on average", float64(size)/48/1024)
	s, err := LoadImageFolder(dir, FolderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := NewImageLoader(s, ImageNetTrainOptions(16, 224, 1))
	images := 0
	for b.Loop() {
		for batch, err := range l.Iter() {
			if err != nil {
				b.Fatal(err)
			}
			images += int(batch.Inputs[0].Shape().Dimensions[0])
			_ = batch.Finalize()
		}
	}
	b.ReportMetric(float64(images)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecodeJPEG measures decoding one 500x375 JPEG to RGB on one core,
// the bulk of BenchmarkPipelineImageNetJPEG's work.
func BenchmarkDecodeJPEG(b *testing.B) {
	jpg := encodeJPEG(b, benchPhoto(1), 90)
	buf := make([]uint8, 500*375*3)
	for b.Loop() {
		if _, err := DecodeImage("bench.jpg", jpg, buf, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
