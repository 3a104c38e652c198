package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"html"
	"image/png"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// reportFigureRe matches a chart of a report (as written, or as Chromium dumps the DOM): the figure's
// data-chart kind, its image's source and alt text, and its caption.
var reportFigureRe = regexp.MustCompile(`(?s)<figure id="[^"]+" data-chart="([^"]+)"[^>]*>\s*<img src="([^"]+)" alt="([^"]+)"[^>]*>\s*<figcaption>(.*?)</figcaption>`)

// reportChart is a chart of a report; alt and caption are unescaped.
type reportChart struct {
	kind, alt, caption string
	svg                []byte
}

// reportCharts returns the charts of an HTML report, checking that each image is a decodable SVG
// data: URI.
func reportCharts(t *testing.T, page string) []reportChart {
	t.Helper()
	var charts []reportChart
	for _, m := range reportFigureRe.FindAllStringSubmatch(page, -1) {
		c := reportChart{kind: m[1], alt: html.UnescapeString(m[3]), caption: html.UnescapeString(m[4])}
		src, ok := strings.CutPrefix(html.UnescapeString(m[2]), "data:image/svg+xml;base64,")
		if !ok {
			t.Errorf("%s chart %q: not an SVG data URI: %.50s", c.kind, c.alt, m[2])
			continue
		}
		var err error
		if c.svg, err = base64.StdEncoding.DecodeString(src); err != nil || !bytes.Contains(c.svg, []byte("<svg")) {
			t.Errorf("%s chart %q: bad SVG data (%v)", c.kind, c.alt, err)
		}
		charts = append(charts, c)
	}
	return charts
}

// copyDir copies the directory tree src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// twoReportRuns returns a trained tiny run directory and a copy of it whose model is renamed to a
// name with HTML special characters.
func twoReportRuns(t *testing.T) (runA, runB string) {
	t.Helper()
	runA = trainTinyRun(t)
	runB = filepath.Join(t.TempDir(), "renamed")
	copyDir(t, runA, runB)
	cfgPath := filepath.Join(runB, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(b), `"name": "tiny-8x8"`, `"name": "tiny <b>&</b> \"copy\""`, 1)
	if renamed == string(b) {
		t.Fatalf("config.json has no model name to replace:\n%s", b)
	}
	if err := os.WriteFile(cfgPath, []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	return runA, runB
}

// TestReportCommand runs "seqconv report" on one and two runs written by train.Run, and checks its
// errors.
func TestReportCommand(t *testing.T) {
	runA, runB := twoReportRuns(t)

	// One run, default output in the run directory.
	code, stdout, stderr := runCLI(t, "report", "--run", runA)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	assertNoCrash(t, stdout, stderr)
	if !strings.Contains(stdout, "tiny-8x8") || !strings.Contains(stdout, "5 heat maps, 2 epochs") ||
		!strings.Contains(stdout, "report.html") {
		t.Errorf("stdout:\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(runA, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	for _, want := range []string{`<h2 id="curves">Training curves</h2>`, "tiny-8x8 (seqresnet-cifar, variant b)",
		"Final top-1 accuracy", "images/s (mean over epochs)", testBackendName(t), "logical CPUs", runtime.Version(),
		"Stage1/0/LayerA", "Downsample2/ExtensionLayer", "latest (checkpoint/)", "config.json"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	charts := reportCharts(t, page)
	if len(charts) != 2 || charts[0].kind != "curves" || charts[1].kind != "heatmaps" {
		t.Errorf("one run: charts %+v", charts)
	}

	// Two runs, best checkpoints, a title.
	out := filepath.Join(t.TempDir(), "two.html")
	code, stdout, stderr = runCLI(t, "report", "--run", runA, "--run", runB, "--out", out, "--best", "--title", "Two & more")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("stdout:\n%s", stdout)
	}
	b, err = os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	page = string(b)
	for _, want := range []string{"<title>Two &amp; more</title>", "best (best/)",
		"tiny &lt;b&gt;&amp;&lt;/b&gt; &#34;copy&#34;"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>&</b>") {
		t.Errorf("the model name was not escaped")
	}
	charts = reportCharts(t, page)
	if len(charts) != 3 || charts[0].kind != "curves" || !bytes.Contains(charts[0].svg, []byte("tiny-8x8")) ||
		!bytes.Contains(charts[0].svg, []byte("tiny &lt;b&gt;&amp;")) {
		t.Errorf("two runs: %d charts; want the curves of both runs on one chart and two heat-map charts", len(charts))
	}

	// Errors: one line, exit code 2 for bad flags, 1 for failures.
	missing := filepath.Join(t.TempDir(), "missing")
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no run", []string{"report"}, 2, "--run is required"},
		{"missing run", []string{"report", "--run", missing}, 2, "no such directory"},
		{"not a run", []string{"report", "--run", empty}, 2, "no config.json"},
		{"two runs no out", []string{"report", "--run", runA, "--run", runB}, 2, "--out is required"},
		{"bad extension", []string{"report", "--run", runA, "--out", filepath.Join(empty, "r.png")}, 2, ".html"},
		{"out in a missing directory", []string{"report", "--run", runA, "--out", filepath.Join(missing, "r.html")}, 2,
			"no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "seqconv: ") || !strings.Contains(stderr, tc.want) {
				t.Errorf("want one line starting with \"seqconv: \" mentioning %q, got:\n%s", tc.want, stderr)
			}
			if stdout != "" {
				t.Errorf("unexpected stdout:\n%s", stdout)
			}
			assertNoCrash(t, stdout, stderr)
		})
	}
}

