package train

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
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
	"github.com/gomlx/gomlx/support/exceptions"
	"github.com/seqconv/seqconv/internal/atomicfile"
)

// A checkpoint named N (e.g. "checkpoint-n0000012-step-00000960") in a checkpoint directory is
// made of these files, written in this order, each atomically (a temporary file, fsync, rename):
//
//   - N.bin: the values of the store's variables, GoMLX's checkpoint data format, uncompressed;
//   - N.state: the training position (epoch, step, metric sums, history, best epoch), JSON;
//   - N.json: GoMLX's checkpoint metadata (variable names, shapes, dtypes, positions);
//   - N.sha256: the manifest, in sha256sum's format: the SHA-256 of each other file. It is
//     written last: a checkpoint without it is incomplete (interrupted while saving).
//
// The .bin and .json files are GoMLX's, so GoMLX's checkpoint package can read the directory.
const (
	checkpointPrefix   = "checkpoint-"
	checkpointJSON     = checkpoint.JsonNameSuffix // ".json"
	checkpointBin      = checkpoint.BinDataSuffix  // ".bin"
	checkpointState    = ".state"
	checkpointManifest = ".sha256"
	tmpFilePrefix      = atomicfile.TempPrefix
	corruptPrefix      = "corrupt-"
	incompletePrefix   = "incomplete-"
	stateFormat        = 1
)

// ErrCorruptCheckpoint is wrapped by the errors for checkpoints that are truncated, corrupt or
// incomplete.
var ErrCorruptCheckpoint = errors.New("corrupt checkpoint")

// ckptMeta mirrors GoMLX's checkpoint metadata file (the JSON of checkpoint.Handler.Save).
type ckptMeta struct {
	Params    []ckptParam
	Variables []ckptVar
	BinFormat string
}

type ckptParam struct {
	Scope, Key string
	Value      any
	ValueType  string
}

