package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seqconv/seqconv/inference"
)

// The page test drives headless Chromium over the Chrome DevTools Protocol, spoken on the pipe that
// --remote-debugging-pipe opens (file descriptors 3 and 4, JSON messages ended by a NUL byte): no
// WebSocket and no third-party code needed.

// cdp is a Chrome DevTools Protocol connection over Chromium's debugging pipe.
type cdp struct {
	w io.Writer

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	events  []cdpMessage
	readErr error
}

// cdpMessage is a message from Chromium: an answer (ID set) or an event (Method set).
type cdpMessage struct {
	ID        int             `json:"id"`
	Method    string          `json:"method"`
	Params    json.RawMessage `json:"params"`
	Result    json.RawMessage `json:"result"`
	SessionID string          `json:"sessionId"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// startChromium starts headless Chromium with its debugging pipe; it is killed when the test ends.
func startChromium(t *testing.T, chromium string) *cdp {
	t.Helper()
	userDir, err := os.MkdirTemp("", "seqconv-serve-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	// Helper processes may write to the profile after Chromium exits: removed without failing the test.
	t.Cleanup(func() { _ = os.RemoveAll(userDir) })
	toChrome, ourEnd, err := os.Pipe() // Chromium reads commands on fd 3.
	if err != nil {
		t.Fatal(err)
	}
	fromChrome, chromeEnd, err := os.Pipe() // Chromium writes answers on fd 4.
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir="+userDir, "--window-size=1000,800", "--remote-debugging-pipe", "about:blank")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{toChrome, chromeEnd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toChrome.Close()
	chromeEnd.Close()
	c := &cdp{w: ourEnd, pending: map[int]chan cdpMessage{}}
	go c.read(fromChrome)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = c.call(ctx, "", "Browser.close", nil)
		ourEnd.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		fromChrome.Close()
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", lastLines(stderr.String(), 20))
		}
	})
	return c
}

// read reads Chromium's messages until the pipe closes.
func (c *cdp) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			c.readErr = err
			for id, ch := range c.pending {
				close(ch)
				delete(c.pending, id)
			}
			c.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch := c.pending[m.ID]; ch != nil {
				ch <- m
				delete(c.pending, m.ID)
			}
		} else {
			c.events = append(c.events, m)
		}
		c.mu.Unlock()
	}
}

// call sends a command (to the page session sessionID, or the browser when "") and returns its result.
func (c *cdp) call(ctx context.Context, sessionID, method string, params any) (json.RawMessage, error) {
	c.mu.Lock()
	if c.readErr != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("%s: chromium's pipe: %w", method, c.readErr)
	}
	c.nextID++
	id := c.nextID
	ch := make(chan cdpMessage, 1)
	c.pending[id] = ch
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if sessionID != "" {
		msg["sessionId"] = sessionID
	}
	b, _ := json.Marshal(msg)
	_, err := c.w.Write(append(b, 0))
	c.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("%s: chromium closed the pipe", method)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// takeEvents returns the events received so far and forgets them.
func (c *cdp) takeEvents() []cdpMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.events
	c.events = nil
	return ev
}

// page is a page session of Chromium.
type page struct {
	t       *testing.T
	c       *cdp
	ctx     context.Context
	session string
}

// must calls method on the page and decodes its result into out (if not nil).
func (p *page) must(method string, params any, out any) {
	p.t.Helper()
	res, err := p.c.call(p.ctx, p.session, method, params)
	if err != nil {
		p.t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			p.t.Fatalf("%s: %v: %s", method, err, res)
		}
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a promise) and decodes its value.
func (p *page) eval(expr string, out any) {
	p.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	p.must("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res)
	if res.ExceptionDetails != nil {
		p.t.Fatalf("evaluating %q: %s %s", expr, res.ExceptionDetails.Text, res.ExceptionDetails.Exception.Description)
	}
	if out != nil {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			p.t.Fatalf("evaluating %q: %v: %s", expr, err, res.Result.Value)
		}
	}
}

// waitFor evaluates expr until it is true.
func (p *page) waitFor(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var ok bool
		p.eval("Boolean("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var state, status string
			p.eval("document.body.dataset.state", &state)
			p.eval("document.getElementById('status').textContent", &status)
			p.t.Fatalf("waiting for %s: not after a minute (state %q, status %q)", what, state, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bar is a rendered bar of the page, as measured in Chromium.
type bar struct {
	Name        string  `json:"name"`
	Probability float64 `json:"p"`
	Fill        float64 `json:"fill"`  // width of the bar's fill, CSS pixels
	Track       float64 `json:"track"` // width of its track
	Text        string  `json:"text"`
}

const barsJS = `[...document.querySelectorAll('#results .bar')].map(li => ({name: li.dataset.name,
  p: Number(li.dataset.probability), fill: li.querySelector('.fill').getBoundingClientRect().width,
  track: li.querySelector('.track').getBoundingClientRect().width, text: li.textContent}))`

// checkBars checks that the page shows one bar per class of the colour model, want first, each as wide
// as its probability.
func (p *page) checkBars(want string) {
	p.t.Helper()
	var bars []bar
	p.eval(barsJS, &bars)
	if len(bars) != 3 || bars[0].Name != want || bars[0].Probability < 0.5 {
		p.t.Fatalf("bars %+v, want 3 with %s first", bars, want)
	}
	for _, b := range bars {
		if b.Track < 100 || b.Fill < 1.5 || b.Fill-max(b.Probability*b.Track, 2) > 1.5 ||
			max(b.Probability*b.Track, 2)-b.Fill > 1.5 || !strings.HasPrefix(b.Text, b.Name) || !strings.HasSuffix(b.Text, "%") {
			p.t.Errorf("bar %+v: its fill is not as wide as its probability of its %.0fpx track", b, b.Track)
		}
	}
}

// TestPageInChromium opens the web page in headless Chromium, chooses an image with the file input and
// drops another on the drop zone: the top classes render as bars as wide as their probabilities (the
// right class first), a screenshot shows them, and the console stays empty: no messages, exceptions or
// errors. A bad file shows its error on the page. Skipped when Chromium is not installed (.ci/run
// installs it).
func TestPageInChromium(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium not installed: /usr/bin/chromium is absent (apt-get install chromium; .ci/run installs it)")
	}
	ts := startServer(t, inference.Options{}, Options{})
	dir := t.TempDir()
	blue := filepath.Join(dir, "blue.png")
	if err := os.WriteFile(blue, colorImage(t, "png", 2, 48, 36), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startChromium(t, chromium)
	var target struct{ TargetID string }
	res, err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"})
	if err != nil || json.Unmarshal(res, &target) != nil {
		t.Fatalf("creating a page: %v %s", err, res)
	}
	var attached struct{ SessionID string }
	res, err = c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true})
	if err != nil || json.Unmarshal(res, &attached) != nil {
		t.Fatalf("attaching to the page: %v %s", err, res)
	}
	p := &page{t: t, c: c, ctx: ctx, session: attached.SessionID}
	for _, domain := range []string{"Runtime.enable", "Log.enable", "Page.enable", "DOM.enable"} {
		p.must(domain, nil, nil)
	}
	p.must("Page.navigate", map[string]any{"url": ts.url + "/"}, nil)
	p.waitFor("the page and its model description", `document.readyState === 'complete' &&
		document.getElementById('model').textContent.startsWith('tiny-colors: 3 classes')`)

	// Choose a file with the file input.
	var doc struct{ Root struct{ NodeID int } }
	p.must("DOM.getDocument", map[string]any{"depth": 0}, &doc)
	var input struct{ NodeID int }
	p.must("DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": "#file"}, &input)
	p.must("DOM.setFileInputFiles", map[string]any{"nodeId": input.NodeID, "files": []string{blue}}, nil)
	p.waitFor("the bars of the chosen image", `document.body.dataset.state === 'done'`)
	p.checkBars("blue")
	var status, timings string
	p.eval(`document.getElementById('status').textContent`, &status)
	p.eval(`document.getElementById('timings').textContent`, &timings)
	if status != "blue.png: most likely blue" || !strings.Contains(timings, "ms in all") {
		t.Errorf("status %q, timings %q", status, timings)
	}

	// Drop an image (a red canvas, as a PNG file) on the drop zone.
	p.eval(`(async () => {
		document.body.dataset.state = 'idle';
		const canvas = document.createElement('canvas');
		canvas.width = 30; canvas.height = 20;
		const g = canvas.getContext('2d');
		g.fillStyle = 'rgb(220, 25, 30)';
		g.fillRect(0, 0, 30, 20);
		const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
		const dt = new DataTransfer();
		dt.items.add(new File([blob], 'red.png', {type: 'image/png'}));
		const drop = document.getElementById('drop');
		drop.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
		drop.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
		return true;
	})()`, nil)
	p.waitFor("the bars of the dropped image", `document.body.dataset.state === 'done'`)
	p.checkBars("red")

	// A screenshot shows the bars: many pixels of their fill colour (#2f6fde).
	var shot struct{ Data string }
	p.must("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	b, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	fill := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r>>8, 0x2f) && near(g>>8, 0x6f) && near(b>>8, 0xde) {
				fill++
			}
		}
	}
	if fill < 1000 {
		t.Errorf("the screenshot has %d pixels of the bars' colour: not rendered?", fill)
	}

	// Nothing on the console so far.
	for _, e := range c.takeEvents() {
		switch e.Method {
		case "Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded":
			t.Errorf("console: %s %s", e.Method, e.Params)
		}
	}

	// A bad file: its error is shown on the page (Chromium itself logs the failed request, so the
	// console is not checked here, but the page must not throw).
	p.must("DOM.setFileInputFiles", map[string]any{"nodeId": input.NodeID, "files": []string{bad}}, nil)
	p.waitFor("the error of the bad file", `document.body.dataset.state === 'error'`)
	p.eval(`document.getElementById('status').textContent`, &status)
	if !strings.Contains(status, "notes.png: body: bad image") || !strings.Contains(status, "(HTTP 400)") {
		t.Errorf("status of the bad file: %q", status)
	}
	for _, e := range c.takeEvents() {
		if e.Method == "Runtime.exceptionThrown" || e.Method == "Runtime.consoleAPICalled" {
			t.Errorf("console: %s %s", e.Method, e.Params)
		}
	}
}

// near reports whether colour components a and b differ by at most 12.
func near(a, b uint32) bool { return max(a, b)-min(a, b) <= 12 }

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

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
