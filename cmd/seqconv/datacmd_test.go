package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestDataFetchBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"data"},
		{"data", "get", "cifar10"},
		{"data", "fetch"},
		{"data", "fetch", "imagenet", "--to", t.TempDir()},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != exitUsage || strings.Contains(out, "\n") || !strings.HasPrefix(out, "seqconv: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, out)
		}
	}
}
