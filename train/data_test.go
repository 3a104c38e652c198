package train

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seqconv/seqconv/data"
)

func TestParseDataName(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want DataSpec
	}{
		{"mnist", DataSpec{Kind: data.KindMNIST, Name: "mnist", Channels: 1, Classes: 10}},
		{"CIFAR-10", DataSpec{Kind: data.KindCIFAR10, Name: "cifar10", Channels: 3, Classes: 10}},
		{"cifar100", DataSpec{Kind: data.KindCIFAR100, Name: "cifar100", Channels: 3, Classes: 100}},
		{dir, DataSpec{Kind: data.KindFolder, Name: abs, Channels: 3}},
	} {
		if got, err := ParseDataName(tc.name); err != nil || got != tc.want {
			t.Errorf("ParseDataName(%q) = %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := ParseDataName(filepath.Join(dir, "missing")); !errors.Is(err, ErrUnknownDataset) {
		t.Errorf("ParseDataName(a missing folder) = %v, want ErrUnknownDataset", err)
	}
}

func TestParseRecordedDataName(t *testing.T) {
	dir := t.TempDir()
	aFile := filepath.Join(dir, "file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, wantErr string // wantErr: "" for none, else a part of the error
	}{
		{"cifar10", ""},
		{dir, ""},
		{filepath.Join(dir, "gone"), "the image folder " + filepath.Join(dir, "gone") + " is gone"},
		{aFile, aFile + ", the image folder, is not a directory"},
		{"svhn", `unknown dataset "svhn"`},
	} {
		_, err := ParseRecordedDataName(tc.name)
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ParseRecordedDataName(%q) = %v, want an error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestCheckFolderLayout(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckFolderLayout(root); err == nil || !strings.Contains(err.Error(), "no val/ folder") {
		t.Errorf("CheckFolderLayout without val/: %v", err)
	}
	if err := os.Mkdir(filepath.Join(root, "val"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := CheckFolderLayout(root); err != nil {
		t.Errorf("CheckFolderLayout: %v", err)
	}
}

func TestTrainedWithRandomResizedCrop(t *testing.T) {
	for _, tc := range []struct {
		data, augmentation string
		want               bool
	}{
		{"mnist", "crop:2", false},
		{"cifar10", "rrc+flip", true},
		{"/gone/imagenet", "rrc+flip+jitter:0.4+lighting:0.1", true},
		{"/gone/imagenet", "default", true}, // an image folder's default augmentation
		{"mnist", "rrc+lighting", false},    // does not parse: lighting needs RGB images
		{"", "", false},                     // imported weights record no augmentation
	} {
		c := Config{Data: tc.data, Augmentation: tc.augmentation}
		if got := c.TrainedWithRandomResizedCrop(); got != tc.want {
			t.Errorf("data %q, augmentation %q: %v, want %v", tc.data, tc.augmentation, got, tc.want)
		}
	}
}
