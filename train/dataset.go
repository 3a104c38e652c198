package train

import (
	"errors"
	"fmt"
	"iter"
	"slices"

	gtrain "github.com/gomlx/gomlx/ml/train"
	"github.com/seqconv/seqconv/data"
)

// Dataset is a labelled image data set that Run trains or evaluates on and Evaluate evaluates.
// ImageSetData adapts an in-memory *data.ImageSet (served by data.Loader) and SourceData any
// data.Source, such as a *data.FolderSet (served by data.ImageLoader with per-image transforms).
type Dataset interface {
	// Name names the set in messages and config.json.
	Name() string
	// Len returns the number of images.
	Len() int
	// NumClasses returns the number of classes: labels are in [0, NumClasses).
	NumClasses() int
	// ClassNames returns the class names (label l is ClassNames()[l]), or nil if unknown.
	ClassNames() []string
	// Channels returns the number of channels of the images its loaders yield.
	Channels() int
	// ImageSize returns the height and width of the images its loaders yield.
	ImageSize() (h, w int)
	// Describe describes the per-image pipeline of its training (train) or evaluation loaders.
	Describe(train bool) string
	// Head returns the set of its first n images (the set itself if n >= Len()).
	Head(n int) Dataset
	// Validate checks the set can be served; it is called before any training.
	Validate() error
	// NewLoader returns a loader serving the set in batches (see LoaderOptions).
	NewLoader(opts LoaderOptions) EpochLoader
}

// LoaderOptions configures the loaders returned by Dataset.NewLoader.
type LoaderOptions struct {
	// BatchSize is the number of images per batch (> 0).
	BatchSize int
	// Train selects the training pipeline: images shuffled with Seed (a deterministic function of
	// (Seed, epoch)), augmented, and the last incomplete batch dropped. Otherwise the images are
	// served in order, without augmentation, the last batch possibly smaller.
	Train bool
	// Seed seeds the shuffling and the augmentation.
	Seed int64
	// Workers is the number of data-loading goroutines; <= 0 means runtime.NumCPU().
	Workers int
}

// EpochLoader serves one epoch per call to Iter (GoMLX's train.Dataset), the epoch set with
// SetEpoch (and then incremented), so that a resumed run replays the same order and augmentations.
// data.Loader and data.ImageLoader implement it.
type EpochLoader interface {
	gtrain.Dataset
	// SetEpoch sets the epoch (from 0) used by the next call to Iter.
	SetEpoch(epoch int)
	// NumBatches returns the number of batches of one epoch.
	NumBatches() int
}

// ImageSetData adapts an in-memory set: its loaders are data.Loaders, and training batches are
// augmented with augment (nil: none). Evaluation batches are never augmented.
func ImageSetData(set *data.ImageSet, augment data.Augmenter) Dataset {
	return &imageSetData{set: set, aug: augment}
}

type imageSetData struct {
	set *data.ImageSet
	aug data.Augmenter
}

func (d *imageSetData) Name() string {
	if d.set == nil {
		return "<nil>"
	}
	return d.set.Name
}

func (d *imageSetData) Len() int {
	if d.set == nil {
		return 0
	}
	return d.set.N
}

func (d *imageSetData) NumClasses() int {
	if d.set == nil {
		return 0
	}
	return d.set.NumClasses
}

func (d *imageSetData) ClassNames() []string {
	if d.set == nil {
		return nil
	}
	return slices.Clone(d.set.ClassNames)
}

func (d *imageSetData) Channels() int {
	if d.set == nil {
		return 0
	}
	return d.set.C
}

func (d *imageSetData) ImageSize() (h, w int) {
	if d.set == nil {
		return 0, 0
	}
	return d.set.H, d.set.W
}

func (d *imageSetData) Describe(train bool) string {
	if !train {
		return "none"
	}
	return describeAugmenter(d.aug)
}

func (d *imageSetData) Head(n int) Dataset {
	if d.set == nil || n < 0 || n >= d.set.N {
		return d
	}
	return &imageSetData{set: d.set.Subset(0, n), aug: d.aug}
}

func (d *imageSetData) Validate() error {
	if d.set == nil {
		return errors.New("no image set")
	}
	return d.set.Validate()
}

func (d *imageSetData) NewLoader(opts LoaderOptions) EpochLoader {
	lo := data.LoaderOptions{BatchSize: opts.BatchSize, Seed: opts.Seed, Workers: opts.Workers}
	if opts.Train {
		lo.Shuffle, lo.DropLast, lo.Augment = true, true, d.aug
	}
	return data.NewLoader(d.set, lo)
}

