// Package serve serves a trained model over HTTP: POST /v1/predict answers with the most probable
// classes of one or more images, GET /v1/model describes the model, /healthz and /readyz report on the
// process, /metrics exports Prometheus metrics and / is a small web page to try the model in a browser.
//
// Concurrent requests are batched (inference.Batcher). Every request is bounded: its body size, the
// pixels of its images (checked from their headers before decoding), the images per request, its
// duration and the queue of images waiting for the model (503 when full). Bad input is answered with a
// 4xx status and a JSON error naming the problem; it never causes a 5xx, a panic or a stuck worker.
package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/seqconv/seqconv/inference"
)

// Defaults of Options.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 32 << 20
	// DefaultMaxPixels is the image size limit (width x height) that "seqconv serve" gives its
	// Predictor (inference.Options.MaxPixels): images beyond are answered with 413 before decoding.
	DefaultMaxPixels         = 1 << 25
	DefaultMaxImages         = 16
	DefaultRequestTimeout    = 30 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultShutdownTimeout   = 60 * time.Second
)

// Options configure a Server. Zero values mean the defaults.
type Options struct {
	// Batch configures the dynamic batching (MaxBatch, MaxDelay, QueueSize in images).
	Batch inference.BatcherOptions
	// MaxBodyBytes bounds a request's body (413 beyond); default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxImages bounds the images of one multipart request (413 beyond); default DefaultMaxImages.
	MaxImages int
	// RequestTimeout bounds a prediction request from the end of its body to its answer (503 beyond);
	// default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// ReadHeaderTimeout and ReadTimeout bound reading a request's header and whole request (slow
	// clients); WriteTimeout bounds writing the answer (0: RequestTimeout plus ReadTimeout).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests at shutdown; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Decoders bounds the images decoded at the same time; default runtime.NumCPU().
	Decoders int
	// Log receives the server's log lines (nil: discarded).
	Log io.Writer
}

// withDefaults returns o with the defaults applied.
func (o Options) withDefaults(p *inference.Predictor) Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxImages <= 0 {
		o.MaxImages = DefaultMaxImages
	}
	def(&o.RequestTimeout, DefaultRequestTimeout)
	def(&o.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&o.ReadTimeout, DefaultReadTimeout)
	def(&o.WriteTimeout, o.RequestTimeout+o.ReadTimeout)
	def(&o.ShutdownTimeout, DefaultShutdownTimeout)
	if o.Decoders <= 0 {
		o.Decoders = runtime.NumCPU()
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// Server is the HTTP server of one Predictor. Create it with New; it is an http.Handler.
type Server struct {
	p        *inference.Predictor
	model    string // the model's name
	topK     int    // the most classes an answer lists
	batcher  *inference.Batcher
	opts     Options
	metrics  *metrics
	decoders chan struct{} // a token per image being decoded
	handler  http.Handler
	ready    atomic.Bool
	stopping atomic.Bool
	logger   *log.Logger
}

// New returns a Server of p and starts its batcher. It is not ready (GET /readyz answers 503) until
// Warm has compiled the model's graphs; prediction requests are answered before that all the same.
// Close it (or let Serve close it) before closing p.
func New(p *inference.Predictor, opts Options) *Server {
	opts = opts.withDefaults(p)
	info := p.Info()
	s := &Server{p: p, model: info.Model, topK: info.TopK, opts: opts, decoders: make(chan struct{}, opts.Decoders),
		logger: log.New(opts.Log, "serve: ", log.LstdFlags)}
	s.metrics = newMetrics(s)
	batch := opts.Batch
	batch.OnBatch = s.metrics.observeBatch
	batch.Announced = true // handlePredict announces each request as it starts reading it.
	s.batcher = inference.NewBatcher(p, batch)
	s.opts.Batch = s.batcher.Options()
	s.handler = s.routes()
	return s
}

// Options returns the options in effect (defaults applied).
func (s *Server) Options() Options { return s.opts }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Warm compiles the model's graphs for every batch size the batcher can run, then marks the server
// ready.
func (s *Server) Warm(ctx context.Context) error {
	if err := s.p.Warm(ctx, s.opts.Batch.MaxBatch); err != nil {
		return err
	}
	s.ready.Store(true)
	return nil
}

// Close stops the batcher after the images it holds have run. Serve calls it.
func (s *Server) Close() {
	s.ready.Store(false)
	s.stopping.Store(true)
	s.batcher.Close()
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully: it stops accepting connections
// (new requests are refused), waits up to ShutdownTimeout for the requests in flight to be answered
// and closes the batcher. It returns nil after a graceful shutdown. ready, if not nil, is called once
// the model is warm.
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func()) (err error) {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       2 * s.opts.ReadTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.logger,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	warmed := make(chan error, 1)
	go func() {
		err := s.Warm(ctx)
		if err == nil && ready != nil {
			ready()
		}
		warmed <- err
	}()
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("serve: %w", err)
	case err = <-warmed:
		if err != nil {
			if ctx.Err() != nil { // Interrupted while warming up: a graceful end.
				err = nil
			} else {
				err = fmt.Errorf("serve: warming up: %w", err)
			}
			break
		}
		select {
		case <-ctx.Done():
		case err = <-served:
			err = fmt.Errorf("serve: %w", err)
		}
	}
	s.ready.Store(false)
	s.stopping.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && err == nil {
		err = fmt.Errorf("serve: shutting down: %w", serr)
	}
	s.Close()
	return err
}

