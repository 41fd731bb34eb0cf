#!/usr/bin/env python3
"""Checks zoo models: Parallax against ONNX Runtime (and nothing else) on seeded inputs.

  python3 bench/zoo/check_zoo.py [NAME|PATH.json ...] [--zoo DIR] [--seed N] [--atol A] [--rtol R]
                                 [--parallax BIN] [--keep DIR]

With no names it checks every <name>.json in the zoo folder (default .cache/zoo, or
$PARALLAX_CACHE/zoo). For each model it draws the inputs from the JSON input spec with numpy
(default_rng(seed); floats uniform in [low, high), integers in [low, high)), runs
`parallax run` and tools/ort_ref/ort_ref.js (ONNX Runtime) on the same .npy files, and compares
every output: same dtype and shape (data-dependent shapes included), and
|parallax - ort| <= atol + rtol * |ort| element-wise (integers and bools: exact).
Prints one line per output and a summary; exits 1 if any model fails.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]


def make_inputs(spec, seed):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in spec["inputs"]:
        dt = np.dtype(i["dtype"])
        shape = [int(d) for d in i["shape"]]
        lo, hi = i.get("low", 0.0), i.get("high", 1.0)
        if dt.kind == "f":
            feeds[i["name"]] = rng.uniform(lo, hi, size=shape).astype(dt)
        elif dt.kind == "b":
            feeds[i["name"]] = rng.integers(0, 2, size=shape).astype(dt)
        else:
            feeds[i["name"]] = rng.integers(int(lo), max(int(hi), int(lo) + 1), size=shape).astype(dt)
    return feeds


def safe(name):
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def output_names(onnx_path):
    try:
        import onnx
        m = onnx.load(str(onnx_path), load_external_data=False)
        return [o.name for o in m.graph.output], len(m.graph.node)
    except ImportError:
        return None, None


def compare(px, ort, atol, rtol):
    """Returns (ok, message, max_abs_err)."""
    if px.shape != ort.shape:
        return False, f"shape {px.shape} != ORT {ort.shape}", float("nan")
    if px.dtype != ort.dtype:
        return False, f"dtype {px.dtype} != ORT {ort.dtype}", float("nan")
    if px.size == 0:
        return True, "empty", 0.0
    if px.dtype.kind in "biu":
        bad = int(np.count_nonzero(px != ort))
        err = float(np.max(np.abs(px.astype(np.float64) - ort.astype(np.float64))))
        return bad == 0, f"{bad} mismatches" if bad else "exact", err
    a, b = px.astype(np.float64), ort.astype(np.float64)
    nan_mismatch = int(np.count_nonzero(np.isnan(a) != np.isnan(b)))
    both = ~(np.isnan(a) | np.isnan(b))
    diff = np.where(both, np.abs(a - b), 0.0)
    diff = np.where(np.isinf(a) & np.isinf(b) & (a == b), 0.0, diff)
    err = float(np.max(diff))
    bad = int(np.count_nonzero(diff > atol + rtol * np.abs(b))) + nan_mismatch
    return bad == 0, f"{bad}/{px.size} beyond tolerance" if bad else "ok", err


def check(spec_path, args):
    spec = json.loads(spec_path.read_text())
    name = spec["name"]
    onnx_path = spec_path.with_suffix(".onnx")
    if not onnx_path.exists():
        print(f"{name}: {onnx_path} missing")
        return False
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"zoo_{name}_", dir=args.keep)) if args.keep else \
        pathlib.Path(tempfile.mkdtemp(prefix=f"zoo_{name}_"))
    feeds = make_inputs(spec, args.seed)
    assigns = []
    for k, v in feeds.items():
        f = work / f"in_{safe(k)}.npy"
        np.save(f, v)
        assigns.append(f"{k}={f}")
    names, nodes = output_names(onnx_path)
    threads = [int(t) for t in args.threads.split(",")]
    modes = args.modes.split(",")
    t0 = time.time()
    for t in threads:  # Each thread count (intra-op tiling) must match ORT ...
        for mode in modes:
            px = subprocess.run([args.parallax, "run", str(onnx_path), "--out", str(work / f"px{t}_{mode}"),
                                 "--threads", str(t), "--mode", mode,
                                 *[x for a in assigns for x in ("--input", a)]],
                                capture_output=True, text=True)
            if px.returncode != 0:
                print(f"{name}: parallax --threads {t} --mode {mode} failed ({px.returncode}): "
                      f"{px.stderr.strip()[-2000:]}")
                return False
    t_px = (time.time() - t0) / (len(threads) * len(modes))
    t0 = time.time()
    ort = subprocess.run(["node", str(ROOT / "tools/ort_ref/ort_ref.js"), str(onnx_path), str(work / "ort"),
                          *assigns], capture_output=True, text=True)
    t_ort = time.time() - t0
    if ort.returncode != 0:
        print(f"{name}: ort_ref failed ({ort.returncode}): {ort.stderr.strip()[-2000:]}")
        return False
    if names is None:
        names = sorted(p.stem for p in (work / "ort").glob("*.npy"))
    ok_all, worst = True, 0.0
    for o, t in [(o, t) for o in names for t in threads]:
        fo = work / "ort" / f"{safe(o)}.npy"
        fp = work / f"px{t}_{modes[0]}" / f"{safe(o)}.npy"
        if not fp.exists() or not fo.exists():
            print(f"  {name}/{o}: missing output (parallax {fp.exists()}, ort {fo.exists()})")
            ok_all = False
            continue
        a, b = np.load(fp), np.load(fo)
        ok, msg, err = compare(a, b, args.atol, args.rtol)
        ok_all &= ok
        worst = max(worst, err) if err == err else worst
        print(f"  {name}/{o} (threads {t}): {b.dtype} {list(b.shape)} max_abs_err {err:.3g} {msg}")
        # ... and every schedule must give the first mode's exact bits.
        for mode in modes[1:]:
            fm = work / f"px{t}_{mode}" / f"{safe(o)}.npy"
            same = fm.exists() and fm.read_bytes() == fp.read_bytes()
            ok_all &= same
            if not same:
                print(f"  {name}/{o} (threads {t}): --mode {mode} differs from --mode {modes[0]}")
    status = "PASS" if ok_all else "FAIL"
    print(f"{status} {name}: nodes {nodes}, max_abs_err {worst:.3g} (parallax {t_px:.1f} s, ort {t_ort:.1f} s)",
          flush=True)
    return ok_all


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="zoo model names or .json spec paths (default: all)")
    ap.add_argument("--zoo", default=str(pathlib.Path(os.environ.get("PARALLAX_CACHE", ROOT / ".cache")) / "zoo"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", default="1,3",
                    help="comma-separated Parallax thread counts to check (default 1,3)")
    ap.add_argument("--modes", default="sequential,dataflow,layers",
                    help="schedules to run at each thread count; all must match the first bit for bit")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--parallax", default=str(ROOT / "build" / "parallax"))
    ap.add_argument("--keep", default=None, help="keep the inputs/outputs under this folder")
    args = ap.parse_args()
    zoo = pathlib.Path(args.zoo)
    specs = []
    for m in args.models or []:
        p = pathlib.Path(m)
        specs.append(p if p.suffix == ".json" else zoo / f"{m}.json")
    if not args.models:
        specs = sorted(zoo.glob("*.json"))
    if not specs:
        print(f"check_zoo: no model specs under {zoo}")
        return 1
    if args.keep:
        pathlib.Path(args.keep).mkdir(parents=True, exist_ok=True)
    failed = [s.stem for s in specs if not check(s, args)]
    print(f"check_zoo: {len(specs) - len(failed)}/{len(specs)} passed" + (f"; failed: {' '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
