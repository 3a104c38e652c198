// Package data holds seqconv's datasets, batching and augmentation.
//
// The package provides:
//
//   - An IDX file parser (ReadIDXImages, ReadIDXLabels) for the format used by
//     MNIST and its relatives, accepting gzip-compressed or raw input.
//   - ImageSet, a generic in-memory image dataset (uint8 pixels in HWC layout,
//     int32 class labels, optional class names and per-channel normalisation
//     statistics).
//   - LoadMNIST, which decodes the MNIST files embedded in the binary (see
//     data/mnist/README.md for their provenance).
//   - LoadCIFAR10 and LoadCIFAR100, which read CIFAR in its official binary
//     format, from the extracted .bin files or straight from the downloaded
//     .tar.gz archive, with the authors' normalisation (CIFARMean, CIFARStd).
//   - Loader, an implementation of GoMLX's train.Dataset that shuffles,
//     normalises, augments and batches an ImageSet on a pool of background
//     goroutines, reproducibly for a given (seed, epoch).
//   - Augmenter and its implementations RandomCrop, HFlip, ColorJitter,
//     Lighting (AlexNet-style PCA noise) and Compose.
//   - Source, a dataset of images of any size decoded on demand, implemented
//     by ImageSet and by FolderSet: ImageNet-style folders of JPEG/PNG files
//     (LoadImageFolder, LoadImageNet), decoded lazily with DecodeImage.
//   - ImageLoader, a train.Dataset that decodes a Source in parallel and turns
//     each image into a fixed-size one with a Transform (RandomResizedCrop,
//     ResizeCenterCrop; PIL-style antialiased bilinear resizing), then
//     normalises and augments it. ImageNetTrainOptions and
//     ImageNetEvalOptions give the authors' ImageNet pipelines.
//
// All randomness is drawn from generators seeded by (seed, epoch, position in
// the epoch), so that every epoch is reproducible and independent of the
// number of workers.
package data
