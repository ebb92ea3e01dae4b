#!/usr/bin/env bash
# Runs `retain bench continual` and its PyTorch twin (bench/continual_twin.py) on the same
# protocol and settings, one after the other, and prints both summaries and the wall-time ratio
# (twin / retain: above 1 means retain is faster). Every argument is passed to both, e.g.
#
#   bench/continual_compare.sh --protocol permuted --tasks 5 --iters-per-task 200 --seeds 1 --threads 2
#
# Environment: RETAIN_BIN (default build/retain), RETAIN_PYTHON (default /usr/bin/python3, Debian's
# python3-torch), TWIN_FISHER (loop | batched, default loop: the twin's per-example Fisher).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RETAIN_BIN:-build/retain}
py=${RETAIN_PYTHON:-/usr/bin/python3}
fisher=${TWIN_FISHER:-loop}
[[ -x $bin ]] || { echo "continual_compare: $bin not found (build first, or set RETAIN_BIN)" >&2; exit 1; }

now() { date +%s.%N; }
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(now)
"$bin" -q bench continual "$@"
t1=$(now)
echo
"$py" bench/continual_twin.py --fisher "$fisher" "$@" 2>/dev/null
t2=$(now)
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
awk -v a="$t0" -v b="$t1" -v c="$t2" -v f="$fisher" 'BEGIN {
  r = b - a; p = c - b;
  printf "\nwall time (process, data loading included): retain %.1f s, PyTorch twin (Fisher %s) %.1f s: retain is %.2fx faster\n", r, f, p, p / r }'
