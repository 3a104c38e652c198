package data

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // Register the JPEG decoder.
	_ "image/png"  // Register the PNG decoder.
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
)

// ImageNet normalisation statistics (per channel R, G, B, on the 0..1
// scale), as used by torchvision and the authors.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// DefaultMaxPixels is the default FolderOptions.MaxPixels.
const DefaultMaxPixels = 1 << 27

// DefaultImageExtensions are the file extensions LoadImageFolder accepts by
// default (compared case-insensitively).
var DefaultImageExtensions = []string{".jpeg", ".jpg", ".png"}

// FolderOptions configures LoadImageFolder.
type FolderOptions struct {
	// Name names the set (for ImageLoader.Name); by default the root path.
	Name string

	// Classes, if not nil, are the expected class folders (for example the
	// training set's ClassNames() when loading a validation folder): a root
	// whose class folders differ is an error listing the differences.
	Classes []string

	// Extensions lists the accepted image file extensions, with the dot,
	// compared case-insensitively; nil means DefaultImageExtensions. Other
	// files are ignored.
	Extensions []string

	// SkipBadImages makes bad images (empty, undecodable or larger than
	// MaxPixels) be logged, counted (see FolderSet.BadImages) and skipped:
	// Decode returns an error wrapping ErrSkipImage, and ImageLoader replaces
	// the image by the next one of the epoch. Without it a bad image is an
	// error (wrapping ErrBadImage) naming the file, which ends the epoch.
	SkipBadImages bool

	// Logf logs skipped images (once per file); nil means log.Printf.
	Logf func(format string, args ...any)

	// MaxPixels bounds the width*height of an image (checked from its header
	// before decoding it); <= 0 means DefaultMaxPixels.
	MaxPixels int

	// Mean and Std are the per-channel normalisation statistics that the set
	// reports (see Source); nil means ImageNetMean and ImageNetStd.
	Mean, Std []float32

	// Workers is the number of goroutines listing class folders; <= 0 means
	// runtime.NumCPU().
	Workers int
}

// FolderSet is an image classification dataset stored as image files in one
// folder per class, root/<class>/<image>, like torchvision's ImageFolder.
// Only the file paths and labels are held in memory: Decode reads and
// decodes an image on demand, as RGB (grayscale, CMYK and paletted images
// are converted; an alpha channel is dropped).
//
// A FolderSet implements Source; serve it with an ImageLoader. It is safe
// for concurrent use.
type FolderSet struct {
	name      string
	root      string
	classes   []string
	paths     []string // Relative to root.
	labels    []int32
	mean, std []float32
	skipBad   bool
	logf      func(format string, args ...any)
	maxPixels int

	badMu sync.Mutex
	bad   map[int]error // Image index -> error, of the bad images met.
}

var _ Source = (*FolderSet)(nil)

// LoadImageFolder lists the images of root/<class>/... and returns them as
// a FolderSet. The classes are the sub-folders of root (hidden ones, whose
// name starts with ".", excepted), sorted by name: class i is the i-th
// folder. The images of a class are the files under its folder (recursively)
// with an accepted extension (see FolderOptions.Extensions), hidden files
// excepted, in sorted order. No image is decoded.
//
// It is an error for root to have no class folders (the error says if root
// has images directly in it, like a validation folder that has not been
// sorted into classes), for a class folder to have no images (the error
// names the folder), or for the classes to differ from opts.Classes.
func LoadImageFolder(root string, opts FolderOptions) (*FolderSet, error) {
	s, err := loadImageFolder(root, opts, "")
	if err != nil {
		return nil, fmt.Errorf("image folder: %w", err)
	}
	return s, nil
}

