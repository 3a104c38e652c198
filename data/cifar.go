package data

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// CIFAR image geometry: 32x32 RGB.
const (
	cifarSide   = 32
	cifarPixels = cifarSide * cifarSide * 3 // 3072 bytes per image.

	// cifarMaxInitialRecords bounds the records pre-allocated from a size
	// claimed by a tar header, so that a corrupt header cannot make us
	// allocate gigabytes before finding out the data isn't there.
	cifarMaxInitialRecords = 1 << 14

	// cifarMaxMetaSize bounds the size of a class-names file.
	cifarMaxMetaSize = 1 << 20
)

// CIFAR normalisation statistics (per channel R, G, B, on the 0..1 scale),
// the values used by the authors for both CIFAR-10 and CIFAR-100.
var (
	CIFARMean = [3]float32{125.3 / 255, 123.0 / 255, 113.9 / 255}
	CIFARStd  = [3]float32{63.0 / 255, 62.1 / 255, 66.7 / 255}
)

// cifarSpec describes one of the CIFAR binary distributions.
type cifarSpec struct {
	fn         string   // What the loader does, for errors.
	name       string   // "CIFAR-10".
	setPrefix  string   // ImageSet name prefix.
	subdir     string   // Directory created by extracting the archive.
	archive    string   // Name of the downloaded archive.
	trainFiles []string // Training set files, in order.
	testFiles  []string // Test set files.
	metaFile   string   // Class names, one per line.
	labelBytes int      // Label bytes before the pixels of a record.
	numClasses int      // Range of the (fine) label: the last label byte.
	numCoarse  int      // Range of the first label byte when labelBytes == 2.
}

func (sp *cifarSpec) recordSize() int { return sp.labelBytes + cifarPixels }

var cifar10Spec = &cifarSpec{
	fn:         "loading cifar10",
	name:       "CIFAR-10",
	setPrefix:  "cifar10",
	subdir:     "cifar-10-batches-bin",
	archive:    "cifar-10-binary.tar.gz",
	trainFiles: []string{"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
	testFiles:  []string{"test_batch.bin"},
	metaFile:   "batches.meta.txt",
	labelBytes: 1,
	numClasses: 10,
}

var cifar100Spec = &cifarSpec{
	fn:         "loading cifar100",
	name:       "CIFAR-100",
	setPrefix:  "cifar100",
	subdir:     "cifar-100-binary",
	archive:    "cifar-100-binary.tar.gz",
	trainFiles: []string{"train.bin"},
	testFiles:  []string{"test.bin"},
	metaFile:   "fine_label_names.txt",
	labelBytes: 2,
	numClasses: 100,
	numCoarse:  20,
}

// LoadCIFAR10 loads CIFAR-10 from its official binary distribution: the
// training set from data_batch_1.bin ... data_batch_5.bin (in that order)
// and the test set from test_batch.bin.
//
// dir may be the directory holding the .bin files, the directory holding
// the extracted cifar-10-batches-bin/ folder, a directory holding the
// downloaded cifar-10-binary.tar.gz, or that archive itself, which is read
// as a stream without extracting it.
//
// Each file is a sequence of 3073-byte records: a label byte (0..9) and
// 3072 pixel bytes, the 32x32 red plane, then green, then blue. The images
// are returned as 32x32x3 HWC ImageSets named "cifar10-train" and
// "cifar10-test" with Mean CIFARMean and Std CIFARStd, and class names
// from batches.meta.txt when it is present.
//
// Errors name the file at fault: a missing file, a size that is not a whole
// number of records, a label out of range, a truncated or corrupt archive.
func LoadCIFAR10(dir string) (trainSet, testSet *ImageSet, err error) {
	return loadCIFAR(cifar10Spec, dir)
}

// LoadCIFAR100 loads CIFAR-100 from its official binary distribution:
// train.bin and test.bin, found like LoadCIFAR10's files in dir, in
// dir/cifar-100-binary/ or in the archive cifar-100-binary.tar.gz (dir
// itself or in dir).
//
// Each record is 3074 bytes: the coarse label (0..19), the fine label
// (0..99) and 3072 pixel bytes (planar R, G, B). The sets, named
// "cifar100-train" and "cifar100-test", use the fine labels (NumClasses
// 100), with class names from fine_label_names.txt when it is present, and
// Mean CIFARMean and Std CIFARStd.
func LoadCIFAR100(dir string) (trainSet, testSet *ImageSet, err error) {
	return loadCIFAR(cifar100Spec, dir)
}

// cifarParts holds the parsed content of the files of one distribution.
type cifarParts struct {
	chunks     map[string]*cifarChunk // By base file name.
	classNames []string
}

// cifarChunk is the parsed content of one binary file.
type cifarChunk struct {
	pixels []uint8 // HWC.
	labels []int32
}

func loadCIFAR(sp *cifarSpec, dir string) (trainSet, testSet *ImageSet, err error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", sp.fn, err)
	}
	var parts *cifarParts
	if !info.IsDir() {
		parts, err = loadCIFARArchiveFile(sp, dir)
	} else if binDir, ok := findCIFARDir(sp, dir); ok {
		parts, err = loadCIFARDir(sp, binDir)
	} else if archive := filepath.Join(dir, sp.archive); fileExists(archive) {
		parts, err = loadCIFARArchiveFile(sp, archive)
	} else {
		all := slices.Concat(sp.trainFiles, sp.testFiles)
		return nil, nil, fmt.Errorf("%s: no %s data in %s: expected %s in it or in %s, or the archive %s",
			sp.fn, sp.name, dir, strings.Join(all, ", "), filepath.Join(dir, sp.subdir), filepath.Join(dir, sp.archive))
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", sp.fn, err)
	}
	trainSet = parts.imageSet(sp, sp.setPrefix+"-train", sp.trainFiles)
	testSet = parts.imageSet(sp, sp.setPrefix+"-test", sp.testFiles)
	return trainSet, testSet, nil
}

