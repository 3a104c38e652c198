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
# SEQCONV_ARGS (extra flags for every "seqconv bench", e.g. --recompute), ROUNDS (default 1: how many times the
# whole case list runs; each round runs every case, seqconv then PyTorch right after, so that both see the same
# machine, and the table gives the medians over the rounds and the range of the per-round time ratios; "rounds"
# counts the rounds that gave both times, out of all). Each case runs seqconv, then PyTorch.
# On the GPU the XLA caches live in $OUT/xla-cache-r<round>, new for each round, so each model's first case compiles cold;
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
ROUNDS=${ROUNDS:-1}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
  echo "compare.sh: ROUNDS must be a positive integer, got '$ROUNDS'" >&2
  exit 2
fi
for round in $(seq "$ROUNDS"); do
if [ "$device" = gpu ]; then
  xla_args=(--xla-cache "$OUT/xla-cache-r$round") # every round compiles cold, as the first one does
fi
while read -r engine model batch mode precision; do
  [ -z "$engine" ] && continue
  config=$(engine_config "$engine")
  if [ "$engine" = onnx ] && [ ! -f "$ort_lib" ]; then
    echo "== skipping $engine $model: no ONNX Runtime library at $ort_lib (scripts/install-onnxruntime.sh)" >&2
    continue
  fi
  echo "== round $round/$ROUNDS: $engine $model batch $batch $mode $precision (load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null))" >&2
  ours=$(GOMLX_BACKEND=$config "$SEQCONV" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --steps "${STEPS:-10}" --json "${xla_args[@]}" ${SEQCONV_ARGS:-} 2>>"$OUT/errors.log") \
    || ours=$(GOMLX_BACKEND=$config "$SEQCONV" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --steps "${STEPS:-10}" --json --xla-cache off ${SEQCONV_ARGS:-} 2>>"$OUT/errors.log") \
    || ours='{"error": "failed, see errors.log"}'
  theirs=$("$PYTHON" "$here/torch/seqconv_torch.py" bench --model "$model" --batch "$batch" --mode "$mode" \
           --precision "$precision" --device "$torch_device" --steps "${STEPS:-10}" 2>>"$OUT/errors.log") \
           || theirs='{"error": "failed, see errors.log"}'
  printf '{"round": %s, "engine": "%s", "model": "%s", "batch": %s, "mode": "%s", "precision": "%s", "seqconv": %s, "pytorch": %s}\n' \
    "$round" "$engine" "$model" "$batch" "$mode" "$precision" "$ours" "$theirs" >> "$results"
done <<< "$CASES"
done
"$PYTHON" - "$results" "$OUT/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cases = {}  # (engine, model, batch, mode, precision) -> the rounds' rows, in the order the cases first ran
for r in rows:
    cases.setdefault((r["engine"], r["model"], r["batch"], r["mode"], r["precision"]), []).append(r)
out = ["| engine | model | batch | mode | precision | rounds | seqconv s/step | first step (s) | peak MiB | PyTorch s/step | PyTorch peak MiB | time ratio | ratio range |",
       "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
f = lambda v, p=1: f"{v:.{p}f}" if isinstance(v, (int, float)) else "n/a"
mib = lambda d: f"{d / 2**20:.0f}" if d else "n/a"
def median(values):
    values = [v for v in values if isinstance(v, (int, float))]
    return statistics.median(values) if values else None
for key, rs in cases.items():
    a = [r["seqconv"] for r in rs]
    b = [r["pytorch"] for r in rs]
    ratios = [x.get("median_step_s") / y.get("median_step_s") for x, y in zip(a, b)
              if x.get("median_step_s") and y.get("median_step_s")]
    ratio = f"{statistics.median(ratios):.2f}x" if ratios else "n/a"
    spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if len(ratios) > 1 else ""
    peak = max([x.get("peak_rss_bytes") or 0 for x in a], default=0)
    tpeak = max([y.get("peak_rss_bytes") or y.get("peak_memory_bytes") or 0 for y in b], default=0)
    out.append(f"| {' | '.join(str(k) for k in key)} | {len(ratios)}/{len(rs)} | {f(median(x.get('median_step_s') for x in a), 3)} | "
               f"{f(median(x.get('first_step_s') for x in a), 1)} | {mib(peak)} | "
               f"{f(median(y.get('median_step_s') for y in b), 3)} | {mib(tpeak)} | {ratio} | {spread} |")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
print("time ratio: the median over the rounds of seqconv's median step time / PyTorch's, PyTorch run right after "
      "(below 1: seqconv is faster); s/step and first step: medians over the rounds; peak: the largest")
PY
echo "results in $OUT" >&2
