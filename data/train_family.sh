#!/usr/bin/env bash
# Reproduces the shipped models (data/models/) from the committed configs, on CPU, in this order:
# the scale family (ccc-byte-l first), the attention-only model organisms (ccc-attn2 with its checkpoints;
# then `ccc heads --checkpoints data/models/ccc-attn2` for its emergence curve), then the default
# (ccc-byte-l1024, continued from ccc-byte-l by data/train_default.sh).
# Each run resumes if interrupted (ccc train --resume). Corpora: $CCC_CORPORA, ../shared/data/corpora
# or the set-up's .cache/corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
ccc=build/experiments/ccc
for name in ccc-byte-l ccc-byte-m ccc-byte-s ccc-byte-xs ccc-attn2 ccc-attn1; do
  out=data/models/$name
  if [ -f "$out/model_card.json" ]; then echo "$out: done"; continue; fi
  if [ -d "$out/resume" ]; then
    "$ccc" train -c "data/configs/$name.json" -o "$out" --resume
  else
    "$ccc" train -c "data/configs/$name.json" -o "$out" --force
  fi
done
# the default: ccc-byte-l continued at context 512 until it learns in context (data/train_default.sh)
./data/train_default.sh
