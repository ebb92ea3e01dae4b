#!/usr/bin/env bash
# Runs the README's "Your own data, step by step" block (between <!-- walkthrough:begin --> and
# <!-- walkthrough:end -->) exactly as written, in a scratch folder that sees the repository's
# data/ and models/, with the build's `retain` first on PATH. Fails on the first command that fails.
#   scripts/walkthrough.sh [BUILD_DIR]   (default build; the folder is kept with --keep)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
keep=${2:-}
[[ -x $build/retain ]] || { echo "walkthrough.sh: no $build/retain (build first)" >&2; exit 2; }
script=$(sed -n '/<!-- walkthrough:begin -->/,/<!-- walkthrough:end -->/p' "$repo/README.md" | sed '1,2d;$d' | sed '$d')
[[ -n $script ]] || { echo "walkthrough.sh: no walkthrough block in README.md" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/retain-walkthrough-XXXXXX")
[[ $keep == --keep ]] || trap 'rm -rf "$work"' EXIT
ln -s "$repo/data" "$work/data"
ln -s "$repo/models" "$work/models"
mkdir "$work/tutorial"
cd "$work"
export PATH="$build:$PATH" OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "walkthrough in $work"
bash -euo pipefail -x -c "$script"
# What the walk-through promises: the round registered, the report and the export written.
test -s tutorial/report.html
test -s tutorial/support-v2-hf/config.json
test -s tutorial/support-v2-hf/model.safetensors
test -s tutorial/support-v2-hf/vocab.json
echo "walkthrough: every command ran"
