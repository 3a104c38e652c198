#!/usr/bin/env bash
# Runs the GPU comparison unattended on a machine with an NVIDIA GPU, JAX's CUDA PJRT plugin and PyTorch:
# seqconv through XLA (GOMLX_BACKEND=xla:<absolute path of xla_cuda_plugin.so>, found from the installed
# jax_plugins.xla_cuda13 package unless GOMLX_BACKEND is set) and the PyTorch port in bench/torch, side by side.
# Go is not needed there: build the binary elsewhere (GOEXPERIMENT=simd CGO_ENABLED=1 go build ./cmd/seqconv)
# and put it at ./seqconv or pass SEQCONV=/path/to/seqconv.
exec "$(dirname "$0")/compare.sh" gpu "$@"
