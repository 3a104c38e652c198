package train

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/seqconv/seqconv/internal/atomicfile"
)

// EpochResult are the statistics of one epoch: one row of results.csv and one line of
// results.jsonl (with the keys of ResultsHeader).
type EpochResult struct {
	// Epoch counts from 1.
	Epoch int
	// TrainLoss and TrainError (top-1, %) are means over the epoch's training batches, with the
	// model in training mode (dropout, batch statistics) as it was being updated.
	TrainLoss, TrainError float64
	// ValidLoss (cross-entropy without label smoothing), ValidError and ValidTop5Error (%) are
	// computed on the validation set at the end of the epoch, in inference mode.
	ValidLoss, ValidError, ValidTop5Error float64
	// LR is the learning rate used during the epoch.
	LR float64
	// Seconds is the wall time of the epoch (training and evaluation; for an epoch resumed in
	// the middle, from the resume); ImagesPerSecond the training throughput (training images /
	// training time).
	Seconds, ImagesPerSecond float64
}

// epochResultJSON is the JSON form of an EpochResult.
type epochResultJSON struct {
	Epoch           int       `json:"epoch"`
	TrainLoss       jsonFloat `json:"train_loss"`
	TrainError      jsonFloat `json:"train_error"`
	ValidLoss       jsonFloat `json:"valid_loss"`
	ValidError      jsonFloat `json:"valid_error"`
	ValidTop5Error  jsonFloat `json:"valid_top5_error"`
	LR              jsonFloat `json:"lr"`
	Seconds         jsonFloat `json:"seconds"`
	ImagesPerSecond jsonFloat `json:"images_per_second"`
}

// MarshalJSON implements json.Marshaler: the keys are those of ResultsHeader, and NaN and ±Inf
// are written as the strings "NaN", "+Inf" and "-Inf".
func (r EpochResult) MarshalJSON() ([]byte, error) {
	return json.Marshal(epochResultJSON{Epoch: r.Epoch, TrainLoss: jsonFloat(r.TrainLoss),
		TrainError: jsonFloat(r.TrainError), ValidLoss: jsonFloat(r.ValidLoss), ValidError: jsonFloat(r.ValidError),
		ValidTop5Error: jsonFloat(r.ValidTop5Error), LR: jsonFloat(r.LR), Seconds: jsonFloat(r.Seconds),
		ImagesPerSecond: jsonFloat(r.ImagesPerSecond)})
}

// UnmarshalJSON implements json.Unmarshaler (see MarshalJSON).
func (r *EpochResult) UnmarshalJSON(b []byte) error {
	var j epochResultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	*r = EpochResult{Epoch: j.Epoch, TrainLoss: float64(j.TrainLoss), TrainError: float64(j.TrainError),
		ValidLoss: float64(j.ValidLoss), ValidError: float64(j.ValidError), ValidTop5Error: float64(j.ValidTop5Error),
		LR: float64(j.LR), Seconds: float64(j.Seconds), ImagesPerSecond: float64(j.ImagesPerSecond)}
	return nil
}

// ResultsHeader is the header line of results.csv, and the keys of the objects of results.jsonl.
var ResultsHeader = []string{"epoch", "train_loss", "train_error", "valid_loss", "valid_error",
	"valid_top5_error", "lr", "seconds", "images_per_second"}

// csvRow formats an EpochResult as a row of results.csv.
func (r EpochResult) csvRow() []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', 8, 64) }
	return []string{strconv.Itoa(r.Epoch), f(r.TrainLoss), f(r.TrainError), f(r.ValidLoss),
		f(r.ValidError), f(r.ValidTop5Error), f(r.LR), strconv.FormatFloat(r.Seconds, 'f', 3, 64),
		strconv.FormatFloat(r.ImagesPerSecond, 'f', 1, 64)}
}

// resultsWriter appends epoch results to results.csv and results.jsonl.
type resultsWriter struct {
	csvFile, jsonl *os.File
}