// LoadImageNet loads an ImageNet-style tree, root/train/<class>/* and
// root/val/<class>/*, with LoadImageFolder. The validation classes must be
// those of the training set (otherwise the error lists the differences). The
// sets are named opts.Name (default "imagenet") + "-train" and "-val".
func LoadImageNet(root string, opts FolderOptions) (trainSet, valSet *FolderSet, err error) {
	name := opts.Name
	if name == "" {
		name = "imagenet"
	}
	trainRoot, valRoot := filepath.Join(root, "train"), filepath.Join(root, "val")
	opts.Name = name + "-train"
	trainSet, err = loadImageFolder(trainRoot, opts, "")
	if err != nil {
		return nil, nil, fmt.Errorf("image folder %s: training set: %w", root, err)
	}
	opts.Name = name + "-val"
	opts.Classes = trainSet.classes
	valSet, err = loadImageFolder(valRoot, opts, trainRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("image folder %s: validation set: %w", root, err)
	}
	return trainSet, valSet, nil
}

// loadImageFolder implements LoadImageFolder; classesFrom, if not empty,
// says where opts.Classes come from (for errors).
func loadImageFolder(root string, opts FolderOptions, classesFrom string) (*FolderSet, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err // *PathError names root.
	}
	exts := opts.Extensions
	if exts == nil {
		exts = DefaultImageExtensions
	}
	isImage := func(name string) bool {
		if strings.HasPrefix(name, ".") {
			return false
		}
		ext := filepath.Ext(name)
		return slices.ContainsFunc(exts, func(e string) bool { return strings.EqualFold(e, ext) })
	}
	var classes []string
	looseImages := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		isDir := e.IsDir()
		if e.Type()&os.ModeSymlink != 0 {
			if info, err := os.Stat(filepath.Join(root, name)); err == nil {
				isDir = info.IsDir()
			}
		}
		switch {
		case isDir:
			classes = append(classes, name)
		case isImage(name):
			looseImages++
		}
	}
	if len(classes) == 0 {
		if looseImages > 0 {
			return nil, fmt.Errorf("%s: no class folders but %d images directly in it: expected %s/<class>/<image> "+
				"(a flat validation folder must first be sorted into one folder per class)",
				root, looseImages, root)
		}
		return nil, fmt.Errorf("%s: no class folders, expected %s/<class>/<image>", root, root)
	}
	if opts.Classes != nil {
		if diff := diffClasses(classes, opts.Classes); diff != "" {
			from := "the expected classes"
			if classesFrom != "" {
				from = "those of " + classesFrom
			}
			return nil, fmt.Errorf("%s: class folders (%d) differ from %s (%d): %s",
				root, len(classes), from, len(opts.Classes), diff)
		}
	}

	// List the class folders in parallel.
	files := make([][]string, len(classes))
	errs := make([]error, len(classes))
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	workers = max(1, min(workers, len(classes)))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c := range next {
				files[c], errs[c] = listImages(root, classes[c], isImage, 0)
				if errs[c] == nil && len(files[c]) == 0 {
					errs[c] = fmt.Errorf("%s: class folder has no images (expected files ending in %s)",
						filepath.Join(root, classes[c]), strings.Join(exts, ", "))
				}
			}
		})
	}
	for c := range classes {
		next <- c
	}
	close(next)
	wg.Wait()
	total := 0
	for c := range classes {
		if errs[c] != nil {
			return nil, errs[c]
		}
		total += len(files[c])
	}

	s := &FolderSet{
		name:      opts.Name,
		root:      root,
		classes:   classes,
		paths:     make([]string, 0, total),
		labels:    make([]int32, 0, total),
		mean:      slices.Clone(opts.Mean),
		std:       slices.Clone(opts.Std),
		skipBad:   opts.SkipBadImages,
		logf:      opts.Logf,
		maxPixels: opts.MaxPixels,
		bad:       map[int]error{},
	}
	if s.name == "" {
		s.name = root
	}
	if s.mean == nil {
		s.mean = slices.Clone(ImageNetMean[:])
	}
	if s.std == nil {
		s.std = slices.Clone(ImageNetStd[:])
	}
	if s.logf == nil {
		s.logf = log.Printf
	}
	if s.maxPixels <= 0 {
		s.maxPixels = DefaultMaxPixels
	}
	for c, list := range files {
		s.paths = append(s.paths, list...)
		for range list {
			s.labels = append(s.labels, int32(c))
		}
	}
	return s, nil
}