type ckptVar struct {
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

// trainState is the training position saved with a checkpoint (N.state).
type trainState struct {
	Format int `json:"format"`
	// Epoch is the number of completed epochs; Step the number of steps of the next epoch
	// already trained (0 at an epoch boundary, StepsPerEpoch when its training is done but it
	// was not evaluated yet).
	Epoch         int   `json:"epoch"`
	Step          int   `json:"step"`
	StepsPerEpoch int   `json:"steps_per_epoch"`
	GlobalStep    int64 `json:"global_step"`
	// TrainLossSum and TrainErrorSum are the sums of the batch losses and errors of those Step
	// steps; TrainSeconds their training time.
	TrainLossSum  jsonFloat `json:"train_loss_sum"`
	TrainErrorSum jsonFloat `json:"train_error_sum"`
	TrainSeconds  jsonFloat `json:"train_seconds"`
	// BestValidError, BestEpoch (0: none yet) and BestCheckpoint (its checkpoint name) describe the
	// best epoch so far.
	BestValidError jsonFloat `json:"best_valid_error"`
	BestEpoch      int       `json:"best_epoch"`
	BestCheckpoint string    `json:"best_checkpoint,omitempty"`
	// History has the results of the Epoch completed epochs.
	History []EpochResult `json:"history"`
}

// validate checks the state is consistent.
func (s *trainState) validate() error {
	switch {
	case s.Format != stateFormat:
		return fmt.Errorf("state format %d, expected %d", s.Format, stateFormat)
	case s.Epoch < 0 || s.Step < 0 || s.StepsPerEpoch < 0 || s.GlobalStep < 0 || s.BestEpoch < 0:
		return errors.New("negative epoch, step or global step")
	case s.Step > s.StepsPerEpoch:
		return fmt.Errorf("step %d of an epoch of %d steps", s.Step, s.StepsPerEpoch)
	case len(s.History) != s.Epoch:
		return fmt.Errorf("%d epochs completed but a history of %d", s.Epoch, len(s.History))
	case s.BestEpoch > s.Epoch:
		return fmt.Errorf("best epoch %d after the %d completed ones", s.BestEpoch, s.Epoch)
	}
	for i, h := range s.History {
		if h.Epoch != i+1 {
			return fmt.Errorf("history entry %d is epoch %d", i+1, h.Epoch)
		}
	}
	return nil
}

// jsonFloat is a float64 whose JSON form also represents NaN and ±Inf (as strings).
type jsonFloat float64

// MarshalJSON implements json.Marshaler.
func (f jsonFloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	switch {
	case math.IsNaN(x):
		return []byte(`"NaN"`), nil
	case math.IsInf(x, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(x, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		switch s {
		case "NaN":
			*f = jsonFloat(math.NaN())
		case "+Inf", "Inf":
			*f = jsonFloat(math.Inf(1))
		case "-Inf":
			*f = jsonFloat(math.Inf(-1))
		default:
			return fmt.Errorf("invalid number %q", s)
		}
		return nil
	}
	var x float64
	if err := json.Unmarshal(b, &x); err != nil {
		return err
	}
	*f = jsonFloat(x)
	return nil
}

// checkpointName returns the name of checkpoint number seq, saved at globalStep. Names sort in
// save order.
func checkpointName(seq int, globalStep int64) string {
	return fmt.Sprintf("%sn%07d-step-%08d", checkpointPrefix, seq, globalStep)
}

var checkpointSeqRegex = regexp.MustCompile(`^checkpoint-n(\d+)-`)

// ckptEntry lists the files of one checkpoint found in a directory.
type ckptEntry struct {
	name                                   string
	hasJSON, hasBin, hasState, hasManifest bool
}

func (e ckptEntry) seq() int {
	m := checkpointSeqRegex.FindStringSubmatch(e.name)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// complete reports whether the checkpoint was completely written: it has its manifest, written
// last (files missing then are a corruption, which readCheckpoint reports).
func (e ckptEntry) complete() bool { return e.hasManifest }

// files returns the existing files of the checkpoint.
func (e ckptEntry) files() []string {
	var files []string
	for _, f := range []struct {
		has    bool
		suffix string
	}{{e.hasManifest, checkpointManifest}, {e.hasJSON, checkpointJSON}, {e.hasState, checkpointState},
		{e.hasBin, checkpointBin}} {
		if f.has {
			files = append(files, e.name+f.suffix)
		}
	}
	return files
}

// scanCheckpoints lists the checkpoints of dir (complete or not), sorted oldest first. A missing
// dir has none.
func scanCheckpoints(dir string) ([]ckptEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byName := map[string]*ckptEntry{}
	for _, de := range entries {
		n := de.Name()
		if de.IsDir() || !strings.HasPrefix(n, checkpointPrefix) {
			continue
		}
		for _, s := range []string{checkpointJSON, checkpointBin, checkpointState, checkpointManifest} {
			base, ok := strings.CutSuffix(n, s)
			if !ok || base == checkpointPrefix {
				continue
			}
			e := byName[base]
			if e == nil {
				e = &ckptEntry{name: base}
				byName[base] = e
			}
			switch s {
			case checkpointJSON:
				e.hasJSON = true
			case checkpointBin:
				e.hasBin = true
			case checkpointState:
				e.hasState = true
			case checkpointManifest:
				e.hasManifest = true
			}
			break
		}
	}
	list := make([]ckptEntry, 0, len(byName))
	for _, e := range byName {
		list = append(list, *e)
	}
	slices.SortFunc(list, func(a, b ckptEntry) int { return strings.Compare(a.name, b.name) })
	return list, nil
}

// listCheckpoints returns the names of the checkpoints of dir that GoMLX would list (those with a
// metadata file), sorted oldest first. A missing dir has none.
func listCheckpoints(dir string) ([]string, error) {
	entries, err := scanCheckpoints(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.hasJSON {
			names = append(names, e.name)
		}
	}
	return names, nil
}

// writeFileAtomic writes dir/name atomically (see atomicfile.Write) and returns the SHA-256 of what write
// wrote.
func writeFileAtomic(dir, name string, write func(w io.Writer) error) (sum [sha256.Size]byte, err error) {
	h := sha256.New()
	err = atomicfile.Write(filepath.Join(dir, name), func(w io.Writer) error { return write(io.MultiWriter(w, h)) })
	if err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// writeBytesAtomic is writeFileAtomic for a byte slice.
func writeBytesAtomic(dir, name string, b []byte) ([sha256.Size]byte, error) {
	return writeFileAtomic(dir, name, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// syncDir fsyncs a directory, so that the renames into it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// manifestLine formats one line of a manifest (sha256sum's format).
func manifestLine(sum [sha256.Size]byte, file string) string {
	return hex.EncodeToString(sum[:]) + "  " + file + "\n"
}

// saveCheckpoint writes the variables of store and the training state st (nil: none) as a new
// checkpoint of dir (see writeCheckpoint), named after st.GlobalStep, and returns its name.
func saveCheckpoint(store *model.Store, dir string, st *trainState, keep int) (string, error) {
	var globalStep int64
	if st != nil {
		globalStep = st.GlobalStep
	}
	name, err := nextCheckpointName(dir, globalStep)
	if err != nil {
		return "", err
	}
	return name, writeCheckpoint(store, dir, name, st, keep)
}

// nextCheckpointName returns the name of the next checkpoint saved in dir at globalStep: its
// sequence number follows those of dir's checkpoints.
func nextCheckpointName(dir string, globalStep int64) (string, error) {
	entries, err := scanCheckpoints(dir)
	if err != nil {
		return "", fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	seq := 0
	for _, e := range entries {
		seq = max(seq, e.seq()+1)
	}
	return checkpointName(seq, globalStep), nil
}

// writeCheckpoint writes the variables of store (every one must have a value) and the training
// state st (nil: none) as checkpoint name of dir (created if needed). Each file is written
// atomically and the manifest last, then the directory is synced: an interrupted save leaves an
// incomplete checkpoint, which readers skip, never a truncated one. Then the checkpoints older than
// the newest keep complete ones are removed (keep <= 0: none).
func writeCheckpoint(store *model.Store, dir, name string, st *trainState, keep int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating checkpoint directory: %w", err)
	}
	// Variables, in the store's order, into N.bin.
	meta := ckptMeta{BinFormat: checkpoint.BinUncompressed.String(), Variables: []ckptVar{}}
	var manifest strings.Builder
	binSum, err := writeFileAtomic(dir, name+checkpointBin, func(w io.Writer) error {
		pos := 0
		for v := range store.IterVariables() {
			t, err := v.Value()
			if err != nil || t == nil {
				return fmt.Errorf("variable %s has no value", v.Path())
			}
			var n int
			var werr error
			if err := t.ConstBytes(func(b []byte) { n, werr = w.Write(b) }); err != nil {
				return fmt.Errorf("variable %s: %w", v.Path(), err)
			}
			if werr != nil {
				return werr
			}
			meta.Variables = append(meta.Variables, ckptVar{ParameterName: variableKeyPrefix + v.Path(),
				Dimensions: slices.Clone(t.Shape().Dimensions), DType: t.DType(), Pos: pos, Length: n})
			pos += n
		}
		return nil
	})
	if err != nil {
		return err
	}
	manifest.WriteString(manifestLine(binSum, name+checkpointBin))
	if st != nil {
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the training state: %w", err)
		}
		sum, err := writeBytesAtomic(dir, name+checkpointState, append(b, '\n'))
		if err != nil {
			return err
		}
		manifest.WriteString(manifestLine(sum, name+checkpointState))
	}
	for path, value := range store.IterParams() {
		scope, key := model.SplitPath(path)
		meta.Params = append(meta.Params, ckptParam{Scope: scope, Key: key, Value: value, ValueType: fmt.Sprintf("%T", value)})
	}
	b, err := json.MarshalIndent(&meta, "", "\t")
	if err != nil {
		return fmt.Errorf("encoding the checkpoint metadata: %w", err)
	}
	sum, err := writeBytesAtomic(dir, name+checkpointJSON, append(b, '\n'))
	if err != nil {
		return err
	}
	manifest.WriteString(manifestLine(sum, name+checkpointJSON))
	if _, err := writeBytesAtomic(dir, name+checkpointManifest, []byte(manifest.String())); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if keep > 0 {
		if err := pruneCheckpoints(dir, keep); err != nil {
			return err
		}
	}
	return nil
}

// pruneCheckpoints removes the checkpoints of dir older than its newest keep complete ones, and
// leftover temporary files.
func pruneCheckpoints(dir string, keep int) error {
	entries, err := scanCheckpoints(dir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	kept := 0
	cut := -1 // Entries at or before cut are removed.
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].complete() {
			kept++
			if kept == keep {
				cut = i - 1
				break
			}
		}
	}
	for _, e := range entries[:cut+1] {
		if err := removeCheckpoint(dir, e); err != nil {
			return err
		}
	}
	removeTempFiles(dir)
	return nil
}

// removeCheckpoint removes the files of a checkpoint, the manifest first.
func removeCheckpoint(dir string, e ckptEntry) error {
	for _, f := range e.files() {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing old checkpoint file: %w", err)
		}
	}
	return nil
}

// removeTempFiles removes the temporary files of interrupted writes.
func removeTempFiles(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, de := range entries {
		if !de.IsDir() && strings.HasPrefix(de.Name(), tmpFilePrefix) {
			_ = os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// quarantineCheckpoint renames the files of a corrupt or incomplete checkpoint with prefix
// (corruptPrefix, incompletePrefix), so that they are kept for inspection, never deleted (they may be
// the user's only copy), but no longer listed.
func quarantineCheckpoint(dir string, e ckptEntry, prefix string) error {
	for _, f := range e.files() {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(dir, prefix+f)); err != nil {
			return fmt.Errorf("setting aside checkpoint file %s: %w", filepath.Join(dir, f), err)
		}
	}
	return nil
}

// Size limits of the files of a checkpoint read into memory.
const (
	maxManifestSize = 1 << 16
	maxMetaSize     = 1 << 28
	maxStateSize    = 1 << 26
	maxGzipRatio    = 1032 // deflate's maximum compression ratio.
)

// loadedCheckpoint holds the verified contents of a checkpoint.
type loadedCheckpoint struct {
	dir, name string
	meta      ckptMeta
	metaJSON  []byte
	bin       []byte
	state     *trainState // nil if the checkpoint has none.
	verified  bool        // whether a manifest was checked.
}

// corruptf returns an error wrapping ErrCorruptCheckpoint.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptCheckpoint, fmt.Sprintf(format, args...))
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
		return nil, corruptf("%s is larger than %d bytes", path, limit)
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
			return nil, corruptf("%s: line %d is not \"<sha256>  <file>\"", path, i+1)
		}
		if _, dup := sums[file]; dup {
			return nil, corruptf("%s: %s listed twice", path, file)
		}
		var sum [sha256.Size]byte
		copy(sum[:], raw)
		sums[file] = sum
	}
	return sums, nil
}

// readCheckpoint reads and verifies checkpoint name of dir. With a manifest, every file it lists
// must have its checksum and the metadata and data files must be listed; without (only when
// requireManifest is false: directories written before manifests existed) the files are only
// checked for consistency. The metadata must describe the data file exactly (positions, lengths,
// shapes, dtypes) and the state must be consistent. Errors wrap ErrCorruptCheckpoint and name the
// faulty file.
func readCheckpoint(dir, name string, requireManifest bool) (*loadedCheckpoint, error) {
	c := &loadedCheckpoint{dir: dir, name: name}
	path := func(suffix string) string { return filepath.Join(dir, name+suffix) }
	var sums map[string][sha256.Size]byte
	mb, err := readLimited(path(checkpointManifest), maxManifestSize)
	switch {
	case err == nil:
		if sums, err = parseManifest(path(checkpointManifest), mb); err != nil {
			return nil, err
		}
		c.verified = true
	case errors.Is(err, os.ErrNotExist) && !requireManifest:
	case errors.Is(err, os.ErrNotExist):
		return nil, corruptf("%s is missing: the checkpoint is incomplete (interrupted while saving?)",
			path(checkpointManifest))
	default:
		return nil, fmt.Errorf("reading checkpoint manifest: %w", err)
	}
	check := func(suffix string, b []byte) error {
		if sums == nil {
			return nil
		}
		want, ok := sums[name+suffix]
		if !ok {
			return corruptf("%s does not list %s", path(checkpointManifest), name+suffix)
		}
		if got := sha256.Sum256(b); got != want {
			return corruptf("%s (%d bytes) does not match its SHA-256 in %s: the file is truncated or corrupt",
				path(suffix), len(b), name+checkpointManifest)
		}
		return nil
	}
	for file := range sums {
		switch file {
		case name + checkpointJSON, name + checkpointBin, name + checkpointState:
		default:
			return nil, corruptf("%s lists %s, which is not a file of checkpoint %s", path(checkpointManifest), file, name)
		}
	}

	readFile := func(suffix string, limit int64) ([]byte, error) {
		b, err := readLimited(path(suffix), limit)
		if errors.Is(err, os.ErrNotExist) {
			return nil, corruptf("%s is missing", path(suffix))
		}
		if err != nil {
			return nil, fmt.Errorf("reading checkpoint: %w", err)
		}
		return b, check(suffix, b)
	}
	if c.metaJSON, err = readFile(checkpointJSON, maxMetaSize); err != nil {
		return nil, err
	}
	binInfo, err := os.Stat(path(checkpointBin))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, corruptf("%s is missing", path(checkpointBin))
		}
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	if c.bin, err = readFile(checkpointBin, max(binInfo.Size(), 0)); err != nil {
		return nil, err
	}
	_, stateListed := sums[name+checkpointState]
	if stateListed || sums == nil {
		sb, err := readFile(checkpointState, maxStateSize)
		switch {
		case err == nil:
			var st trainState
			dec := json.NewDecoder(bytes.NewReader(sb))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&st); err != nil {
				return nil, corruptf("%s: %v", path(checkpointState), err)
			}
			if err := st.validate(); err != nil {
				return nil, corruptf("%s: %v", path(checkpointState), err)
			}
			c.state = &st
		case sums == nil && errors.Is(err, ErrCorruptCheckpoint) && !fileExists(path(checkpointState)):
			// Unverified checkpoints need not have a state.
		default:
			return nil, err
		}
	}
	if err := json.Unmarshal(c.metaJSON, &c.meta); err != nil {
		return nil, corruptf("%s: %v", path(checkpointJSON), err)
	}
	if err := c.checkData(); err != nil {
		return nil, err
	}
	return c, nil
}

// fileExists reports whether path exists.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkData checks the metadata against the data file: known dtypes, non-negative dimensions,
// lengths matching the shapes, contiguous positions, and a data size equal to their sum.
func (c *loadedCheckpoint) checkData() error {
	jsonPath := filepath.Join(c.dir, c.name+checkpointJSON)
	binPath := filepath.Join(c.dir, c.name+checkpointBin)
	total := 0
	seen := map[string]bool{}
	for i, v := range c.meta.Variables {
		if !strings.HasPrefix(v.ParameterName, variableKeyPrefix+"/") || seen[v.ParameterName] {
			return corruptf("%s: variable #%d has an invalid or repeated name %q", jsonPath, i, v.ParameterName)
		}
		seen[v.ParameterName] = true
		if !slices.Contains(allowedDTypes, v.DType) {
			return corruptf("%s: variable %s has unsupported dtype %s", jsonPath, v.ParameterName, v.DType)
		}
		if len(v.Dimensions) > 16 {
			return corruptf("%s: variable %s has rank %d", jsonPath, v.ParameterName, len(v.Dimensions))
		}
		size := v.DType.Size()
		for _, d := range v.Dimensions {
			if d < 0 || (d > 0 && size > math.MaxInt32/d) {
				return corruptf("%s: variable %s has invalid dimensions %v", jsonPath, v.ParameterName, v.Dimensions)
			}
			size *= d
		}
		if v.Length != size || v.Pos != total {
			return corruptf("%s: variable %s (%s%v) is %d bytes at %d, expected %d bytes at %d",
				jsonPath, v.ParameterName, v.DType, v.Dimensions, v.Length, v.Pos, size, total)
		}
		if total > math.MaxInt-size {
			return corruptf("%s: the variables are too large", jsonPath)
		}
		total += size
	}
	dataLen, err := c.dataLength(total)
	if err != nil {
		return err
	}
	if dataLen != total {
		return corruptf("%s holds %d bytes of variables, but %s describes %d: the checkpoint is truncated or corrupt",
			binPath, dataLen, jsonPath, total)
	}
	if total == 0 && len(c.meta.Variables) > 0 {
		return corruptf("%s: %d variables of 0 bytes", jsonPath, len(c.meta.Variables))
	}
	return nil
}

// gomlxBinHeader starts GoMLX's compressed data files.
const gomlxBinHeader = "gomlx_checkpointss\x04gzip"

// dataLength returns the number of bytes of variable data in the data file: its length, or for a
// gzip-compressed (GoMLX's default) file, its decompressed length (read up to want+1 bytes).
func (c *loadedCheckpoint) dataLength(want int) (int, error) {
	binPath := filepath.Join(c.dir, c.name+checkpointBin)
	if !bytes.HasPrefix(c.bin, []byte(gomlxBinHeader[:18])) {
		return len(c.bin), nil
	}
	if !bytes.HasPrefix(c.bin, []byte(gomlxBinHeader)) {
		return 0, corruptf("%s: unknown data file header", binPath)
	}
	compressed := c.bin[len(gomlxBinHeader):]
	if want/maxGzipRatio > len(compressed)+1 {
		return 0, corruptf("%s: %d compressed bytes cannot hold %d bytes of variables", binPath, len(compressed), want)
	}
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return 0, corruptf("%s: %v", binPath, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, int64(want)+1))
	if err != nil {
		return 0, corruptf("%s: %v", binPath, err)
	}
	return int(n), nil
}

