package models

// WithDefaults returns c with the defaults of its family applied to its zero-valued fields (input
// channels, resolution, CIFAR variant, stem stride, downsampling mode; the baselines' torchvision
// arguments), as Get and LoadConfig return configs. Build, Validate and Inspect apply them too.
func (c Config) WithDefaults() Config { return c.withDefaults() }