// maxFolderDepth bounds the recursion into sub-folders of a class folder.
const maxFolderDepth = 16

// listImages returns the images under root/rel (paths relative to root):
// the files of the folder in sorted order, then those of its sub-folders.
func listImages(root, rel string, isImage func(string) bool, depth int) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(root, rel))
	if err != nil {
		return nil, err
	}
	var files, dirs []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if e.IsDir() {
			dirs = append(dirs, name)
		} else if isImage(name) {
			files = append(files, filepath.Join(rel, name))
		}
	}
	if depth < maxFolderDepth {
		for _, d := range dirs {
			sub, err := listImages(root, filepath.Join(rel, d), isImage, depth+1)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
		}
	}
	return files, nil
}

// diffClasses describes how got differs from want ("" if they are equal).
func diffClasses(got, want []string) string {
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	list := func(names []string) string {
		const show = 5
		if len(names) <= show {
			return strings.Join(names, ", ")
		}
		return fmt.Sprintf("%s, ... (%d in all)", strings.Join(names[:show], ", "), len(names))
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "missing "+list(missing))
	}
	if len(extra) > 0 {
		parts = append(parts, "unexpected "+list(extra))
	}
	if len(parts) == 0 && !slices.Equal(got, want) {
		parts = append(parts, fmt.Sprintf("same names in another order: %s", list(want)))
	}
	return strings.Join(parts, "; ")
}

// Len implements Source: the number of images.
func (s *FolderSet) Len() int { return len(s.paths) }

// Label implements Source: the class of image i.
func (s *FolderSet) Label(i int) int32 { return s.labels[i] }

// Channels implements Source: images are decoded as RGB, 3 channels.
func (s *FolderSet) Channels() int { return 3 }

// DatasetName returns the set's name (see Source and FolderOptions.Name).
func (s *FolderSet) DatasetName() string { return s.name }

// Normalization returns the set's normalisation statistics (see Source and
// FolderOptions.Mean).
func (s *FolderSet) Normalization() (mean, std []float32) {
	return slices.Clone(s.mean), slices.Clone(s.std)
}

// Root returns the set's root folder.
func (s *FolderSet) Root() string { return s.root }

// ClassNames returns the class names, the names of the class folders: label
// i is ClassNames()[i].
func (s *FolderSet) ClassNames() []string { return slices.Clone(s.classes) }

// NumClasses returns the number of classes.
func (s *FolderSet) NumClasses() int { return len(s.classes) }

// Path returns the path of image i's file (root joined with its relative
// path).
func (s *FolderSet) Path(i int) string { return filepath.Join(s.root, s.paths[i]) }

// ClassCounts returns the number of images of each class.
func (s *FolderSet) ClassCounts() []int {
	counts := make([]int, len(s.classes))
	for _, l := range s.labels {
		counts[l]++
	}
	return counts
}

// BadImages returns the number of distinct bad images (empty, undecodable
// or too large files) that Decode has met so far.
func (s *FolderSet) BadImages() int {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	return len(s.bad)
}

// BadImagePaths returns the paths of the bad images met so far, sorted.
func (s *FolderSet) BadImagePaths() []string {
	s.badMu.Lock()
	defer s.badMu.Unlock()
	paths := make([]string, 0, len(s.bad))
	for i := range s.bad {
		paths = append(paths, s.Path(i))
	}
	slices.Sort(paths)
	return paths
}

// Validate checks the set is usable (it always is once loaded).
func (s *FolderSet) Validate() error {
	if s == nil {
		return fmt.Errorf("data: nil FolderSet")
	}
	return nil
}

