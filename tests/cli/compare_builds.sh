#!/usr/bin/env bash
# Behaviour check for a refactor: runs the same commands with two builds of ccc and compares their outputs
# byte for byte (JSON with its timing fields removed; compressed files; HDF5 dumps via h5py).
#   tests/cli/compare_builds.sh OLD/ccc NEW/ccc [WORKDIR]
# Exit 0 when every output is identical; each difference is named.
set -uo pipefail
old="${1:?usage: $0 OLD_CCC NEW_CCC [WORKDIR]}"; new="${2:?usage: $0 OLD_CCC NEW_CCC [WORKDIR]}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="${3:-$(mktemp -d)}"
mkdir -p "$work/old" "$work/new"
M="$root/data/models"
text="$work/text.txt"
# a fixed input: the golden original plus repeated random strings (the organisms' induction food)
python3 - "$text" "$root/data/golden/original.txt" <<'PY'
import random, sys
random.seed(7)
s = open(sys.argv[2]).read()
for _ in range(12):
    r = ''.join(chr(32 + random.randrange(95)) for _ in range(40))
    s += r + r + '\n'
open(sys.argv[1], 'w').write(s)
PY
# name|command (OUT is the output directory of the build under test)
cmds=(
  "bits_streams|bits -m $M/ccc-byte-s --streams 7 --json $text"
  "bits_json|bits -m $M/ccc-attn2 --json $text"
  "bits_summary|bits -m $M/ccc-byte-xs $text"
  "ablate|ablate --json -q -m $M/ccc-attn2 -c 1.2,0.1 $text"
  "ablate_mean|ablate --json -q -m $M/ccc-attn2 -c 1.2 --mode mean $text"
  "ablate_resample|ablate --json -q -m $M/ccc-byte-xs -c n0.3,1.1 --mode resample --seed 3 $text"
  "sweep|sweep --json -q -m $M/ccc-attn2 $text"
  "sweep_mlps|sweep --json -q -m $M/ccc-byte-xs --over mlps --mode mean $text"
  "attribute|attribute --json -q -m $M/ccc-attn2 --check $text"
  "patch|patch --json -q -m $M/ccc-attn2 --sender 0.2 --receiver 1.2 $text"
  "discover|discover --json -q -m $M/ccc-attn2 --threshold 0.05 --edges $text"
  "discover_attr|discover --json -q -m $M/ccc-attn2 --threshold 0.5 --method attribution $text"
  "icl|icl --json -m $M/ccc-attn2 --span-len 50 --late 200 --windows 16 $text"
  "heads|heads --json -m $M/ccc-attn2"
  "info|info --json -m $M/ccc-byte-l1024"
  "hooks|hooks -m $M/ccc-byte-s"
  "generate|generate -m $M/ccc-byte-s -p The -n 40"
)
status=0
strip() { python3 -c '
import json, sys
def clean(x):
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items() if k not in ("seconds", "exact_seconds", "ccc_version")}
    if isinstance(x, list):
        return [clean(v) for v in x]
    return x
raw = open(sys.argv[1]).read()
try:
    print(json.dumps(clean(json.loads(raw)), sort_keys=True, indent=1))
except ValueError:
    print(raw, end="")
' "$1"; }
for entry in "${cmds[@]}"; do
  name="${entry%%|*}"; args="${entry#*|}"
  for b in old new; do
    bin="$old"; [ "$b" = new ] && bin="$new"
    # shellcheck disable=SC2086
    "$bin" $args > "$work/$b/$name.out" 2> "$work/$b/$name.err" || echo "exit $?" >> "$work/$b/$name.out"
    strip "$work/$b/$name.out" > "$work/$b/$name.cmp"
  done
  if cmp -s "$work/old/$name.cmp" "$work/new/$name.cmp"; then echo "same      $name"; else echo "DIFFERENT $name"; status=1; fi
done
# compressed bytes of every shipped model, and each build decodes the other's file
for m in ccc-attn1 ccc-attn2 ccc-byte-xs ccc-byte-s ccc-byte-m ccc-byte-l ccc-byte-l-icl ccc-byte-l1024; do
  "$old" compress -q -f -m "$M/$m" "$text" -o "$work/old/$m.ccc"
  "$new" compress -q -f -m "$M/$m" "$text" -o "$work/new/$m.ccc"
  "$new" decompress -q -f -m "$M/$m" "$work/old/$m.ccc" -o "$work/new/$m.back"
  if cmp -s "$work/old/$m.ccc" "$work/new/$m.ccc" && cmp -s "$text" "$work/new/$m.back"; then echo "same      compress $m"
  else echo "DIFFERENT compress $m"; status=1; fi
done
# activation dumps
for b in old new; do
  bin="$old"; [ "$b" = new ] && bin="$new"
  "$bin" dump -f -m "$M/ccc-byte-xs" "$text" -o "$work/$b/d.h5" --hooks 'blocks.*.mlp.hook_post' --hooks 'blocks.1.attn.hook_pattern' > /dev/null 2>&1
done
if /usr/bin/python3 - "$work/old/d.h5" "$work/new/d.h5" <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
def datasets(f):
    out = []
    f.visit(lambda n: out.append(n) if isinstance(f[n], h5py.Dataset) else None)
    return out
names = datasets(a)
if set(names) != set(datasets(b)):
    print("dataset names differ"); sys.exit(1)
for n in names:
    x, y = a[n][()], b[n][()]
    if x.shape != y.shape or not np.array_equal(x, y, equal_nan=True):
        print("dataset", n, "differs"); sys.exit(1)
skip = {"command", "ccc_version"}
for k in a.attrs:
    if k not in skip and str(a.attrs[k]) != str(b.attrs.get(k)):
        print("attribute", k, "differs"); sys.exit(1)
PY
then echo "same      dump"; else echo "DIFFERENT dump"; status=1; fi
# unit analysis of the same dump (the old build's), with --ablate-top
for b in old new; do
  bin="$old"; [ "$b" = new ] && bin="$new"
  "$bin" units -q -f "$work/old/d.h5" -m "$M/ccc-byte-xs" --source "$text" --ablate-top 3 -o "$work/$b/units" > /dev/null 2>&1
  strip "$work/$b/units/summary.json" > "$work/$b/units_summary.cmp"
done
if cmp -s "$work/old/units/units.csv" "$work/new/units/units.csv" && cmp -s "$work/old/units/report.md" "$work/new/units/report.md" &&
   cmp -s "$work/old/units_summary.cmp" "$work/new/units_summary.cmp"; then echo "same      units"
else echo "DIFFERENT units"; status=1; fi
exit $status
