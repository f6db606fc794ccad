#!/usr/bin/env python3
"""Two activation dumps, dataset by dataset and attribute by attribute (the command line aside), read with
h5py: exits 0 when equal, else prints each difference (with the largest absolute difference of a dataset)."""
import sys

import h5py
import numpy as np


def datasets(f):
    names = []
    f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def main(a_path, b_path):
    bad = 0
    with h5py.File(a_path, "r") as a, h5py.File(b_path, "r") as b:
        na, nb = datasets(a), datasets(b)
        if na != nb:
            print(f"datasets differ: {na} vs {nb}")
            return 1
        for n in na:
            x, y = a[n][()], b[n][()]
            if x.shape != y.shape or x.dtype != y.dtype:
                print(f"{n}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
                bad += 1
                continue
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
            if not same:
                d = np.nanmax(np.abs(x.astype(np.float64) - y.astype(np.float64)))
                print(f"{n}: values differ, max abs difference {d}")
                bad += 1
            if a[n].chunks != b[n].chunks:
                print(f"{n}: chunks {a[n].chunks} vs {b[n].chunks}")
                bad += 1
        ka, kb = set(a.attrs) - {"command"}, set(b.attrs) - {"command"}
        if ka != kb:
            print(f"attributes differ: {sorted(ka ^ kb)}")
            bad += 1
        for k in sorted(ka & kb):
            if a.attrs[k] != b.attrs[k]:
                print(f"attribute {k}: {a.attrs[k]!r} vs {b.attrs[k]!r}")
                bad += 1
    print(f"{len(na)} datasets compared, {bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
