package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seqconv/seqconv/data"
	"github.com/seqconv/seqconv/inference"
)

// requestError is a problem with a request: its status and a message naming the problem.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) *requestError {
	return &requestError{status: status, msg: fmt.Sprintf(format, args...)}
}

// upload is one image of a request: its name (the multipart file name, or "body") and bytes.
type upload struct {
	name string
	b    []byte
}

// predictAnswer is the JSON answer of POST /v1/predict.
type predictAnswer struct {
	Model       string             `json:"model"`
	Predictions []imagePrediction  `json:"predictions"`
	TimingsMS   map[string]float64 `json:"timings_ms"`
}

// imagePrediction is the prediction of one image of a request.
type imagePrediction struct {
	Image     string            `json:"image"`
	Top       []inference.Class `json:"top"`
	BatchSize int               `json:"batch_size"`
}

// handlePredict answers POST /v1/predict. The body is one image (Content-Type image/* or
// application/octet-stream, or none) or a multipart/form-data form whose file parts are images. The
// query parameter top (1 to the server's top-k) shortens the lists.
func (s *Server) handlePredict(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	status, answer, err := s.predict(w, r)
	if err != nil {
		var re *requestError
		switch {
		case errors.As(err, &re):
			s.metrics.errors.WithLabelValues(errorKind(re.status)).Inc()
			if re.status == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeError(w, re.status, re.msg)
		case r.Context().Err() != nil: // The client has gone: nobody to answer.
			s.metrics.errors.WithLabelValues("client_gone").Inc()
		default:
			s.logger.Printf("predict: %v", err)
			s.metrics.errors.WithLabelValues("internal").Inc()
			writeError(w, http.StatusInternalServerError, "internal error: "+err.Error())
		}
		return
	}
	answer.TimingsMS["total"] = ms(time.Since(start))
	writeJSON(w, status, answer)
}

// errorKind labels the errors metric by status.
func errorKind(status int) string {
	switch status {
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusRequestTimeout:
		return "slow_client"
	}
	return "bad_input"
}

// predict reads, decodes and predicts the images of a request.
func (s *Server) predict(w http.ResponseWriter, r *http.Request) (int, *predictAnswer, error) {
	if s.stopping.Load() {
		return 0, nil, badRequest(http.StatusServiceUnavailable, "the server is shutting down")
	}
	top := s.topK
	if q := r.URL.Query().Get("top"); q != "" {
		k, err := strconv.Atoi(q)
		if err != nil || k < 1 || k > top {
			return 0, nil, badRequest(http.StatusBadRequest, "query parameter top=%q: want an integer from 1 to %d", q, top)
		}
		top = k
	}
	arrival := s.batcher.Announce()
	defer arrival.Done()
	t0 := time.Now()
	uploads, err := s.readUploads(w, r)
	if err != nil {
		return 0, nil, err
	}
	readMS := ms(time.Since(t0))

	ctx, cancel := context.WithTimeout(r.Context(), s.opts.RequestTimeout)
	defer cancel()
	t1 := time.Now()
	inputs, err := s.decode(ctx, uploads)
	if err != nil {
		return 0, nil, err
	}
	decodeMS := ms(time.Since(t1))

	preds, timings, err := arrival.Predict(ctx, inputs)
	switch {
	case errors.Is(err, inference.ErrQueueFull):
		return 0, nil, badRequest(http.StatusServiceUnavailable, "the server is busy: %d images are waiting (the "+
			"queue holds %d); retry later", s.batcher.QueueLen(), s.opts.Batch.QueueSize)
	case errors.Is(err, inference.ErrBatcherClosed):
		return 0, nil, badRequest(http.StatusServiceUnavailable, "the server is shutting down")
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		return 0, nil, badRequest(http.StatusServiceUnavailable, "timed out after %s waiting for the model",
			s.opts.RequestTimeout)
	case err != nil:
		return 0, nil, err
	}
	s.metrics.images.Add(float64(len(preds)))
	answer := &predictAnswer{Model: s.model, Predictions: make([]imagePrediction, len(preds)),
		TimingsMS: map[string]float64{"read": readMS, "decode": decodeMS}}
	var queue, infer float64
	for i, pred := range preds {
		answer.Predictions[i] = imagePrediction{Image: uploads[i].name, Top: pred.Top[:top],
			BatchSize: timings[i].BatchSize}
		queue = max(queue, ms(timings[i].Queue))
		infer = max(infer, ms(timings[i].Inference))
	}
	answer.TimingsMS["queue"], answer.TimingsMS["inference"] = queue, infer
	return http.StatusOK, answer, nil
}