// attach attaches the checkpoint's values to store with a GoMLX checkpoint handler (which also
// restores the store's params), so that the model's variables get them when created.
func (c *loadedCheckpoint) attach(store *model.Store) (h *checkpoint.Handler, err error) {
	defer func() {
		if r := recover(); r != nil {
			h, err = nil, corruptf("%s: %v", filepath.Join(c.dir, c.name+checkpointJSON), r)
		}
	}()
	err = exceptions.TryCatch[error](func() {
		var herr error
		h, herr = checkpoint.Build(store).FromEmbed(string(c.metaJSON), c.bin).Done()
		if herr != nil {
			panic(herr)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint %s: %w", filepath.Join(c.dir, c.name), err)
	}
	return h, nil
}

// restore loads every variable of the checkpoint into store, in the saved order, as a resumed
// run needs them: the model's own variables and the optimizer, metric, step and random number
// generator state. The RNG state is marked non-trainable, as the store creates it.
func (c *loadedCheckpoint) restore(store *model.Store) error {
	if _, err := c.attach(store); err != nil {
		return err
	}
	err := exceptions.TryCatch[error](func() {
		for _, v := range c.meta.Variables {
			path := strings.TrimPrefix(v.ParameterName, variableKeyPrefix)
			if store.GetVariable(path) == nil {
				panic(fmt.Errorf("variable %s could not be loaded", path))
			}
		}
		if v := store.GetVariable(model.JoinPath("/", model.RNGStateVariableName)); v != nil {
			v.SetTrainable(false)
		}
	})
	if err != nil {
		return corruptf("%s: %v", filepath.Join(c.dir, c.name), err)
	}
	return nil
}

// values returns the checkpoint's variable values by path (for tests and comparisons).
func (c *loadedCheckpoint) values() (map[string]*tensors.Tensor, error) {
	store := model.NewStore()
	if err := c.restore(store); err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{}
	for v := range store.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return nil, err
		}
		out[v.Path()] = t
	}
	return out, nil
}