// SourceOptions configures SourceData.
type SourceOptions struct {
	// Name names the set; by default the source's DatasetName(), if it has one, or "images".
	Name string
	// NumClasses is the number of classes (> 0), e.g. FolderSet.NumClasses().
	NumClasses int
	// ClassNames optionally names the classes (nil or NumClasses names).
	ClassNames []string
	// TrainTransform and EvalTransform turn each decoded image into a fixed-size image, for
	// training (e.g. data.RandomResizedCrop) and evaluation (e.g. data.ResizeCenterCrop); both
	// are required and must have the same output size.
	TrainTransform, EvalTransform data.Transform
	// Augment, if not nil, augments every transformed training image.
	Augment data.Augmenter
	// Mean and Std are the per-channel normalisation statistics (see data.ImageLoaderOptions);
	// nil means the source's own Normalization(), if it has one.
	Mean, Std []float32
}

// SourceData adapts a data.Source (a *data.FolderSet, or an in-memory *data.ImageSet that needs
// per-image transforms): its loaders are data.ImageLoaders with opts' transforms.
func SourceData(src data.Source, opts SourceOptions) Dataset {
	if opts.Name == "" {
		if n, ok := src.(interface{ DatasetName() string }); ok && !isNilSource(src) {
			opts.Name = n.DatasetName()
		} else {
			opts.Name = "images"
		}
	}
	return &sourceData{src: src, opts: opts}
}

type sourceData struct {
	src  data.Source
	opts SourceOptions
}

// isNilSource reports whether src is nil or a typed nil pointer of the data package.
func isNilSource(src data.Source) bool {
	switch s := src.(type) {
	case nil:
		return true
	case *data.ImageSet:
		return s == nil
	case *data.FolderSet:
		return s == nil
	}
	return false
}

func (d *sourceData) Name() string { return d.opts.Name }

func (d *sourceData) Len() int {
	if isNilSource(d.src) {
		return 0
	}
	return d.src.Len()
}

func (d *sourceData) NumClasses() int      { return d.opts.NumClasses }
func (d *sourceData) ClassNames() []string { return slices.Clone(d.opts.ClassNames) }

func (d *sourceData) Channels() int {
	if isNilSource(d.src) {
		return 0
	}
	return d.src.Channels()
}

func (d *sourceData) ImageSize() (h, w int) {
	if d.opts.EvalTransform == nil {
		return 0, 0
	}
	return d.opts.EvalTransform.OutputSize()
}

func (d *sourceData) Describe(train bool) string {
	if !train {
		return describeTransform(d.opts.EvalTransform)
	}
	desc := describeTransform(d.opts.TrainTransform)
	if d.opts.Augment != nil {
		desc += " + " + describeAugmenter(d.opts.Augment)
	}
	return desc
}

func (d *sourceData) Head(n int) Dataset {
	if isNilSource(d.src) || n < 0 || n >= d.src.Len() {
		return d
	}
	opts := d.opts
	opts.Name = fmt.Sprintf("%s[:%d]", d.opts.Name, n)
	if opts.Mean == nil && opts.Std == nil {
		if s, ok := d.src.(interface{ Normalization() (mean, std []float32) }); ok {
			opts.Mean, opts.Std = s.Normalization()
		}
	}
	return &sourceData{src: &headSource{Source: d.src, n: n}, opts: opts}
}

func (d *sourceData) Validate() error {
	o := d.opts
	switch {
	case isNilSource(d.src):
		return fmt.Errorf("%s: no image source", o.Name)
	case o.NumClasses <= 0:
		return fmt.Errorf("%s: %d classes, expected > 0", o.Name, o.NumClasses)
	case len(o.ClassNames) != 0 && len(o.ClassNames) != o.NumClasses:
		return fmt.Errorf("%s: %d class names for %d classes", o.Name, len(o.ClassNames), o.NumClasses)
	case o.TrainTransform == nil || o.EvalTransform == nil:
		return fmt.Errorf("%s: a training and an evaluation transform are required", o.Name)
	}
	th, tw := o.TrainTransform.OutputSize()
	eh, ew := o.EvalTransform.OutputSize()
	if th != eh || tw != ew || th <= 0 || tw <= 0 {
		return fmt.Errorf("%s: the training transform yields %dx%d images and the evaluation transform %dx%d: "+
			"they must be the same positive size", o.Name, th, tw, eh, ew)
	}
	if v, ok := d.src.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return err
		}
	}
	for i := range d.src.Len() {
		if l := d.src.Label(i); l < 0 || int(l) >= o.NumClasses {
			return fmt.Errorf("%s: image %d has label %d, expected in [0, %d)", o.Name, i, l, o.NumClasses)
		}
	}
	return nil
}