// Decode implements Source: it reads and decodes image i as RGB, into buf
// when it is large enough. A bad image (empty, undecodable or larger than
// MaxPixels) is an error naming the file and wrapping ErrBadImage, and also
// ErrSkipImage with FolderOptions.SkipBadImages (it is then logged once and
// counted by BadImages).
func (s *FolderSet) Decode(i int, buf []uint8) (RawImage, error) {
	if i < 0 || i >= len(s.paths) {
		return RawImage{}, fmt.Errorf("data: FolderSet %q: image %d out of range [0, %d)", s.name, i, len(s.paths))
	}
	if s.skipBad {
		s.badMu.Lock()
		known := s.bad[i]
		s.badMu.Unlock()
		if known != nil {
			return RawImage{}, fmt.Errorf("%w: %w", ErrSkipImage, known)
		}
	}
	p := s.Path(i)
	b, err := os.ReadFile(p)
	var img RawImage
	if err == nil {
		img, err = DecodeImage(p, b, buf, s.maxPixels)
	} else {
		err = fmt.Errorf("%s: %w: reading: %w", p, ErrBadImage, err)
	}
	if err == nil {
		return img, nil
	}
	s.badMu.Lock()
	_, known := s.bad[i]
	s.bad[i] = err
	count := len(s.bad)
	s.badMu.Unlock()
	if !s.skipBad {
		return RawImage{}, err
	}
	if !known {
		s.logf("%s: skipping bad image (%d so far): %v", s.name, count, err)
	}
	return RawImage{}, fmt.Errorf("%w: %w", ErrSkipImage, err)
}

// DecodeImage decodes an image file's contents b (JPEG, PNG, or another
// format registered with package image, such as the GIF and WebP that
// package inference registers; detected from the content, not the name) as
// an RGB image, into buf when it is large enough. name identifies the file in errors.
//
// Empty input, an undecodable image or one of more than maxPixels pixels
// (checked from the header before decoding; <= 0 means DefaultMaxPixels,
// the error then also wraps ErrTooManyPixels) is an error naming the file
// and wrapping ErrBadImage.
func DecodeImage(name string, b []byte, buf []uint8, maxPixels int) (RawImage, error) {
	if len(b) == 0 {
		return RawImage{}, fmt.Errorf("%s: %w: empty file", name, ErrBadImage)
	}
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return RawImage{}, fmt.Errorf("%s: %w: decoding header: %w", name, ErrBadImage, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > maxPixels/max(cfg.Height, 1) {
		return RawImage{}, fmt.Errorf("%s: %w: %w: %s image of %dx%d pixels, expected 1 to %d pixels",
			name, ErrBadImage, ErrTooManyPixels, format, cfg.Width, cfg.Height, maxPixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		return RawImage{}, fmt.Errorf("%s: %w: decoding %s: %w", name, ErrBadImage, format, err)
	}
	if r := img.Bounds(); r.Dx() != cfg.Width || r.Dy() != cfg.Height {
		return RawImage{}, fmt.Errorf("%s: %w: decoded %s image is %dx%d, header says %dx%d",
			name, ErrBadImage, format, r.Dx(), r.Dy(), cfg.Width, cfg.Height)
	}
	return toRGB(img, buf), nil
}

// toRGB converts img to HWC RGB pixels, in buf if it is large enough.
func toRGB(img image.Image, buf []uint8) RawImage {
	r := img.Bounds()
	w, h := r.Dx(), r.Dy()
	n := w * h * 3
	if cap(buf) < n {
		buf = make([]uint8, n)
	}
	pix := buf[:n]
	switch m := img.(type) {
	case *image.YCbCr:
		ycbcrToRGB(m, r, pix)
	case *image.Gray:
		for y := range h {
			src := m.Pix[m.PixOffset(r.Min.X, r.Min.Y+y):][:w]
			row := pix[y*w*3 : (y+1)*w*3]
			for x, v := range src {
				row[3*x], row[3*x+1], row[3*x+2] = v, v, v
			}
		}
	case *image.NRGBA:
		copyRGBA(pix, m.Pix, m.Stride, m.PixOffset(r.Min.X, r.Min.Y), w, h)
	case *image.RGBA:
		// Go's PNG decoder only returns RGBA for opaque images, where
		// premultiplied and straight alpha agree.
		copyRGBA(pix, m.Pix, m.Stride, m.PixOffset(r.Min.X, r.Min.Y), w, h)
	default:
		i := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
				pix[i], pix[i+1], pix[i+2] = c.R, c.G, c.B
				i += 3
			}
		}
	}
	return RawImage{H: h, W: w, C: 3, Pix: pix}
}

