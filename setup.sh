#!/usr/bin/env bash
# ccc set-up: installs what is missing (Debian 12), builds Release, then runs the main job or the tests.
#   ./setup.sh        install + build + main job (ccc info and ccc bits on the default model)
#   ./setup.sh test   install + build + the whole test suite (what .ci/run calls)
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-run}"
case "$mode" in run|test) ;; *) echo "usage: $0 [run|test]" >&2; exit 2 ;; esac

packages=(cmake ninja-build g++ pkg-config ccache
  libtorch-dev libopenblas0-pthread libeigen3-dev libhdf5-dev libcli11-dev libgtest-dev
  nlohmann-json3-dev libpcre2-dev libxxhash-dev libssl-dev
  python3-torch python3-h5py gnuplot-nox
  gzip bzip2 xz-utils zstd brotli zpaq fortunes dict-jargon
  nodejs-doc iso-codes manpages-dev bash-completion)
# corpora come from ../shared when present, else from the registries (npm needs nodejs)
shared_corpora=../shared/data/corpora
[ -d "$shared_corpora" ] || { command -v npm >/dev/null 2>&1 || packages+=(nodejs npm); }
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's libtorch runs on whatever libblas.so.3 points to; reference BLAS is ~16x slower than OpenBLAS.
blas="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)"
case "$blas" in
  *openblas*) ;;
  *) echo "setup: libblas.so.3 points to '${blas:-nothing}', not OpenBLAS;" \
          "run: sudo update-alternatives --auto libblas.so.3-x86_64-linux-gnu" >&2; exit 1 ;;
esac

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build

# corpora: ../shared's linked (or fetched from registries) plus the Debian-package formats, in .cache/corpora
./data/fetch_corpora.sh .cache/corpora >/dev/null
export CCC_CORPORA="$PWD/.cache/corpora"

ccc=build/experiments/ccc
if [ "$mode" = test ]; then
  ctest --test-dir build --output-on-failure -j "$(nproc)"
  exit 0
fi

# main job: the shipped default model on the held-out part of every corpus, next to bzip2 and xz,
# then a compress / decompress round trip
model=data/models/default
"$ccc" info -m "$model"
"$ccc" bench quality "$model"
mkdir -p build/main-job
"$ccc" compress -f -m "$model" README.md -o build/main-job/README.md.ccc
"$ccc" decompress -f -m "$model" build/main-job/README.md.ccc -o build/main-job/README.md
cmp README.md build/main-job/README.md && echo "round trip: README.md restored bit-exactly"
