package main

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seqconv/seqconv/internal/testrun"
)

// TestServeCommand runs "seqconv serve" in a child process: it serves predictions of a run trained in
// the test, and SIGTERM stops it gracefully (exit 0).
func TestServeCommand(t *testing.T) {
	runDir := colorRun(t)
	cmd := exec.Command(os.Args[0], "serve", "--run", runDir, "--addr", "127.0.0.1:0", "--max-batch", "4")
	cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var log []string
	readyRe := regexp.MustCompile(`^seqconv: ready on (http://127\.0\.0\.1:\d+)$`)
	var url string
	for url == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("seqconv serve ended before it was ready:\n%s", strings.Join(log, "\n"))
			}
			log = append(log, line)
			if m := readyRe.FindStringSubmatch(line); m != nil {
				url = m[1]
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("not ready after 2 minutes:\n%s", strings.Join(log, "\n"))
		}
	}
	if !strings.HasPrefix(log[0], "seqconv: serving model tiny-colors (3 classes, ") {
		t.Errorf("first line: %q", log[0])
	}
	img, err := os.ReadFile(writeImage(t, t.TempDir(), "green.png", testrun.Color(rand.New(rand.NewPCG(4, 4)), 1, 30, 20)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url+"/v1/predict", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"top":[{"index":1,"name":"green"`) {
		t.Errorf("POST /v1/predict: %d %s", resp.StatusCode, b)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range lines {
		log = append(log, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM: %v\n%s", err, strings.Join(log, "\n"))
	}
	if last := log[len(log)-1]; last != "seqconv: stopped serving on "+url {
		t.Errorf("last line %q", last)
	}
	assertNoCrash(t, strings.Join(log, "\n"))
}

// TestServeFlags checks the flag errors of "seqconv serve": one line, exit status 2.
func TestServeFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	runDir := t.TempDir() // Checked after the flags; not a run.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "--run is required"},
		{[]string{"serve", "--run", runDir, "--max-batch", "0"}, "--max-batch must be >= 1"},
		{[]string{"serve", "--run", runDir, "--max-delay", "0s"}, "--max-delay must be > 0"},
		{[]string{"serve", "--run", runDir}, "not a run directory"},
		{[]string{"serve", "--run", runDir, "extra"}, "unexpected argument"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit 2 and %q", code, stdout, stderr, tc.want)
			}
		})
	}
	// The address in use: checked before loading the model.
	if err := os.WriteFile(filepath.Join(runDir, "config.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "serve", "--run", runDir, "--addr", ln.Addr().String())
	if code != exitUsage || !strings.Contains(stderr, "--addr "+ln.Addr().String()+": bind: address already in use") ||
		strings.Count(stderr, "\n") != 1 {
		t.Errorf("address in use: exit %d, stderr:\n%s", code, stderr)
	}
}
