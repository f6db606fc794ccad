#!/usr/bin/env bash
# The default model, ccc-byte-l512 (README: "The default learns in context"): the scale family's
# ccc-byte-l (context 256, data/train_family.sh) continued at context 512 in two stages, on CPU:
#   stage A  ccc-byte-l-from-default.json         1000 steps of 16 x 256 bytes: 50% synthetic repeated
#            random strings, half of the natural windows with a copied span, lr 3e-3 held; the induction
#            phase change comes between steps 500 and 600 (checkpoints every 100 steps)
#   stage B  ccc-byte-l-from-default-stage2.json  1000 steps of 16 x 512 bytes of natural text (10%
#            synthetic, 30% with a copied span, 5% CRLF windows), lr 1.5e-3 -> 1.5e-4
#   stage C  ccc-byte-l-from-default-stage3.json  the same data with 40% copied spans of 16-240 bytes, lr
#            1e-3 -> 1e-4, another seed
# then links data/models/default to it. Each stage resumes if interrupted. Measured here: stage A ~2.4 h,
# stage B 1.3 h, stage C 1.4 h (2 cores, other work running). Corpora: $CCC_CORPORA, ../shared/data/corpora or .cache/corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
ccc=build/experiments/ccc
base=data/models/ccc-byte-l
stage_a=${STAGE_A_DIR:-build/default-stage-a}
stage_b=${STAGE_B_DIR:-build/default-stage-b}
out=data/models/ccc-byte-l512
[ -f "$base/model_card.json" ] || { echo "train_default.sh: $base is missing (run data/train_family.sh)" >&2; exit 1; }
if [ ! -f "$stage_a/model_card.json" ]; then
  if [ -d "$stage_a/resume" ]; then "$ccc" train -c data/configs/ccc-byte-l-from-default.json -o "$stage_a" --resume --init "$base"
  else "$ccc" train -c data/configs/ccc-byte-l-from-default.json -o "$stage_a" --force --init "$base"; fi
fi
if [ ! -f "$stage_b/model_card.json" ]; then
  if [ -d "$stage_b/resume" ]; then "$ccc" train -c data/configs/ccc-byte-l-from-default-stage2.json -o "$stage_b" --resume --init "$stage_a"
  else "$ccc" train -c data/configs/ccc-byte-l-from-default-stage2.json -o "$stage_b" --force --init "$stage_a"; fi
fi
if [ ! -f "$out/model_card.json" ]; then
  if [ -d "$out/resume" ]; then "$ccc" train -c data/configs/ccc-byte-l-from-default-stage3.json -o "$out" --resume --init "$stage_b"
  else "$ccc" train -c data/configs/ccc-byte-l-from-default-stage3.json -o "$out" --force --init "$stage_b"; fi
fi
cp "$stage_b/train_log.csv" "$out/train_log_stage_b.csv"
"$ccc" heads --checkpoints "$stage_a" -o "$out/emergence_stage_a.csv"
ln -sfn ccc-byte-l512 data/models/default
