package analysis

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/seqconv/seqconv/train"
)

// RunCurves are the per-epoch results of a run directory (see ReadResults and train.ResultsHeader).
type RunCurves struct {
	// Dir is the run directory.
	Dir string
	// Name is the model name from the run's config.json ("model": {"name": ...}), or the base name of
	// Dir when there is none.
	Name string
	// Epoch, and for each epoch (row of results.jsonl or results.csv) the columns of train.ResultsHeader; errors are
	// top-1 / top-5 errors in %.
	Epoch                                 []int
	TrainLoss, TrainError                 []float64
	ValidLoss, ValidError, ValidTop5Error []float64
	LR, Seconds, ImagesPerSecond          []float64
}

// LRDrops returns the epochs e whose learning rate is lower than that of the previous row: the
// learning rate dropped between epochs e-1 and e.
func (r RunCurves) LRDrops() []int {
	var drops []int
	for i := 1; i < len(r.LR) && i < len(r.Epoch); i++ {
		if r.LR[i] < r.LR[i-1] {
			drops = append(drops, r.Epoch[i])
		}
	}
	return drops
}

// ReadResults reads the per-epoch results of a run directory with train.ReadResults (results.jsonl, or
// results.csv for runs without one) and the model name of runDir/config.json if there is one.
func ReadResults(runDir string) (RunCurves, error) {
	rc := RunCurves{Dir: runDir, Name: filepath.Base(filepath.Clean(runDir))}
	results, err := train.ReadResults(runDir)
	if err != nil {
		return rc, fmt.Errorf("reading results: %w", err)
	}
	for _, r := range results {
		rc.Epoch = append(rc.Epoch, r.Epoch)
		rc.TrainLoss = append(rc.TrainLoss, r.TrainLoss)
		rc.TrainError = append(rc.TrainError, r.TrainError)
		rc.ValidLoss = append(rc.ValidLoss, r.ValidLoss)
		rc.ValidError = append(rc.ValidError, r.ValidError)
		rc.ValidTop5Error = append(rc.ValidTop5Error, r.ValidTop5Error)
		rc.LR = append(rc.LR, r.LR)
		rc.Seconds = append(rc.Seconds, r.Seconds)
		rc.ImagesPerSecond = append(rc.ImagesPerSecond, r.ImagesPerSecond)
	}
	if b, err := os.ReadFile(filepath.Join(runDir, train.ConfigFile)); err == nil {
		var cfg train.RunFile
		if json.Unmarshal(b, &cfg) == nil && cfg.Model.Name != "" {
			rc.Name = cfg.Model.Name
		}
	}
	return rc, nil
}

// Sizes of the curves figure.
const (
	curvesW = 7.5 * vg.Inch
	curvesH = 8 * vg.Inch
)

// runColors are the colours of the runs of PlotCurves (matplotlib's tab10).
var runColors = []color.Color{
	color.NRGBA{0x1f, 0x77, 0xb4, 255}, color.NRGBA{0xff, 0x7f, 0x0e, 255}, color.NRGBA{0x2c, 0xa0, 0x2c, 255},
	color.NRGBA{0xd6, 0x27, 0x28, 255}, color.NRGBA{0x94, 0x67, 0xbd, 255}, color.NRGBA{0x8c, 0x56, 0x4b, 255},
	color.NRGBA{0xe3, 0x77, 0xc2, 255}, color.NRGBA{0x7f, 0x7f, 0x7f, 255}, color.NRGBA{0xbc, 0xbd, 0x22, 255},
	color.NRGBA{0x17, 0xbe, 0xcf, 255},
}

// runLabels returns the legend name of each run: its Name, followed by the run directory's base
// name when several runs share a name.
func runLabels(runs []RunCurves) []string {
	count := map[string]int{}
	for _, r := range runs {
		count[r.Name]++
	}
	labels := make([]string, len(runs))
	for i, r := range runs {
		labels[i] = r.Name
		if count[r.Name] > 1 {
			labels[i] = fmt.Sprintf("%s (%s)", r.Name, filepath.Base(filepath.Clean(r.Dir)))
		}
	}
	return labels
}

// curveXYs returns the (epoch, y) points of a curve, skipping non-finite values.
func curveXYs(epochs []int, ys []float64) plotter.XYs {
	var xy plotter.XYs
	for i, e := range epochs {
		if i < len(ys) && !math.IsNaN(ys[i]) && !math.IsInf(ys[i], 0) {
			xy = append(xy, plotter.XY{X: float64(e), Y: ys[i]})
		}
	}
	return xy
}

// addCurve adds a line with points of colour c (dashed when dashed) and, unless label is "", its legend
// entry.
func addCurve(p *plot.Plot, xy plotter.XYs, c color.Color, dashed bool, label string) error {
	if len(xy) == 0 {
		return nil
	}
	line, points, err := plotter.NewLinePoints(xy)
	if err != nil {
		return err
	}
	line.Color = c
	line.Width = vg.Points(1.5)
	points.Color = c
	points.Radius = vg.Points(1.8)
	points.Shape = draw.CircleGlyph{}
	if dashed {
		line.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		points.Radius = vg.Points(1.4)
	}
	p.Add(line, points)
	if label != "" {
		p.Legend.Add(label, line, points)
	}
	return nil
}

