#!/usr/bin/env bash
# Side-by-side benchmark of seqconv (GoMLX) and the PyTorch port in bench/torch, in one run on one machine.
#
#   bench/compare.sh cpu   # ONNX Runtime and the Go backend vs PyTorch on the CPU
#   bench/compare.sh gpu   # XLA (CUDA PJRT plugin) vs PyTorch on CUDA; see bench/gpu.sh
#
# Environment: SEQCONV (the seqconv binary; default ./seqconv, else built with go), PYTHON (default python3),
# OUT (result directory, default bench/results/<date>-<device>), CASES (override the case list, lines of
# "engine model batch mode precision"; engine: onnx (ONNX Runtime, the library scripts/install-onnxruntime.sh
# installs or $ONNXRUNTIME_SHARED_LIBRARY_PATH), go, or default ($GOMLX_BACKEND, else seqconv's own choice)),
# SEQCONV_ARGS (extra flags for every "seqconv bench", e.g. --recompute). Each case runs seqconv, then PyTorch.
# On the GPU the XLA caches live in $OUT/xla-cache, new for each run, so each model's first case compiles cold;
# the CIFAR demo's training compile is also timed cold and then warm (from that cache). Prints a table with the throughput ratio seqconv/PyTorch and writes
# $OUT/results.jsonl and $OUT/table.md.
set -euo pipefail
device=${1:-cpu}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$root/bench/results/$(date +%Y%m%d-%H%M%S)-$device}
mkdir -p "$OUT"
SEQCONV=${SEQCONV:-}
if [ -z "$SEQCONV" ]; then
  if [ -x "$root/seqconv" ]; then
    SEQCONV=$root/seqconv
  else
    (cd "$root" && GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOEXPERIMENT=simd go build -o "$OUT/seqconv" ./cmd/seqconv)
    SEQCONV=$OUT/seqconv
  fi
fi
if [ "$device" = gpu ]; then
  torch_device=cuda
  if [ -z "${GOMLX_BACKEND:-}" ]; then
    plugin_dir=$("$PYTHON" -c 'import os, jax_plugins.xla_cuda13 as m; print(os.path.dirname(m.__file__))')
    export GOMLX_BACKEND="xla:$plugin_dir/xla_cuda_plugin.so"
  fi
  default_cases="default seqresnet-cifar-demo 64 train f32
default seqresnet-cifar-demo 128 train f32
default seqresnet-cifar-demo 256 infer f32
default seqresnet-b22 64 train f32
default seqresnet-b22 64 train bf16"
else
  torch_device=cpu
  default_cases=""
  for engine in onnx go; do
    default_cases+="$engine seqresnet-cifar-demo 16 train f32
$engine seqresnet-cifar-demo 64 train f32
$engine seqresnet-mnist 128 train f32
$engine seqresnet-cifar-demo 64 infer f32
"
  done
fi
ort_lib=${ONNXRUNTIME_SHARED_LIBRARY_PATH:-$HOME/.local/lib/onnxruntime/libonnxruntime.so}
# engine_config prints the $GOMLX_BACKEND of an engine name ("" to keep the caller's).
engine_config() {
  case "$1" in
    onnx) echo "onnx:cpu,$ort_lib" ;;
    go) echo "go" ;;
    default) echo "${GOMLX_BACKEND:-}" ;;
    *) echo "compare.sh: unknown engine $1 (want onnx, go or default)" >&2; return 1 ;;
  esac
}
CASES=${CASES:-$default_cases}
results=$OUT/results.jsonl
: > "$results"
xla_args=()
if [ "$device" = gpu ]; then
  xla_args=(--xla-cache "$OUT/xla-cache")
  for run in cold warm; do
    echo "== compile time, $run cache" >&2
    t=$("$SEQCONV" bench --model seqresnet-cifar-demo --batch 64 --mode train --steps 1 --warmup 0 \
          --xla-cache "$OUT/xla-cache-compile" --json ${SEQCONV_ARGS:-} 2>>"$OUT/errors.log") || t='{"error": "failed"}'
    printf '{"cache": "%s", "seqconv": %s}\n' "$run" "$t" >> "$OUT/compile.jsonl"
  done
  "$PYTHON" -c 'import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); print("CIFAR demo train compile+first step, %s XLA cache: %s s" % (r["cache"], r["seqconv"].get("first_step_s")))' \
    "$OUT/compile.jsonl" | tee "$OUT/compile.txt"
fi
{
  echo "# $(date -u +%Y-%m-%dT%H:%MZ) $device"
  uname -a
  nproc
  if [ "$device" = gpu ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; fi
  "$SEQCONV" version || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "threads", torch.get_num_threads())'
  echo "GOMLX_BACKEND=${GOMLX_BACKEND:-} ONNX Runtime library: $ort_lib"
  echo "load: $(cat /proc/loadavg 2>/dev/null || uptime)"
} > "$OUT/machine.txt" 2>&1
while read -r engine model batch mode precision; do
  [ -z "$engine" ] && continue
  config=$(engine_config "$engine")
  if [ "$engine" = onnx ] && [ ! -f "$ort_lib" ]; then
    echo "== skipping $engine $model: no ONNX Runtime library at $ort_lib (scripts/install-onnxruntime.sh)" >&2
    continue
  fi
  echo "== $engine $model batch $batch $mode $precision (load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))" >&2
  ours=$(GOMLX_BACKEND=$config "$SEQCONV" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --steps "${STEPS:-10}" --json "${xla_args[@]}" ${SEQCONV_ARGS:-} 2>>"$OUT/errors.log") \
    || ours=$(GOMLX_BACKEND=$config "$SEQCONV" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --steps "${STEPS:-10}" --json --xla-cache off ${SEQCONV_ARGS:-} 2>>"$OUT/errors.log") \
    || ours='{"error": "failed, see errors.log"}'
  theirs=$("$PYTHON" "$here/torch/seqconv_torch.py" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --device "$torch_device" --steps "${STEPS:-10}" 2>>"$OUT/errors.log") \
           || theirs='{"error": "failed, see errors.log"}'
  printf '{"engine": "%s", "model": "%s", "batch": %s, "mode": "%s", "precision": "%s", "seqconv": %s, "pytorch": %s}\n' \
    "$engine" "$model" "$batch" "$mode" "$precision" "$ours" "$theirs" >> "$results"
done <<< "$CASES"
"$PYTHON" - "$results" "$OUT/table.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = ["| engine | model | batch | mode | precision | seqconv s/step | first step (s) | peak MiB | PyTorch s/step | PyTorch peak MiB | time ratio |",
       "|---|---|---|---|---|---|---|---|---|---|---|"]
f = lambda v, p=1: f"{v:.{p}f}" if isinstance(v, (int, float)) else "n/a"
mib = lambda d: f"{d / 2**20:.0f}" if d else "n/a"
for r in rows:
    a, b = r["seqconv"], r["pytorch"]
    ta, tb = a.get("median_step_s"), b.get("median_step_s")
    ratio = f"{ta / tb:.2f}x" if ta and tb else "n/a"
    out.append(f"| {r['engine']} | {r['model']} | {r['batch']} | {r['mode']} | {r['precision']} | {f(ta, 3)} | "
               f"{f(a.get('first_step_s'), 1)} | {mib(a.get('peak_rss_bytes'))} | {f(tb, 3)} | "
               f"{mib(b.get('peak_rss_bytes') or b.get('peak_memory_bytes'))} | {ratio} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
print("time ratio: seqconv's median step time / PyTorch's (below 1: seqconv is faster)")
PY
echo "results in $OUT" >&2
