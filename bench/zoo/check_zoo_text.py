#!/usr/bin/env python3
"""Checks zoo models: Parallax against ONNX Runtime on seeded inputs from each model's JSON spec.

  python3 bench/zoo/check_zoo_text.py [MODEL ...] [--zoo DIR] [--seed S] [--shape NAME=D0,D1,...]
                                      [--atol 1e-4] [--rtol 1e-4] [--parallax build/parallax]

MODEL defaults to every <name>.json in the zoo folder (.cache/zoo, or $PARALLAX_CACHE/zoo).
--shape overrides an input's shape (repeatable; applies to every model with that input name), to
exercise dynamic batch/sequence axes. Inputs: floats uniform in [low, high), integers in [low, high)
(numpy default_rng(seed)). Floating outputs must satisfy |p - o| <= atol + rtol * |o|; integer and
bool outputs must be equal. Prints one line per model with the max abs error; exits 1 on a mismatch.
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

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def make_inputs(spec, seed, shapes):
    rng = np.random.default_rng(seed)
    out = {}
    for i in spec["inputs"]:
        shape = shapes.get(i["name"], i["shape"])
        dt = np.dtype(i["dtype"])
        if dt.kind == "f":
            a = rng.uniform(i["low"], i["high"], size=shape).astype(dt)
        elif dt.kind == "b":
            a = rng.integers(0, 2, size=shape).astype(dt)
        else:
            a = rng.integers(int(i["low"]), int(i["high"]), size=shape).astype(dt)
        out[i["name"]] = np.asarray(a)
    return out


def run(cmd):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return time.time() - t0


def check(name, zoo, args, shapes):
    spec = json.loads((zoo / f"{name}.json").read_text())
    model = zoo / f"{name}.onnx"
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        feeds = make_inputs(spec, args.seed, shapes)
        flags = []
        for k, v in feeds.items():
            np.save(d / f"in_{k}.npy", v)
            flags.append(f"{k}={d / f'in_{k}.npy'}")
        tp = run([args.parallax, "run", str(model), *sum((["--input", f] for f in flags), []),
                  "--out", str(d / "px")])
        to = run(["node", str(ROOT / "tools/ort_ref/ort_ref.js"), str(model), str(d / "ort"), *flags])
        ok, worst, lines = True, 0.0, []
        ort_files = sorted((d / "ort").glob("*.npy"))
        if not ort_files:
            return False, "ONNX Runtime wrote no outputs"
        for f in ort_files:
            o = np.load(f)
            pf = d / "px" / f.name
            if not pf.exists():
                ok = False
                lines.append(f"{f.stem}: missing from Parallax's outputs")
                continue
            p = np.load(pf)
            if p.shape != o.shape or p.dtype != o.dtype:
                ok = False
                lines.append(f"{f.stem}: Parallax {p.dtype}{list(p.shape)} vs ORT {o.dtype}{list(o.shape)}")
                continue
            if o.dtype.kind == "f":
                err = np.abs(p.astype(np.float64) - o.astype(np.float64))
                bad = ~(err <= args.atol + args.rtol * np.abs(o.astype(np.float64)))
                m = float(np.nanmax(err)) if err.size else 0.0
                worst = max(worst, m)
                good = not bad.any()
                lines.append(f"{f.stem}{list(o.shape)} max|d|={m:.3g}" + ("" if good else f" {int(bad.sum())} bad"))
            else:
                good = np.array_equal(p, o)
                lines.append(f"{f.stem}{list(o.shape)} {o.dtype} " + ("equal" if good else
                             f"differ at {int((p != o).sum())} of {o.size}"))
            ok = ok and good
        shapes_s = " ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
        return ok, f"{shapes_s} | " + "; ".join(lines) + f" | parallax {tp:.1f}s ort {to:.1f}s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*")
    ap.add_argument("--zoo", default=str(pathlib.Path(os.environ.get("PARALLAX_CACHE", ROOT / ".cache")) / "zoo"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", action="append", default=[])
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--parallax", default=str(ROOT / "build" / "parallax"))
    args = ap.parse_args()
    zoo = pathlib.Path(args.zoo)
    shapes = {}
    for s in args.shape:
        k, v = s.split("=", 1)
        shapes[k] = [int(x) for x in v.split(",")] if v else []
    names = args.models or sorted(p.stem for p in zoo.glob("*.json"))
    failed = 0
    for n in names:
        try:
            ok, msg = check(n, zoo, args, shapes)
        except RuntimeError as e:
            ok, msg = False, str(e)
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {n}: {msg}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
