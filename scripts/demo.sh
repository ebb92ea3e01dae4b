#!/usr/bin/env bash
# The demo: set up, build, fine-tune a fresh gpt-tiny on release 1 of the bundled support data
# set, and print the test-set evaluation before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null

out=${RETAIN_DEMO_OUT:-out/demo}
mkdir -p "$out"
test_set=data/support/release1-test.jsonl
threads=${RETAIN_THREADS:-$(nproc)}

echo "== before: a freshly initialised gpt-tiny on $test_set"
build/retain eval --model models/gpt-tiny --test "$test_set" --seed 1234 --max-new-tokens 64

echo "== fine-tuning on release 1 (configs/demo-finetune.json)"
rm -rf "$out/release1" "$out/run-release1"
build/retain finetune --config configs/demo-finetune.json --out "$out/release1" \
  --run-dir "$out/run-release1" --threads "$threads"

echo "== after"
build/retain eval --model "$out/release1" --test "$test_set" --max-new-tokens 64
echo "== a reply"
build/retain generate --model "$out/release1" --prompt "How much is Quillnote Pro per month?"