// copyRGBA copies the RGB bytes of w x h RGBA pixels, dropping alpha.
func copyRGBA(dst, src []uint8, stride, offset, w, h int) {
	for y := range h {
		s := src[offset+y*stride:][:4*w]
		d := dst[y*w*3:][:3*w]
		for x := range w {
			d[3*x], d[3*x+1], d[3*x+2] = s[4*x], s[4*x+1], s[4*x+2]
		}
	}
}

// ycbcrToRGB converts the r part of m to HWC RGB in pix, with the same
// integer arithmetic as color.YCbCrToRGB (inlined: this is a large part of
// the cost of reading a JPEG).
func ycbcrToRGB(m *image.YCbCr, r image.Rectangle, pix []uint8) {
	w := r.Dx()
	var hs, vs uint // Chroma subsampling shifts.
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		hs = 1
	case image.YCbCrSubsampleRatio420:
		hs, vs = 1, 1
	case image.YCbCrSubsampleRatio440:
		vs = 1
	case image.YCbCrSubsampleRatio411:
		hs = 2
	case image.YCbCrSubsampleRatio410:
		hs, vs = 2, 1
	}
	if r.Min.X < 0 || r.Min.Y < 0 || m.Rect.Min.X < 0 || m.Rect.Min.Y < 0 {
		// Shifts would not round like COffset's divisions: use the slow path.
		i := 0
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				ci := m.COffset(x, y)
				pix[i], pix[i+1], pix[i+2] = color.YCbCrToRGB(m.Y[m.YOffset(x, y)], m.Cb[ci], m.Cr[ci])
				i += 3
			}
		}
		return
	}
	cx0 := m.Rect.Min.X >> hs
	for y := r.Min.Y; y < r.Max.Y; y++ {
		yRow := m.Y[(y-m.Rect.Min.Y)*m.YStride+(r.Min.X-m.Rect.Min.X):][:w]
		cRow := ((y >> vs) - (m.Rect.Min.Y >> vs)) * m.CStride
		cbRow, crRow := m.Cb[cRow:], m.Cr[cRow:]
		out := pix[(y-r.Min.Y)*w*3:][:w*3]
		for x, yv := range yRow {
			ci := ((r.Min.X + x) >> hs) - cx0
			yy1 := int32(yv) * 0x10101
			cb1 := int32(cbRow[ci]) - 128
			cr1 := int32(crRow[ci]) - 128
			rv := yy1 + 91881*cr1
			if uint32(rv)&0xff000000 == 0 {
				rv >>= 16
			} else {
				rv = ^(rv >> 31)
			}
			gv := yy1 - 22554*cb1 - 46802*cr1
			if uint32(gv)&0xff000000 == 0 {
				gv >>= 16
			} else {
				gv = ^(gv >> 31)
			}
			bv := yy1 + 116130*cb1
			if uint32(bv)&0xff000000 == 0 {
				bv >>= 16
			} else {
				bv = ^(bv >> 31)
			}
			out[3*x], out[3*x+1], out[3*x+2] = uint8(rv), uint8(gv), uint8(bv)
		}
	}
}
