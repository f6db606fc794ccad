#!/usr/bin/env python3
"""The layer rules of CONTRIBUTING.md, checked on every #include of the tree (a ctest, label unit).

Each source file belongs to a layer (its folder); it may include project headers of the layers listed for
it, and the system headers that layer may use (torch, CLI11, HDF5, MPI). Prints every violation; exit 1 if any.
"""
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
MODEL = ["model/base", "model/kernels", "model/core", "model/formats", "model/scoring"]
# layer -> project layers it may include (itself always)
ALLOWED = {
    "model/base": [],
    "model/kernels": ["model/base"],
    "model/core": ["model/base", "model/kernels"],
    "model/formats": ["model/base", "model/kernels", "model/core"],
    "model/scoring": ["model/base", "model/kernels", "model/core", "model/formats"],
    "model/training": MODEL,
    "compress": MODEL,  # the three middle folders never include each other
    "circuits": MODEL,
    "analysis": MODEL,
    # the fine-tuning experiment trains (model/training) and captures activations inside the codec (compress)
    "experiments/lib": MODEL + ["model/training", "compress", "circuits", "analysis"],
    "experiments/support": MODEL + ["model/training"],
    "experiments/commands": MODEL + ["model/training", "compress", "circuits", "analysis", "experiments/lib",
                                     "experiments/support"],
    "experiments/bench": MODEL + ["model/training", "compress", "circuits", "analysis", "experiments/support"],
    "experiments/cli": MODEL + ["model/training", "compress", "circuits", "analysis", "experiments/lib",
                                "experiments/support", "experiments/commands", "experiments/bench"],
    "ccc.h": MODEL + ["compress", "circuits", "analysis", "experiments/lib"],
    "docs": ["ccc.h"],
    "tests/support": MODEL + ["model/training", "analysis", "tests/support"],
    "tests/model": MODEL + ["tests/support", "analysis"],  # the fuzz target of the formats reads dumps too
    "tests/training": MODEL + ["model/training", "tests/support"],
    "tests/compress": MODEL + ["compress", "tests/support"],
    "tests/circuits": MODEL + ["circuits", "tests/support"],
    "tests/analysis": MODEL + ["analysis", "compress", "tests/support"],  # capture runs inside the codec
    # the held-out corpora (model/training's loader) are the experiments' natural inputs: a test fixture,
    # never included by experiments/lib itself
    "tests/experiments": MODEL + ["model/training", "circuits", "analysis", "experiments/lib", "tests/support"],
    "tests/cli": None,  # anything: the commands use every layer
}
# system headers only some layers may include
TORCH_FREE = ["model/base", "compress/arithmetic_coder", "compress/container"]
CLI11_LAYERS = ["experiments/cli"]
HDF5_LAYERS = ["analysis", "tests/analysis", "tests/cli", "tests/support", "tests/model"]  # tests/model: the formats fuzzer reads dumps
# MPI: the runtime and the shared HDF5 file only (docs/scale-out.md); everything else goes through model/base/dist.h
MPI_FILES = ["model/base/dist.cpp", "analysis/h5_rows.cpp"]


def layer_of(rel):
    if rel == "ccc.h":
        return "ccc.h"
    for name in sorted(ALLOWED, key=len, reverse=True):
        if rel.startswith(name + "/"):
            return name
    return None


def include_layer(path):
    return layer_of(path) or path


violations = []
for folder in ["model", "compress", "circuits", "analysis", "experiments", "tests", "docs", "ccc.h"]:
    top = os.path.join(root, folder)
    files = [top] if os.path.isfile(top) else [os.path.join(d, f) for d, _, fs in os.walk(top) for f in fs]
    for path in files:
        if not path.endswith((".h", ".cpp")):
            continue
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        layer = layer_of(rel)
        if layer is None:
            violations.append(f"{rel}: in no layer of tests/cli/layer_check.py")
            continue
        allowed = ALLOWED[layer]
        for n, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
            m = re.match(r'\s*#\s*include\s*([<"])([^>"]+)[>"]', line)
            if not m:
                continue
            kind, inc = m.groups()
            if kind == '"':
                target = include_layer(inc)
                if allowed is not None and target != layer and target not in allowed:
                    violations.append(f"{rel}:{n}: {layer} may not include {inc} ({target})")
            else:
                if inc.startswith("torch/") and any(rel.startswith(p) for p in TORCH_FREE):
                    violations.append(f"{rel}:{n}: no torch in {layer}")
                if inc.startswith("CLI/") and layer not in CLI11_LAYERS:
                    violations.append(f"{rel}:{n}: only experiments/cli includes CLI11")
                if (inc.startswith("H5") or inc.startswith("hdf5")) and layer not in HDF5_LAYERS:
                    violations.append(f"{rel}:{n}: only analysis includes HDF5")
                if inc == "mpi.h" and rel not in MPI_FILES:
                    violations.append(f"{rel}:{n}: only {' and '.join(MPI_FILES)} include mpi.h (use model/base/dist.h)")
for v in violations:
    print(v)
print(f"layer check: {len(violations)} violation(s)")
sys.exit(1 if violations else 0)
