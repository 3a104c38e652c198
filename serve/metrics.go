package serve

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (so that several servers can
// live in one process, as in the tests).
type metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	inflight      prometheus.Gauge
	images        prometheus.Counter
	batchSize     prometheus.Histogram
	batchDuration prometheus.Histogram
	batchErrors   prometheus.Counter
	errors        *prometheus.CounterVec
}

// newMetrics registers the metrics of s, with the Go runtime's and the process's.
func newMetrics(s *Server) *metrics {
	maxBatch := s.opts.Batch.MaxBatch
	if maxBatch <= 0 {
		maxBatch = s.p.Info().MaxBatch
	}
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "seqconv_http_requests_total",
			Help: "HTTP requests answered, by handler and status code."}, []string{"handler", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "seqconv_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by handler.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"handler"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "seqconv_http_requests_in_flight",
			Help: "HTTP requests being answered."}),
		images: prometheus.NewCounter(prometheus.CounterOpts{Name: "seqconv_predicted_images_total",
			Help: "Images predicted."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "seqconv_batch_size",
			Help: "Images per forward pass of the model.", Buckets: batchBuckets(maxBatch)}),
		batchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "seqconv_batch_duration_seconds",
			Help: "Duration of a forward pass of the model.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		batchErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "seqconv_batch_errors_total",
			Help: "Forward passes that failed."}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "seqconv_errors_total",
			Help: "Prediction requests answered with an error, by kind: bad_input (400, 415), too_large (413), " +
				"slow_client (408), unavailable (503: queue full, timeout, shutting down), client_gone, internal."},
			[]string{"kind"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.inflight, m.images, m.batchSize, m.batchDuration, m.batchErrors,
		m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "seqconv_queue_images",
			Help: "Images waiting for a batch."}, func() float64 { return float64(s.batcher.QueueLen()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "seqconv_ready",
			Help: "1 when the model is warm and the server is not shutting down."}, func() float64 {
			if s.ready.Load() {
				return 1
			}
			return 0
		}),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// batchBuckets are the upper bounds of the batch-size histogram: the powers of two up to maxBatch, and
// maxBatch.
func batchBuckets(maxBatch int) []float64 {
	var b []float64
	for n := 1; n < maxBatch; n *= 2 {
		b = append(b, float64(n))
	}
	return append(b, float64(maxBatch))
}

// observeBatch records one forward pass (inference.BatcherOptions.OnBatch).
func (m *metrics) observeBatch(size int, d time.Duration, err error) {
	m.batchSize.Observe(float64(size))
	m.batchDuration.Observe(d.Seconds())
	if err != nil {
		m.batchErrors.Inc()
	}
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// statusWriter records the status code of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// instrument counts and times the requests of handler name.
func (s *Server) instrument(name string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inflight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			s.metrics.inflight.Dec()
			code := sw.status
			if code == 0 {
				code = 499 // The client went away before an answer (nginx's code).
			}
			s.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
			s.metrics.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}()
		h.ServeHTTP(sw, r)
	})
}