// isLegacy reports whether entries are GoMLX checkpoints written without manifests (by GoMLX
// itself or an older seqconv): none has a manifest or a training state.
func isLegacy(entries []ckptEntry) bool {
	return !slices.ContainsFunc(entries, func(e ckptEntry) bool { return e.hasManifest || e.hasState })
}

// latestCheckpoint reads and verifies the newest complete checkpoint of dir: the newest with a
// manifest, or for a directory without manifests, the newest one. It is an error for it to be
// corrupt (the error names the file) or for dir to hold no checkpoint.
func latestCheckpoint(dir string) (*loadedCheckpoint, error) {
	entries, err := scanCheckpoints(dir)
	if err != nil {
		return nil, fmt.Errorf("listing checkpoints in %s: %w", dir, err)
	}
	legacy := isLegacy(entries)
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if (legacy && !e.hasJSON) || (!legacy && !e.complete()) {
			continue
		}
		return readCheckpoint(dir, e.name, !legacy)
	}
	return nil, fmt.Errorf("no checkpoint in %s", dir)
}

// LoadCheckpoint attaches to store the latest checkpoint in dir (for a run directory, use
// filepath.Join(runDir, LatestDir) or filepath.Join(runDir, BestDir)), after verifying it: its
// files must match the SHA-256 sums of its manifest (checkpoints without one, in a directory
// whose checkpoints have manifests, are incomplete and skipped) and its metadata must describe its
// data exactly. A truncated or corrupt checkpoint is an error naming the file, wrapping
// ErrCorruptCheckpoint. As with GoMLX's checkpoint.Load, variable values are loaded lazily: they
// are set when a model graph built on store creates the variables. It fails if dir holds no
// checkpoint.
func LoadCheckpoint(store *model.Store, dir string) (*checkpoint.Handler, error) {
	c, err := latestCheckpoint(dir)
	if err != nil {
		return nil, fmt.Errorf("loading checkpoint: %w", err)
	}
	// GoMLX reads the newest checkpoint of a directory itself: let it when that is the verified
	// one, so that the handler knows its directory; otherwise load the verified bytes.
	if names, err := listCheckpoints(dir); err == nil && len(names) > 0 && names[len(names)-1] == c.name {
		h, err := checkpoint.Load(store).Dir(dir).Done()
		if err != nil {
			return nil, fmt.Errorf("loading checkpoint from %s: %w", dir, err)
		}
		return h, nil
	}
	h, err := c.attach(store)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return h, nil
}

