#!/usr/bin/env bash
# The default model, ccc-byte-l1024 (README: "The default learns in context"): the scale family's
# ccc-byte-l (context 256, data/train_family.sh) continued at context 512 in three stages, then 1024 in three, on CPU:
#   stage A  ccc-byte-l-from-default.json         1000 steps of 16 x 256 bytes: 50% synthetic repeated
#            random strings, half of the natural windows with a copied span, lr 3e-3 held; the induction
#            phase change comes between steps 500 and 600 (checkpoints every 100 steps)
#   stage B  ccc-byte-l-from-default-stage2.json  1000 steps of 16 x 512 bytes of natural text (10%
#            synthetic, 30% with a copied span, 5% CRLF windows), lr 1.5e-3 -> 1.5e-4
#   stage C  ccc-byte-l-from-default-stage3.json  the same data with 40% copied spans of 16-240 bytes, lr
#            1e-3 -> 1e-4, another seed
#   stage D  ccc-byte-l-from-default-stage4.json  context 1024: 1000 steps of 8 x 1024 bytes, 50% of the
#            natural windows with a copied span of 16-480 bytes, lr 6e-4 -> 6e-5, another seed
#   stage E  ccc-byte-l-from-default-stage5.json  600 steps of 8 x 1024 bytes, 75% of the natural windows
#            with 1-4 copied spans of 16-192 bytes (copy onsets), lr 3e-4 -> 3e-5, another seed
#   stage F  ccc-byte-l-from-default-stage6.json  600 steps of 8 x 1024 bytes, 90% of the natural windows
#            with 2-6 copied spans of 16-256 bytes, lr 4e-4 -> 4e-5, another seed
# then links data/models/default to it. Each stage resumes if interrupted. Measured here: stage A ~2.4 h,
# stage B 1.3 h, stage C 1.4 h, stage D 1 h 18 min, stage E 34 min, stage F 36 min (2 cores; D and E before and
# after the causal attention kernel). Corpora: $CCC_CORPORA,
# ../shared/data/corpora or .cache/corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
ccc=build/experiments/ccc
base=data/models/ccc-byte-l
stage_a=${STAGE_A_DIR:-build/default-stage-a}
stage_b=${STAGE_B_DIR:-build/default-stage-b}
stage_c=${STAGE_C_DIR:-build/default-stage-c}
stage_d=${STAGE_D_DIR:-build/default-stage-d}
stage_e=${STAGE_E_DIR:-build/default-stage-e}
out=data/models/ccc-byte-l1024
[ -f "$base/model_card.json" ] || { echo "train_default.sh: $base is missing (run data/train_family.sh)" >&2; exit 1; }
# stage DIR CONFIG INIT: trains DIR from INIT unless it is finished; resumes an interrupted run
stage() {
  [ -f "$1/model_card.json" ] && return 0
  if [ -d "$1/resume" ]; then "$ccc" train -c "$2" -o "$1" --resume --init "$3"
  else "$ccc" train -c "$2" -o "$1" --force --init "$3"; fi
}
stage "$stage_a" data/configs/ccc-byte-l-from-default.json "$base"
stage "$stage_b" data/configs/ccc-byte-l-from-default-stage2.json "$stage_a"
stage "$stage_c" data/configs/ccc-byte-l-from-default-stage3.json "$stage_b"
stage "$stage_d" data/configs/ccc-byte-l-from-default-stage4.json "$stage_c"
stage "$stage_e" data/configs/ccc-byte-l-from-default-stage5.json "$stage_d"
stage "$out" data/configs/ccc-byte-l-from-default-stage6.json "$stage_e"
cp "$stage_b/train_log.csv" "$out/train_log_stage_b.csv"
cp "$stage_c/train_log.csv" "$out/train_log_stage_c.csv"
cp "$stage_d/train_log.csv" "$out/train_log_stage_d.csv"
cp "$stage_e/train_log.csv" "$out/train_log_stage_e.csv"
"$ccc" heads --checkpoints "$stage_a" -o "$out/emergence_stage_a.csv"
ln -sfn ccc-byte-l1024 data/models/default
