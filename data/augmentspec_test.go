package data

import (
	"strings"
	"testing"
)

func TestParseAugmentation(t *testing.T) {
	for _, c := range []struct{ spec, kind, want string }{
		{"default", KindMNIST, "crop:2"}, {"none", KindMNIST, "none"}, {"crop:4+flip", KindMNIST, "crop:4+flip"},
		{"flip", KindMNIST, "flip"}, {"crop", KindMNIST, "crop:2"}, {"crop", KindCIFAR10, "crop:4"},
		{"default", KindCIFAR100, "crop:4+flip"}, {"default", KindFolder, "rrc+flip+jitter:0.4+lighting:0.1"},
		{"rrc+flip+jitter+lighting:0.2", KindCIFAR10, "rrc+flip+jitter:0.4+lighting:0.2"},
	} {
		a, err := ParseAugmentation(c.spec, c.kind)
		if err != nil || a.Spec != c.want || a.RandomResizedCrop != strings.HasPrefix(c.want, "rrc") ||
			(a.Augmenter == nil) != (c.want == "none" || c.want == "rrc") {
			t.Errorf("ParseAugmentation(%q, %s) = %+v, %v; want %q", c.spec, c.kind, a, err, c.want)
		}
	}
	for _, spec := range []string{"crop:0", "crop:x", "flip:2", "blur", "flip+rrc", "jitter:", "jitter:-1", "lighting"} {
		if _, err := ParseAugmentation(spec, KindMNIST); err == nil {
			t.Errorf("ParseAugmentation(%q) accepted", spec)
		}
	}
}
