#!/usr/bin/env bash
# Runs the whole test suite: installs dependencies, fetches the real models
# and the ONNX Runtime reference, builds, then runs every test with CTest
# (unit tests, error tests, real and zoo models vs ONNX Runtime, ONNX
# conformance). The model zoo is generated (once, cached) before the tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/make_zoo.sh"
cd "$root"
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
