#!/usr/bin/env bash
# Part A of exp10 (baseline + every head zero-ablated, 2 x 1024 tokens) timed
# two ways on the same model and text: through a real spt-server + one
# spt-worker on loopback (submit → last result stored), and the same plan run
# in process by exp10_bench (the engine alone). The difference is the
# runner's overhead. Prints figures; asserts nothing. Both plans carry
# exp3ef=none (no exp3 + exp3ef sub-graph for 10D's correlation): part A only.
#
#   bench/exp10_part_a.sh [MODEL_DIR] [TEXT_FILE]
#
# Defaults: a generated GPT-2-small-shaped model (12 x 12, d_model 768, real
# vocabulary, random weights) and the shipped sample text (2,079 tokens).
# SPT_BUILD_DIR picks the build; SPT_BENCH_MODES=fused,unfused adds the
# unfused in-process run (slow on CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SPT_BUILD_DIR:-build}
W=$(mktemp -d /tmp/spt-parta.XXXXXX)
trap 'kill -TERM ${WORKER:-} ${SERVER:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
MODEL=${1:-}
DATA=${2:-$PWD/experiments/data/sample_wiki.raw}
if [ -z "$MODEL" ]; then
  MODEL=${SPT_BENCH_MODEL_DIR:-/tmp/spt-bench-gpt2small}
  [ -f "$MODEL/model.safetensors" ] || "$B/bench/spt-engine" make-model --out "$MODEL" --preset gpt2 --seed 1 >/dev/null
fi
THREADS=$(nproc)
echo "part A bench: model $MODEL, data $DATA, cpu threads $THREADS"

PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
export SPT_SERVER=127.0.0.1:$PORT SPT_TOKEN=bench-token
"$B/server/spt-server" --listen "$SPT_SERVER" --db "$W/spt.db" --data-dir "$W/data" > "$W/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 100); do "$B/client/spt-client" workers >/dev/null 2>&1 && break; sleep 0.1; done
"$B/worker/spt-worker" --device cpu --threads "$THREADS" --cache-dir "$W/cache" --name bench > "$W/worker.log" 2>&1 &
WORKER=$!
# Warm-up outside the timing (the in-process run warms up too): the worker
# loads the model and keeps it; part A on 2 x 16 tokens costs little.
"$B/client/spt-client" submit exp10 --parts a --model "$MODEL" --dataset "$DATA" --max-tokens 32 --chunk-len 16 \
  --param exp3ef=none --wait --interval 0.2 >/dev/null
t0=$(date +%s.%N)
"$B/client/spt-client" submit exp10 --parts a --model "$MODEL" --dataset "$DATA" --param exp3ef=none --force --wait \
  --interval 0.2 >/dev/null
t1=$(date +%s.%N)
served=$(python3 -c "print(f'{$t1-$t0:.2f}')")
echo "through spt-server + 1 worker: $served s"

"$B/bench/exp10_bench" --model "$MODEL" --dataset "$DATA" --parts a --max-tokens 2048 --chunk-len 1024 \
  --threads "$THREADS" --modes "${SPT_BENCH_MODES:-fused}" | tee "$W/local.txt"
local_s=$(grep '^fused' "$W/local.txt" | awk '{print $7}')
python3 -c "print(f'engine in process (fused): $local_s s; runner overhead {($served-$local_s):.2f} s ({100*($served-$local_s)/$local_s:.1f} %)')"
