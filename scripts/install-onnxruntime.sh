#!/usr/bin/env bash
# Installs the official ONNX Runtime CPU library (linux/x86-64) where seqconv and compute-onnx find it:
# ~/.local/lib/onnxruntime/libonnxruntime.so (or $1, a directory).
#
#   scripts/install-onnxruntime.sh --node [DIR]
#
# installs instead ONNX Runtime for Node.js (the same package, with its onnxruntime-common dependency)
# into DIR/node_modules (default: ~/.cache/seqconv/onnxruntime-node, where the tests look), for running
# exported .onnx files with scripts/onnx-infer.js: NODE_PATH=DIR/node_modules node scripts/onnx-infer.js ...
# The package's install script, which downloads CUDA binaries, is not run (npm --ignore-scripts).
#
# The library comes from the npm package onnxruntime-node, which ships Microsoft's release build. The
# package is fetched with `npm pack` (which runs none of its install scripts) and checked against a
# pinned SHA-256 before anything is extracted. Re-running it is safe: an installed library with the
# right checksum is left as it is.
set -euo pipefail

version=1.30.0
pkg_sha256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
lib_sha256=ffb75a925ba05e47b235bb66e3e3911714a80b328a9c9425539feb204aa32a23
node_dir=
if [ "${1:-}" = --node ]; then
  node_dir=${2:-${XDG_CACHE_HOME:-$HOME/.cache}/seqconv/onnxruntime-node}
  marker="$node_dir/.installed-onnxruntime-node-$pkg_sha256"
fi
dest=${1:-$HOME/.local/lib/onnxruntime}

if [ -n "$node_dir" ] && [ -f "$marker" ]; then
  echo "onnxruntime-node $version is already installed: $node_dir/node_modules"
  exit 0
fi
if [ -z "$node_dir" ] && [ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]; then
  echo "install-onnxruntime: this script installs the linux/x86-64 build; on $(uname -s)/$(uname -m) download" \
    "ONNX Runtime $version from its releases and set ONNXRUNTIME_SHARED_LIBRARY_PATH" >&2
  exit 1
fi
if [ -z "$node_dir" ] && [ -f "$dest/libonnxruntime.so" ] && echo "$lib_sha256  $dest/libonnxruntime.so" | sha256sum -c --status; then
  echo "ONNX Runtime $version is already installed: $dest/libonnxruntime.so"
  exit 0
fi
command -v npm >/dev/null || { echo "install-onnxruntime: npm is needed (apt-get install npm)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "onnxruntime-node@$version" >/dev/null)
tgz="$tmp/onnxruntime-node-$version.tgz"
if ! echo "$pkg_sha256  $tgz" | sha256sum -c --status; then
  echo "install-onnxruntime: $tgz does not have the pinned SHA-256 $pkg_sha256; refusing to install it" >&2
  exit 1
fi
if [ -n "$node_dir" ]; then
  mkdir -p "$node_dir"
  npm install --silent --ignore-scripts --no-save --no-audit --no-fund --prefix "$node_dir" "$tgz" >/dev/null
  NODE_PATH="$node_dir/node_modules" node -e "require('onnxruntime-node')" ||
    { echo "install-onnxruntime: onnxruntime-node does not load from $node_dir/node_modules" >&2; exit 1; }
  touch "$marker"
  echo "installed onnxruntime-node $version: $node_dir/node_modules"
  exit 0
fi
tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
lib="$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
echo "$lib_sha256  $lib" | sha256sum -c --status || { echo "install-onnxruntime: library checksum mismatch" >&2; exit 1; }

mkdir -p "$dest"
install -m 0644 "$lib" "$dest/libonnxruntime.so.$version.tmp"
mv -f "$dest/libonnxruntime.so.$version.tmp" "$dest/libonnxruntime.so"
ln -sf libonnxruntime.so "$dest/libonnxruntime.so.1"
echo "installed ONNX Runtime $version: $dest/libonnxruntime.so"
