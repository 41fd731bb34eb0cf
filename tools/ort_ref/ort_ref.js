#!/usr/bin/env node
// Reference runner: runs an ONNX model with ONNX Runtime (onnxruntime-node,
// CPU execution provider) on .npy inputs and writes each output as .npy.
//
//   node tools/ort_ref/ort_ref.js MODEL OUT_DIR NAME=FILE.npy [NAME=FILE.npy ...]
//        [--threads N] [--mode sequential|parallel] [--inter-op N]
//        [--runs N --warmup N --json FILE] [--no-outputs] [--profile PREFIX]
//
// --threads sets ORT's intra-op threads. --mode parallel turns on ORT's
// parallel executor (independent nodes run concurrently) with --inter-op
// threads (default: --threads); sequential (the default) uses one inter-op
// thread. --no-outputs skips writing outputs (OUT_DIR is then unused) and the
// run that makes them, so --warmup counts every untimed run. --profile turns
// on ONNX Runtime's profiler for the timed runs and writes its JSON trace
// (one event per node run, with its op type) as PREFIX_<timestamp>.json.
//
// Outputs land as OUT_DIR/<output name>.npy (characters outside
// [A-Za-z0-9._-] replaced by '_'). With --runs it also times session.run and
// writes {latency_ms: {min, median, p90, max}, samples_ms, peak_rss_bytes,
// session_create_ms, load_ms, first_run_ms} to --json. session_create_ms (and
// load_ms, the same number, named as in `parallax bench --json`) is the wall
// time of InferenceSession.create (file read, parse, graph optimisation,
// weight pre-packing); first_run_ms is the session's first run.
'use strict';
const fs = require('fs');
const path = require('path');

function loadOrt() {
  const cache = process.env.PARALLAX_CACHE || path.join(__dirname, '..', '..', '.cache');
  return require(path.join(cache, 'npm', 'node_modules', 'onnxruntime-node'));
}

const DESCR = {
  '<f4': ['float32', Float32Array], '<f8': ['float64', Float64Array], '<i8': ['int64', BigInt64Array],
  '<i4': ['int32', Int32Array], '|u1': ['uint8', Uint8Array], '|i1': ['int8', Int8Array],
  '|b1': ['bool', Uint8Array], '<u8': ['uint64', BigUint64Array], '<i2': ['int16', Int16Array],
  '<u2': ['uint16', Uint16Array], '<u4': ['uint32', Uint32Array], '<f2': ['float16', Uint16Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + hlen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)[1];
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s.length).map(Number);
  const [type, Ctor] = DESCR[descr] || [];
  if (!type) throw new Error(`${file}: unsupported dtype ${descr}`);
  const bytes = buf.subarray(start + hlen);
  const copy = Buffer.from(bytes);  // Aligned copy.
  let data = new Ctor(copy.buffer, copy.byteOffset, copy.byteLength / Ctor.BYTES_PER_ELEMENT);
  if (type === 'bool') data = Uint8Array.from(data);
  return { type, shape, data };
}

function writeNpy(file, tensor) {
  const entry = Object.entries(DESCR).find(([, v]) => v[0] === tensor.type);
  if (!entry) throw new Error(`cannot write dtype ${tensor.type}`);
  const dims = tensor.dims;
  const shape = dims.length === 1 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
  let header = `{'descr': '${entry[0]}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1; pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  const body = Buffer.from(d.buffer, d.byteOffset, d.byteLength);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round(p * (sorted.length - 1)))];
}

async function main() {
  const args = process.argv.slice(2);
  const opts = { threads: 1, runs: 0, warmup: 3, json: '', mode: 'sequential', interOp: 0, outputs: true };
  const pos = [];
  for (let i = 0; i < args.length; ++i) {
    if (args[i] === '--threads') opts.threads = Number(args[++i]);
    else if (args[i] === '--runs') opts.runs = Number(args[++i]);
    else if (args[i] === '--warmup') opts.warmup = Number(args[++i]);
    else if (args[i] === '--json') opts.json = args[++i];
    else if (args[i] === '--mode') opts.mode = args[++i];
    else if (args[i] === '--inter-op') opts.interOp = Number(args[++i]);
    else if (args[i] === '--no-outputs') opts.outputs = false;
    else if (args[i] === '--profile') opts.profile = args[++i];
    else pos.push(args[i]);
  }
  if (pos.length < 2) {
    console.error('usage: ort_ref.js MODEL OUT_DIR NAME=FILE.npy ... [--threads N] [--runs N --warmup N --json FILE]');
    process.exit(2);
  }
  if (opts.mode !== 'sequential' && opts.mode !== 'parallel') {
    console.error(`ort_ref: --mode must be sequential or parallel, got ${opts.mode}`);
    process.exit(2);
  }
  const interOp = opts.mode === 'parallel' ? (opts.interOp || opts.threads) : 1;
  const ort = loadOrt();
  const [model, outDir, ...assigns] = pos;
  const tCreate = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: opts.threads, interOpNumThreads: interOp, executionMode: opts.mode,
    ...(opts.profile ? { enableProfiling: true, profileFilePrefix: opts.profile } : {}),
  });
  const sessionCreateMs = Number(process.hrtime.bigint() - tCreate) / 1e6;
  let firstRunMs = null;
  const run = async (feeds) => {  // session.run, timing the first call.
    const t0 = process.hrtime.bigint();
    const results = await session.run(feeds);
    if (firstRunMs === null) firstRunMs = Number(process.hrtime.bigint() - t0) / 1e6;
    return results;
  };
  const feeds = {};
  for (const a of assigns) {
    const eq = a.indexOf('=');
    const name = a.slice(0, eq);
    const t = readNpy(a.slice(eq + 1));
    feeds[name] = new ort.Tensor(t.type, t.data, t.shape);
  }
  // With --no-outputs and --runs the only untimed runs are the --warmup ones.
  if (opts.outputs || opts.runs === 0) {
    const results = await run(feeds);
    fs.mkdirSync(outDir, { recursive: true });
    for (const name of session.outputNames) {
      writeNpy(path.join(outDir, name.replace(/[^A-Za-z0-9._-]/g, '_') + '.npy'), results[name]);
    }
  }
  if (opts.runs > 0) {
    for (let i = 0; i < opts.warmup; ++i) await run(feeds);
    const ms = [];
    for (let i = 0; i < opts.runs; ++i) {
      const t0 = process.hrtime.bigint();
      await run(feeds);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    if (opts.profile) session.endProfiling();  // Writes PREFIX_<timestamp>.json.
    const samples = ms.slice();
    ms.sort((a, b) => a - b);
    const report = {
      latency_ms: { min: ms[0], median: percentile(ms, 0.5), p90: percentile(ms, 0.9), max: ms[ms.length - 1] },
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024, threads: opts.threads, runs: opts.runs,
      warmup: opts.warmup, mode: opts.mode, inter_op_threads: interOp, samples_ms: samples,
      session_create_ms: sessionCreateMs, load_ms: sessionCreateMs, first_run_ms: firstRunMs,
    };
    if (opts.json) fs.writeFileSync(opts.json, JSON.stringify(report, null, 2) + '\n');
    else console.log(JSON.stringify(report));
  }
}

main().catch((e) => { console.error(`ort_ref: ${e.message || e}`); process.exit(1); });
