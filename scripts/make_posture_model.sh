#!/usr/bin/env bash
# Reproduce the posture-MIL model models/posture-narrow-synth.safetensors and its tables in docs/posture.md
# (about an hour on 2 CPU cores; the data set and its cache are shared with make_bundled_model.sh).
#
#     scripts/make_posture_model.sh [WORK_DIR]      (default: ./runs/bundled)
#
#   1. pose pretraining of the narrow ResNet on the crops the app will see: the app's motion boxes place
#      the crop square and mask the rest (as for every model); the generator's joints are the targets, no
#      compensation, video or frame label is used;
#   2. `train --arch posture-narrow`: the joint read-out is fitted by ridge regression on the training
#      videos' joints; the upper-body reader (a copy of the ResNet) is trained on the upper-body images
#      against the same joints (1500 steps, --upper-steps) and gets its own read-out; the per-frame MIL
#      heads (on posture features of head, neck and shoulders, the default) learn from video labels only, the video bias is calibrated on the validation subjects;
#   3. finalise (float32: the read-out's standardisation is kept exact) and evaluate on the 48 test videos
#      used for every other model (thresholds calibrated on 24 training videos and stored in the file).
set -euo pipefail
W=${1:-runs/bundled}
mkdir -p "$W"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="python -m stanviewer"
DATA=$W/synth48
M=$DATA/manifest.csv

[ -f "$M" ] || $SV synth "$DATA" --subjects 48 --videos-per-subject 8 --seed 1

VIEW=(--views local --size 64 --sample-fps 5 --roi motion)
$SV pretrain "$M" --out "$W/pose_motion" --arch cnn-narrow-patch --frames 8 "${VIEW[@]}" \
    --steps 1500 --batch 24 --threads 1 --workers 2
$SV train "$M" --out "$W/posture" --arch posture-narrow "${VIEW[@]}" \
    --init "$W/pose_motion/pretrained.safetensors" --epochs 40 --threads 1 --workers 2

OUT=$W/posture-narrow-synth.safetensors
python scripts/finalize_model.py "$W/posture/best.safetensors" "$OUT" --name posture-narrow-synth --float32 \
    --description "video labels only; joints read by a narrow ResNet pose-pretrained on the generator's joints"
$SV evaluate "$M" --checkpoint "$OUT" --out "$W/eval_posture" --test-videos 48 --calib-videos 24 --calibrate --sanity
echo "copy $OUT to models/ to bundle it"
