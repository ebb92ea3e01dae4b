#!/usr/bin/env bash
# Runs the libFuzzer targets (fuzz/*_fuzz.cpp, built by the main build when clang++ is installed)
# from their seed corpora, and prints each target's executions and findings.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   every target (or those named) for SECONDS each (60)
#   scripts/fuzz.sh --ctest SECONDS TARGET  one target, as ctest runs it (no build, one line)
#
# New inputs that add coverage collect in build/fuzz/work/TARGET (kept between runs, so a longer
# run goes on where the last one stopped); a crashing input is written to build/fuzz/artifacts/
# and the run fails. Copy such an input into fuzz/corpus/TARGET/crash-WHAT and write a unit test
# for it (README, "Reliability"). RETAIN_BUILD_DIR names another build folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${RETAIN_BUILD_DIR:-build}

ctest_mode=0
if [[ ${1:-} == --ctest ]]; then
  ctest_mode=1
  shift
fi
seconds=${1:-60}
shift || true
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz.sh: SECONDS must be a positive integer, got '$seconds'" >&2; exit 2; }
targets=("$@")
if ((${#targets[@]} == 0)); then
  for src in fuzz/*_fuzz.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi

if ((!ctest_mode)); then
  [[ -f $build/CMakeCache.txt ]] || scripts/setup.sh
  cmake --build "$build" --target retain_fuzz
fi

# Leaks count as findings; LibTorch's own start-up allocations that live until exit do not.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/fuzz/lsan.supp:print_suppressions=0}

status=0
((ctest_mode)) || printf '%-22s %8s %12s %9s %8s %s\n' target seconds executions exec/s corpus result
for t in "${targets[@]}"; do
  bin=$build/fuzz/$t
  [[ -x $bin ]] || { echo "fuzz.sh: no $bin (is clang++ installed? scripts/setup.sh installs it)" >&2; exit 2; }
  [[ -d fuzz/corpus/$t ]] || { echo "fuzz.sh: no seed corpus fuzz/corpus/$t" >&2; exit 2; }
  work=$build/fuzz/work/$t artifacts=$build/fuzz/artifacts/$t
  mkdir -p "$work" "$artifacts"
  log=$build/fuzz/$t.log
  rc=0
  "$bin" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" -type f | wc -l)
  if ((rc == 0)); then result="0 crashes"; else result="FAILED (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|panic|Assertion|deadly' "$log" || true)"; status=1; fi
  rate=$(( ${execs:-0} / seconds ))
  if ((ctest_mode)); then
    echo "$t: ${execs:-0} executions in ${seconds} s (${rate}/s), ${corpus} new corpus inputs, $result"
    ((rc == 0)) || tail -60 "$log"
  else
    printf '%-22s %8s %12s %9s %8s %s\n' "$t" "$seconds" "${execs:-0}" "$rate" "$corpus" "$result"
    ((rc == 0)) || echo "  log: $log; input: $(ls -t "$artifacts" | head -1)"
  fi
done
exit $status
