package experiment

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strconv"

	"github.com/seqconv/seqconv/analysis"
	"github.com/seqconv/seqconv/train"
)

// Summary is the outcome of the windowed-vs-dense experiment. Its JSON form is SummaryFile, where every
// number is rounded to 4 decimals; the values here are not rounded.
type Summary struct {
	Experiment  string `json:"experiment"`
	Command     string `json:"command"`
	Model       string `json:"model"` // the model's name, with "-k<granularity>" when Options.Granularity set it.
	Granularity int    `json:"granularity"`
	Data        string `json:"data"`
	Epochs      int    `json:"epochs"`
	TrainImages int    `json:"train_images"`
	TestImages  int    `json:"test_images"`
	Seed        int64  `json:"seed"`
	ColorMap    string `json:"colormap"`
	// DenseWindow is the dense variant's window g', in groups.
	DenseWindow int `json:"dense_window_groups"`
	// DifferingLayers counts the SeqConv layers whose aggregation differs between the variants.
	DifferingLayers  int        `json:"differing_layers"`
	Variants         []*Variant `json:"variants"` // windowed, then dense.
	Layers           []Layer    `json:"layers"`
	WallSeconds      float64    `json:"wall_seconds"`
	Conclusion       string     `json:"conclusion"`
	UtilizationNotes string     `json:"utilization_definition"`
}

// Variant is one trained variant of the experiment.
type Variant struct {
	Name                   string  `json:"name"`
	Model                  string  `json:"model"`
	RunDir                 string  `json:"run_dir"`
	WindowGroups           int     `json:"window_groups"`
	Params                 int64   `json:"params"`
	MACs                   int64   `json:"macs"`
	TestAccuracy           float64 `json:"test_accuracy"`
	TestTop5Error          float64 `json:"test_top5_error"`
	BestTestAccuracy       float64 `json:"best_test_accuracy"`
	MeanUtilization        float64 `json:"mean_utilization"` // over the layers whose aggregation differs.
	MeanUtilizationAll     float64 `json:"mean_utilization_all_layers"`
	InitialMeanUtilization float64 `json:"initial_mean_utilization"`
	TrainingSeconds        float64 `json:"training_seconds"`
	ImagesPerSecond        float64 `json:"images_per_second"` // the mean over the epochs.
	HeatmapFile            string  `json:"heatmap"`           // in the output directory.
	UtilizationCSV         string  `json:"utilization_csv"`   // in the output directory.

	// Result is the variant's training result (nil until trained).
	Result *train.Result `json:"-"`
}

// Layer is one SeqConv layer compared; its maps are keyed by the variants' names.
type Layer struct {
	Name        string             `json:"name"`
	K           int                `json:"k"`
	Filters     int                `json:"filters"`
	Differs     bool               `json:"differs"` // the variants aggregate differently.
	Utilization map[string]float64 `json:"utilization"`
	Initial     map[string]float64 `json:"initial_utilization"`
	Aggregation map[string]string  `json:"aggregation"` // "dense" or "windowed (<n> channels)".
}

// utilizationDefinition is summary.json's utilization_definition.
const utilizationDefinition = "a layer's utilization is the mean, over the (filter, source group) pairs it has, of the L1 norm " +
	"of the filter's first-conv weights reading that group divided by the layer's largest such norm; " +
	"mean_utilization averages the layers whose aggregation differs between the variants; the initial values are " +
	"those of the freshly initialized model (same seed, no training)"

// setResult records the training result r.
func (v *Variant) setResult(r *train.Result) {
	ips := 0.0
	if n := len(r.History); n > 0 {
		for _, e := range r.History {
			ips += e.ImagesPerSecond
		}
		ips /= float64(n)
	}
	v.Result = r
	v.TestAccuracy, v.TestTop5Error, v.BestTestAccuracy = 100-r.FinalValidError, r.FinalTop5Error, 100-r.BestValidError
	v.TrainingSeconds, v.ImagesPerSecond = r.Seconds, ips
}

