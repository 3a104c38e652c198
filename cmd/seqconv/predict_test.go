package main

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/internal/testrun"
)

// colorRun trains the colour run of internal/testrun in the test's temporary directory.
func colorRun(t *testing.T) string {
	t.Helper()
	runDir := filepath.Join(t.TempDir(), "colors")
	if err := testrun.TrainColors(runDir); err != nil {
		t.Fatal(err)
	}
	return runDir
}

// writeImage writes img as JPEG or PNG (by the extension of name) in dir and returns its path.
func writeImage(t *testing.T, dir, name string, img image.Image) string {
	t.Helper()
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(name, ".png") {
		err = png.Encode(&buf, img)
	} else {
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPredict predicts JPEG and PNG files of known classes with a run trained in the test, as text and
// JSON, with bad files among them: each bad file is reported on its own line, the others are predicted,
// and the exit status says that some failed.
func TestPredict(t *testing.T) {
	runDir := colorRun(t)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	red := writeImage(t, dir, "red.jpg", testrun.Color(rng, 0, 64, 48))
	green := writeImage(t, dir, "green.png", testrun.Color(rng, 1, 16, 16))
	blue := writeImage(t, dir, "blue photo.jpeg", testrun.Color(rng, 2, 31, 70))
	notImage := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(notImage, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.jpg")

	code, stdout, stderr := runCLI(t, "predict", "--run", runDir, red, green, "--top", "2", blue)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	for i, want := range []struct{ path, class string }{{red, "red"}, {green, "green"}, {blue, "blue"}} {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want.path+": "+want.class+" ") ||
			strings.Count(lines[i], "%") != 2 {
			t.Errorf("line %d: want %q first with 2 classes, got:\n%s", i, want.path+": "+want.class, stdout)
		}
	}

	code, stdout, stderr = runCLI(t, "predict", "--json", "--run", runDir, red, notImage, missing, blue, dir)
	if code != exitFailure {
		t.Errorf("with bad files: exit %d, want %d", code, exitFailure)
	}
	var out struct {
		Model       string
		Engine      string
		Predictions []struct {
			File string
			Top  []struct {
				Index       int
				Name        string
				Probability float64
			}
			Error string
		}
	}
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, stdout)
	}
	if out.Model != "tiny-colors" || out.Engine == "" || len(out.Predictions) != 5 {
		t.Fatalf("JSON output: %+v", out)
	}
	for i, want := range []struct{ file, class, err string }{
		{red, "red", ""}, {notImage, "", "unknown format"}, {missing, "", "no such file"}, {blue, "blue", ""},
		{dir, "", "is a directory"},
	} {
		got := out.Predictions[i]
		switch {
		case got.File != want.file:
			t.Errorf("prediction %d is of %s, want %s", i, got.File, want.file)
		case want.err == "" && (len(got.Top) != 3 || got.Top[0].Name != want.class || got.Error != ""):
			t.Errorf("%s: %+v, want %s first among all 3 classes (--top 5 of 3)", got.File, got, want.class)
		case want.err != "" && (!strings.Contains(got.Error, want.err) || len(got.Top) != 0):
			t.Errorf("%s: %+v, want the error %q", got.File, got, want.err)
		}
	}
	// stderr: one line per bad file, naming it, then the summary.
	errLines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(errLines) != 4 || !strings.Contains(errLines[0], notImage) || !strings.Contains(errLines[1], missing) ||
		!strings.Contains(errLines[2], dir) || errLines[3] != "seqconv: 3 of 5 images could not be predicted" {
		t.Errorf("stderr:\n%s", stderr)
	}
	assertNoCrash(t, stdout, stderr)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"predict", "--run", runDir}, exitUsage, "no image files given"},
		{[]string{"predict", red}, exitUsage, "--run is required"},
		{[]string{"predict", "--run", runDir, "--top", "0", red}, exitUsage, "--top must be >= 1"},
		{[]string{"predict", "--run", dir, red}, exitUsage, "not a run directory"},
		{[]string{"predict", "--run", runDir, "--bogus", red}, exitUsage, "flag provided but not defined"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d (want %d), stdout %q, stderr:\n%s\nwant it to mention %q", code, tc.code, stdout, stderr, tc.want)
			}
		})
	}
}
