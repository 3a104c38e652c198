package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"bench", "--model", "seqresnet-mnist", "--batch", "2", "--steps", "2", "--json"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout.String())
	}
	for _, key := range []string{"median_step_s", "images_per_s", "first_step_s", "peak_rss_bytes", "backend", "params"} {
		if _, ok := res[key]; !ok {
			t.Errorf("missing %q in %s", key, stdout.String())
		}
	}
	if res["mode"] != "train" || res["batch"].(float64) != 2 {
		t.Errorf("unexpected mode/batch: %s", stdout.String())
	}
}

func TestBenchBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--model", "nope"},
		{"bench", "--batch", "0"},
		{"bench", "--mode", "fly"},
		{"bench", "--precision", "fp8"},
		{"bench", "--steps", "0"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		out := stderr.String()
		if code == exitOK || strings.Count(strings.TrimSpace(out), "\n") != 0 || strings.Contains(out, "panic") {
			t.Errorf("%v: exit %d, stderr %q", args, code, out)
		}
	}
}
