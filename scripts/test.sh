#!/usr/bin/env bash
# Sets up, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
ctest --output-on-failure -j"${RETAIN_JOBS:-2}" "$@"