// CheckpointInfo describes a checkpoint.
type CheckpointInfo struct {
	// Name is the checkpoint's name (its files are Dir/Name.*).
	Name, Dir string
	// HasState tells whether it holds a training position (checkpoints of WriteRun do not): Epoch
	// completed epochs and Step steps of the next one, at GlobalStep.
	HasState    bool
	Epoch, Step int
	GlobalStep  int64
	// BestEpoch and BestValidError are the best epoch so far and its validation error.
	BestEpoch      int
	BestValidError float64
}

// String describes the checkpoint's position, e.g. "checkpoint-n0000002-step-00000042 (after
// epoch 2)".
func (c CheckpointInfo) String() string {
	switch {
	case !c.HasState:
		return c.Name
	case c.Step == 0:
		return fmt.Sprintf("%s (after epoch %d)", c.Name, c.Epoch)
	default:
		return fmt.Sprintf("%s (epoch %d, step %d)", c.Name, c.Epoch+1, c.Step)
	}
}

// LatestCheckpointInfo verifies the latest checkpoint of dir, as LoadCheckpoint does, and
// describes it.
func LatestCheckpointInfo(dir string) (CheckpointInfo, error) {
	c, err := latestCheckpoint(dir)
	if err != nil {
		return CheckpointInfo{}, fmt.Errorf("%w", err)
	}
	info := CheckpointInfo{Name: c.name, Dir: dir}
	if st := c.state; st != nil {
		info.HasState, info.Epoch, info.Step, info.GlobalStep = true, st.Epoch, st.Step, st.GlobalStep
		info.BestEpoch, info.BestValidError = st.BestEpoch, float64(st.BestValidError)
	}
	return info, nil
}

