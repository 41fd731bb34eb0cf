#!/usr/bin/env python3
"""Regenerates the model zoo deterministically: one ONNX file (opset 17) and one
input-spec JSON per model, under --out (default .cache/zoo).

  python3 bench/zoo/make_zoo.py [--out DIR] [--only NAME ...] [--force]

Each module in bench/zoo/models/ defines MODELS, a list of ZooModel. A model is
rebuilt only when its module's source hash changed or --force is given.
"""
import argparse
import dataclasses
import hashlib
import importlib.util
import json
import pathlib
import sys
import time
import warnings
from typing import Callable, Dict, List

HERE = pathlib.Path(__file__).resolve().parent


@dataclasses.dataclass
class InputSpec:
    name: str
    dtype: str            # numpy dtype name: float32, int64, ...
    shape: List[int]
    low: float = 0.0      # Uniform range for floats; integer range [low, high) for ints.
    high: float = 1.0


@dataclasses.dataclass
class ZooModel:
    name: str
    # build(path) writes the ONNX model to `path` (opset 17, weights from a fixed seed).
    build: Callable[[pathlib.Path], None]
    inputs: List[InputSpec]
    # Extra notes recorded in the JSON (architecture facts, dynamic axes).
    notes: Dict[str, str] = dataclasses.field(default_factory=dict)


def load_modules():
    mods = []
    for path in sorted((HERE / "models").glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"zoo_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(HERE))
        spec.loader.exec_module(mod)
        mods.append((path, mod))
    return mods


def main():
    # torch.onnx warns about its own deprecations on every export; progress lines matter more.
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE.parent.parent / ".cache" / "zoo"))
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, mod in load_modules():
        digest = hashlib.sha256(path.read_bytes() + (HERE / "make_zoo.py").read_bytes()).hexdigest()[:16]
        for m in mod.MODELS:
            if args.only and m.name not in args.only:
                continue
            onnx_path, spec_path = out / f"{m.name}.onnx", out / f"{m.name}.json"
            if not args.force and spec_path.exists() and onnx_path.exists():
                if json.loads(spec_path.read_text()).get("source_hash") == digest:
                    print(f"zoo: {m.name} up to date", flush=True)
                    continue
            print(f"zoo: building {m.name} ...", flush=True)
            t0 = time.time()
            m.build(onnx_path)
            spec = {"name": m.name, "source_hash": digest, "inputs": [dataclasses.asdict(i) for i in m.inputs],
                    "notes": m.notes}
            spec_path.write_text(json.dumps(spec, indent=2) + "\n")
            print(f"zoo: {m.name} done in {time.time() - t0:.1f} s ({onnx_path.stat().st_size / 1e6:.1f} MB)",
                  flush=True)


if __name__ == "__main__":
    main()