// routes returns the server's handler: its endpoints, each instrumented and behind a panic guard.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	get := []string{http.MethodGet, http.MethodHead}
	for _, r := range []struct {
		pattern, name string
		h             http.HandlerFunc
		methods       []string
	}{
		{"/v1/predict", "predict", s.handlePredict, []string{http.MethodPost}},
		{"/v1/model", "model", s.handleModel, get},
		{"/healthz", "healthz", s.handleHealth, get},
		{"/readyz", "readyz", s.handleReady, get},
		{"/metrics", "metrics", s.metrics.handler().ServeHTTP, get},
		{"/", "page", s.handlePage, get},
	} {
		mux.Handle(r.pattern, s.instrument(r.name, s.recoverPanics(s.allow(r.h, r.methods...))))
	}
	return mux
}

// allow restricts h to the given methods: others get 405 with an Allow header.
func (s *Server) allow(h http.HandlerFunc, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if r.Method == m {
				h(w, r)
				return
			}
		}
		allowed := methods[0]
		for _, m := range methods[1:] {
			allowed += ", " + m
		}
		w.Header().Set("Allow", allowed)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s: use %s", r.Method,
			r.URL.Path, allowed))
	})
}

// recoverPanics answers a panicking request with 500 instead of ending the process.
func (s *Server) recoverPanics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.logger.Printf("panic serving %s %s: %v", r.Method, r.URL.Path, v)
				s.metrics.errors.WithLabelValues("internal").Inc()
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// errorBody is the JSON of an error answer.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// writeError answers with status and a JSON error.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Error: msg, Status: status})
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer","status":500}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// handleModel answers GET /v1/model: the model, its classes and preprocessing, the engine, the limits.
func (s *Server) handleModel(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		inference.Info
		MaxBatch     int     `json:"max_batch"`
		MaxDelayMS   float64 `json:"max_delay_ms"`
		QueueSize    int     `json:"queue_size"`
		MaxBodyBytes int64   `json:"max_body_bytes"`
		MaxPixels    int     `json:"max_pixels"`
		MaxImages    int     `json:"max_images"`
	}{s.p.Info(), s.opts.Batch.MaxBatch, ms(s.opts.Batch.MaxDelay), s.opts.Batch.QueueSize, s.opts.MaxBodyBytes,
		s.p.MaxPixels(), s.opts.MaxImages})
}

// handleHealth answers GET /healthz: the process is up.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady answers GET /readyz: 200 once the model is warm, 503 before and while shutting down.
func (s *Server) handleReady(w http.ResponseWriter, _ *http.Request) {
	switch {
	case s.stopping.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case !s.ready.Load():
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "warming up"})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// ms converts d to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// errorsIsTimeout reports whether err is a network timeout (a slow client).
func errorsIsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