// findCIFARDir returns dir or dir/<subdir>, whichever holds any of the
// distribution's .bin files.
func findCIFARDir(sp *cifarSpec, dir string) (string, bool) {
	for _, d := range []string{dir, filepath.Join(dir, sp.subdir)} {
		for _, f := range slices.Concat(sp.trainFiles, sp.testFiles) {
			if fileExists(filepath.Join(d, f)) {
				return d, true
			}
		}
	}
	return "", false
}

func fileExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}

// loadCIFARDir reads every file of the distribution from dir.
func loadCIFARDir(sp *cifarSpec, dir string) (*cifarParts, error) {
	parts := &cifarParts{chunks: map[string]*cifarChunk{}}
	for _, name := range slices.Concat(sp.trainFiles, sp.testFiles) {
		chunk, err := readCIFARFile(sp, filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		parts.chunks[name] = chunk
	}
	meta := filepath.Join(dir, sp.metaFile)
	if f, err := os.Open(meta); err == nil {
		defer f.Close()
		parts.classNames, err = readCIFARClassNames(sp, meta, f)
		if err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return parts, nil
}

func readCIFARFile(sp *cifarSpec, name string) (*cifarChunk, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err // *PathError names the file.
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.IsDir() {
		return nil, fmt.Errorf("%s: is a directory, expected a %s binary file", name, sp.name)
	}
	return readCIFARRecords(sp, name, f, info.Size())
}

// readCIFARRecords reads size bytes of records from r, checking that size is
// a whole number of records, that the stream has that many bytes and that
// the labels are in range. name identifies r in errors.
func readCIFARRecords(sp *cifarSpec, name string, r io.Reader, size int64) (*cifarChunk, error) {
	recSize := int64(sp.recordSize())
	switch {
	case size == 0:
		return nil, fmt.Errorf("%s: empty file, expected %d-byte %s records", name, recSize, sp.name)
	case size < 0 || size%recSize != 0:
		return nil, fmt.Errorf("%s: %d bytes is not a whole number of %d-byte records", name, size, recSize)
	}
	n := size / recSize
	initial := int(min(n, cifarMaxInitialRecords))
	chunk := &cifarChunk{
		pixels: make([]uint8, 0, initial*cifarPixels),
		labels: make([]int32, 0, initial),
	}
	br := bufio.NewReaderSize(r, 1<<16)
	rec := make([]byte, recSize)
	const plane = cifarSide * cifarSide
	for i := range n {
		if got, err := io.ReadFull(br, rec); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%s: truncated: got %d bytes, expected %d (%d × %d-byte records): %w",
					name, i*recSize+int64(got), size, n, recSize, io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("%s: reading record %d of %d: %w", name, i, n, err)
		}
		if sp.labelBytes == 2 && int(rec[0]) >= sp.numCoarse {
			return nil, fmt.Errorf("%s: record %d: coarse label %d, expected in [0, %d)", name, i, rec[0], sp.numCoarse)
		}
		label := rec[sp.labelBytes-1]
		if int(label) >= sp.numClasses {
			kind := "label"
			if sp.labelBytes == 2 {
				kind = "fine label"
			}
			return nil, fmt.Errorf("%s: record %d: %s %d, expected in [0, %d)", name, i, kind, label, sp.numClasses)
		}
		chunk.labels = append(chunk.labels, int32(label))
		// Planar R, G, B -> HWC.
		src := rec[sp.labelBytes:]
		start := len(chunk.pixels)
		chunk.pixels = slices.Grow(chunk.pixels, cifarPixels)[:start+cifarPixels]
		dst := chunk.pixels[start:]
		red, green, blue := src[:plane], src[plane:2*plane], src[2*plane:3*plane]
		for p := range plane {
			dst[3*p] = red[p]
			dst[3*p+1] = green[p]
			dst[3*p+2] = blue[p]
		}
	}
	return chunk, nil
}

// readCIFARClassNames reads a class-names file: one name per line, blank
// lines ignored; there must be exactly numClasses names.
func readCIFARClassNames(sp *cifarSpec, name string, r io.Reader) ([]string, error) {
	b, err := io.ReadAll(io.LimitReader(r, cifarMaxMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: reading class names: %w", name, err)
	}
	if len(b) > cifarMaxMetaSize {
		return nil, fmt.Errorf("%s: class names file larger than %d bytes", name, cifarMaxMetaSize)
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); line != "" {
			names = append(names, line)
		}
	}
	if len(names) != sp.numClasses {
		return nil, fmt.Errorf("%s: %d class names, expected %d (one per line)", name, len(names), sp.numClasses)
	}
	return names, nil
}

func loadCIFARArchiveFile(sp *cifarSpec, archive string) (*cifarParts, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readCIFARArchive(sp, archive, f)
}

// readCIFARArchive reads the distribution's files from a .tar.gz stream,
// as a stream. Members are matched by base name; others are skipped. The
// whole stream is read, so that gzip verifies its checksum.
func readCIFARArchive(sp *cifarSpec, archive string, r io.Reader) (*cifarParts, error) {
	zr, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<16))
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty file, expected a gzip-compressed tar archive", archive)
		}
		return nil, fmt.Errorf("%s: not a valid gzip stream: %w", archive, err)
	}
	tr := tar.NewReader(zr)
	wanted := slices.Concat(sp.trainFiles, sp.testFiles)
	parts := &cifarParts{chunks: map[string]*cifarChunk{}}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading tar archive: %w", archive, archiveErr(err))
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		member := archive + ": " + hdr.Name
		switch base := path.Base(hdr.Name); {
		case slices.Contains(wanted, base):
			if parts.chunks[base] != nil {
				return nil, fmt.Errorf("%s: archive has %s twice", member, base)
			}
			chunk, err := readCIFARRecords(sp, member, tr, hdr.Size)
			if err != nil {
				return nil, archiveErr(err)
			}
			parts.chunks[base] = chunk
		case base == sp.metaFile:
			if parts.classNames, err = readCIFARClassNames(sp, member, tr); err != nil {
				return nil, archiveErr(err)
			}
		}
	}
	// Read to the end of the gzip stream, which verifies its checksum.
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("%s: reading gzip stream: %w", archive, archiveErr(err))
	}
	var missing []string
	for _, f := range wanted {
		if parts.chunks[f] == nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: archive has no %s (expected %s/%s)",
			archive, strings.Join(missing, ", "), sp.subdir, missing[0])
	}
	return parts, nil
}

// archiveErr describes a premature end of a compressed stream as truncation.
func archiveErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "truncated") {
		return fmt.Errorf("%w (truncated archive)", err)
	}
	return err
}

// imageSet concatenates the given files' records into an ImageSet.
func (p *cifarParts) imageSet(sp *cifarSpec, name string, files []string) *ImageSet {
	n := 0
	for _, f := range files {
		n += len(p.chunks[f].labels)
	}
	set := &ImageSet{
		Name:       name,
		N:          n,
		H:          cifarSide,
		W:          cifarSide,
		C:          3,
		NumClasses: sp.numClasses,
		ClassNames: slices.Clone(p.classNames),
		Pixels:     make([]uint8, 0, n*cifarPixels),
		Labels:     make([]int32, 0, n),
		Mean:       slices.Clone(CIFARMean[:]),
		Std:        slices.Clone(CIFARStd[:]),
	}
	for _, f := range files {
		c := p.chunks[f]
		set.Pixels = append(set.Pixels, c.pixels...)
		set.Labels = append(set.Labels, c.labels...)
		p.chunks[f] = nil // Let the chunk be collected.
	}
	return set
}
