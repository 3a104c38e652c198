// Command serveload is the load generator of bench/serve.sh: it sends POST /v1/predict requests to a
// "seqconv serve" from N concurrent loopback clients, each concurrency bounded in requests and time,
// and reports requests/s, p50/p99 latency, errors and the mean batch size the server reached (from its
// /metrics). With -init-run it writes a run directory of a model with random weights instead, to serve.
//
//	serveload -init-run runs/cifar-demo-random -model seqresnet-cifar-demo
//	serveload -url http://127.0.0.1:8080 -c 1,8,64 -duration 20s -max-requests 5000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seqconv/seqconv/engine"
	"github.com/seqconv/seqconv/models"
	"github.com/seqconv/seqconv/train"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "serveload: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	initRun := flag.String("init-run", "", "write a run directory with random weights of -model here, then exit")
	modelName := flag.String("model", "seqresnet-cifar-demo", "model of -init-run")
	url := flag.String("url", "http://127.0.0.1:8080", "the server")
	levels := flag.String("c", "1,8,64", "concurrency levels (comma-separated)")
	duration := flag.Duration("duration", 20*time.Second, "longest run per concurrency level")
	maxRequests := flag.Int("max-requests", 5000, "most requests per concurrency level")
	imagePath := flag.String("image", "", "image file to send (default: a 32x32 PNG of noise)")
	jsonOut := flag.Bool("json", false, "print the results as JSON lines")
	flag.Parse()
	if *initRun != "" {
		return writeRandomRun(*initRun, *modelName)
	}
	var concurrency []int
	for _, s := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			return fmt.Errorf("-c: want positive integers, got %q", *levels)
		}
		concurrency = append(concurrency, c)
	}
	img, err := loadImage(*imagePath)
	if err != nil {
		return err
	}
	if !*jsonOut {
		fmt.Printf("%-11s %8s %7s %9s %9s %9s %10s\n", "concurrency", "requests", "errors", "req/s", "p50 ms",
			"p99 ms", "mean batch")
	}
	for _, c := range concurrency {
		r, err := load(*url, img, c, *duration, *maxRequests)
		if err != nil {
			return err
		}
		if *jsonOut {
			b, _ := json.Marshal(r)
			fmt.Println(string(b))
			continue
		}
		fmt.Printf("%-11d %8d %7d %9.1f %9.1f %9.1f %10.1f\n", r.Concurrency, r.Requests, r.Errors, r.RequestsPerS,
			r.P50MS, r.P99MS, r.MeanBatch)
		for _, e := range r.ErrorSamples {
			fmt.Printf("  error: %s\n", e)
		}
	}
	return nil
}

// writeRandomRun writes a run directory of model name with random (freshly initialized) weights.
func writeRandomRun(dir, name string) error {
	cfg, err := models.Get(name)
	if err != nil {
		return err
	}
	backend, err := engine.NewWithConfig(engine.Go)
	if err != nil {
		return err
	}
	defer backend.Finalize()
	store, err := train.NewModelStore(backend, cfg)
	if err != nil {
		return err
	}
	if err := store.SetRNGStateFromSeed(1); err != nil {
		return err
	}
	if err := store.InitializeVariables(backend, nil); err != nil {
		return err
	}
	if err := train.WriteRun(dir, cfg, store, "random weights (bench/serveload -init-run)"); err != nil {
		return err
	}
	fmt.Printf("wrote %s: model %s with random weights\n", dir, name)
	return nil
}

// loadImage reads the image to send, or encodes a 32x32 PNG of noise.
func loadImage(path string) ([]byte, error) {
	if path != "" {
		return os.ReadFile(path)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for y := range 32 {
		for x := range 32 {
			img.SetNRGBA(x, y, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// result is what one concurrency level measured.
type result struct {
	Concurrency  int      `json:"concurrency"`
	Requests     int      `json:"requests"`
	Errors       int      `json:"errors"`
	Seconds      float64  `json:"seconds"`
	RequestsPerS float64  `json:"requests_per_s"`
	P50MS        float64  `json:"p50_ms"`
	P99MS        float64  `json:"p99_ms"`
	MeanBatch    float64  `json:"mean_batch"`
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// load runs c clients until maxRequests requests were sent or d has passed.
func load(url string, img []byte, c int, d time.Duration, maxRequests int) (result, error) {
	client := &http.Client{Timeout: 2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}}
	defer client.CloseIdleConnections()
	sum0, n0, err := batchStats(client, url)
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var latencies []float64
	var errs []string
	nErrs, sent := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				mu.Lock()
				if sent >= maxRequests || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				sent++
				mu.Unlock()
				t := time.Now()
				err := post(client, url, img)
				lat := time.Since(t)
				mu.Lock()
				if err != nil {
					nErrs++
					if len(errs) < 3 {
						errs = append(errs, err.Error())
					}
				} else {
					latencies = append(latencies, float64(lat)/float64(time.Millisecond))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	sum1, n1, err := batchStats(client, url)
	if err != nil {
		return result{}, err
	}
	slices.Sort(latencies)
	r := result{Concurrency: c, Requests: len(latencies) + nErrs, Errors: nErrs, Seconds: elapsed,
		RequestsPerS: float64(len(latencies)) / elapsed, P50MS: quantile(latencies, 0.5), P99MS: quantile(latencies, 0.99),
		ErrorSamples: errs}
	if n1 > n0 {
		r.MeanBatch = (sum1 - sum0) / (n1 - n0)
	}
	return r, nil
}

// post sends one prediction request and checks its answer.
func post(client *http.Client, url string, img []byte) error {
	resp, err := client.Post(url+"/v1/predict", "image/png", bytes.NewReader(img))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var answer struct{ Predictions []json.RawMessage }
	if err := json.Unmarshal(b, &answer); err != nil || len(answer.Predictions) != 1 {
		return fmt.Errorf("bad answer: %.200s", b)
	}
	return nil
}

// quantile returns the q quantile of sorted values (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// batchStats reads the sum and count of the server's batch-size histogram from /metrics.
func batchStats(client *http.Client, url string) (sum, count float64, err error) {
	resp, err := client.Get(url + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		switch name {
		case "seqconv_batch_size_sum":
			sum, err = strconv.ParseFloat(value, 64)
			found++
		case "seqconv_batch_size_count":
			count, err = strconv.ParseFloat(value, 64)
			found++
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if found != 2 {
		return 0, 0, errors.New("no seqconv_batch_size histogram in " + url + "/metrics")
	}
	return sum, count, sc.Err()
}
