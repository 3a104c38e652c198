package models

import "fmt"

// The networks are fully convolutional up to their global average pooling, so they take images of any
// height and width from a minimum on, like the authors' PyTorch models: Resolution is the default size
// (for counting and export), not a limit. The minimum follows from the windows that shrink the feature
// maps along the network's main path: its stem and its strided convolutions and pools.

// window is a convolution or pooling window that changes the spatial size of the feature maps: an input
// of n pixels gives (n + 2*pad - kernel)/stride + 1 (floor), as in PyTorch.
type window struct{ kernel, stride, pad int }

// out returns the output size of the window for an input of n pixels, or 0 when the padded input is
// smaller than the kernel.
func (w window) out(n int) int {
	if n+2*w.pad < w.kernel {
		return 0
	}
	return (n+2*w.pad-w.kernel)/w.stride + 1
}

// spatialWindows returns, in order, the windows of the network's main path that change the size of its
// feature maps (the stem and the strides; the stride-1 "same" convolutions keep it). Build builds these
// layers: keep the two in step (TestMinInputSizeBuilds checks them against built graphs).
func (c Config) spatialWindows() []window {
	c = c.WithDefaults()
	conv3s2 := window{kernel: 3, stride: 2, pad: 1}
	var ws []window
	switch c.Family {
	case FamilyCIFAR:
		// Init (3x3, StemStride), then a 3x3 stride-2 ShrinkingLayer per Downsample.
		ws = append(ws, window{kernel: 3, stride: c.StemStride, pad: 1})
		for range c.numStages() - 1 {
			ws = append(ws, conv3s2)
		}
	case FamilyImageNet, FamilyResNeXt:
		// Head0 (3x3 s2), the ShrinkingLayer (3x3 s2), then one per Downsample.
		ws = append(ws, conv3s2, conv3s2)
		for range c.numStages() - 1 {
			ws = append(ws, conv3s2)
		}
	case FamilyResNet:
		// conv1 (7x7 s2), maxpool (3x3 s2), then the first block of stages 2-4 (3x3 s2; its 1x1 s2
		// downsample gives the same size).
		ws = append(ws, window{kernel: 7, stride: 2, pad: 3}, conv3s2)
		for range len(c.BlocksPerStage) - 1 {
			ws = append(ws, conv3s2)
		}
	case FamilyDenseNet:
		// conv0 (7x7 s2), pool0 (3x3 s2), then a 2x2 stride-2 average pool per transition.
		ws = append(ws, window{kernel: 7, stride: 2, pad: 3}, conv3s2)
		for range len(c.BlocksPerStage) - 1 {
			ws = append(ws, window{kernel: 2, stride: 2})
		}
	}
	return ws
}

// FeatureSize returns the height (or width) of the network's last feature map for an input of n pixels,
// or 0 when the input is too small for the network.
func (c Config) FeatureSize(n int) int {
	for _, w := range c.spatialWindows() {
		if n = w.out(n); n < 1 {
			return 0
		}
	}
	return n
}

// maxInputSearch bounds MinInputSize's search (no window chain of these families needs more).
const maxInputSearch = 1 << 16

// MinInputSize returns the smallest height and width (in pixels) of the images the network takes: the
// smallest input that every window of its stem and strides leaves at least one pixel. It is 1 for the
// SeqResNet, SeqResNeXt and ResNet families, whose strided convolutions are padded; DenseNet's unpadded
// transition pools need more.
func (c Config) MinInputSize() int {
	for n := 1; n <= maxInputSearch; n++ {
		if c.FeatureSize(n) >= 1 { // FeatureSize is non-decreasing in n.
			return n
		}
	}
	return maxInputSearch + 1
}

// CheckInput checks that images of the given channels, height and width fit the model and otherwise
// returns a one-line error saying what the model takes.
func (c Config) CheckInput(channels, height, width int) error {
	c = c.WithDefaults()
	minSize := c.MinInputSize()
	if channels == c.InChannels && height >= minSize && width >= minSize {
		return nil
	}
	name := c.Name
	if name == "" {
		name = "of family " + c.Family
	}
	return fmt.Errorf("model %s takes %s of at least %dx%d pixels (%dx%d by default), got %s of %dx%d",
		name, channelsPhrase(c.InChannels), minSize, minSize, c.Resolution, c.Resolution,
		channelsPhrase(channels), height, width)
}

// channelsPhrase is "3-channel images" or "1-channel (grey) images".
func channelsPhrase(c int) string {
	if c == 1 {
		return "1-channel (grey) images"
	}
	return fmt.Sprintf("%d-channel images", c)
}
