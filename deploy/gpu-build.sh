#!/usr/bin/env bash
# Builds spt against the LibTorch inside a pip-installed torch (the usual way
# to get CUDA LibTorch). Without gRPC on the host, only the engine and its
# bench CLI (spt-engine) are built: that is how the GPU numbers are taken.
#   deploy/gpu-build.sh [build-dir]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$SRC/build-gpu}
TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
GRPC=ON
if ! pkg-config --exists grpc++ 2>/dev/null; then
  echo "gpu-build: no gRPC on this host; building the engine and spt-engine only"
  GRPC=OFF
fi
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DSPT_WITH_GRPC=$GRPC -DSPT_BUILD_TESTS="${SPT_BUILD_TESTS:-OFF}"
cmake --build "$BUILD" -j "$(nproc)"
