#!/usr/bin/python3
"""The Python dump reader (analysis/python/ccc_dump.py) against dumps the ccc binary writes.

usage: dump_reader_test.py CCC_BINARY SOURCE_DIR SHARED_DIR
Checks that every row's token bytes and context are the input bytes at its offset, that each stream's
tokens concatenate to its segment and the segments to the input, that per-head views are the raw
dataset's slices, that Σ bits equals `ccc bits --streams B`, that attention patterns sum to 1, and that a
text other than the dumped one is refused. Exits non-zero with the max difference on a failure.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

ccc, src_dir, shared = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, os.path.join(src_dir, "analysis", "python"))
from ccc_dump import Dump  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(*args):
    r = subprocess.run([ccc, *args], capture_output=True)
    if r.returncode != 0:
        print(r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace"))
        sys.exit(f"ccc {' '.join(args)} failed ({r.returncode})")
    return r.stdout


def check_dump(d, text, streams, model_args, label):
    # rows <-> text
    worst = 0
    starts = {rows.start + 1 for _, rows in d.streams()}
    for r in range(d.n_rows):
        o = int(d.byte_offset[r])
        if o < 0:
            check(d.context(r) == "\u27e6BOS\u27e7".encode(), f"{label}: BOS row {r} context")
            continue
        tb = d.token_bytes(r)
        if text[o:o + len(tb)] != tb:
            worst += 1
        # a token without input bytes: only SentencePiece's dummy prefix at a stream's start
        check(len(tb) > 0 or r in starts, f"{label}: row {r} has no bytes and is not a stream's first token")
        ctx = d.context(r, before=7, after=5, marks=(b"", b""))
        if ctx != text[max(0, o - 7):o + len(tb) + 5]:
            worst += 1
    check(worst == 0, f"{label}: {worst} rows whose token bytes or context differ from the input at their offset")
    joined = b""
    for s, rows in d.streams():
        toks = b"".join(d.token_bytes(r) for r in range(rows.start, rows.stop))
        check(toks == d.segment(s), f"{label}: stream {s}'s tokens do not concatenate to its segment")
        check(d.is_bos(rows.start), f"{label}: stream {s} does not start with BOS")
        joined += d.segment(s)
    check(joined == text, f"{label}: the segments do not concatenate to the input")
    check(len(list(d.streams())) == streams, f"{label}: {len(list(d.streams()))} streams, asked {streams}")
    # Σ bits = ccc bits --streams B
    j = json.loads(run("bits", "-q", *model_args, d.source_path, "--streams", str(streams), "--json"))
    # the dump's fp16 KV cache vs the full path's fp32: up to ~2e-3 bits per token (docs/dumps.md)
    diff = abs(d.total_bits() - j["total_bits"])
    tokens = int((d.byte_offset >= 0).sum())
    check(diff <= max(1e-4 * j["total_bits"], 2e-3 * tokens ** 0.5),
          f"{label}: Σ bits {d.total_bits():.4f} vs ccc bits {j['total_bits']:.4f} (|diff| {diff:.2e}, {tokens} tokens)")


with tempfile.TemporaryDirectory() as tmp:
    # a byte model: text with multi-byte UTF-8, several streams, per-head hooks and a pattern
    text = ("Der Bär sagt: \"naïve café\" (1,5 m).\n" * 12 + "def f(x):\n    return x**2  # ∑\n" * 8).encode()
    path = os.path.join(tmp, "t.txt")
    with open(path, "wb") as fh:
        fh.write(text)
    model = ["-m", os.path.join(src_dir, "data", "models", "ccc-attn2")]
    h5 = os.path.join(tmp, "d.h5")
    run("dump", *model, path, "-o", h5, "--streams", "3", "--hooks", "blocks.*.attn.hook_z",
        "--hooks", "blocks.0.attn.hook_pattern", "--dtype", "f32")
    with Dump(h5) as d:
        check(d.n_rows == len(text) + 3, f"byte model: {d.n_rows} rows for {len(text)} bytes and 3 streams")
        check_dump(d, text, 3, model, "byte model")
        z = d.acts("blocks.1.attn.hook_z")
        for h in range(z.shape[1]):
            diff = np.abs(d.head("blocks.1.attn.hook_z", h) - z[:, h, :]).max()
            check(diff == 0, f"head view of blocks.1.attn.hook_z head {h}: max |diff| {diff}")
        p, key_pos = d.pattern(0, 1)
        live = d.byte_offset >= 0
        dev = np.abs(p[live].sum(axis=1) - 1).max()
        check(dev < 1e-4, f"pattern rows sum to 1 (max |sum - 1| {dev})")
        check(key_pos.shape == p.shape, "key_pos has the pattern's shape")
        # a key slot holding a position in the row's past, never a future one
        future = (key_pos > d.pos[:, None]).sum()
        check(future == 0, f"{future} key slots hold positions after their row")
        top = d.top_rows(z[:, 0, :], 3, k=20)
        check(all(d.byte_offset[top] >= 0), "top_rows returned a BOS row")
        check(sorted(d.hooks) == ["blocks.0.attn.hook_pattern", "blocks.0.attn.hook_z", "blocks.1.attn.hook_z"],
              f"hooks {d.hooks}")
    other = os.path.join(tmp, "other.txt")
    with open(other, "wb") as fh:
        fh.write(text[:-1] + b"?")
    try:
        Dump(h5, source=other)
        check(False, "a text other than the dumped one was accepted")
    except ValueError as e:
        check("sha256" in str(e), f"the refusal names the checksum: {e}")
    # a BPE model (stories260K, ../shared): tokens of several bytes
    bin_path = os.path.join(shared, "data", "models", "stories260K.bin")
    tok = os.path.join(shared, "data", "models", "tok512.bin")
    if os.path.exists(bin_path) and os.path.exists(tok):
        story = open(os.path.join(shared, "data", "models", "stories260K-score-example.txt"), "rb").read()
        spath = os.path.join(tmp, "s.txt")
        with open(spath, "wb") as fh:
            fh.write(story)
        bpe = ["-m", bin_path, "-t", tok]
        h5b = os.path.join(tmp, "b.h5")
        run("dump", *bpe, spath, "-o", h5b, "--streams", "2")
        with Dump(h5b) as d:
            check(max(len(d.token_bytes(r)) for r in range(d.n_rows)) > 1, "BPE: no multi-byte token")
            check_dump(d, story, 2, bpe, "BPE model")
    else:
        print("stories260K not found under", shared, "- BPE case skipped")

if failures:
    sys.exit(f"{len(failures)} check(s) failed")
print("dump reader: all checks passed")
