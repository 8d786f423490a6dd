#!/usr/bin/env bash
# Reproduce the bundled model models/stan-tiny-synth.safetensors (about 75 minutes on 2 CPU cores).
#
#     scripts/make_bundled_model.sh [WORK_DIR]      (default: ./runs/bundled)
#
# Steps (models/README.md explains why each exists and what it measured):
#   1. a synthetic data set: 48 subjects x 8 videos, 36 subjects for training, 12 held out for testing;
#   2. pose pretraining of the tiny UniFormer (predict the drawn figure's joints; video labels unused),
#      first with a flat head, then with a pooled head so the pooled features carry the pose;
#   3. stage A: only the MLP head learns, on standardised pooled features of the frozen backbone (MIL);
#   4. stage B: stages 3-4 and the head fine-tune (no pixel augmentation: the head of stage A never saw it);
#   5. finalise: float16, ROI provider 'motion' for new videos (training used the generator's boxes),
#      data description; then `evaluate --calibrate` stores the thresholds and writes the tables.
set -euo pipefail
W=${1:-runs/bundled}
mkdir -p "$W"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="python -m stanviewer"
DATA=$W/synth48
M=$DATA/manifest.csv

[ -f "$M" ] || $SV synth "$DATA" --subjects 48 --videos-per-subject 8 --seed 1

COMMON=(--views local --frames 8 --size 64 --sample-fps 5 --roi truth)
$SV pretrain "$M" --out "$W/pre_flat" --views global+local --frames 8 --size 64 --sample-fps 5 --roi truth \
    --spatial-head --steps 1500 --batch 24 --threads 2
$SV pretrain "$M" --out "$W/pre_pooled" --views global+local --frames 8 --size 64 --sample-fps 5 --roi truth \
    --init "$W/pre_flat/pretrained.safetensors" --steps 700 --batch 24 --threads 2

$SV train "$M" --out "$W/A" "${COMMON[@]}" --init "$W/pre_pooled/pretrained.safetensors" \
    --freeze-stages 4 --head-hidden 64 --epochs 60 --batch 12 --patience 15 --lr 1e-3 --threads 2
$SV train "$M" --out "$W/B" "${COMMON[@]}" --init "$W/A/best.safetensors" \
    --freeze-stages 2 --head-hidden 64 --epochs 12 --batch 12 --patience 5 --lr 2e-4 --threads 2 \
    --max-minutes 30 --no-augment

# the control of models/README.md: stage A without feature standardisation stays at chance
$SV train "$M" --out "$W/A_nonorm" "${COMMON[@]}" --init "$W/pre_pooled/pretrained.safetensors" \
    --freeze-stages 4 --head-hidden 64 --epochs 60 --batch 12 --patience 15 --lr 1e-3 --threads 2 --no-feature-norm

OUT=$W/stan-tiny-synth.safetensors
python scripts/finalize_model.py "$W/B/best.safetensors" "$OUT" --name stan-tiny-synth \
    --description "video labels only; pose-pretrained backbone"
$SV evaluate "$M" --checkpoint "$OUT" --out "$W/eval" --methods vanilla,gradcam,window \
    --test-videos 48 --calib-videos 24 --calibrate --sanity
python scripts/plot_curves.py "$W/A" "$W/B" --pretrain "$W/pre_flat" --pretrain "$W/pre_pooled" \
    --compare "stage A without standardisation=$W/A_nonorm/history.csv" --out "$W/learning-curves.png"
echo "done: $OUT (copy it to models/, the plot to models/img/)"
