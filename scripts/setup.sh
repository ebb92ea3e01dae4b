#!/usr/bin/env bash
# Installs what the build and the tests need (Debian 12, as root), then configures and builds
# Release into build/. Idempotent: with everything present it only runs an incremental build.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  cmake g++ ninja-build pkg-config
  libtorch-dev libopenblas0-openmp     # LibTorch (CPU) and a fast BLAS for it
  libeigen3-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libgtest-dev
  libsqlite3-dev zlib1g-dev libpcre2-dev
  libicu-dev                           # Unicode normalization of tokenizer.json (NFC)
  python3-jinja2                       # the chat template parity test renders the models' templates
  libgloo-dev                          # Gloo headers for c10d data-parallel training on CPU
  python3-torch                        # the Python twin of the benchmarks
  dataset-fashion-mnist                # retain bench continual (IDX files in /usr/share/datasets)
  chromium                             # the report's headless-browser test (retain report)
  clang libclang-rt-14-dev             # the libFuzzer targets (fuzz/) and their sanitizer runtimes
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm run the GPT-2 BPE parity test. Checked as commands: a NodeSource nodejs bundles npm
# and conflicts with Debian's npm package.
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

JOBS=${RETAIN_JOBS:-2}
if [[ ! -f build/CMakeCache.txt ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j"$JOBS"
