// Package data holds seqconv's datasets, batching and augmentation.
//
// The package provides:
//
//   - An IDX file parser (ReadIDXImages, ReadIDXLabels) for the format used by
//     MNIST and its relatives, accepting gzip-compressed or raw input.
//   - ImageSet, a generic in-memory image dataset (uint8 pixels in HWC layout,
//     int32 class labels and per-channel normalisation statistics).
//   - LoadMNIST, which decodes the MNIST files embedded in the binary (see
//     data/mnist/README.md for their provenance).
//   - Loader, an implementation of GoMLX's train.Dataset that shuffles,
//     normalises, augments and batches an ImageSet on a pool of background
//     goroutines, reproducibly for a given (seed, epoch).
//   - Augmenter and its implementations RandomCrop, HFlip and Compose.
package data
