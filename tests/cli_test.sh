#!/usr/bin/env bash
# End-to-end checks of the `parallax` CLI on a real model: run (.npy and .pb
# outputs, .npy input), bench --json keys, inspect (and --dot), --no-fusion, schedules
# (--mode, --memory-budget, --spin-us, --trace), and clear errors.
#   tests/cli_test.sh PARALLAX_BIN MODELS_DIR
set -uo pipefail
bin=$1
models=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; passes=$((passes + 1)); else echo "FAIL $name"; fails=$((fails + 1)); fi
}
cls=$models/ppocr_mobile_v2_cls.onnx

"$bin" run "$cls" --random-inputs --shape x=2,3,48,192 --out "$tmp/npy" > "$tmp/run.txt" 2>&1
check "run writes <output>.npy" test -s "$tmp/npy/softmax_0.tmp_0.npy"
"$bin" run "$cls" --random-inputs --shape x=2,3,48,192 --out "$tmp/pb" --format pb > /dev/null 2>&1
check "run --format pb writes <output>.pb" test -s "$tmp/pb/softmax_0.tmp_0.pb"
# Feed the .npy output back as an input file to check --input parsing
# (shape mismatch must be reported by name).
"$bin" run "$cls" --input x="$tmp/npy/softmax_0.tmp_0.npy" --out "$tmp/o" > "$tmp/err.txt" 2>&1
check "wrong input shape is an error naming the input" grep -q "input 'x' has shape \[2,2\]" "$tmp/err.txt"
"$bin" run "$cls" --input y=whatever.npy --out "$tmp/o" > "$tmp/err.txt" 2>&1
check "unknown input name is an error listing the inputs" grep -q "no input 'y' (inputs: x)" "$tmp/err.txt"
"$bin" run "$cls" --out "$tmp/o" > "$tmp/err.txt" 2>&1
check "missing input value is an error" grep -q "no value for input 'x'" "$tmp/err.txt"
"$bin" run "$tmp/nothing.onnx" > "$tmp/err.txt" 2>&1
check "missing model exits 1 with the path" grep -q "nothing.onnx" "$tmp/err.txt"

"$bin" bench "$cls" --random-inputs --shape x=1,3,48,192 --warmup 1 --runs 3 --json "$tmp/b.json" \
  > "$tmp/bench.txt" 2>&1
check "bench prints latency" grep -q "latency ms" "$tmp/bench.txt"
check "bench prints load time" grep -q "load ms" "$tmp/bench.txt"
for key in '"latency_ms"' '"median"' '"p90"' '"peak_activation_bytes"' '"peak_rss_bytes"' \
           '"threads"' '"nodes"' '"load_ms"' '"model_load_ms"' '"session_create_ms"' \
           '"first_run_ms"' '"mode"' '"mode_used"' '"plan"' '"sequential_peak_bytes"' \
           '"memory_budget_bytes"' '"branches"' '"layers"' '"parallel_layers"' \
           '"max_branch_width"' '"layer_width_used"'; do
  check "bench --json has $key" grep -q "$key" "$tmp/b.json"
done

"$bin" inspect "$cls" > "$tmp/inspect.txt" 2>&1
check "inspect lists ops by type" grep -q "Conv " "$tmp/inspect.txt"
check "inspect reports no unsupported ops" grep -q "unsupported  none" "$tmp/inspect.txt"
check "inspect lists layout reorder nodes" grep -q "Transpose *reorder_to_nhwc/" "$tmp/inspect.txt"
check "inspect lists fusions" grep -q "^fusions .*ConvBatchNorm" "$tmp/inspect.txt"
check "inspect shows fused op types" grep -q "com.parallax::FusedConv" "$tmp/inspect.txt"
check "inspect reports branches" grep -q "^  parallel layers, refine off" "$tmp/inspect.txt"
"$bin" inspect "$cls" --dot "$tmp/branches.dot" > /dev/null 2>&1
check "inspect --dot writes a dot file" grep -q "digraph" "$tmp/branches.dot"

# Schedules, budget and trace.
for mode in sequential layers dataflow; do
  "$bin" run "$cls" --random-inputs --shape x=2,3,48,192 --threads 2 --mode $mode \
    --out "$tmp/m_$mode" > /dev/null 2>&1
done
check "every --mode gives the same bits" cmp -s "$tmp/m_sequential/softmax_0.tmp_0.npy" \
  "$tmp/m_dataflow/softmax_0.tmp_0.npy"
check "--mode layers gives the same bits" cmp -s "$tmp/m_sequential/softmax_0.tmp_0.npy" \
  "$tmp/m_layers/softmax_0.tmp_0.npy"
"$bin" run "$cls" --random-inputs --shape x=2,3,48,192 --threads 2 --spin-us 0 \
  --out "$tmp/m_nospin" > /dev/null 2>&1
check "--spin-us 0 gives the same bits" cmp -s "$tmp/m_sequential/softmax_0.tmp_0.npy" \
  "$tmp/m_nospin/softmax_0.tmp_0.npy"
"$bin" run "$cls" --random-inputs --shape x=1,3,48,192 --spin-us -5 --out "$tmp/o" > "$tmp/err.txt" 2>&1
check "a negative --spin-us is an error naming the flag" grep -q "spin-us" "$tmp/err.txt"
"$bin" run "$cls" --random-inputs --shape x=1,3,48,192 --mode fastest --out "$tmp/o" > "$tmp/err.txt" 2>&1
check "unknown --mode is an error naming the choices" grep -q "dataflow" "$tmp/err.txt"
"$bin" run "$cls" --random-inputs --shape x=1,3,48,192 --memory-budget 1000 --out "$tmp/o" \
  > "$tmp/err.txt" 2>&1
check "an impossible --memory-budget is ResourceExhausted" grep -q "ResourceExhausted.*1000-byte memory budget.*in pieces" "$tmp/err.txt"
"$bin" run "$cls" --random-inputs --shape x=1,3,48,192 --threads 2 --trace "$tmp/t.json" \
  --out "$tmp/o" > /dev/null 2>&1
check "run --trace writes a Chrome trace" grep -q '"traceEvents"' "$tmp/t.json"
"$bin" bench "$cls" --random-inputs --shape x=1,3,48,192 --warmup 0 --runs 1 --no-fusion \
  > "$tmp/nofuse.txt" 2>&1
check "bench --no-fusion loads unfused" grep -q "fusions      none (--no-fusion)" "$tmp/nofuse.txt"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
