package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestBenchJSON(t *testing.T) {
	tests := []struct {
		extra     []string
		impl      string
		recompute bool
	}{
		{nil, "fused", false},
		{[]string{"--impl", "direct", "--recompute"}, "direct", true},
	}
	for _, tc := range tests {
		var stdout, stderr bytes.Buffer
		args := append([]string{"bench", "--model", "seqresnet-mnist", "--batch", "2", "--steps", "2", "--json"}, tc.extra...)
		code := run(args, &stdout, &stderr)
		if code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
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
		if res["mode"] != "train" || res["batch"].(float64) != 2 || res["seqconv_impl"] != tc.impl ||
			res["recompute"] != tc.recompute {
			t.Errorf("%v: unexpected mode/batch/impl/recompute: %s", args, stdout.String())
		}
	}
}

func TestXLAFlags(t *testing.T) {
	tests := []struct {
		existing, dir string
		autotune      int
		want          string
	}{
		{"", "", -1, ""},
		{"", "/c", -1, "--xla_gpu_per_fusion_autotune_cache_dir=/c/autotune"},
		{"--xla_gpu_autotune_level=2", "", 0, "--xla_gpu_autotune_level=2"},
		{"--foo=1", "", 0, "--foo=1 --xla_gpu_autotune_level=0"},
		{"--xla_gpu_per_fusion_autotune_cache_dir=/mine", "/c", 4, "--xla_gpu_per_fusion_autotune_cache_dir=/mine " +
			"--xla_gpu_autotune_level=4"},
	}
	for _, tc := range tests {
		if got := xlaFlags(tc.existing, tc.dir, tc.autotune); got != tc.want {
			t.Errorf("xlaFlags(%q, %q, %d) = %q, want %q", tc.existing, tc.dir, tc.autotune, got, tc.want)
		}
	}
}

// TestConfigureXLAOnlyForXLA checks that the Go backend leaves XLA_FLAGS alone and that the XLA backend gets
// the run's cache directory created and named in XLA_FLAGS.
func TestConfigureXLAOnlyForXLA(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XLA_FLAGS", "")
	t.Setenv(backendEnvVar, "go")
	if err := configureXLA("", dir+"/cache", 1); err != nil || os.Getenv("XLA_FLAGS") != "" {
		t.Fatalf("go backend: err %v, XLA_FLAGS %q", err, os.Getenv("XLA_FLAGS"))
	}
	t.Setenv(backendEnvVar, "xla:/nowhere/xla_cuda_plugin.so")
	if err := configureXLA("", dir+"/cache", 1); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv("XLA_FLAGS"); !strings.Contains(got, dir+"/cache/autotune") ||
		!strings.Contains(got, "--xla_gpu_autotune_level=1") {
		t.Errorf("XLA_FLAGS = %q", got)
	}
	if _, err := os.Stat(dir + "/cache"); err != nil {
		t.Error(err)
	}
	if err := configureXLA("", dir, 9); err == nil {
		t.Error("autotune level 9 accepted")
	}
}

func TestBenchBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--model", "nope"},
		{"bench", "--batch", "0"},
		{"bench", "--mode", "fly"},
		{"bench", "--precision", "fp8"},
		{"bench", "--steps", "0"},
		{"bench", "--impl", "magic"},
		{"bench", "--autotune-level", "7"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		out := stderr.String()
		if code == exitOK || strings.Count(strings.TrimSpace(out), "\n") != 0 || strings.Contains(out, "panic") {
			t.Errorf("%v: exit %d, stderr %q", args, code, out)
		}
	}
}
