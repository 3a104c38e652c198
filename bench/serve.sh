#!/usr/bin/env bash
# Load benchmark of "seqconv serve" with the CIFAR demo model (seqresnet-cifar-demo, random weights):
# bench/serveload sends POST /v1/predict requests (a 32x32 PNG) from N concurrent loopback clients at
# each concurrency level, bounded in requests and time, and reports requests/s, p50/p99 latency, errors
# and the mean batch size the server reached (its /metrics); then the server's peak memory (VmHWM),
# and the engine's own batched throughput at --max-batch images: the Predictor's forward passes alone
# (BenchmarkLogits) and "seqconv bench --mode infer".
#
#   bench/serve.sh                     # the engine that engine.New picks: ONNX Runtime when installed
#   GOMLX_BACKEND=go bench/serve.sh    # the pure Go backend
#
# Settings (environment): CONCURRENCY (1,8,64), DURATION per level (20s), MAX_REQUESTS per level (2000),
# MAX_BATCH (64), MAX_DELAY (10ms). On a shared machine: flock /tmp/seqconv-bench.lock bench/serve.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export GOEXPERIMENT=simd
# go.mod asks for Go 1.27: let an older go command fetch that toolchain (a go.env may say GOTOOLCHAIN=local).
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto}
CONCURRENCY=${CONCURRENCY:-1,8,64}
DURATION=${DURATION:-20s}
MAX_REQUESTS=${MAX_REQUESTS:-2000}
MAX_BATCH=${MAX_BATCH:-64}
MAX_DELAY=${MAX_DELAY:-10ms}

tmp=$(mktemp -d)
pid=""
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

uptime
go build -o "$tmp/seqconv" ./cmd/seqconv
go build -o "$tmp/serveload" ./bench/serveload
"$tmp/serveload" -init-run "$tmp/run" -model seqresnet-cifar-demo

"$tmp/seqconv" serve --run "$tmp/run" --addr 127.0.0.1:0 --max-batch "$MAX_BATCH" --max-delay "$MAX_DELAY" \
	--queue 4096 2>"$tmp/serve.log" &
pid=$!
url=""
for _ in $(seq 1 600); do
	url=$(sed -n 's/^seqconv: ready on \(http:[^ ]*\)$/\1/p' "$tmp/serve.log")
	if [ -n "$url" ]; then break; fi
	if ! kill -0 "$pid" 2>/dev/null; then cat "$tmp/serve.log"; exit 1; fi
	sleep 0.5
done
if [ -z "$url" ]; then echo "the server was not ready after 5 minutes" >&2; cat "$tmp/serve.log"; exit 1; fi
head -1 "$tmp/serve.log"
echo "server: --max-batch $MAX_BATCH --max-delay $MAX_DELAY; clients: at most $MAX_REQUESTS requests or $DURATION per level"
"$tmp/serveload" -url "$url" -c "$CONCURRENCY" -duration "$DURATION" -max-requests "$MAX_REQUESTS"
echo "server peak memory: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/$pid/status")"
kill -TERM "$pid"
wait "$pid"
pid=""
tail -1 "$tmp/serve.log"

echo "engine's own batched throughput, $MAX_BATCH images per forward pass:"
go test ./inference -run XXX -bench "Logits/batch=$MAX_BATCH\$" -benchtime 5x | grep -E 'engine:|images/s'
"$tmp/seqconv" bench --model seqresnet-cifar-demo --mode infer --batch "$MAX_BATCH" --steps 5 | grep -E 'backend|median'
uptime
