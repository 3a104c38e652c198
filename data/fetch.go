package data

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/seqconv/seqconv/internal/atomicfile"
)

// Archive is a dataset archive that Fetch can download: its official address, size and MD5 checksum (the one
// the dataset's authors publish).
type Archive struct {
	Name     string // dataset name, e.g. "cifar10"
	URL      string
	FileName string
	Size     int64
	MD5      string
}

// Archives are the datasets Fetch knows, by name.
var Archives = map[string]Archive{
	"cifar10": {Name: "cifar10", URL: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
		FileName: "cifar-10-binary.tar.gz", Size: 170_052_171, MD5: "c32a1d4ab5d03f1284b67883e8d87530"},
	"cifar100": {Name: "cifar100", URL: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
		FileName: "cifar-100-binary.tar.gz", Size: 168_513_733, MD5: "03b5dce01913d631647c71ecec9e9cb8"},
}

// ArchiveNames returns the names of Archives, sorted.
func ArchiveNames() []string {
	names := make([]string, 0, len(Archives))
	for n := range Archives {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Fetch downloads the named archive into dir (created if needed) and returns the archive's path, which
// LoadCIFAR10/LoadCIFAR100 read directly. An archive already in dir with the right checksum is not downloaded
// again. The download is written with atomicfile.Write and checked (size and MD5) before it is renamed into
// place, so an interrupted or corrupt download never leaves a file under the final name. client nil means
// http.DefaultClient.
func Fetch(ctx context.Context, name, dir string, client *http.Client) (string, error) {
	a, ok := Archives[name]
	if !ok {
		return "", fmt.Errorf("data fetch: unknown dataset %q, expected %s", name, strings.Join(ArchiveNames(), "|"))
	}
	return fetchArchive(ctx, a, dir, client)
}

func fetchArchive(ctx context.Context, a Archive, dir string, client *http.Client) (string, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("data fetch %s: %w", a.Name, err)
	}
	path := filepath.Join(dir, a.FileName)
	if sum, err := fileMD5(path); err == nil && sum == a.MD5 {
		return path, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", fmt.Errorf("data fetch %s: %w", a.Name, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("data fetch %s: downloading %s: %w (is there a network connection? otherwise "+
			"copy %s into %s by other means)", a.Name, a.URL, err, a.FileName, dir)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("data fetch %s: downloading %s: HTTP status %s", a.Name, a.URL, resp.Status)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		h := md5.New()
		n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
		if err != nil {
			return fmt.Errorf("downloading %s: %w", a.URL, err)
		}
		if a.Size > 0 && n != a.Size {
			return fmt.Errorf("%s: got %d bytes, expected %d", a.URL, n, a.Size)
		}
		if sum := hex.EncodeToString(h.Sum(nil)); sum != a.MD5 {
			return fmt.Errorf("%s: MD5 %s, expected %s", a.URL, sum, a.MD5)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("data fetch %s: %w", a.Name, err)
	}
	return path, nil
}

func fileMD5(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
