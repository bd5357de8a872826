#!/usr/bin/env bash
# The main job: sets everything up, starts a coordinator (embedded SQLite file)
# and one worker on loopback, runs exp10 parts a–d end to end (with the model's
# exp3 + exp3ef, whose g(l/L) part D correlates with), and fetches the JSON,
# reports and figures into ./spt-main/results.
#
# Model and data: real GPT-2 (HF cache) and WikiText-2 (wiki.valid.raw in
# $SPT_WIKITEXT_DIR) when present; otherwise a generated GPT-2-shaped model and
# the shipped sample text. It says which it used.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
B=${SPT_BUILD_DIR:-build}
WORK=${SPT_MAIN_DIR:-$ROOT/spt-main}
PARTS=${SPT_PARTS:-abcd}
mkdir -p "$WORK"

# --- model
MODEL=""
for hub in "${HF_HUB_CACHE:-}" "${HF_HOME:+$HF_HOME/hub}" "$HOME/.cache/huggingface/hub"; do
  [ -n "$hub" ] || continue
  for snap in "$hub"/models--gpt2/snapshots/*/; do
    if [ -f "$snap/model.safetensors" ] && [ -f "$snap/config.json" ]; then MODEL=gpt2; fi
  done
done
if [ -z "$MODEL" ] && [ "${HF_HUB_OFFLINE:-0}" != 1 ] &&
   curl -fsIL --max-time 8 "${HF_ENDPOINT:-https://huggingface.co}/gpt2/resolve/main/config.json" >/dev/null 2>&1; then
  MODEL=gpt2-download
fi
if [ "$MODEL" = gpt2-download ]; then
  echo "main: model = real GPT-2, which the worker downloads from the Hub into the HF cache"
  MODEL_PARAM=(--model gpt2)
elif [ -n "$MODEL" ]; then
  echo "main: model = real GPT-2 from the Hugging Face cache"
  MODEL_PARAM=(--model gpt2)
else
  MODEL="$WORK/model-gpt2shape"
  if [ ! -f "$MODEL/model.safetensors" ]; then
    "$B/bench/spt-engine" make-model --out "$MODEL" --layers 12 --heads 12 --d-model 192 --n-ctx 1024 --seed 1 >/dev/null
  fi
  echo "main: model = GENERATED GPT-2-shaped model (12 layers x 12 heads, d_model 192, random weights) at $MODEL"
  echo "      (no GPT-2 in the HF cache; put one there to run the real science)"
  MODEL_PARAM=(--model "$MODEL")
fi

# --- data
DATA=""
for d in "${SPT_WIKITEXT_DIR:-}" "$HOME/.cache/spt/wikitext-2-raw" "$ROOT/data/wikitext-2-raw"; do
  [ -n "$d" ] && [ -f "$d/wiki.valid.raw" ] && DATA="$d/wiki.valid.raw" && break
done
if [ -n "$DATA" ]; then
  echo "main: data = WikiText-2 validation split at $DATA"
else
  DATA="$ROOT/experiments/data/sample_wiki.raw"
  echo "main: data = SHIPPED SAMPLE TEXT $DATA (no wiki.valid.raw; set SPT_WIKITEXT_DIR)"
fi

# --- coordinator + worker on loopback
PORT=${SPT_PORT:-$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null || echo 17070)}
export SPT_SERVER=127.0.0.1:$PORT
export SPT_TOKEN_FILE="$WORK/token"
[ -f "$SPT_TOKEN_FILE" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$SPT_TOKEN_FILE")
"$B/server/spt-server" --listen "$SPT_SERVER" --db "$WORK/spt.db" --data-dir "$WORK/data" \
  --token-file "$SPT_TOKEN_FILE" > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill -TERM ${WORKER:-} $SERVER 2>/dev/null; wait 2>/dev/null || true' EXIT
for _ in $(seq 50); do "$B/client/spt-client" workers >/dev/null 2>&1 && break; sleep 0.2; done
"$B/worker/spt-worker" --server "$SPT_SERVER" --token-file "$SPT_TOKEN_FILE" --device cpu \
  --threads "$(nproc)" --cache-dir "$WORK/cache" --name main-cpu > "$WORK/worker.log" 2>&1 &
WORKER=$!

"$B/client/spt-client" submit exp10 --parts "$PARTS" "${MODEL_PARAM[@]}" --dataset "$DATA" --wait
"$B/client/spt-client" results exp10 --out "$WORK/results"
echo
echo "main: results in $WORK/results:"
ls "$WORK/results"
for f in "$WORK"/results/*.md; do [ -f "$f" ] && { echo; sed -n 1,60p "$f"; }; done
