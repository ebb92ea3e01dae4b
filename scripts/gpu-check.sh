#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU and PyTorch installed but no package registry.
#
#   scripts/gpu-check.sh [DEPS_DIR]        (default: deps/, made by scripts/bundle-deps.sh on Debian)
#
# 1. builds retain against PyTorch's own LibTorch (its cmake prefix path) and the bundled
#    dependencies, into build-gpu/;
# 2. runs the test suite (the CUDA tests run; tests that need what the build lacks skip);
# 3. bench/train_throughput on the GPU with GPT-2 124M's shape in bf16 autocast: tokens/s and model
#    FLOPs utilisation against the dense bf16 peak (989 TFLOP/s for an H100 / H200; PEAK_TFLOPS
#    to change), beside the PyTorch twin run the same way;
# 4. bench/ewc on gpt-small on the GPU: the Fisher pass (batched per-example vs the loop) and the
#    penalty's share of a step;
# 5. bench/lora: LoRA against full fine-tuning on the Qwen2.5-0.5B shape, step time and memory;
# 6. one whole round on gpt-small on the GPU: base fine-tune on release 1, Fisher, import, then
#    `retain train` with 30 % replay and EWC on release 2, timed.
# Everything is logged to $OUT (when set, as on the device machine) or out/gpu-check/, with a
# summary in summary.txt. Aims to finish within 8 minutes on a 16-core machine with an H100/H200.
# Environment: PYTHON (default python3), JOBS (build jobs, default nproc), PEAK_TFLOPS (989),
# BATCH (GPT-2 124M batch, default 16), SKIP_TESTS=1, SKIP_ROUND=1.
set -uo pipefail
cd "$(dirname "$0")/.."
deps=$(realpath -m "${1:-deps}")
py=${PYTHON:-python3}
jobs=${JOBS:-$(nproc)}
log=${OUT:-out/gpu-check}
mkdir -p "$log"
summary="$log/summary.txt"
: > "$summary"
say() { echo "$*" | tee -a "$summary"; }
t0=$SECONDS
step() { say ""; say "== $1 ($((SECONDS - t0)) s)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$summary"
prefix=$("$py" -c 'import torch;print(torch.utils.cmake_prefix_path)') || { say "no PyTorch for $py"; exit 2; }
say "$("$py" -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())')"
[ -d "$deps/include" ] || { say "no dependency bundle at $deps: run scripts/bundle-deps.sh on Debian and carry it"; exit 2; }

step "build against PyTorch's LibTorch ($prefix)"
if ! { cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DRETAIN_DEPS_DIR="$deps" \
         -DCMAKE_PREFIX_PATH="$prefix" > "$log/configure.log" 2>&1 &&
       cmake --build build-gpu -j"$jobs" > "$log/build.log" 2>&1; }; then
  say "build FAILED: last lines of the log"
  tail -n 40 "$log/configure.log" "$log/build.log" | tee -a "$summary"
  exit 1
fi
say "built in $((SECONDS - t0)) s"

if [ -z "${SKIP_TESTS:-}" ]; then
  step "tests"
  (cd build-gpu && timeout 300 ctest -j8 --timeout 240 --output-on-failure) > "$log/ctest.log" 2>&1
  say "ctest exit $?: $(grep -E 'tests passed|tests failed' "$log/ctest.log")"
  grep -E '^\s+[0-9]+ - .*\((Failed|Timeout|SEGFAULT|Subprocess)' "$log/ctest.log" | tee -a "$summary"
  say "skipped: $(grep -c 'Skipped' "$log/ctest.log")"
fi

step "train_throughput: GPT-2 124M, bf16 autocast"
export RETAIN_PYTHON="$py"
timeout 240 build-gpu/train_throughput --preset gpt2-124m --device cuda --precision bf16 --tf32 \
  --batch "${BATCH:-16}" --seq 1024 --steps 20 --warmup 5 --threads 8 --peak-tflops "${PEAK_TFLOPS:-989}" \
  2>&1 | tee "$log/throughput-124m-bf16.txt" | tee -a "$summary"

step "ewc: the Fisher pass and the penalty on gpt-small"
timeout 120 build-gpu/ewc --device cuda --examples 256 --seq 256 --steps 20 2>&1 | tee "$log/ewc.txt" | tee -a "$summary"

step "lora: LoRA r=8 vs full fine-tuning on the Qwen2.5-0.5B shape (fp32; peak memory is host RSS)"
timeout 240 build-gpu/lora --model models/qwen2.5-0.5b --device cuda --rank 8 --batch 8 --seq 512 --steps 10 \
  --warmup 2 --threads 8 2>&1 | tee "$log/lora.txt" | tee -a "$summary"

if [ -z "${SKIP_ROUND:-}" ]; then
  step "one round on gpt-small (CUDA)"
  w="$log/round"
  rm -rf "$w"
  mkdir -p "$w"
  r=build-gpu/retain
  ts=$SECONDS
  {
    $r finetune --config configs/demo-finetune.json --model models/gpt-small --out "$w/base" \
      --run-dir "$w/run-base" --device cuda --log-every 200 &&
    $r fisher --model "$w/base" --data data/support/release1-train.jsonl --samples 1000 --device cuda --path batched &&
    $r init --workspace "$w/ws" &&
    $r import "$w/base" --name support-v1 --replay-data data/support/release1-train.jsonl --workspace "$w/ws"
  } > "$log/round-base.log" 2>&1
  say "base fine-tune + Fisher + import: exit $?, $((SECONDS - ts)) s"
  ts=$SECONDS
  timeout 240 $r train --config configs/demo-round.json --data data/support/release2-train.jsonl \
    --workspace "$w/ws" --device cuda > "$log/round.log" 2>&1
  say "round (replay 0.3, EWC λ=1e4): exit $? (0 promoted, 3 rejected), $((SECONDS - ts)) s"
  tail -n 25 "$log/round.log" | tee -a "$summary"
fi

say ""
say "gpu-check finished in $((SECONDS - t0)) s; logs in $log"
