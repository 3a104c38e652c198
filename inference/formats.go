package inference

// The image formats Decode reads, detected from the content: JPEG and PNG (registered by package
// data), GIF (its first frame) and WebP (lossy and lossless, golang.org/x/image/webp).
import (
	_ "image/gif"

	_ "golang.org/x/image/webp"
)
