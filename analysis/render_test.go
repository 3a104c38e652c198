package analysis

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }

// decodePNG decodes a PNG and returns it with its number of distinct colours.
func decodePNG(t *testing.T, b []byte) (image.Image, map[color.NRGBA]int) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decoding the PNG: %v", err)
	}
	colors := map[color.NRGBA]int{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			colors[color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)]++
		}
	}
	return img, colors
}

// checkSVG checks b is well-formed XML with an <svg> root and contains every string of want.
func checkSVG(t *testing.T, b []byte, want ...string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("SVG root element %q", root)
	}
	text := strings.ReplaceAll(string(b), "&#39;", "'")
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("SVG lacks %q", w)
		}
	}
}

func TestJetColor(t *testing.T) {
	for _, tc := range []struct {
		t    float64
		want color.NRGBA
	}{
		{0, color.NRGBA{0, 0, 128, 255}}, {1, color.NRGBA{128, 0, 0, 255}}, {0.5, color.NRGBA{123, 255, 123, 255}},
		{0.125, color.NRGBA{0, 0, 255, 255}}, {-1, color.NRGBA{0, 0, 128, 255}}, {2, color.NRGBA{128, 0, 0, 255}},
	} {
		if got := JetColor(tc.t); got != tc.want {
			t.Errorf("JetColor(%g) = %v, want %v", tc.t, got, tc.want)
		}
	}
	j := NewJet()
	if _, err := j.At(1.5); err == nil {
		t.Errorf("At(1.5) accepted")
	}
	if c, err := j.At(1); err != nil || c != (color.NRGBA{128, 0, 0, 255}) {
		t.Errorf("At(1) = %v, %v", c, err)
	}
	if p := j.Palette(256).Colors(); len(p) != 256 || p[0] != JetColor(0) || p[255] != JetColor(1) {
		t.Errorf("palette")
	}
}

// testHeatmaps returns the heat maps of the tiny model and of the windowed layer with known weights.
func testHeatmaps(t *testing.T) []*Heatmap {
	t.Helper()
	store, _ := buildTinyModel(t)
	var maps []*Heatmap
	for _, l := range SeqConvLayers(store) {
		h, err := Utilization(store, l)
		if err != nil {
			t.Fatal(err)
		}
		maps = append(maps, h)
	}
	store = buildSeqConv(t, seqLayer{cin: 4, cout: 6, k: 2})
	info := onlyLayer(t, store)
	setKnownWeights(t, store, info)
	h, err := Utilization(store, info)
	if err != nil {
		t.Fatal(err)
	}
	return append(maps, h)
}

func TestRenderHeatmaps(t *testing.T) {
	maps := testHeatmaps(t)
	var buf bytes.Buffer
	if err := RenderHeatmaps(maps, &buf, "png"); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("ANALYSIS_FIGURES"); dir != "" { // To look at the figures.
		_ = os.WriteFile(filepath.Join(dir, "heatmaps.png"), buf.Bytes(), 0o644)
	}
	img, colors := decodePNG(t, buf.Bytes())
	// 4 panels: 3 per row, 2 rows, plus the colour bar.
	wantW := int(math.Round(float64((3*heatmapPanelW+colorBarW)/vg.Inch) * PNGDPI))
	wantH := int(math.Round(2 * float64(heatmapPanelH/vg.Inch) * PNGDPI))
	if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
		t.Errorf("PNG is %dx%d, want %dx%d", b.Dx(), b.Dy(), wantW, wantH)
	}
	if len(colors) < 50 {
		t.Errorf("PNG has %d distinct colours", len(colors))
	}
	// The known-weight layer's maximum cell is jet(1), its unread cells light grey; both fill many pixels.
	for _, c := range []color.NRGBA{JetColor(1), color.NRGBAModel.Convert(missingColor).(color.NRGBA)} {
		if colors[c] < 500 {
			t.Errorf("PNG has %d pixels of colour %v", colors[c], c)
		}
	}

	buf.Reset()
	if err := RenderHeatmaps(maps[:1], &buf, "SVG"); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, buf.Bytes(), SourceGroupLabel, TargetGroupLabel, "Head", "utilization", "normalized L1 norm")

	if err := RenderHeatmaps(maps, io.Discard, "gif"); err == nil || !strings.Contains(err.Error(), "gif") {
		t.Errorf("gif: err %v", err)
	}
	if err := RenderHeatmaps(nil, io.Discard, "png"); err == nil {
		t.Errorf("no heat maps accepted")
	}
}

