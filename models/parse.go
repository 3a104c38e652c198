package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
)

// MaxConfigBytes is the largest JSON model config ParseConfig and LoadConfig accept.
const MaxConfigBytes = 1 << 20

// Size budget of a model config (see Config.MaxBlocks and Config.MaxWidth): configs beyond it are refused by
// Validate before any graph is built, unless the config raises the budget with "max_blocks" or "max_width".
const (
	// DefaultMaxBlocks is the most blocks (the sum of blocks_per_stage) a config may have. The largest
	// registered model, densenet264, has 130.
	DefaultMaxBlocks = 1000
	// DefaultMaxWidth is the most channels a stage (or a ResNet bottleneck) may have. The widest registered
	// models have 2,688.
	DefaultMaxWidth = 16384
)

// positiveKeys are the keys whose value must be >= 1 when given: leaving them out selects the family's
// default, but an explicit 0 is an error rather than a silent default.
var positiveKeys = map[string]func(Config) int{
	"in_channels":     func(c Config) int { return c.InChannels },
	"resolution":      func(c Config) int { return c.Resolution },
	"stem_stride":     func(c Config) int { return c.StemStride },
	"groups":          func(c Config) int { return c.Groups },
	"width_per_group": func(c Config) int { return c.WidthPerGroup },
	"growth_rate":     func(c Config) int { return c.GrowthRate },
	"bn_size":         func(c Config) int { return c.BNSize },
	"init_features":   func(c Config) int { return c.InitFeatures },
	"max_blocks":      func(c Config) int { return c.MaxBlocks },
	"max_width":       func(c Config) int { return c.MaxWidth },
}

// configKeys are the JSON keys of Config, exactly as spelled.
var configKeys = func() map[string]bool {
	keys := map[string]bool{}
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}()

// ParseConfig decodes a JSON model config strictly, applies its family's defaults and validates it: the
// input must be one JSON object, with nothing after it, at most MaxConfigBytes long, whose keys are
// Config's JSON keys spelled exactly (encoding/json would accept "Classes" for "classes"), each given
// once; keys that select a default when left out (in_channels, resolution, stem_stride, ...) must be >= 1
// when given; and the config must be within its size budget (see Validate). Errors name the key.
func ParseConfig(b []byte) (Config, error) {
	if len(b) > MaxConfigBytes {
		return Config{}, fmt.Errorf("%d bytes, more than the %d a model config may have", len(b), MaxConfigBytes)
	}
	given, err := objectKeys(b)
	if err != nil {
		return Config{}, err
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, err
	}
	for key := range given {
		if get, ok := positiveKeys[key]; ok && get(c) < 1 {
			return Config{}, fmt.Errorf("%s: want >= 1, got %d (leave the key out for the default)", key, get(c))
		}
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// objectKeys checks that b holds one JSON object and nothing after it, with known, exactly spelled and
// unique keys, and returns the keys given.
func objectKeys(b []byte) (map[string]bool, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxError(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("want a JSON object {...}, got %s", describeToken(tok))
	}
	given := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, syntaxError(err)
		}
		key, _ := tok.(string)
		if !configKeys[key] {
			for k := range configKeys {
				if strings.EqualFold(k, key) {
					return nil, fmt.Errorf("unknown key %q: keys are case-sensitive, did you mean %q?", key, k)
				}
			}
			return nil, fmt.Errorf("unknown key %q", key)
		}
		if given[key] {
			return nil, fmt.Errorf("key %q given twice", key)
		}
		given[key] = true
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("%s: %w", key, syntaxError(err))
		}
	}
	if _, err := dec.Token(); err != nil { // The closing '}'.
		return nil, syntaxError(err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, fmt.Errorf("data after the config object: %w", err)
		}
		return nil, fmt.Errorf("data after the config object: %s", describeToken(tok))
	}
	return given, nil
}

// syntaxError turns the unexpected end of the input into a readable error.
func syntaxError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of the JSON input")
	}
	return err
}

// describeToken names a JSON token for messages.
func describeToken(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		return fmt.Sprintf("%q", t.String())
	case string:
		return fmt.Sprintf("the string %q", t)
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", tok)
}

// LoadConfig reads a JSON model config file with ParseConfig. Errors name the file.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	return c, nil
}

// checkBudget checks the config's size against its budget: the number of blocks here, the widths once the
// structure is known (checkWidths).
func (c Config) checkBudget() error {
	if c.MaxBlocks < 0 {
		return fmt.Errorf("max_blocks: want >= 1 (leave it out for %d), got %d", DefaultMaxBlocks, c.MaxBlocks)
	}
	if c.MaxWidth < 0 {
		return fmt.Errorf("max_width: want >= 1 (leave it out for %d), got %d", DefaultMaxWidth, c.MaxWidth)
	}
	budget := c.MaxBlocks
	if budget == 0 {
		budget = DefaultMaxBlocks
	}
	total := 0
	for _, b := range c.BlocksPerStage {
		if b > 0 {
			total += b
		}
		if total > budget {
			return fmt.Errorf("blocks_per_stage: %v has more than the %d blocks a config may have "+
				"(set \"max_blocks\" to raise the budget)", c.BlocksPerStage, budget)
		}
	}
	return nil
}

// checkWidths checks the given channel widths against the config's width budget.
func (c Config) checkWidths(key string, widths ...int) error {
	budget := c.MaxWidth
	if budget == 0 {
		budget = DefaultMaxWidth
	}
	for _, w := range widths {
		if w > budget || w < 0 {
			return fmt.Errorf("%s: a width of %d channels exceeds the %d a config may have "+
				"(set \"max_width\" to raise the budget)", key, w, budget)
		}
	}
	return nil
}
