package analysis

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/gomlx/compute"

	"github.com/seqconv/seqconv/internal/text"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

// KeyValue is one labelled value of a report (a row of a two-column table).
type KeyValue struct {
	Key, Value string
}

// hostConfigKeys are config.json keys describing the machine or software that ran the training; a
// report shows those present (train.Run may record some of them).
var hostConfigKeys = []string{"host", "hostname", "cpu", "cpus", "num_cpu", "gomaxprocs", "goos", "goarch",
	"go_version", "gomlx_version", "seqconv_version", "version"}

// ReportRun is one run directory of a report (see LoadReportRun).
type ReportRun struct {
	// Label names the run in the report (the model name, see LoadReportRun).
	Label string
	// Dir is the run directory.
	Dir string
	// Config is config.json as parsed (fields missing from the file are zero); ConfigJSON its text,
	// shown verbatim.
	Config     train.RunFile
	ConfigJSON string
	// HostInfo are the host-describing keys of config.json (see hostConfigKeys), if any.
	HostInfo []KeyValue
	// Stats and Components are the model's size and cost (models.Inspect, models.Summarize); Stats
	// is nil when they could not be computed.
	Stats      *models.Stats
	Components []models.LayerSummary
	// Curves are the run's per-epoch results (see ReadResults), nil when it has none.
	Curves *RunCurves
	// Checkpoint says which weights the heat maps show: "latest (checkpoint/)" or "best (best/)".
	Checkpoint string
	// Heatmaps are the weight visualizations of the run's SeqConv layers.
	Heatmaps []*Heatmap
	// Notes say what could not be shown and why (no results, no checkpoint...).
	Notes []string
}

// LoadReportRun reads what a report shows of a run directory written by train.Run (or seqconv
// train/import): config.json (required), the model summary (computed on backend with models.Inspect;
// skipped when backend is nil), the epoch results (train.ReadResults), and the heat maps of the latest
// checkpoint, or of the best one with best. Missing results or a missing checkpoint is not an error: the
// run's Notes say so.
func LoadReportRun(backend compute.Backend, dir string, best bool) (ReportRun, error) {
	r := ReportRun{Dir: dir, Label: filepath.Base(filepath.Clean(dir))}
	fi, err := os.Stat(dir)
	if err != nil {
		return r, fmt.Errorf("run directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return r, fmt.Errorf("run directory %s is not a directory", dir)
	}
	cfgPath := filepath.Join(dir, train.ConfigFile)
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return r, fmt.Errorf("%s is not a run directory: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &r.Config); err != nil {
		return r, fmt.Errorf("%s: %w", cfgPath, err)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") == nil {
		r.ConfigJSON = pretty.String()
	} else {
		r.ConfigJSON = string(raw)
	}
	r.HostInfo = hostInfo(raw)
	if r.Config.Model.Name != "" {
		r.Label = r.Config.Model.Name
	}

	if backend == nil {
		r.Notes = append(r.Notes, "model summary not computed (no compute backend)")
	} else if cfg, err := train.ReadRunConfig(dir); err != nil {
		r.Notes = append(r.Notes, "model summary not computed: "+text.OneLine(err.Error()))
	} else if stats, err := models.Inspect(backend, cfg, 0); err != nil {
		r.Notes = append(r.Notes, "model summary not computed: "+text.OneLine(err.Error()))
	} else {
		r.Stats = &stats
		r.Components = models.Summarize(stats, 0)
	}

	if curves, err := ReadResults(dir); err == nil {
		r.Curves = &curves
	} else {
		r.Notes = append(r.Notes, "no training curves: "+text.OneLine(err.Error()))
	}

	r.Checkpoint = "latest (" + train.LatestDir + "/)"
	if best {
		r.Checkpoint = "best (" + train.BestDir + "/)"
	}
	if backend == nil {
		r.Notes = append(r.Notes, "no heat maps (no compute backend to load the model)")
		return r, nil
	}
	_, store, err := train.LoadRun(backend, dir, best)
	if err != nil {
		r.Notes = append(r.Notes, "no heat maps: "+text.OneLine(err.Error()))
		return r, nil
	}
	for _, layer := range SeqConvLayers(store) {
		h, err := Utilization(store, layer)
		if err != nil {
			return r, err
		}
		r.Heatmaps = append(r.Heatmaps, h)
	}
	if len(r.Heatmaps) == 0 {
		r.Notes = append(r.Notes, "no heat maps: the checkpoint has no SeqConv layer")
	}
	return r, nil
}

// hostInfo returns the host-describing keys of a config.json (see hostConfigKeys), values formatted
// as compact JSON unless they are strings.
func hostInfo(raw []byte) []KeyValue {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	var out []KeyValue
	for _, k := range hostConfigKeys {
		v, ok := m[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			var b bytes.Buffer
			if json.Compact(&b, v) != nil {
				continue
			}
			s = b.String()
		}
		out = append(out, KeyValue{k, s})
	}
	return out
}

// MeanUtilization returns the mean utilization of the run's heat maps (NaN without any).
func (r ReportRun) MeanUtilization() float64 { return meanUtilization(r.Heatmaps) }

func meanUtilization(maps []*Heatmap) float64 {
	if len(maps) == 0 {
		return math.NaN()
	}
	var s float64
	for _, h := range maps {
		s += h.Utilization
	}
	return s / float64(len(maps))
}

// HostEnvironment describes this process's machine and Go runtime: Go version, OS/architecture,
// logical CPUs, GOMAXPROCS and, on Linux, the CPU model.
func HostEnvironment() []KeyValue {
	env := []KeyValue{
		{"Go", runtime.Version()},
		{"OS/architecture", runtime.GOOS + "/" + runtime.GOARCH},
		{"logical CPUs", strconv.Itoa(runtime.NumCPU())},
		{"GOMAXPROCS", strconv.Itoa(runtime.GOMAXPROCS(0))},
	}
	if m := cpuModel(); m != "" {
		env = append(env, KeyValue{"CPU", m})
	}
	return env
}

// cpuModel returns the "model name" of /proc/cpuinfo, or "".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