// readUploads reads the images of a request's body, within the body-size and image-count limits.
func (s *Server) readUploads(w http.ResponseWriter, r *http.Request) ([]upload, error) {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	ct := r.Header.Get("Content-Type")
	mediaType, params := "", map[string]string(nil)
	if ct != "" {
		var err error
		if mediaType, params, err = mime.ParseMediaType(ct); err != nil {
			return nil, badRequest(http.StatusUnsupportedMediaType, "Content-Type %q: %v", ct, err)
		}
	}
	switch {
	case mediaType == "multipart/form-data":
		return s.readMultipart(body, params["boundary"])
	case mediaType == "", mediaType == "application/octet-stream", strings.HasPrefix(mediaType, "image/"):
		b, err := s.readAll(body, "the body")
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, badRequest(http.StatusBadRequest, "empty body: send the bytes of an image (JPEG, PNG, GIF "+
				"or WebP), or a multipart/form-data form with image files")
		}
		return []upload{{name: "body", b: b}}, nil
	}
	return nil, badRequest(http.StatusUnsupportedMediaType, "Content-Type %q: send an image (image/*, "+
		"application/octet-stream) or multipart/form-data with image files", mediaType)
}

// readAll reads r, mapping the body-size limit to 413 and a read timeout (a slow client) to 408.
func (s *Server) readAll(r io.Reader, what string) ([]byte, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(r)
	var tooLarge *http.MaxBytesError
	switch {
	case err == nil:
		return buf.Bytes(), nil
	case errors.As(err, &tooLarge):
		return nil, badRequest(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", s.opts.MaxBodyBytes)
	case errorsIsTimeout(err):
		return nil, badRequest(http.StatusRequestTimeout, "reading %s: timed out after %s (a slow client)", what,
			s.opts.ReadTimeout)
	}
	return nil, badRequest(http.StatusBadRequest, "reading %s: %v", what, err)
}

// readMultipart reads the file parts of a multipart/form-data body.
func (s *Server) readMultipart(body io.Reader, boundary string) ([]upload, error) {
	if boundary == "" {
		return nil, badRequest(http.StatusBadRequest, "multipart/form-data without a boundary")
	}
	mr := multipart.NewReader(body, boundary)
	var uploads []upload
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			if re := s.mapReadError(err, "the multipart form"); re != nil {
				return nil, re
			}
			return nil, badRequest(http.StatusBadRequest, "reading the multipart form: %v", err)
		}
		if part.FileName() == "" { // A plain form field: not an image.
			if _, err := s.readAll(part, "the multipart form"); err != nil {
				return nil, err
			}
			continue
		}
		if len(uploads) == s.opts.MaxImages {
			return nil, badRequest(http.StatusRequestEntityTooLarge, "more than %d images in one request", s.opts.MaxImages)
		}
		name := fmt.Sprintf("%s (part %d)", part.FileName(), len(uploads)+1)
		b, err := s.readAll(part, name)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return nil, badRequest(http.StatusBadRequest, "%s: empty file", name)
		}
		uploads = append(uploads, upload{name: part.FileName(), b: b})
	}
	if len(uploads) == 0 {
		return nil, badRequest(http.StatusBadRequest, "no image file in the multipart form")
	}
	return uploads, nil
}

// mapReadError maps the body-size limit and read timeouts met by the multipart reader; nil for others.
func (s *Server) mapReadError(err error, what string) *requestError {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return badRequest(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", s.opts.MaxBodyBytes)
	case errorsIsTimeout(err):
		return badRequest(http.StatusRequestTimeout, "reading %s: timed out after %s (a slow client)", what,
			s.opts.ReadTimeout)
	}
	return nil
}

// decode decodes and prepares the uploads, at most Decoders images at a time across requests.
func (s *Server) decode(ctx context.Context, uploads []upload) ([]inference.Input, error) {
	inputs := make([]inference.Input, len(uploads))
	for i, u := range uploads {
		select {
		case s.decoders <- struct{}{}:
		case <-ctx.Done():
			return nil, badRequest(http.StatusServiceUnavailable, "timed out after %s waiting to decode the images",
				s.opts.RequestTimeout)
		}
		in, err := s.p.Decode(u.name, u.b)
		<-s.decoders
		switch {
		case errors.Is(err, data.ErrTooManyPixels):
			return nil, badRequest(http.StatusRequestEntityTooLarge, "%v", err)
		case err != nil:
			return nil, badRequest(http.StatusBadRequest, "%v", err)
		}
		inputs[i] = in
	}
	return inputs, nil
}
