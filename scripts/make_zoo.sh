#!/usr/bin/env bash
# Installs PyTorch/torchvision from Debian (idempotent) and regenerates the
# model zoo into .cache/zoo (only models whose definitions changed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=()
for p in python3-torch python3-torchvision python3-onnx python3-numpy; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "zoo: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec /usr/bin/python3 "$root/bench/zoo/make_zoo.py" --out "${PARALLAX_CACHE:-$root/.cache}/zoo" "$@"