// setUtilization records the comparison of the variants' utilization after training (c) and at
// initialization.
func (s *Summary) setUtilization(c, initial analysis.UtilizationComparison) {
	for i, v := range s.Variants {
		v.MeanUtilization, v.MeanUtilizationAll = c.MeanDiffering[i], c.MeanAll[i]
		v.InitialMeanUtilization = initial.MeanDiffering[i]
	}
	for j, l := range c.Layers {
		sl := Layer{Name: l.Name, K: l.K, Filters: l.Filters, Differs: l.Differs,
			Utilization: map[string]float64{}, Initial: map[string]float64{}, Aggregation: map[string]string{}}
		for i, name := range c.Variants {
			sl.Utilization[name] = l.Utilization[i]
			sl.Initial[name] = initial.Layers[j].Utilization[i]
			agg := l.Aggregation[i]
			if agg == "windowed" {
				agg += fmt.Sprintf(" (%d channels)", l.Window[i])
			}
			sl.Aggregation[name] = agg
		}
		s.Layers = append(s.Layers, sl)
	}
}

// round4 rounds x to 4 decimals for summary.json.
func round4(x float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', 4, 64), 64)
	return v
}

// rounded returns a copy of s with its numbers rounded to 4 decimals, as summary.json holds them.
func (s *Summary) rounded() Summary {
	r := *s
	r.WallSeconds = round4(s.WallSeconds)
	r.Variants = make([]*Variant, len(s.Variants))
	for i, v := range s.Variants {
		c := *v
		for _, x := range []*float64{&c.TestAccuracy, &c.TestTop5Error, &c.BestTestAccuracy, &c.MeanUtilization,
			&c.MeanUtilizationAll, &c.InitialMeanUtilization, &c.TrainingSeconds, &c.ImagesPerSecond} {
			*x = round4(*x)
		}
		r.Variants[i] = &c
	}
	r.Layers = make([]Layer, len(s.Layers))
	for i, l := range s.Layers {
		l.Utilization, l.Initial = maps.Clone(l.Utilization), maps.Clone(l.Initial)
		for _, m := range []map[string]float64{l.Utilization, l.Initial} {
			for k, x := range m {
				m[k] = round4(x)
			}
		}
		r.Layers[i] = l
	}
	return r
}

// writeJSON writes s, rounded, to path.
func (s *Summary) writeJSON(path string) error {
	b, err := json.MarshalIndent(s.rounded(), "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// gapTolerance is the smallest change of the windowed-minus-dense utilization gap that conclusion
// attributes to training (utilization is on a 0..1 scale).
const gapTolerance = 0.01

// conclusion says what the comparison shows, for the report, summary.json and the terminal. The
// poster's claim is that trained windowed layers use their aggregated groups more evenly (a higher
// utilization) than dense ones. Since both variants start from random weights whose utilization
// already differs (the layers' shapes differ), the gap after training is compared with the gap at
// initialization: the run supports the claim only if windowed is higher and training widened the
// gap by at least gapTolerance.
func conclusion(c, initial analysis.UtilizationComparison, windowed, dense *train.Result) string {
	mw, md := c.MeanDiffering[0], c.MeanDiffering[1]
	iw, id := initial.MeanDiffering[0], initial.MeanDiffering[1]
	gap, gap0 := mw-md, iw-id
	higher := 0
	for _, l := range c.Layers {
		if l.Differs && l.Utilization[0] > l.Utilization[1] {
			higher++
		}
	}
	var verdict string
	switch {
	case gap > 0 && gap-gap0 >= gapTolerance:
		verdict = fmt.Sprintf("windowed is higher and training widened the gap from %+.3f at initialization to %+.3f: "+
			"this run agrees with the poster's claim that windowed aggregation uses its aggregated groups more evenly", gap0, gap)
	case gap > 0:
		verdict = fmt.Sprintf("windowed is higher, but the gap was already %+.3f at initialization and training changed it "+
			"by less than %.2f (to %+.3f; the means moved by %+.3f windowed and %+.3f dense): the difference comes from the "+
			"initialization and the layers' shapes, not from training, so this run neither supports nor contradicts the "+
			"poster's claim that windowed aggregation uses its aggregated groups more evenly", gap0, gapTolerance, gap, mw-iw, md-id)
	default:
		verdict = fmt.Sprintf("dense is as high or higher (gap %+.3f after training, %+.3f at initialization): this run "+
			"does not agree with the poster's claim that windowed aggregation uses its aggregated groups more evenly", gap, gap0)
	}
	return fmt.Sprintf("Over the %d layers whose aggregation differs, the mean utilization after training is %.3f windowed "+
		"vs %.3f dense (windowed higher in %d of %d layers); %s. Test accuracy: windowed %.2f%%, dense %.2f%%. "+
		"This is one seed of a small model after a short training run.", c.Differing, mw, md, higher, c.Differing, verdict,
		100-windowed.FinalValidError, 100-dense.FinalValidError)
}
