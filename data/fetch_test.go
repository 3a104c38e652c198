package data

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFetch downloads from a server on the loopback interface: a good archive, then a corrupt one (wrong MD5),
// a truncated one (wrong size) and an HTTP error; only the good one may end up under the final name.
func TestFetch(t *testing.T) {
	good := []byte(strings.Repeat("cifar", 1000))
	sum := md5.Sum(good)
	body := good
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		w.Write(body)
	}))
	defer srv.Close()
	a := Archive{Name: "test", URL: srv.URL + "/a.tar.gz", FileName: "a.tar.gz", Size: int64(len(good)),
		MD5: hex.EncodeToString(sum[:])}
	dir := t.TempDir()
	path, err := fetchArchive(context.Background(), a, dir, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != string(good) {
		t.Fatalf("downloaded file differs: %v", err)
	}
	// Present and valid: not downloaded again (the server now serves garbage).
	body = []byte("garbage")
	if _, err := fetchArchive(context.Background(), a, dir, srv.Client()); err != nil {
		t.Fatalf("existing valid archive: %v", err)
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"corrupt", append([]byte("X"), good[1:]...), http.StatusOK, "MD5"},
		{"truncated", good[:100], http.StatusOK, "bytes, expected"},
		{"http error", nil, http.StatusNotFound, "404"},
	} {
		body, status = tc.body, tc.status
		dir := t.TempDir()
		_, err := fetchArchive(context.Background(), a, dir, srv.Client())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s: left files behind: %v", tc.name, entries)
		}
	}
	// No server at all: a clear error naming the address.
	a.URL = "http://127.0.0.1:1/none.tar.gz"
	if _, err := fetchArchive(context.Background(), a, filepath.Join(t.TempDir(), "sub"), nil); err == nil ||
		!strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("unreachable server: %v", err)
	}
	if _, err := Fetch(context.Background(), "imagenet", t.TempDir(), nil); err == nil ||
		!strings.Contains(err.Error(), "cifar10|cifar100") {
		t.Errorf("unknown dataset: %v", err)
	}
}