func (d *sourceData) NewLoader(opts LoaderOptions) EpochLoader {
	lo := data.ImageLoaderOptions{Name: d.opts.Name, BatchSize: opts.BatchSize, Seed: opts.Seed,
		Workers: opts.Workers, Transform: d.opts.EvalTransform, Mean: d.opts.Mean, Std: d.opts.Std}
	if opts.Train {
		lo.Shuffle, lo.DropLast, lo.Transform, lo.Augment = true, true, d.opts.TrainTransform, d.opts.Augment
	}
	return data.NewImageLoader(d.src, lo)
}

// headSource is the first n images of a Source.
type headSource struct {
	data.Source
	n int
}

func (s *headSource) Len() int { return s.n }

func (s *headSource) Decode(i int, buf []uint8) (data.RawImage, error) {
	if i < 0 || i >= s.n {
		return data.RawImage{}, fmt.Errorf("image %d out of range [0, %d)", i, s.n)
	}
	return s.Source.Decode(i, buf)
}

// Validate forwards to the underlying source's Validate, if it has one.
func (s *headSource) Validate() error {
	if v, ok := s.Source.(interface{ Validate() error }); ok {
		return v.Validate()
	}
	return nil
}

// NameAugmenter returns aug described by name in config.json (e.g. the command line's spec
// "crop:4+flip"); it augments and binds the normalisation exactly as aug.
func NameAugmenter(name string, aug data.Augmenter) data.Augmenter {
	if aug == nil {
		return nil
	}
	return namedAugmenter{Augmenter: aug, name: name}
}

type namedAugmenter struct {
	data.Augmenter
	name string
}

// String returns the name.
func (a namedAugmenter) String() string { return a.name }

// BindNormalization implements data.NormalizationBinder, binding the wrapped augmenter.
func (a namedAugmenter) BindNormalization(mean, std []float32) data.Augmenter {
	if b, ok := a.Augmenter.(data.NormalizationBinder); ok {
		return b.BindNormalization(mean, std)
	}
	return a.Augmenter
}

// describeTransform describes a transform for config.json.
func describeTransform(t data.Transform) string {
	if t == nil {
		return "none"
	}
	if s, ok := t.(fmt.Stringer); ok {
		return s.String()
	}
	switch t := t.(type) {
	case data.RandomResizedCrop:
		scale, ratio := t.Scale, t.Ratio
		if scale == [2]float64{} {
			scale = [2]float64{0.08, 1}
		}
		if ratio == [2]float64{} {
			ratio = [2]float64{3.0 / 4, 4.0 / 3}
		}
		return fmt.Sprintf("RandomResizedCrop(%d, scale=[%g, %g], ratio=[%.4g, %.4g])", t.Size, scale[0], scale[1],
			ratio[0], ratio[1])
	case data.ResizeCenterCrop:
		resize := t.Resize
		if resize == 0 {
			resize = t.Size * 256 / 224
		}
		return fmt.Sprintf("Resize(%d)+CenterCrop(%d)", max(resize, t.Size), t.Size)
	}
	return fmt.Sprintf("%T%+v", t, t)
}

// skipBatches serves an epoch of an EpochLoader without its first skip batches (finalized
// unused), to resume an epoch in the middle: the loader's order and augmentations depend only on
// the seed, the epoch and the position, so the remaining batches are those of an uninterrupted
// epoch.
type skipBatches struct {
	EpochLoader
	skip int
	err  *error // if not nil, receives the error the loader yields, which GoMLX's loop wraps in its own words.
}

// Iter implements gtrain.Dataset.
func (d skipBatches) Iter() iter.Seq2[gtrain.Batch, error] {
	inner := d.EpochLoader.Iter()
	return func(yield func(gtrain.Batch, error) bool) {
		i := 0
		for batch, err := range inner {
			if err == nil && i < d.skip {
				i++
				_ = batch.Finalize()
				continue
			}
			if err != nil && d.err != nil {
				*d.err = err
			}
			if !yield(batch, err) || err != nil {
				return
			}
		}
	}
}
