#!/usr/bin/env bash
# The demo: one continual round on the bundled support data, end to end.
#   1. a base gpt-tiny fine-tuned on release 1, with its Fisher, imported as production;
#   2. a round on release 2 with no replay and no EWC: it forgets release 1, and the gate rejects it;
#   3. the same round with 30 % replay and EWC: it passes and is promoted;
#   4. the registry and the scores before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null

out=${RETAIN_DEMO_OUT:-out/demo}
ws="$out/workspace"
# RETAIN_THREADS=N pins the CPU threads; by default retain takes the CPUs that are free when each
# job starts (so that another job on the machine does not make the demo crawl).
threads=()
if [ -n "${RETAIN_THREADS:-}" ]; then
  threads=(--threads "$RETAIN_THREADS")
  export OMP_NUM_THREADS=$RETAIN_THREADS
fi
retain=build/retain
start=$SECONDS

echo "== 1. base: gpt-tiny fine-tuned on release 1 (configs/demo-finetune.json)"
rm -rf "$out/base" "$out/run-base" "$ws"
mkdir -p "$out"
$retain finetune --config configs/demo-finetune.json --out "$out/base" --run-dir "$out/run-base" \
  "${threads[@]}" --log-every 200
$retain fisher --model "$out/base" --data data/support/release1-train.jsonl --samples 1000 | tail -n 1
$retain init --workspace "$ws"
$retain import "$out/base" --name support-v1 --replay-data data/support/release1-train.jsonl --workspace "$ws"

echo
echo "== 2. a round on release 2 without replay or EWC (configs/demo-round-naive.json)"
code=0
$retain train --config configs/demo-round-naive.json --data data/support/release2-train.jsonl \
  --workspace "$ws" "${threads[@]}" --log-every 100 || code=$?
if [ "$code" -ne 3 ]; then
  echo "demo: expected the gate to reject the naive round (exit 3), got exit $code" >&2
  exit 1
fi

echo
echo "== 3. the same round with 30 % replay and EWC (configs/demo-round.json)"
$retain train --config configs/demo-round.json --data data/support/release2-train.jsonl \
  --workspace "$ws" "${threads[@]}" --log-every 100

echo
echo "== 4. the registry"
$retain registry list --workspace "$ws"
echo
$retain registry lineage support-v3 --workspace "$ws"
echo
echo "demo finished in $((SECONDS - start)) s"
