#!/usr/bin/env bash
# Sets up, builds, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
# LibTorch's OpenMP threads spin when oversubscribed: one thread per test process, two processes at a time.
export OMP_NUM_THREADS=1
ctest --output-on-failure -j"${RETAIN_JOBS:-2}" "$@"
