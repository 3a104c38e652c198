package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/inference"
	"github.com/seqconv/seqconv/serve"
)

func init() {
	registerCommand(command{"serve", "serve a run's model over HTTP (JSON API, metrics, a web page)",
		runServe, flagsUsage(newServeFlags)})
}

// serveOptions are the flags of "seqconv serve".
type serveOptions struct {
	run, addr                       string
	best                            bool
	top, maxBatch, queue, maxImages int
	workers                         int
	maxPixels                       int
	maxBody                         int64
	maxDelay, timeout               time.Duration
	readHeaderTimeout, readTimeout  time.Duration
	shutdownTimeout                 time.Duration
}

func newServeFlags(o *serveOptions) *flagSet {
	if o == nil {
		o = &serveOptions{}
	}
	fs := newFlagSet("serve", "seqconv serve --run RUN_DIR [--addr 127.0.0.1:8080] [flags]", `
Serves a run's model over HTTP until SIGINT or SIGTERM, then stops gracefully (the requests in flight
are answered, new ones refused):
  POST /v1/predict  an image (Content-Type image/*, application/octet-stream) or a multipart/form-data
                    form with image files (JPEG, PNG, GIF, WebP): JSON with the top classes of each
                    image and timings; ?top=K lists fewer classes
  GET  /v1/model    the model, its classes, preprocessing and engine, and the server's limits
  GET  /healthz     200 while the process is up; GET /readyz: 200 once the model is compiled
  GET  /metrics     Prometheus metrics: requests, latency, batch sizes, errors
  GET  /            a web page: drop an image, see the top classes
Concurrent requests are run in batches of up to --max-batch images, waiting at most --max-delay for
one to fill. Bad input is answered with a 4xx status and a JSON error naming the problem; a full
queue with 503.`)
	fs.StringVar(&o.run, "run", "", "run directory (required)")
	fs.StringVar(&o.addr, "addr", serve.DefaultAddr, "address to listen on (host:port; port 0 picks a free one)")
	fs.BoolVar(&o.best, "best", false, "serve the best checkpoint (best/) instead of the latest (checkpoint/)")
	fs.IntVar(&o.top, "top", inference.DefaultTopK, "classes listed per image (>= 1; ?top=K asks for fewer)")
	fs.IntVar(&o.maxBatch, "max-batch", 32, "most images per forward pass (>= 1)")
	fs.DurationVar(&o.maxDelay, "max-delay", inference.DefaultMaxDelay, "longest wait for a batch to fill")
	fs.IntVar(&o.workers, "workers", 1, "forward passes run at the same time (>= 1)")
	fs.IntVar(&o.queue, "queue", 256, "most images waiting for a batch; beyond, requests get 503")
	fs.IntVar(&o.maxImages, "max-images", serve.DefaultMaxImages, "most images per request")
	fs.Int64Var(&o.maxBody, "max-body", serve.DefaultMaxBodyBytes, "most bytes per request body")
	fs.IntVar(&o.maxPixels, "max-pixels", serve.DefaultMaxPixels, "most pixels (width x height) per image, "+
		"read from its header before decoding")
	fs.DurationVar(&o.timeout, "timeout", serve.DefaultRequestTimeout, "longest wait for the model per request")
	fs.DurationVar(&o.readHeaderTimeout, "read-header-timeout", serve.DefaultReadHeaderTimeout,
		"longest time to read a request's header")
	fs.DurationVar(&o.readTimeout, "read-timeout", serve.DefaultReadTimeout, "longest time to read a whole request")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", serve.DefaultShutdownTimeout,
		"longest wait for the requests in flight at shutdown")
	return fs
}

// runServe implements "seqconv serve".
func runServe(args []string, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := newServeFlags(&o)
	if code, done := parseFlags(fs, args, stdout, stderr); done {
		return code
	}
	return runInterruptible(stderr, func(ctx context.Context) error { return o.execute(ctx, stderr) })
}

func (o *serveOptions) execute(ctx context.Context, stderr io.Writer) error {
	if err := requireFlags("--run", o.run); err != nil {
		return err
	}
	for _, f := range []struct {
		name  string
		value int64
	}{{"--top", int64(o.top)}, {"--max-batch", int64(o.maxBatch)}, {"--workers", int64(o.workers)}, {"--queue", int64(o.queue)},
		{"--max-images", int64(o.maxImages)}, {"--max-pixels", int64(o.maxPixels)}, {"--max-body", o.maxBody}} {
		if f.value < 1 {
			return usagef("%s must be >= 1, got %d", f.name, f.value)
		}
	}
	for _, f := range []struct {
		name  string
		value time.Duration
	}{{"--max-delay", o.maxDelay}, {"--timeout", o.timeout}, {"--read-header-timeout", o.readHeaderTimeout},
		{"--read-timeout", o.readTimeout}, {"--shutdown-timeout", o.shutdownTimeout}} {
		if f.value <= 0 {
			return usagef("%s must be > 0, got %s", f.name, f.value)
		}
	}
	if err := checkRunDirExists("--run", o.run); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return usagef("--addr %s: %v", o.addr, unwrapNetError(err))
	}
	defer ln.Close()
	backend, err := newBackend(stderr, engine.Inference)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	p, err := inference.Load(o.run, inference.Options{Backend: backend, Best: o.best, TopK: o.top,
		MaxBatch: o.maxBatch, MaxPixels: o.maxPixels})
	if err != nil {
		return err
	}
	defer p.Close()
	srv := serve.New(p, serve.Options{
		Batch: inference.BatcherOptions{MaxBatch: o.maxBatch, MaxDelay: o.maxDelay, QueueSize: o.queue,
			Workers: o.workers},
		MaxBodyBytes: o.maxBody, MaxImages: o.maxImages, RequestTimeout: o.timeout,
		ReadHeaderTimeout: o.readHeaderTimeout, ReadTimeout: o.readTimeout, ShutdownTimeout: o.shutdownTimeout,
		Log: stderr,
	})
	info := p.Info()
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(stderr, "seqconv: serving model %s (%d classes, %s) on %s; compiling the model...\n", info.Model,
		len(info.Classes), info.Engine, url)
	err = srv.Serve(ctx, ln, func() { fmt.Fprintf(stderr, "seqconv: ready on %s\n", url) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "seqconv: stopped serving on %s\n", url)
	return nil
}

// unwrapNetError returns the cause of a *net.OpError (whose message repeats the address).
func unwrapNetError(err error) error {
	if oe, ok := err.(*net.OpError); ok && oe.Err != nil {
		return oe.Err
	}
	return err
}
