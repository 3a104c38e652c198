package models

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mnistJSON is the seqresnet-mnist config as JSON, without its defaults.
const mnistJSON = `{"family":"seqresnet-cifar","variant":"b","classes":10,"in_channels":1,"resolution":28,
"stem_stride":2,"blocks_per_stage":[1,1,1],"pyramid_factor":[1,2,4],"widening":1,"granularity":16,"drop_rate":0}`

// withKey returns mnistJSON with extra appended inside the object.
func withKey(extra string) string {
	return strings.TrimSuffix(mnistJSON, "}") + "," + extra + "}"
}

func TestParseConfig(t *testing.T) {
	good, err := ParseConfig([]byte(mnistJSON))
	if err != nil {
		t.Fatalf("ParseConfig(mnist): %v", err)
	}
	if good.InChannels != 1 || good.StemStride != 2 || good.Classes != 10 {
		t.Errorf("ParseConfig(mnist) = %+v", good)
	}
	if _, err := ParseConfig([]byte(" \n" + mnistJSON + "\n\t ")); err != nil {
		t.Errorf("white space around the object: %v", err)
	}
	if c, err := ParseConfig([]byte(withKey(`"max_blocks":3000`) + "\n")); err != nil || c.MaxBlocks != 3000 {
		t.Errorf("max_blocks 3000: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		name, json, want string
	}{
		{"trailing object", mnistJSON + `{}`, "data after the config object"},
		{"trailing garbage", mnistJSON + ` x`, "data after the config object"},
		{"trailing number", mnistJSON + ` 1`, "data after the config object"},
		{"wrong case", withKey(`"Classes":10`), `unknown key "Classes": keys are case-sensitive, did you mean "classes"?`},
		{"wrong case only", strings.Replace(mnistJSON, `"classes"`, `"CLASSES"`, 1), `did you mean "classes"`},
		{"unknown key", withKey(`"colour":1`), `unknown key "colour"`},
		{"duplicate key", withKey(`"classes":100`), `key "classes" given twice`},
		{"in_channels 0", strings.Replace(mnistJSON, `"in_channels":1`, `"in_channels":0`, 1), "in_channels: want >= 1, got 0"},
		{"resolution 0", strings.Replace(mnistJSON, `"resolution":28`, `"resolution":0`, 1), "resolution: want >= 1, got 0"},
		{"stem_stride 0", strings.Replace(mnistJSON, `"stem_stride":2`, `"stem_stride":0`, 1), "stem_stride: want >= 1, got 0"},
		{"stem_stride null", strings.Replace(mnistJSON, `"stem_stride":2`, `"stem_stride":null`, 1), "stem_stride: want >= 1, got 0"},
		{"max_blocks 0", withKey(`"max_blocks":0`), "max_blocks: want >= 1"},
		{"too many blocks", strings.Replace(mnistJSON, `[1,1,1]`, `[100000,1,1]`, 1), "more than the 1000 blocks"},
		{"budget raised but still exceeded", withKey(`"max_blocks":10`) + "", ""},
		{"too wide", strings.Replace(mnistJSON, `"widening":1`, `"widening":2000`, 1), "exceeds the 16384"},
		{"not an object", `[1,2]`, "want a JSON object"},
		{"empty", ``, "unexpected end"},
		{"truncated", mnistJSON[:40], "unexpected end"},
		{"too large", mnistJSON + strings.Repeat(" ", MaxConfigBytes), "more than the"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.json))
			if tc.want == "" {
				if err != nil {
					t.Errorf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadConfigNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(path, []byte(mnistJSON+"{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "data after") {
		t.Errorf("LoadConfig: %v, want an error naming %s", err, path)
	}
	huge := strings.Replace(mnistJSON, "[1,1,1]", "[100000,1,1]", 1)
	if err := os.WriteFile(path, []byte(huge), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(path); err == nil || !strings.Contains(err.Error(), "max_blocks") {
		t.Errorf("Get(100000 blocks): %v, want the budget error", err)
	}
}

// TestRegisteredWithinBudget checks that every registered model is within the default size budget.
func TestRegisteredWithinBudget(t *testing.T) {
	for _, name := range Names() {
		c, err := Get(name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConfig(b); err != nil {
			t.Errorf("%s: its own JSON does not parse: %v", name, err)
		}
	}
}

// FuzzParseConfig checks that ParseConfig never panics, and that a config it accepts is valid and survives a
// round trip through its JSON encoding.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(mnistJSON))
	f.Add([]byte(withKey(`"Classes":3`)))
	f.Add([]byte(mnistJSON + "{}"))
	f.Add([]byte(`{"family":"resnet","classes":1000,"blocks_per_stage":[3,4,6,3],"groups":32,"width_per_group":4}`))
	f.Add([]byte(`{"family":"densenet","classes":10,"blocks_per_stage":[6,12],"growth_rate":32,"bn_size":4,"init_features":64}`))
	f.Add([]byte(`{"family":"seqresnext-imagenet","classes":1000,"blocks_per_stage":[1,1,3,1],"widening":4,` +
		`"granularity":[32,64,64,128],"subgroups":[8,8,4,4],"downsample":"released"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted an invalid config %s: %v", b, err)
		}
		enc, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("encoding %+v: %v", c, err)
		}
		c2, err := ParseConfig(enc)
		if err != nil {
			t.Fatalf("the encoding %s of an accepted config is refused: %v", enc, err)
		}
		if enc2, _ := json.Marshal(c2); string(enc2) != string(enc) {
			t.Fatalf("round trip changed the config: %s -> %s", enc, enc2)
		}
	})
}
