#!/usr/bin/env bash
# Installs everything Parallax needs on Debian 12 (idempotent), fetches the
# real models and the ONNX Runtime reference into .cache/, and builds.
#   scripts/setup.sh            # deps + models + Release build in build/
#   BUILD_DIR=build-asan CMAKE_ARGS=-DPARALLAX_SANITIZE=address scripts/setup.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

apt_pkgs=(build-essential cmake git libonnx-dev libonnx-testdata libprotobuf-dev protobuf-compiler
          libdnnl-dev nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v node >/dev/null 2>&1 || missing+=(nodejs)   # Any Node.js >= 18 will do.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$root/scripts/fetch_models.sh"

build_dir=${BUILD_DIR:-build}
echo "setup: building in $build_dir"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-Release} ${CMAKE_ARGS:-} >/dev/null
cmake --build "$build_dir" -j "$(nproc)" 2>&1 | grep -vE "^\[|^-- |Scanning|Consolidate|Built target" || true
test -x "$build_dir/parallax" || { echo "setup: build failed" >&2; exit 1; }
echo "setup: done ($build_dir/parallax)"
