package analysis

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot/palette"
)

// jetSegments is matplotlib's "jet" colour map (its _jet_data segment data): for each of red, green and
// blue, the (x, value) breakpoints of a piecewise-linear function on [0, 1]. It runs dark blue, blue,
// cyan, yellow, red, dark red: the colour map of the poster's weight visualization.
var jetSegments = [3][][2]float64{
	{{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}},
	{{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}},
	{{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}},
}

// JetColor returns matplotlib's jet colour at t in [0, 1] (clamped).
func JetColor(t float64) color.NRGBA {
	if math.IsNaN(t) {
		t = 0
	}
	t = min(max(t, 0), 1)
	var rgb [3]uint8
	for i, seg := range jetSegments {
		v := seg[len(seg)-1][1]
		for s := 1; s < len(seg); s++ {
			if t <= seg[s][0] {
				x0, y0, x1, y1 := seg[s-1][0], seg[s-1][1], seg[s][0], seg[s][1]
				v = y0 + (t-x0)/(x1-x0)*(y1-y0)
				break
			}
		}
		rgb[i] = uint8(math.Round(255 * v))
	}
	return color.NRGBA{R: rgb[0], G: rgb[1], B: rgb[2], A: 255}
}

// Jet is matplotlib's jet colour map as a gonum palette.ColorMap (see JetColor), by default on [0, 1].
type Jet struct {
	min, max, alpha float64
}

// NewJet returns the jet colour map on [0, 1].
func NewJet() *Jet { return &Jet{min: 0, max: 1, alpha: 1} }

var _ palette.ColorMap = (*Jet)(nil)

// At returns the colour of v; it fails if v is outside [Min, Max].
func (j *Jet) At(v float64) (color.Color, error) {
	if !(v >= j.min && v <= j.max) {
		return nil, fmt.Errorf("jet colour map: %g outside [%g, %g]", v, j.min, j.max)
	}
	t := 0.0
	if j.max > j.min {
		t = (v - j.min) / (j.max - j.min)
	}
	c := JetColor(t)
	c.A = uint8(math.Round(255 * j.alpha))
	return c, nil
}

// Max returns the top of the range.
func (j *Jet) Max() float64 { return j.max }

// SetMax sets the top of the range.
func (j *Jet) SetMax(v float64) { j.max = v }

// Min returns the bottom of the range.
func (j *Jet) Min() float64 { return j.min }

// SetMin sets the bottom of the range.
func (j *Jet) SetMin(v float64) { j.min = v }

// Alpha returns the opacity.
func (j *Jet) Alpha() float64 { return j.alpha }

// SetAlpha sets the opacity, in [0, 1].
func (j *Jet) SetAlpha(a float64) {
	if a < 0 || a > 1 {
		panic(fmt.Sprintf("jet colour map: alpha %g outside [0, 1]", a))
	}
	j.alpha = a
}

// Palette returns n colours evenly spaced over the map.
func (j *Jet) Palette(n int) palette.Palette {
	cs := make([]color.Color, n)
	for i := range cs {
		t := 0.0
		if n > 1 {
			t = float64(i) / float64(n-1)
		}
		c := JetColor(t)
		c.A = uint8(math.Round(255 * j.alpha))
		cs[i] = c
	}
	return jetPalette(cs)
}

type jetPalette []color.Color

func (p jetPalette) Colors() []color.Color { return p }