// openResults (re)writes results.csv (header included) and results.jsonl of dir with the rows of
// history, atomically, and opens them for appending: a new run starts them empty, a resumed one
// truncates them back to the epochs of its checkpoint.
func openResults(dir string, history []EpochResult) (*resultsWriter, error) {
	var csvBuf, jsonBuf bytes.Buffer
	cw := csv.NewWriter(&csvBuf)
	_ = cw.Write(ResultsHeader)
	for _, h := range history {
		_ = cw.Write(h.csvRow())
		b, err := json.Marshal(h)
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", ResultsJSONFile, err)
		}
		jsonBuf.Write(append(b, '\n'))
	}
	cw.Flush()
	w := &resultsWriter{}
	for _, f := range []struct {
		name string
		b    []byte
		dst  **os.File
	}{{ResultsFile, csvBuf.Bytes(), &w.csvFile}, {ResultsJSONFile, jsonBuf.Bytes(), &w.jsonl}} {
		if err := atomicfile.WriteBytes(filepath.Join(dir, f.name), f.b); err != nil {
			_ = w.close()
			return nil, fmt.Errorf("writing %s: %w", f.name, err)
		}
		file, err := os.OpenFile(filepath.Join(dir, f.name), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			_ = w.close()
			return nil, fmt.Errorf("opening %s: %w", f.name, err)
		}
		*f.dst = file
	}
	return w, nil
}

// write appends one epoch to both files (each flushed and synced).
func (w *resultsWriter) write(r EpochResult) error {
	var buf bytes.Buffer
	cw := csv.NewWriter(&buf)
	_ = cw.Write(r.csvRow())
	cw.Flush()
	if err := appendSync(w.csvFile, buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", ResultsFile, err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", ResultsJSONFile, err)
	}
	if err := appendSync(w.jsonl, append(b, '\n')); err != nil {
		return fmt.Errorf("writing %s: %w", ResultsJSONFile, err)
	}
	return nil
}

func appendSync(f *os.File, b []byte) error {
	if _, err := f.Write(b); err != nil {
		return err
	}
	return f.Sync()
}

// close closes both files.
func (w *resultsWriter) close() error {
	var first error
	for _, f := range []**os.File{&w.csvFile, &w.jsonl} {
		if *f != nil {
			if err := (*f).Close(); err != nil && first == nil {
				first = fmt.Errorf("closing %s: %w", filepath.Base((*f).Name()), err)
			}
			*f = nil
		}
	}
	return first
}

// ReadResults reads the epochs of a run directory: its results.jsonl (ResultsJSONFile), or for a
// run without one (written by an older seqconv, or by hand), its results.csv (ResultsFile).
func ReadResults(runDir string) ([]EpochResult, error) {
	path := filepath.Join(runDir, ResultsJSONFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return readResultsCSV(filepath.Join(runDir, ResultsFile))
	}
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	defer f.Close()
	var out []EpochResult
	dec := json.NewDecoder(f)
	for {
		var r EpochResult
		err := dec.Decode(&r)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, len(out)+1, err)
		}
		out = append(out, r)
	}
}

// requiredResultsColumns are the columns a results.csv must have; the other columns of
// ResultsHeader are NaN when missing.
var requiredResultsColumns = []string{"epoch", "train_loss", "train_error", "valid_loss", "valid_error", "lr"}

// readResultsCSV reads a results.csv: columns found by their header names (see ResultsHeader and
// requiredResultsColumns), in any order.
func readResultsCSV(path string) ([]EpochResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s is empty (no header)", path)
	}
	index := map[string]int{}
	for i, name := range rows[0] {
		index[strings.TrimSpace(name)] = i
	}
	for _, name := range requiredResultsColumns {
		if _, ok := index[name]; !ok {
			return nil, fmt.Errorf("%s has no %q column (header %q)", path, name, strings.Join(rows[0], ","))
		}
	}
	out := make([]EpochResult, 0, len(rows)-1)
	for r, row := range rows[1:] {
		parse := func(name string) (float64, error) {
			i, ok := index[name]
			if !ok {
				return math.NaN(), nil
			}
			if i >= len(row) {
				return 0, fmt.Errorf("%s row %d has no %s", path, r+2, name)
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(row[i]), 64)
			if err != nil {
				return 0, fmt.Errorf("%s row %d, %s: %w", path, r+2, name, err)
			}
			return v, nil
		}
		var er EpochResult
		var epoch float64
		for _, c := range []struct {
			name string
			dst  *float64
		}{{"epoch", &epoch}, {"train_loss", &er.TrainLoss}, {"train_error", &er.TrainError},
			{"valid_loss", &er.ValidLoss}, {"valid_error", &er.ValidError}, {"valid_top5_error", &er.ValidTop5Error},
			{"lr", &er.LR}, {"seconds", &er.Seconds}, {"images_per_second", &er.ImagesPerSecond}} {
			if *c.dst, err = parse(c.name); err != nil {
				return nil, err
			}
		}
		er.Epoch = int(epoch)
		out = append(out, er)
	}
	return out, nil
}
