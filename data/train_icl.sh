#!/usr/bin/env bash
# The staged in-context-learning recipe of ccc-byte-l-icl (README: "An l-sized model that learns in context"),
# on CPU (the default model stays ccc-byte-l until a run of this recipe also keeps its English compression):
#   stage 1  ccc-byte-l-stage1.json   steps 0-1500: 70% synthetic repeated random strings, half of the natural
#                                     windows with a copied span, 16 x 256 bytes, lr 3e-3 cosine towards 1e-3
#   stage 1b ccc-byte-l-stage1b.json  steps 1500-2100, resumed from stage 1 with the learning rate held at
#                                     ~3e-3 (the same run, a longer schedule): the induction phase change
#   stage 2  ccc-byte-l-stage2.json       900 steps of 16 x 512 bytes of natural text (10% synthetic, 30% copied
#                                     spans, 5% CRLF), lr 2e-3 -> 2e-4, from stage 1's step-2100 checkpoint
# Each step resumes if interrupted. Corpora: $CCC_CORPORA, ../shared/data/corpora or .cache/corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
ccc=build/experiments/ccc
run1=${STAGE1_DIR:-build/default-stage1}
if [ ! -d "$run1/checkpoints/step-1500" ]; then
  if [ -d "$run1/resume" ]; then "$ccc" train -c data/configs/ccc-byte-l-stage1.json -o "$run1" --resume --max-steps 1500
  else "$ccc" train -c data/configs/ccc-byte-l-stage1.json -o "$run1" --force --max-steps 1500; fi
fi
if [ ! -d "$run1/checkpoints/step-2100" ]; then
  "$ccc" train -c data/configs/ccc-byte-l-stage1b.json -o "$run1" --resume --max-steps 2100
fi
out=data/models/ccc-byte-l-icl
if [ -d "$out/resume" ] && [ ! -f "$out/model_card.json" ]; then
  "$ccc" train -c data/configs/ccc-byte-l-stage2.json -o "$out" --resume --init "$run1/checkpoints/step-2100"
else
  "$ccc" train -c data/configs/ccc-byte-l-stage2.json -o "$out" --force --init "$run1/checkpoints/step-2100"
fi