// copyCheckpoint copies checkpoint name of srcDir into dstDir (created if needed), each file
// atomically and the manifest last, and then removes every other checkpoint of dstDir, so that it
// holds exactly that one.
func copyCheckpoint(srcDir, name, dstDir string) error {
	if err := os.MkdirAll(dstDir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dstDir, err)
	}
	for _, suffix := range []string{checkpointBin, checkpointState, checkpointJSON, checkpointManifest} {
		src := filepath.Join(srcDir, name+suffix)
		in, err := os.Open(src)
		if errors.Is(err, os.ErrNotExist) && suffix == checkpointState {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying checkpoint: %w", err)
		}
		_, err = writeFileAtomic(dstDir, name+suffix, func(w io.Writer) error {
			_, err := io.Copy(w, in)
			return err
		})
		_ = in.Close()
		if err != nil {
			return fmt.Errorf("copying checkpoint %s to %s: %w", src, dstDir, err)
		}
	}
	if err := syncDir(dstDir); err != nil {
		return err
	}
	entries, err := scanCheckpoints(dstDir)
	if err != nil {
		return fmt.Errorf("listing checkpoints in %s: %w", dstDir, err)
	}
	for _, e := range entries {
		if e.name != name {
			if err := removeCheckpoint(dstDir, e); err != nil {
				return err
			}
		}
	}
	removeTempFiles(dstDir)
	return nil
}