// lrDropLines adds a vertical dotted line of colour c at x = e-1 (the start of epoch e) for each LR drop.
func lrDropLines(p *plot.Plot, r RunCurves, c color.Color, ymin, ymax float64) error {
	for _, e := range r.LRDrops() {
		line, err := plotter.NewLine(plotter.XYs{{X: float64(e) - 1, Y: ymin}, {X: float64(e) - 1, Y: ymax}})
		if err != nil {
			return err
		}
		line.Color = c
		line.Width = vg.Points(1)
		line.Dashes = []vg.Length{vg.Points(1.5), vg.Points(2.5)}
		p.Add(line)
	}
	return nil
}

// yRange returns the range of the finite values of the given series (0..1 if none).
func yRange(series ...[]float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, v := range s {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if lo > hi {
		return 0, 1
	}
	return lo, hi
}

// PlotCurves draws the training curves of runs in two panels: top-1 train (dashed) and validation
// (solid) error (%) vs epoch, then train and validation loss; one colour per run, with a legend of
// the model names. The epochs where a run's learning rate decreases are marked with dotted vertical
// lines of its colour at the start of the epoch (x = epoch-1; an epoch's results are plotted at its
// end, x = epoch). format is "png" or "svg". Runs with no epoch yet are left out; it fails if none
// has one.
func PlotCurves(runs []RunCurves, w io.Writer, format string) error {
	var kept []RunCurves
	for _, r := range runs {
		if len(r.Epoch) > 0 {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		return errors.New("no run has results to plot")
	}
	cw, err := newCanvas(format, curvesW, curvesH)
	if err != nil {
		return err
	}
	labels := runLabels(kept)
	errPlot, lossPlot := plot.New(), plot.New()
	errPlot.Title.Text = "top-1 error (dashed: train, solid: validation; dotted: LR drops)"
	errPlot.Y.Label.Text = "top-1 error (%)"
	lossPlot.Title.Text = "loss (dashed: train, solid: validation)"
	lossPlot.Y.Label.Text = "cross-entropy loss"
	var errSeries, lossSeries [][]float64
	for _, r := range kept {
		errSeries = append(errSeries, r.TrainError, r.ValidError)
		lossSeries = append(lossSeries, r.TrainLoss, r.ValidLoss)
	}
	for _, p := range []*plot.Plot{errPlot, lossPlot} {
		p.Y.Tick.Marker = niceTicks()
		p.X.Label.Text = "epoch"
		p.X.Tick.Marker = integerTicks()
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	// The y axes start at 0 (or below) and leave room at the top for the legend; the LR-drop lines
	// span them.
	elo, ehi := yRange(errSeries...)
	llo, lhi := yRange(lossSeries...)
	elo, llo = min(elo, 0), min(llo, 0)
	ehi, lhi = ehi+0.15*(ehi-elo), lhi+0.15*(lhi-llo)
	if !(ehi > elo) {
		ehi = elo + 1
	}
	if !(lhi > llo) {
		lhi = llo + 1
	}
	for i, r := range kept {
		c := runColors[i%len(runColors)]
		if err := lrDropLines(errPlot, r, c, elo, ehi); err != nil {
			return err
		}
		if err := lrDropLines(lossPlot, r, c, llo, lhi); err != nil {
			return err
		}
		for _, s := range []struct {
			p      *plot.Plot
			ys     []float64
			dashed bool
			label  string
		}{
			{errPlot, r.TrainError, true, ""}, {errPlot, r.ValidError, false, labels[i]},
			{lossPlot, r.TrainLoss, true, ""}, {lossPlot, r.ValidLoss, false, labels[i]},
		} {
			if err := addCurve(s.p, curveXYs(r.Epoch, s.ys), c, s.dashed, s.label); err != nil {
				return err
			}
		}
	}
	errPlot.Y.Min, errPlot.Y.Max = elo, ehi
	lossPlot.Y.Min, lossPlot.Y.Max = llo, lhi
	for _, p := range []*plot.Plot{errPlot, lossPlot} {
		p.X.Min = min(p.X.Min, 0)
	}
	dc := draw.New(cw)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Points(10), PadY: vg.Points(18),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(12)}
	canvases := plot.Align([][]*plot.Plot{{errPlot}, {lossPlot}}, tiles, dc)
	errPlot.Draw(canvases[0][0])
	lossPlot.Draw(canvases[1][0])
	if _, err := cw.WriteTo(w); err != nil {
		return fmt.Errorf("writing the %s figure: %w", format, err)
	}
	return nil
}

// niceTicks returns a ticker labelling multiples of a round step (1, 2 or 5 times a power of 10) chosen
// to give 4 to 10 labels.
func niceTicks() plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		if !(hi > lo) || math.IsInf(hi-lo, 0) {
			return nil
		}
		exp := math.Floor(math.Log10((hi - lo) / 5))
		step := math.Pow(10, exp)
		for _, m := range []float64{1, 2, 5, 10} {
			if (hi-lo)/(m*step) <= 8 {
				step *= m
				break
			}
		}
		decimals := max(0, int(-math.Floor(math.Log10(step)+1e-9)))
		var ticks []plot.Tick
		for i := math.Ceil(lo/step - 1e-9); i*step <= hi+1e-9*step; i++ {
			v := i * step
			if v == 0 {
				v = 0 // not -0
			}
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', decimals, 64)})
		}
		return ticks
	})
}