// chromiumPath returns the Chromium binary, or "" if it is not installed.
func chromiumPath() string {
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

// runChromium runs headless Chromium on the page url with extra flags and returns its stdout and
// stderr.
func runChromium(t *testing.T, chromium, userDir, url string, extra ...string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + userDir}, extra...)
	cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\nstderr:\n%s", strings.Join(extra, " "), err, lastLines(errOut.String(), 20))
	}
	return out.String(), errOut.String()
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestReportInChromium writes a report of two runs and opens it in headless Chromium: the screenshot
// must be a non-blank PNG, the DOM must hold the charts with their titles, all of them loaded, and
// the page must log nothing on the console. Skipped when Chromium is not installed (CI installs it).
func TestReportInChromium(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium not installed: /usr/bin/chromium is absent (apt-get install chromium; .ci/run installs it)")
	}
	runA, runB := twoReportRuns(t)
	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	if code, _, stderr := runCLI(t, "report", "--run", runA, "--run", runB, "--out", report); code != 0 {
		t.Fatalf("report: exit %d; stderr:\n%s", code, stderr)
	}
	abs, err := filepath.Abs(report)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + abs
	// Chromium's profile directory: helper processes may still write to it after Chromium exits, so it
	// is removed without failing the test.
	userDir, err := os.MkdirTemp("", "seqconv-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(userDir) })

	// Screenshot: a decodable PNG of the requested size with many colours (text, tables and charts).
	shot := filepath.Join(dir, "shot.png")
	runChromium(t, chromium, userDir, url, "--screenshot="+shot, "--window-size=1280,2000", "--hide-scrollbars")
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	colors := map[[3]uint32]bool{}
	nonWhite := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			colors[[3]uint32{cr >> 8, cg >> 8, cb >> 8}] = true
			if cr>>8 < 240 || cg>>8 < 240 || cb>>8 < 240 {
				nonWhite++
			}
		}
	}
	if r.Dx() != 1280 || r.Dy() != 2000 || len(colors) < 100 || nonWhite < r.Dx()*r.Dy()/4/50 {
		t.Errorf("screenshot %dx%d has %d colours and %d non-white sampled pixels: blank?", r.Dx(), r.Dy(),
			len(colors), nonWhite)
	}

	// DOM after load, with the console log on stderr.
	dom, logs := runChromium(t, chromium, userDir, url, "--dump-dom", "--enable-logging=stderr", "--v=0")
	charts := reportCharts(t, dom)
	var titles []string
	for _, c := range charts {
		titles = append(titles, c.alt)
		if len(c.svg) < 2000 || !strings.Contains(c.caption, c.alt) {
			t.Errorf("chart %q: %d bytes of SVG, caption %q", c.alt, len(c.svg), c.caption)
		}
	}
	want := []string{"Training curves", "Weight visualization: tiny-8x8", `Weight visualization: tiny <b>&</b> "copy"`}
	if strings.Join(titles, "|") != strings.Join(want, "|") {
		t.Errorf("chart titles in the DOM:\n%q\nwant:\n%q", titles, want)
	}
	for _, id := range []string{`id="summary"`, `id="curves"`, `id="heatmaps"`, `id="environment"`} {
		if !strings.Contains(dom, id) {
			t.Errorf("DOM lacks %s", id)
		}
	}
	if !strings.Contains(dom, `data-charts-loaded="3/3"`) {
		m := regexp.MustCompile(`data-charts-loaded="[^"]*"`).FindString(dom)
		t.Errorf("not every chart image loaded in Chromium (want data-charts-loaded=\"3/3\", got %q)", m)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "CONSOLE") || strings.Contains(line, "Uncaught") ||
			(strings.Contains(line, abs) && strings.Contains(line, "ERROR")) {
			t.Errorf("console message from the page: %s", line)
		}
	}
}
