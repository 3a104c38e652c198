package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/inference"
	"github.com/seqconv/seqconv/internal/testrun"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testrun.Cleanup()
	os.Exit(code)
}

// testServer is a Server of the colour run listening on loopback.
type testServer struct {
	*Server
	url    string
	stop   context.CancelFunc
	served chan error
}

// startServer loads the colour run (with inference options popts) and serves it with opts on a
// loopback port until the test ends; it returns once the model is warm.
func startServer(t *testing.T, popts inference.Options, opts Options) *testServer {
	t.Helper()
	if popts.Backend == nil {
		popts.Backend = engine.MustNewForTest()
	}
	p, err := inference.Load(testrun.Colors(t), popts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: New(p, opts), url: "http://" + ln.Addr().String(), stop: cancel, served: make(chan error, 1)}
	ready := make(chan struct{})
	go func() { ts.served <- ts.Serve(ctx, ln, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-ts.served:
		t.Fatalf("Serve ended before it was ready: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the server was not ready after 2 minutes")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-ts.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = p.Close()
	})
	return ts
}

// encodeImage encodes img as "jpeg", "png" or "gif".
func encodeImage(t *testing.T, format string, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "jpeg":
		err = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	case "png":
		err = png.Encode(&buf, img)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// colorImage encodes an image of colour label (0 red, 1 green, 2 blue).
func colorImage(t *testing.T, format string, label, w, h int) []byte {
	return encodeImage(t, format, testrun.Color(rand.New(rand.NewPCG(uint64(label), uint64(w*h))), label, w, h))
}

// forgedPNG returns a PNG whose header claims w x h pixels (with a valid checksum) but whose data is a
// few bytes: a decompression bomb as far as the header can tell.
func forgedPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	chunk("IHDR", append(ihdr, 8, 2, 0, 0, 0)) // 8-bit RGB
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// part is one part of a multipart form: a file when filename is set, a field otherwise.
type part struct {
	field, filename string
	body            []byte
}

// multipartBody encodes parts as multipart/form-data and returns the body and its Content-Type.
func multipartBody(t *testing.T, parts ...part) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		if p.filename != "" {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.filename))
			h.Set("Content-Type", "application/octet-stream")
		} else {
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q`, p.field))
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p.body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// answer is a decoded answer of the server.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and reads the whole answer.
func do(t *testing.T, method, url, contentType string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// predictions decodes a prediction answer.
type predictions struct {
	Model       string
	Predictions []struct {
		Image     string
		Top       []inference.Class
		BatchSize int `json:"batch_size"`
	}
	TimingsMS map[string]float64 `json:"timings_ms"`
}

// TestPredictGood sends good requests: raw images of each format and content type, a multipart form
// with several images (and a plain field), and a shorter top-k list.
func TestPredictGood(t *testing.T) {
	ts := startServer(t, inference.Options{}, Options{})
	boundaryBody, boundaryType := multipartBody(t,
		part{"image", "red.jpg", colorImage(t, "jpeg", 0, 50, 40)},
		part{"note", "", []byte("a form field, not an image")},
		part{"image", "green.png", colorImage(t, "png", 1, 16, 16)},
		part{"other", "blue.gif", colorImage(t, "gif", 2, 21, 35)})
	for _, tc := range []struct {
		name, contentType, query string
		body                     []byte
		want                     []string // classes, in order
		images                   []string
		top                      int
	}{
		{"jpeg", "image/jpeg", "", colorImage(t, "jpeg", 2, 64, 48), []string{"blue"}, []string{"body"}, 3},
		{"png as octet-stream", "application/octet-stream", "", colorImage(t, "png", 0, 16, 16), []string{"red"}, []string{"body"}, 3},
		{"gif without content type", "", "?top=1", colorImage(t, "gif", 1, 30, 30), []string{"green"}, []string{"body"}, 1},
		{"multipart", boundaryType, "?top=2", boundaryBody, []string{"red", "green", "blue"},
			[]string{"red.jpg", "green.png", "blue.gif"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, http.MethodPost, ts.url+"/v1/predict"+tc.query, tc.contentType, tc.body)
			if a.status != http.StatusOK || a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d, %s: %s", a.status, a.header.Get("Content-Type"), a.body)
			}
			var got predictions
			if err := json.Unmarshal(a.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.Model != "tiny-colors" || len(got.Predictions) != len(tc.want) {
				t.Fatalf("answer %s", a.body)
			}
			for i, want := range tc.want {
				p := got.Predictions[i]
				if len(p.Top) != tc.top || p.Top[0].Name != want || p.Top[0].Probability < 0.5 || p.Image != tc.images[i] ||
					p.BatchSize < 1 {
					t.Errorf("image %d: %+v, want %s (%s) first among %d", i, p, want, tc.images[i], tc.top)
				}
			}
			for _, k := range []string{"read", "decode", "queue", "inference", "total"} {
				if _, ok := got.TimingsMS[k]; !ok || got.TimingsMS["total"] <= 0 {
					t.Errorf("timings %v lack %s", got.TimingsMS, k)
				}
			}
		})
	}
}

// TestBadInput sends every kind of bad request: each is answered with its 4xx status and a JSON error
// naming the problem, and the server goes on answering good requests.
func TestBadInput(t *testing.T) {
	ts := startServer(t, inference.Options{MaxPixels: 1000 * 1000}, Options{MaxBodyBytes: 256 << 10, MaxImages: 2})
	good := colorImage(t, "jpeg", 0, 40, 40)
	big := encodeImage(t, "png", image.NewGray(image.Rect(0, 0, 1001, 1000)))
	noFiles, noFilesType := multipartBody(t, part{"note", "", []byte("hello")})
	tooMany, tooManyType := multipartBody(t, part{"a", "1.jpg", good}, part{"a", "2.jpg", good}, part{"a", "3.jpg", good})
	badPart, badPartType := multipartBody(t, part{"a", "ok.jpg", good}, part{"a", "notes.txt", []byte("not an image")})
	emptyPart, emptyPartType := multipartBody(t, part{"a", "empty.png", nil})
	two, twoType := multipartBody(t, part{"a", "1.jpg", good}, part{"a", "2.jpg", good})
	for _, tc := range []struct {
		name, method, path, contentType string
		body                            []byte
		status                          int
		want                            string
	}{
		{"empty body", "POST", "/v1/predict", "image/png", nil, 400, "empty body"},
		{"not an image", "POST", "/v1/predict", "image/jpeg", []byte("hello, I am text"), 400, "unknown format"},
		{"truncated jpeg", "POST", "/v1/predict", "image/jpeg", good[:len(good)/2], 400, "decoding jpeg"},
		{"jpeg header only", "POST", "/v1/predict", "image/jpeg", good[:40], 400, "body: bad image"},
		{"huge dimensions (forged header)", "POST", "/v1/predict", "image/png", forgedPNG(50000, 50000), 413,
			"50000x50000 pixels, expected 1 to 1000000"},
		{"too many pixels", "POST", "/v1/predict", "image/png", big, 413, "1001x1000 pixels"},
		{"body too large", "POST", "/v1/predict", "image/png", make([]byte, 300<<10), 413, "larger than 262144 bytes"},
		{"json content type", "POST", "/v1/predict", "application/json", []byte(`{"image": "x"}`), 415, "application/json"},
		{"form content type", "POST", "/v1/predict", "application/x-www-form-urlencoded", good, 415, "multipart/form-data"},
		{"bad content type", "POST", "/v1/predict", "image/png; ;=", good, 415, "Content-Type"},
		{"multipart without boundary", "POST", "/v1/predict", "multipart/form-data", good, 400, "boundary"},
		{"multipart without files", "POST", "/v1/predict", noFilesType, noFiles, 400, "no image file"},
		{"multipart with too many images", "POST", "/v1/predict", tooManyType, tooMany, 413, "more than 2 images"},
		{"multipart with a bad image", "POST", "/v1/predict", badPartType, badPart, 400, "notes.txt: bad image"},
		{"multipart with an empty file", "POST", "/v1/predict", emptyPartType, emptyPart, 400, "empty.png (part 1): empty file"},
		{"truncated multipart", "POST", "/v1/predict", twoType, two[:len(two)-100], 400, "2.jpg (part 2): unexpected EOF"},
		{"top 0", "POST", "/v1/predict?top=0", "image/jpeg", good, 400, "top=\"0\": want an integer from 1 to 3"},
		{"top not a number", "POST", "/v1/predict?top=x", "image/jpeg", good, 400, "top="},
		{"GET predict", "GET", "/v1/predict", "", nil, 405, "use POST"},
		{"POST model", "POST", "/v1/model", "image/png", good, 405, "use GET"},
		{"unknown path", "GET", "/v2/predict", "", nil, 404, "no page at /v2/predict"},
		{"static traversal", "GET", "/static/../server.go", "", nil, 404, "no page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, tc.method, ts.url+tc.path, tc.contentType, tc.body)
			var e struct {
				Error  string
				Status int
			}
			if err := json.Unmarshal(a.body, &e); err != nil || a.header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d: not a JSON error (%v): %s", a.status, err, a.body)
			}
			if a.status != tc.status || e.Status != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("status %d, error %q; want %d and an error containing %q", a.status, e.Error, tc.status, tc.want)
			}
			if tc.status == 405 && a.header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
	// Still serving.
	if a := do(t, "POST", ts.url+"/v1/predict", "image/jpeg", good); a.status != 200 {
		t.Errorf("after the bad requests: status %d: %s", a.status, a.body)
	}
	// The metrics count them.
	m := string(do(t, "GET", ts.url+"/metrics", "", nil).body)
	for _, want := range []string{`seqconv_http_requests_total{code="400",handler="predict"}`,
		`seqconv_http_requests_total{code="413",handler="predict"} 4`, `seqconv_http_requests_total{code="200",handler="predict"} 1`,
		`seqconv_errors_total{kind="bad_input"}`, `seqconv_errors_total{kind="too_large"} 4`, "seqconv_batch_size_bucket",
		`seqconv_http_request_duration_seconds_bucket{handler="predict"`, "seqconv_queue_images 0", "seqconv_ready 1",
		"process_resident_memory_bytes", "seqconv_predicted_images_total 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestSlowClients checks the read timeouts: a client that sends half a body and stalls gets 408, one
// that never finishes its header is disconnected, and neither holds up the others.
func TestSlowClients(t *testing.T) {
	ts := startServer(t, inference.Options{}, Options{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second})
	good := colorImage(t, "png", 2, 20, 20)
	addr := strings.TrimPrefix(ts.url, "http://")

	slowBody, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slowBody.Close()
	fmt.Fprintf(slowBody, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", len(good))
	_, _ = slowBody.Write(good[:len(good)/2])

	slowHeader, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slowHeader.Close()
	fmt.Fprintf(slowHeader, "POST /v1/predict HTTP/1.1\r\nHost: x\r\n")

	// Others are answered meanwhile.
	if a := do(t, "POST", ts.url+"/v1/predict", "image/png", good); a.status != 200 {
		t.Errorf("while slow clients wait: status %d: %s", a.status, a.body)
	}
	start := time.Now()
	_ = slowBody.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufioReader(slowBody), nil)
	if err != nil {
		t.Fatalf("slow body: no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "slow client") {
		t.Errorf("slow body: status %d: %s", resp.StatusCode, b)
	}
	_ = slowHeader.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := io.Copy(io.Discard, slowHeader); err != nil {
		t.Errorf("slow header: the server did not close the connection (%d bytes, %v)", n, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the slow clients were dropped after %s", d)
	}
}

// TestOverload checks the answers of an overloaded server: 503 with Retry-After when the queue is full
// and when a request times out waiting for the model; and that a lone request does not wait for a
// batch to fill.
func TestOverload(t *testing.T) {
	good := colorImage(t, "jpeg", 1, 30, 30)
	three, threeType := multipartBody(t, part{"a", "1.jpg", good}, part{"a", "2.jpg", good}, part{"a", "3.jpg", good})
	full := startServer(t, inference.Options{}, Options{Batch: inference.BatcherOptions{QueueSize: 2}})
	slow := startServer(t, inference.Options{}, Options{RequestTimeout: 20 * time.Millisecond,
		Batch: inference.BatcherOptions{MaxDelay: 2 * time.Second}})
	// A lone request does not wait --max-delay for company.
	a := do(t, "POST", slow.url+"/v1/predict", "image/jpeg", good)
	var got predictions
	if err := json.Unmarshal(a.body, &got); err != nil || a.status != 200 || got.TimingsMS["queue"] > 1000 {
		t.Errorf("a lone request: status %d, %s: want 200 without waiting 2s", a.status, a.body)
	}
	// Another request on its way makes the batch wait for it (up to 2s): the request times out.
	arrival := slow.batcher.Announce()
	defer arrival.Done()
	for _, tc := range []struct {
		name, url, contentType string
		body                   []byte
		want                   string
	}{
		{"queue full", full.url, threeType, three, "the server is busy"},
		{"timeout", slow.url, "image/jpeg", good, "timed out after 20ms waiting for the model"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := do(t, "POST", tc.url+"/v1/predict", tc.contentType, tc.body)
			if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" ||
				!strings.Contains(string(a.body), tc.want) {
				t.Errorf("status %d, Retry-After %q: %s; want 503 saying %q", a.status, a.header.Get("Retry-After"), a.body,
					tc.want)
			}
		})
	}
}

// TestEndpoints checks /v1/model, /healthz, /readyz, / and its static files.
func TestEndpoints(t *testing.T) {
	ts := startServer(t, inference.Options{}, Options{Batch: inference.BatcherOptions{MaxBatch: 4}})
	var model struct {
		Model     string
		Classes   []string
		InputSize [2]int `json:"input_size"`
		Engine    string
		MaxBatch  int `json:"max_batch"`
	}
	a := do(t, "GET", ts.url+"/v1/model", "", nil)
	if err := json.Unmarshal(a.body, &model); err != nil || a.status != 200 || model.Model != "tiny-colors" ||
		strings.Join(model.Classes, ",") != "red,green,blue" || model.InputSize != [2]int{16, 16} || model.Engine == "" ||
		model.MaxBatch != 4 {
		t.Errorf("/v1/model: %d %s", a.status, a.body)
	}
	for _, tc := range []struct {
		path, contentType, want string
	}{
		{"/healthz", "application/json", `"ok"`},
		{"/readyz", "application/json", `"ready"`},
		{"/", "text/html; charset=utf-8", `<input id="file" type="file"`},
		{"/static/app.js", "text/javascript; charset=utf-8", "/v1/predict"},
		{"/static/style.css", "text/css; charset=utf-8", ".bar"},
	} {
		a := do(t, "GET", ts.url+tc.path, "", nil)
		if a.status != 200 || a.header.Get("Content-Type") != tc.contentType || !strings.Contains(string(a.body), tc.want) {
			t.Errorf("GET %s: %d %s: %.200s", tc.path, a.status, a.header.Get("Content-Type"), a.body)
		}
	}
	if !strings.Contains(do(t, "GET", ts.url+"/", "", nil).header.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Error("the page has no Content-Security-Policy")
	}
}

// TestGracefulShutdown stops the server while a request is in flight: it is answered, and new
// connections are refused.
func TestGracefulShutdown(t *testing.T) {
	ts := startServer(t, inference.Options{}, Options{})
	good := colorImage(t, "png", 0, 24, 24)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n", len(good))
	_, _ = conn.Write(good[:10])
	time.Sleep(100 * time.Millisecond) // The request is being read.
	ts.stop()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
		if err != nil {
			break // Refused: the listener is closed.
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections still accepted 10s after the shutdown began")
		}
	}
	_, _ = conn.Write(good[10:])
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil {
		t.Fatalf("the request in flight was not answered: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"name":"red"`) {
		t.Errorf("the request in flight: status %d: %s", resp.StatusCode, b)
	}
}

// bufioReader reads the answers of a raw connection.
func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
