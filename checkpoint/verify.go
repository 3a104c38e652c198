package checkpoint

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/compute/dtypes"
)

// Size limits of the files of a checkpoint read into memory.
const (
	maxManifestSize = 1 << 16
	maxMetaSize     = 1 << 28
	maxStateSize    = 1 << 26
	maxGzipRatio    = 1032 // deflate's maximum compression ratio.
)

// Checkpoint holds the verified contents of a checkpoint (see Verify and Latest).
type Checkpoint struct {
	// Dir is the checkpoint directory and Name the checkpoint's name.
	Dir, Name string
	// Verified tells whether the files were checked against a manifest (checkpoints written before
	// manifests existed, in a directory without any, are only checked for consistency).
	Verified bool

	meta     metadata
	metaJSON []byte
	bin      []byte
	state    []byte // nil if the checkpoint has none.
}

// Corruptf returns an error wrapping ErrCorrupt with the formatted message, for callers' own checks
// of a checkpoint.
func Corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// readLimited reads a whole file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, Corruptf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// parseManifest parses a manifest into file name -> SHA-256.
func parseManifest(path string, b []byte) (map[string][sha256.Size]byte, error) {
	sums := map[string][sha256.Size]byte{}
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		hexSum, file, ok := strings.Cut(line, "  ")
		raw, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(raw) != sha256.Size || file == "" || strings.ContainsAny(file, `/\`) {
			return nil, Corruptf("%s: line %d is not \"<sha256>  <file>\"", path, i+1)
		}
		if _, dup := sums[file]; dup {
			return nil, Corruptf("%s: %s listed twice", path, file)
		}
		var sum [sha256.Size]byte
		copy(sum[:], raw)
		sums[file] = sum
	}
	return sums, nil
}

// Verify reads and verifies checkpoint name of dir, which must have a manifest (see read).
func Verify(dir, name string) (*Checkpoint, error) {
	return read(dir, name, true)
}

// read reads and verifies checkpoint name of dir. With a manifest, every file it lists
// must have its checksum and the metadata and data files must be listed; without (only when
// requireManifest is false: directories written before manifests existed) the files are only
// checked for consistency. The metadata must describe the data file exactly (positions, lengths,
// shapes, dtypes); the state is checked by the caller (see Checkpoint.DecodeState). Errors wrap
// ErrCorrupt and name the faulty file.
func read(dir, name string, requireManifest bool) (*Checkpoint, error) {
	c := &Checkpoint{Dir: dir, Name: name}
	path := func(suffix string) string { return filepath.Join(dir, name+suffix) }
	var sums map[string][sha256.Size]byte
	mb, err := readLimited(path(ManifestSuffix), maxManifestSize)
	switch {
	case err == nil:
		if sums, err = parseManifest(path(ManifestSuffix), mb); err != nil {
			return nil, err
		}
		c.Verified = true
	case errors.Is(err, os.ErrNotExist) && !requireManifest:
	case errors.Is(err, os.ErrNotExist):
		return nil, Corruptf("%s is missing: the checkpoint is incomplete (interrupted while saving?)",
			path(ManifestSuffix))
	default:
		return nil, fmt.Errorf("reading checkpoint manifest: %w", err)
	}
	check := func(suffix string, b []byte) error {
		if sums == nil {
			return nil
		}
		want, ok := sums[name+suffix]
		if !ok {
			return Corruptf("%s does not list %s", path(ManifestSuffix), name+suffix)
		}
		if got := sha256.Sum256(b); got != want {
			return Corruptf("%s (%d bytes) does not match its SHA-256 in %s: the file is truncated or corrupt",
				path(suffix), len(b), name+ManifestSuffix)
		}
		return nil
	}
	for file := range sums {
		switch file {
		case name + MetaSuffix, name + DataSuffix, name + StateSuffix:
		default:
			return nil, Corruptf("%s lists %s, which is not a file of checkpoint %s", path(ManifestSuffix), file, name)
		}
	}

	readFile := func(suffix string, limit int64) ([]byte, error) {
		b, err := readLimited(path(suffix), limit)
		if errors.Is(err, os.ErrNotExist) {
			return nil, Corruptf("%s is missing", path(suffix))
		}
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint: %w", err)
		}
		return b, check(suffix, b)
	}
	if c.metaJSON, err = readFile(MetaSuffix, maxMetaSize); err != nil {
		return nil, err
	}
	binInfo, err := os.Stat(path(DataSuffix))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, Corruptf("%s is missing", path(DataSuffix))
		}
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if c.bin, err = readFile(DataSuffix, max(binInfo.Size(), 0)); err != nil {
		return nil, err
	}
	_, stateListed := sums[name+StateSuffix]
	if stateListed || sums == nil {
		sb, err := readFile(StateSuffix, maxStateSize)
		switch {
		case err == nil:
			c.state = sb
		case sums == nil && errors.Is(err, ErrCorrupt) && !fileExists(path(StateSuffix)):
			// Unverified checkpoints need not have a state.
		default:
			return nil, err
		}
	}
	if err := json.Unmarshal(c.metaJSON, &c.meta); err != nil {
		return nil, Corruptf("%s: %v", path(MetaSuffix), err)
	}
	if err := c.checkData(); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeState decodes the checkpoint's state (JSON, see Save) into v, strictly (unknown fields are
// an error), and validates it when v has a Validate() error method. A state that does not decode or
// validate is a corruption: the error wraps ErrCorrupt and names the state file. It reports whether
// the checkpoint has a state (v is left as it is when it has none).
func (c *Checkpoint) DecodeState(v any) (bool, error) {
	if c.state == nil {
		return false, nil
	}
	path := filepath.Join(c.Dir, c.Name+StateSuffix)
	dec := json.NewDecoder(bytes.NewReader(c.state))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return true, Corruptf("%s: %v", path, err)
	}
	if val, ok := v.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			return true, Corruptf("%s: %v", path, err)
		}
	}
	return true, nil
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// metadata mirrors GoMLX's checkpoint metadata file (the JSON of gomlxckpt.Handler.Save).
type metadata struct {
	Params    []param
	Variables []variable
	BinFormat string
}

type param struct {
	Scope, Key string
	Value      any
	ValueType  string
}

type variable struct {
	ParameterName string
	Dimensions    []int
	DType         dtypes.DType
	Pos, Length   int
}

// variableKeyPrefix prefixes the variable paths in GoMLX's checkpoint metadata.
const variableKeyPrefix = "var:"

// allowedDTypes are the dtypes accepted in checkpoints (the packed sub-byte ones are not).
var allowedDTypes = []dtypes.DType{dtypes.Bool, dtypes.Int8, dtypes.Int16, dtypes.Int32, dtypes.Int64,
	dtypes.Uint8, dtypes.Uint16, dtypes.Uint32, dtypes.Uint64, dtypes.Float16, dtypes.BFloat16,
	dtypes.Float32, dtypes.Float64, dtypes.Complex64, dtypes.Complex128}

// checkData checks the metadata against the data file: known dtypes, non-negative dimensions,
// lengths matching the shapes, contiguous positions, and a data size equal to their sum.
func (c *Checkpoint) checkData() error {
	jsonPath := filepath.Join(c.Dir, c.Name+MetaSuffix)
	binPath := filepath.Join(c.Dir, c.Name+DataSuffix)
	total := 0
	seen := map[string]bool{}
	for i, v := range c.meta.Variables {
		if !strings.HasPrefix(v.ParameterName, variableKeyPrefix+"/") || seen[v.ParameterName] {
			return Corruptf("%s: variable #%d has an invalid or repeated name %q", jsonPath, i, v.ParameterName)
		}
		seen[v.ParameterName] = true
		if !slices.Contains(allowedDTypes, v.DType) {
			return Corruptf("%s: variable %s has unsupported dtype %s", jsonPath, v.ParameterName, v.DType)
		}
		if len(v.Dimensions) > 16 {
			return Corruptf("%s: variable %s has rank %d", jsonPath, v.ParameterName, len(v.Dimensions))
		}
		size := v.DType.Size()
		for _, d := range v.Dimensions {
			if d < 0 || (d > 0 && size > math.MaxInt32/d) {
				return Corruptf("%s: variable %s has invalid dimensions %v", jsonPath, v.ParameterName, v.Dimensions)
			}
			size *= d
		}
		if v.Length != size || v.Pos != total {
			return Corruptf("%s: variable %s (%s%v) is %d bytes at %d, expected %d bytes at %d",
				jsonPath, v.ParameterName, v.DType, v.Dimensions, v.Length, v.Pos, size, total)
		}
		if total > math.MaxInt-size {
			return Corruptf("%s: the variables are too large", jsonPath)
		}
		total += size
	}
	dataLen, err := c.dataLength(total)
	if err != nil {
		return err
	}
	if dataLen != total {
		return Corruptf("%s holds %d bytes of variables, but %s describes %d: the checkpoint is truncated or corrupt",
			binPath, dataLen, jsonPath, total)
	}
	if total == 0 && len(c.meta.Variables) > 0 {
		return Corruptf("%s: %d variables of 0 bytes", jsonPath, len(c.meta.Variables))
	}
	return nil
}

// gomlxBinHeader starts GoMLX's compressed data files.
const gomlxBinHeader = "gomlx_checkpointss\x04gzip"

// dataLength returns the number of bytes of variable data in the data file: its length, or for a
// gzip-compressed (GoMLX's default) file, its decompressed length (read up to want+1 bytes).
func (c *Checkpoint) dataLength(want int) (int, error) {
	binPath := filepath.Join(c.Dir, c.Name+DataSuffix)
	if !bytes.HasPrefix(c.bin, []byte(gomlxBinHeader[:18])) {
		return len(c.bin), nil
	}
	if !bytes.HasPrefix(c.bin, []byte(gomlxBinHeader)) {
		return 0, Corruptf("%s: unknown data file header", binPath)
	}
	compressed := c.bin[len(gomlxBinHeader):]
	if want/maxGzipRatio > len(compressed)+1 {
		return 0, Corruptf("%s: %d compressed bytes cannot hold %d bytes of variables", binPath, len(compressed), want)
	}
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return 0, Corruptf("%s: %v", binPath, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, int64(want)+1))
	if err != nil {
		return 0, Corruptf("%s: %v", binPath, err)
	}
	return int(n), nil
}

// Latest reads and verifies the newest complete checkpoint of dir: the newest with a
// manifest, or for a directory without manifests, the newest one. It is an error for it to be
// corrupt (the error names the file) or for dir to hold no checkpoint.
func Latest(dir string) (*Checkpoint, error) {
	entries, err := Scan(dir)
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	legacy := IsLegacy(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if (legacy && !e.HasMeta) || (!legacy && !e.Complete()) {
			continue
		}
		return read(dir, e.Name, !legacy)
	}
	return nil, fmt.Errorf("no checkpoint in %s", dir)
}