func TestFormatFromPath(t *testing.T) {
	for path, want := range map[string]string{"a.png": "png", "dir.x/b.SVG": "svg", "c.gif": "", "d": "", "e.x/f": ""} {
		got, err := FormatFromPath(path)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("FormatFromPath(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
}

func writeRun(t *testing.T, dir, name, results string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(filepath.Join(dir, "results.csv"), results); err != nil {
		t.Fatal(err)
	}
	if name != "" {
		cfg := `{"model": {"name": "` + name + `", "family": "seqresnet-cifar"}, "epochs": 6, "lr": 0.1}`
		if err := writeFile(filepath.Join(dir, "config.json"), cfg); err != nil {
			t.Fatal(err)
		}
	}
}

const resultsA = `epoch,train_loss,train_error,valid_loss,valid_error,valid_top5_error,lr,seconds,images_per_second
1,2.1,70.5,1.9,65,20,0.1,10.5,1000.0
2,1.2,40,1.1,38,10,0.1,10.1,1010.0
3,0.8,25,0.9,30,5,0.1,10.2,1005.0
4,0.4,12,0.6,20,3,0.01,10.0,1002.0
5,0.3,9,0.55,18.5,2.5,0.01,10.0,1001.0
6,0.25,8,0.54,18,2.4,0.001,10.0,1003.0
`

// resultsB has its columns in another order and no timing columns.
const resultsB = `epoch,lr,train_error,train_loss,valid_error,valid_loss
1,0.05,80,2.3,75,2.2
2,0.05,50,1.5,48,1.4
3,0.005,35,1.0,33,1.0
`

func TestReadResultsAndPlotCurves(t *testing.T) {
	root := t.TempDir()
	dirA, dirB, dirC := filepath.Join(root, "runA"), filepath.Join(root, "runB"), filepath.Join(root, "runC")
	writeRun(t, dirA, "seqresnet-mnist", resultsA)
	writeRun(t, dirB, "", resultsB)
	writeRun(t, dirC, "seqresnet-mnist", strings.SplitN(resultsA, "\n", 2)[0]+"\n") // no epoch yet
	a, err := ReadResults(dirA)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "seqresnet-mnist" || a.Dir != dirA || !slices.Equal(a.Epoch, []int{1, 2, 3, 4, 5, 6}) ||
		a.ValidError[3] != 20 || a.TrainLoss[0] != 2.1 || a.ValidTop5Error[5] != 2.4 || a.ImagesPerSecond[0] != 1000 {
		t.Errorf("run A: %+v", a)
	}
	if d := a.LRDrops(); !slices.Equal(d, []int{4, 6}) {
		t.Errorf("LR drops %v, want [4 6]", d)
	}
	b, err := ReadResults(dirB)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "runB" || !slices.Equal(b.TrainError, []float64{80, 50, 35}) || !slices.Equal(b.LR, []float64{0.05, 0.05, 0.005}) ||
		!math.IsNaN(b.Seconds[0]) || !slices.Equal(b.LRDrops(), []int{3}) {
		t.Errorf("run B: %+v", b)
	}
	c, err := ReadResults(dirC)
	if err != nil || len(c.Epoch) != 0 {
		t.Errorf("run C: %+v, %v", c, err)
	}
	if got := runLabels([]RunCurves{a, b, c}); !slices.Equal(got, []string{"seqresnet-mnist (runA)", "runB", "seqresnet-mnist (runC)"}) {
		t.Errorf("labels %q", got)
	}

	var buf bytes.Buffer
	if err := PlotCurves([]RunCurves{a, b, c}, &buf, "png"); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv("ANALYSIS_FIGURES"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, "curves.png"), buf.Bytes(), 0o644)
	}
	img, colors := decodePNG(t, buf.Bytes())
	if b := img.Bounds(); b.Dx() != int(math.Round(float64(curvesW/vg.Inch)*PNGDPI)) || b.Dy() != int(math.Round(float64(curvesH/vg.Inch)*PNGDPI)) {
		t.Errorf("PNG is %dx%d", b.Dx(), b.Dy())
	}
	if len(colors) < 20 {
		t.Errorf("PNG has %d distinct colours", len(colors))
	}
	for i := range 2 { // Both runs' colours are drawn.
		c := color.NRGBAModel.Convert(runColors[i]).(color.NRGBA)
		if colors[c] < 100 {
			t.Errorf("run %d colour %v: %d pixels", i, c, colors[c])
		}
	}
	buf.Reset()
	if err := PlotCurves([]RunCurves{a, b}, &buf, "svg"); err != nil {
		t.Fatal(err)
	}
	checkSVG(t, buf.Bytes(), "seqresnet-mnist", "runB", "top-1 error", "epoch", "loss")

	// Errors.
	if err := PlotCurves([]RunCurves{c}, io.Discard, "png"); err == nil {
		t.Errorf("runs without epochs accepted")
	}
	if err := PlotCurves([]RunCurves{a}, io.Discard, "jpeg"); err == nil {
		t.Errorf("jpeg accepted")
	}
	if _, err := ReadResults(filepath.Join(root, "nope")); err == nil {
		t.Errorf("missing run accepted")
	}
	bad := filepath.Join(root, "bad")
	writeRun(t, bad, "", "epoch,train_loss\n1,2\n")
	if _, err := ReadResults(bad); err == nil || !strings.Contains(err.Error(), "train_error") {
		t.Errorf("missing column: err %v", err)
	}
	writeRun(t, bad, "", "epoch,train_loss,train_error,valid_loss,valid_error,lr\n1,2,x,1,1,0.1\n")
	if _, err := ReadResults(bad); err == nil || !strings.Contains(err.Error(), "train_error") {
		t.Errorf("bad number: err %v", err)
	}
}

func TestTickers(t *testing.T) {
	labels := func(ticks []plot.Tick) []string {
		var out []string
		for _, tk := range ticks {
			if tk.Label != "" {
				out = append(out, tk.Label)
			}
		}
		return out
	}
	if got := labels(niceTicks().Ticks(0, 2.6)); !slices.Equal(got, []string{"0.0", "0.5", "1.0", "1.5", "2.0", "2.5"}) {
		t.Errorf("niceTicks(0, 2.6) = %q", got)
	}
	if got := labels(niceTicks().Ticks(-0.5, 92)); !slices.Equal(got, []string{"0", "20", "40", "60", "80"}) {
		t.Errorf("niceTicks(-0.5, 92) = %q", got)
	}
	if got := labels(integerTicks().Ticks(-4.5, 2.5)); !slices.Equal(got, []string{"-4", "-3", "-2", "-1", "0", "1", "2"}) {
		t.Errorf("integerTicks(-4.5, 2.5) = %q", got)
	}
	if got := labels(integerTicks().Ticks(-40.5, 30.5)); !slices.Equal(got, []string{"-40", "-30", "-20", "-10", "0", "10", "20", "30"}) {
		t.Errorf("integerTicks(-40.5, 30.5) = %q", got)
	}
}
