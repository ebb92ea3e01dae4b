#!/usr/bin/env bash
# Gathers, on a Debian 12 machine with retain's packages installed (scripts/setup.sh), everything
# besides LibTorch that the build needs into one folder, to carry to a machine that has PyTorch but
# no package registry (a GPU machine): then build there with
#   cmake -S . -B build-gpu -DRETAIN_DEPS_DIR=<folder> -DCMAKE_PREFIX_PATH=<PyTorch's cmake prefix>
# (scripts/gpu-check.sh does that).
#
#   scripts/bundle-deps.sh [OUT_DIR]      (default: deps/, git-ignored)
#
# Contents: include/ — nlohmann_json, CLI11, spdlog and fmt (compiled header-only there), Eigen,
# sqlite3.h, zlib.h, pcre2.h; lib/ — libsqlite3, libz, libpcre2-8 shared libraries (used only where
# the machine lacks its own); src/googletest — GoogleTest's sources (built there with LibTorch's ABI
# flag). Gloo's headers are left out on purpose: PyTorch's LibTorch was built with its own Gloo,
# and Debian's headers of another version could disagree with it; without them the build has no
# Gloo backend and the CPU data-parallel tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-deps}
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)

need() { [ -e "$1" ] || { echo "bundle-deps: $1 is missing; run scripts/setup.sh first" >&2; exit 1; }; }
for p in /usr/include/nlohmann /usr/include/CLI /usr/include/spdlog /usr/include/fmt \
         /usr/include/eigen3/Eigen /usr/include/sqlite3.h /usr/include/zlib.h /usr/include/pcre2.h \
         /usr/src/googletest/CMakeLists.txt; do
  need "$p"
done

tmp="$out.tmp-$$"
rm -rf "$tmp"
mkdir -p "$tmp/include" "$tmp/lib" "$tmp/src"
cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/spdlog /usr/include/fmt "$tmp/include/"
cp -r /usr/include/eigen3/Eigen "$tmp/include/"
cp /usr/include/sqlite3.h /usr/include/sqlite3ext.h /usr/include/zlib.h /usr/include/zconf.h \
   /usr/include/pcre2.h "$tmp/include/"
[ -e "/usr/include/$arch/zconf.h" ] && cp "/usr/include/$arch/zconf.h" "$tmp/include/"
for lib in libsqlite3.so.0 libz.so.1 libpcre2-8.so.0; do
  cp -L "/usr/lib/$arch/$lib" "$tmp/lib/" 2>/dev/null || cp -L "/lib/$arch/$lib" "$tmp/lib/"
done
cp -r /usr/src/googletest "$tmp/src/googletest"
cat > "$tmp/README" <<EOF
retain dependency bundle, made by scripts/bundle-deps.sh on $(. /etc/os-release; echo "$PRETTY_NAME") ($arch).
Build: cmake -S . -B build-gpu -DRETAIN_DEPS_DIR=\$PWD/$out -DCMAKE_PREFIX_PATH=\$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
EOF
rm -rf "$out"
mv "$tmp" "$out"
echo "bundle-deps: wrote $out ($(du -sh "$out" | cut -f1))"
