#!/usr/bin/env bash
# The emergence experiment's second series (docs/experiments.md, "emergence"): ccc-byte-s's shape (3 layers
# with MLPs) trained on the recipe data/configs/ccc-byte-s-icl.json — 50% synthetic repeated random strings,
# half of the natural windows with a copied span, a checkpoint every 100 steps (2000 steps, ~16 min on 2 cores)
# — into build/emergence/ccc-byte-s-icl (20 checkpoints, 26 MB; not committed). Resumes if interrupted.
# Then: ccc experiment emergence -m data/models/ccc-attn2 -m build/emergence/ccc-byte-s-icl -o DIR
# Corpora: $CCC_CORPORA, ../shared/data/corpora or .cache/corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
ccc=build/experiments/ccc
out=${EMERGENCE_DIR:-build/emergence/ccc-byte-s-icl}
if [ -f "$out/model_card.json" ]; then echo "$out is trained"; exit 0; fi
if [ -d "$out/resume" ]; then "$ccc" train -c data/configs/ccc-byte-s-icl.json -o "$out" --resume
else "$ccc" train -c data/configs/ccc-byte-s-icl.json -o "$out" --force; fi
