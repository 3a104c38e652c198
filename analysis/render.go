package analysis

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure formats of RenderHeatmaps and PlotCurves.
const (
	FormatPNG = "png"
	FormatSVG = "svg"
)

// PNGDPI is the resolution of the PNG figures.
const PNGDPI = 110

// Axis labels of the heat maps (the poster's).
const (
	SourceGroupLabel = "source group (relative to the layer's first new group)"
	TargetGroupLabel = "target group (filter)"
)

// Sizes of the figures.
const (
	heatmapPanelW = 4.8 * vg.Inch
	heatmapPanelH = 4.2 * vg.Inch
	colorBarW     = 1.4 * vg.Inch
	maxPanelCols  = 3
)

// missingColor fills the cells of groups a filter does not read.
var missingColor = color.Gray{Y: 235}

// FormatFromPath returns the figure format of a file name from its extension (".png" or ".svg",
// any case), or an error.
func FormatFromPath(path string) (string, error) {
	dot := strings.LastIndexByte(path, '.')
	slash := strings.LastIndexAny(path, `/\`)
	if dot < 0 || dot < slash {
		return "", fmt.Errorf("output %q has no extension: want .png or .svg", path)
	}
	f := strings.ToLower(path[dot+1:])
	if f != FormatPNG && f != FormatSVG {
		return "", fmt.Errorf("output %q: unknown extension %q, want .png or .svg", path, path[dot:])
	}
	return f, nil
}

// newCanvas returns a w x h canvas writing format ("png" or "svg").
func newCanvas(format string, w, h vg.Length) (vg.CanvasWriterTo, error) {
	switch strings.ToLower(format) {
	case FormatPNG:
		return vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(PNGDPI))}, nil
	case FormatSVG:
		return vgsvg.New(w, h), nil
	}
	return nil, fmt.Errorf("unknown figure format %q, want %q or %q", format, FormatPNG, FormatSVG)
}

// heatGrid adapts a Heatmap to plotter.GridXYZ: column c at x = its source group, row j at y = j.
type heatGrid struct{ h *Heatmap }

func (g heatGrid) Dims() (c, r int)   { return g.h.Cols(), g.h.Rows() }
func (g heatGrid) Z(c, r int) float64 { return g.h.Values[r][c] }
func (g heatGrid) X(c int) float64    { return float64(g.h.SourceGroup(c)) }
func (g heatGrid) Y(r int) float64    { return float64(r) }
func (g heatGrid) Min() float64       { return 0 }
func (g heatGrid) Max() float64       { return 1 }

// integerTicks returns a ticker with labelled ticks at multiples of a round step (1, 2, 5, 10, ...)
// chosen to have at most about 8 labels, and unlabelled ticks at every integer when there are few.
func integerTicks() plot.Ticker {
	return plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		first, last := int(math.Ceil(lo)), int(math.Floor(hi))
		if last < first {
			return nil
		}
		step := 1
		for span := last - first; span/step > 8; {
			switch s := strconv.Itoa(step); s[0] {
			case '1':
				step *= 2
			case '2':
				step = step / 2 * 5
			default:
				step *= 2
			}
		}
		var ticks []plot.Tick
		for v := first; v <= last; v++ {
			switch {
			case v%step == 0:
				ticks = append(ticks, plot.Tick{Value: float64(v), Label: strconv.Itoa(v)})
			case last-first <= 64:
				ticks = append(ticks, plot.Tick{Value: float64(v)})
			}
		}
		return ticks
	})
}

// heatmapPlot returns the panel of one heat map.
func heatmapPlot(h *Heatmap) (*plot.Plot, error) {
	if h.Rows() == 0 || h.Cols() == 0 {
		return nil, fmt.Errorf("heat map of layer %s is empty", h.Layer.Name)
	}
	p := plot.New()
	agg := "dense"
	if !h.Layer.Dense {
		agg = fmt.Sprintf("windowed, W=%d", h.Layer.Window)
	}
	p.Title.Text = fmt.Sprintf("%s\n%s, k=%d: utilization %.3f", h.Layer.Name, agg, h.Layer.K, h.Utilization)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.X.Label.Text = SourceGroupLabel
	p.Y.Label.Text = TargetGroupLabel
	p.X.Label.TextStyle.Font.Size = vg.Points(10)
	p.Y.Label.TextStyle.Font.Size = vg.Points(10)
	p.Y.Scale = plot.InvertedScale{Normalizer: plot.LinearScale{}} // Filter 0 at the top, as a matrix.
	p.X.Tick.Marker = integerTicks()
	p.Y.Tick.Marker = integerTicks()
	hm := plotter.NewHeatMap(heatGrid{h}, NewJet().Palette(256))
	hm.Min, hm.Max = 0, 1
	hm.NaN = missingColor
	p.Add(hm)
	if last := h.SourceGroup(h.Cols() - 1); h.FirstGroup < 0 && last >= 0 {
		// The boundary between the layer input and the new groups.
		line, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: -0.5}, {X: -0.5, Y: float64(h.Rows()) - 0.5}})
		if err != nil {
			return nil, err
		}
		line.Color = color.White
		line.Width = vg.Points(1.5)
		line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(line)
	}
	return p, nil
}

// colorBarPlot returns the colour bar panel of the heat maps.
func colorBarPlot() *plot.Plot {
	p := plot.New()
	p.Add(&plotter.ColorBar{ColorMap: NewJet(), Vertical: true})
	p.HideX()
	p.Y.Padding = 0
	p.Y.Label.Text = "normalized L1 norm"
	p.Y.Label.TextStyle.Font.Size = vg.Points(10)
	p.Title.Text = " \n "
	p.Title.TextStyle.Font.Size = vg.Points(11)
	return p
}

// RenderHeatmaps draws maps, one panel per layer (up to 3 per row), with a jet colour map on [0, 1]
// (the poster's, see JetColor; groups a filter does not read are light grey), a colour bar, the
// poster's axes (source group relative to the layer's first new group on x, target group, i.e.
// filter, on y with filter 0 at the top) and titles with the layer name, aggregation, k and
// utilization. A dashed white line separates the input groups from the new ones. format is "png"
// or "svg".
func RenderHeatmaps(maps []*Heatmap, w io.Writer, format string) error {
	if len(maps) == 0 {
		return errors.New("no heat map to render")
	}
	cols := min(len(maps), maxPanelCols)
	rows := (len(maps) + cols - 1) / cols
	width := vg.Length(cols)*heatmapPanelW + colorBarW
	height := vg.Length(rows) * heatmapPanelH
	cw, err := newCanvas(format, width, height)
	if err != nil {
		return err
	}
	plots := make([][]*plot.Plot, rows)
	for r := range plots {
		plots[r] = make([]*plot.Plot, cols)
	}
	for i, h := range maps {
		p, err := heatmapPlot(h)
		if err != nil {
			return err
		}
		plots[i/cols][i%cols] = p
	}
	dc := draw.New(cw)
	panels := draw.Crop(dc, 0, -colorBarW, 0, 0)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(14), PadY: vg.Points(14),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6)}
	canvases := plot.Align(plots, tiles, panels)
	for r := range plots {
		for c, p := range plots[r] {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
	// The colour bar, as tall as the first row of panels, at the right.
	bar := draw.Crop(dc, width-colorBarW, 0, height-heatmapPanelH+vg.Points(6), -vg.Points(6))
	colorBarPlot().Draw(draw.Crop(bar, vg.Points(8), -vg.Points(28), vg.Points(36), 0))
	if _, err := cw.WriteTo(w); err != nil {
		return fmt.Errorf("writing the %s figure: %w", format, err)
	}
	return nil
}
