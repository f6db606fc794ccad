"""Read ccc activation dumps (ccc dump / ccc compress --dump) from Python.

No build step: h5py and numpy only. Copy this file next to a notebook or put analysis/python on
sys.path. The layout it reads is docs/dumps.md's: one row per position fed to the model, rows ordered by
stream, then position; columns tokens, stream, pos, byte_offset, bits; activations under acts/<hook>.

    from ccc_dump import Dump
    d = Dump("acts.h5")                       # the dumped text is read from the `source` attribute
    d.hooks                                   # ['blocks.0.mlp.hook_post', ...]
    post = d.acts("blocks.2.mlp.hook_post")   # h5py dataset [N, d_mlp], read lazily
    for r in d.top_rows(post, unit=17, k=5):  # where neuron 17 fires most
        print(r, d.bits[r], d.context(r))     # b'...bytes before\u27e6token\u27e7after...'
    z = d.head("blocks.1.attn.hook_z", 2)     # numpy [N, d_head]: head 2's z at every row
    for s, rows in d.streams():               # each stream's rows, a contiguous slice
        print(s, d.bits[rows][1:].sum())      # its bits (row 0 of a stream is BOS: NaN)
"""

import hashlib
import json

import h5py
import numpy as np

__all__ = ["Dump"]


class Dump:
    """An open dump: metadata columns as numpy arrays, activations as lazy h5py datasets."""

    def __init__(self, path, source=None, check_source=True):
        self.path = path
        self.file = h5py.File(path, "r")
        f = self.file
        for name in ("tokens", "stream", "pos", "byte_offset", "bits"):
            if name not in f:
                raise ValueError(f"{path}: not a ccc dump (no '{name}' dataset)")
        self.tokens = f["tokens"][:]
        self.stream = f["stream"][:]
        self.pos = f["pos"][:]
        self.byte_offset = f["byte_offset"][:]
        self.bits = f["bits"][:]
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        self.config = json.loads(self.attrs["config"]) if "config" in self.attrs else {}
        self.n_rows = len(self.tokens)
        self.n_bytes = int(self.attrs.get("n_bytes", 0))
        src = source if source is not None else self.attrs.get("source", "")
        self.source_path = src
        self.text = None
        if src and src != "-":
            with open(src, "rb") as fh:
                self.text = fh.read()
            want = self.attrs.get("source_sha256")
            if check_source and want and hashlib.sha256(self.text).hexdigest() != want:
                raise ValueError(f"{src}: not the text dumped in {path} (sha256 differs from source_sha256)")
        # each stream's rows are contiguous: [start, end)
        starts = np.flatnonzero(np.r_[True, self.stream[1:] != self.stream[:-1]])
        ends = np.r_[starts[1:], self.n_rows]
        self._ranges = [(int(self.stream[a]), int(a), int(b)) for a, b in zip(starts, ends)]
        # each row's token ends where the next token of its stream starts (the stream's last token: the
        # start of the next stream's first token, or the end of the input)
        self._token_end = np.empty(self.n_rows, dtype=np.int64)
        seg_ends = []
        for i, (_, a, b) in enumerate(self._ranges):
            nxt = self._ranges[i + 1] if i + 1 < len(self._ranges) else None
            first_next = self.byte_offset[nxt[1] + 1] if nxt and nxt[2] - nxt[1] > 1 else self.n_bytes
            seg_ends.append(int(first_next))
            off = self.byte_offset[a:b]
            end = np.r_[off[1:], first_next]
            self._token_end[a:b] = end
        self._seg_ends = seg_ends

    # --- metadata --------------------------------------------------------------------------------
    @property
    def hooks(self):
        """The hook names with activations in this dump."""
        return sorted(self.file["acts"].keys()) if "acts" in self.file else []

    def acts(self, hook):
        """The h5py dataset of `hook`'s activations, [N, ...] (read lazily; slice it)."""
        if "acts" not in self.file or hook not in self.file["acts"]:
            raise KeyError(f"{self.path}: no activations of {hook} (the dump has {self.hooks})")
        return self.file["acts"][hook]

    def total_bits(self):
        """Σ bits over the coded tokens (BOS rows are NaN): the compressed payload up to rounding."""
        return float(np.nansum(self.bits.astype(np.float64)))

    def bits_per_byte(self):
        return self.total_bits() / self.n_bytes if self.n_bytes else float("nan")

    # --- rows <-> text -----------------------------------------------------------------------------
    def is_bos(self, row):
        return self.byte_offset[row] < 0

    def token_bytes(self, row):
        """The input bytes of the row's token (b'' for BOS)."""
        o = int(self.byte_offset[row])
        if o < 0:
            return b""
        return self._need_text()[o:int(self._token_end[row])]

    def context(self, row, before=20, after=20, marks=(b"\xe2\x9f\xa6", b"\xe2\x9f\xa7")):
        """The bytes around the row's token, the token between ⟦ ⟧ (pass marks=(b'', b'') for none)."""
        o = int(self.byte_offset[row])
        text = self._need_text()
        if o < 0:
            return marks[0] + b"BOS" + marks[1]
        e = int(self._token_end[row])
        return text[max(0, o - before):o] + marks[0] + text[o:e] + marks[1] + text[e:e + after]

    def rows_at(self, offset):
        """Rows whose token starts at input byte `offset` (one per stream that holds it)."""
        return np.flatnonzero(self.byte_offset == offset)

    def streams(self):
        """(stream, slice of its rows) in order; row 0 of each slice is its BOS."""
        for s, a, b in self._ranges:
            yield s, slice(a, b)

    def segment(self, stream):
        """The input bytes stream `stream` codes."""
        s, a, b = next(r for r in self._ranges if r[0] == stream)
        i = self._ranges.index((s, a, b))
        start = int(self.byte_offset[a + 1]) if b - a > 1 else self._seg_ends[i]
        return self._need_text()[start:self._seg_ends[i]]

    # --- per-head views ------------------------------------------------------------------------------
    def head(self, hook, h, rows=slice(None)):
        """Head h's slice of a per-head hook (hook_z / hook_q / hook_k / hook_v / hook_result: [N, H, d];
        hook_pattern / hook_attn_scores: [N, H, W]) as float32 numpy, for `rows`."""
        ds = self.acts(hook)
        if ds.ndim != 3:
            raise ValueError(f"{hook}: [N, {', '.join(map(str, ds.shape[1:]))}] has no head dimension")
        return ds[rows, h, :].astype(np.float32)

    def pattern(self, layer, h, rows=slice(None)):
        """Head h's attention over the KV slots at `rows` ([n, W]) and the key position in each slot
        ([n, W], −1 = empty): blocks.<layer>.attn.hook_pattern with the dump's key_pos."""
        p = self.head(f"blocks.{layer}.attn.hook_pattern", h, rows)
        return p, self.file["key_pos"][rows]

    def top_rows(self, ds, unit, k=10):
        """The k rows where column `unit` of a 2-D activation (e.g. a neuron of hook_post) is largest."""
        col = ds[:, unit].astype(np.float32)
        col[self.byte_offset < 0] = -np.inf  # BOS rows are not text
        return np.argsort(-col, kind="stable")[:k]

    def _need_text(self):
        if self.text is None:
            raise ValueError(f"{self.path}: the dumped text is not available (pass source=PATH)")
        return self.text

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
