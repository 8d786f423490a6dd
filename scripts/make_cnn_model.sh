#!/usr/bin/env bash
# Reproduce the per-frame CNN baseline models/cnn-narrow-patch-synth.safetensors and every table of docs/cnn.md
# (about 3 hours on 2 CPU cores, most of it evaluation).
#
#     scripts/make_cnn_model.sh [WORK_DIR]      (default: ./runs/bundled, shared with make_bundled_model.sh)
#
# The same recipe as the bundled STAN (models/README.md), for the paper's per-frame CNN (PAPER.md §5):
#   1. pose pretraining of the narrow ResNet: 17 joints regressed from every frame's pooled features
#      (the generator's joints; no compensation, video or frame label is used);
#   2. stage A: only the "patch" head learns, on standardised frame features of the frozen ResNet (MIL on
#      video labels); trained from scratch instead, the same model stayed at chance (val AUROC 0.38-0.55);
#   3. stage B: layer3-4 and the head fine-tune, no pixel augmentation, BatchNorm statistics fixed;
#   4. finalise (float16, ROI provider 'motion' for new videos) and evaluate next to the bundled STAN.
set -euo pipefail
W=${1:-runs/bundled}
mkdir -p "$W"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="python -m stanviewer"
DATA=$W/synth48
M=$DATA/manifest.csv
ARCH=cnn-narrow-patch

[ -f "$M" ] || $SV synth "$DATA" --subjects 48 --videos-per-subject 8 --seed 1

COMMON=(--arch $ARCH --views local --frames 8 --size 64 --sample-fps 5 --roi truth)
$SV pretrain "$M" --out "$W/cnn_pre" "${COMMON[@]}" --steps 1500 --batch 24 --threads 1
$SV train "$M" --out "$W/cnn_A" "${COMMON[@]}" --init "$W/cnn_pre/pretrained.safetensors" \
    --freeze-stages 4 --epochs 60 --batch 12 --patience 15 --lr 1e-3 --threads 1 --max-minutes 20
$SV train "$M" --out "$W/cnn_B" "${COMMON[@]}" --init "$W/cnn_A/best.safetensors" \
    --freeze-stages 2 --epochs 12 --batch 12 --patience 5 --lr 2e-4 --threads 1 --max-minutes 15 --no-augment

OUT=$W/cnn-narrow-patch-synth.safetensors
python scripts/finalize_model.py "$W/cnn_B/best.safetensors" "$OUT" --name cnn-narrow-patch-synth \
    --description "video labels only; pose-pretrained per-frame ResNet"
# both models in one run (same test videos, same motion boxes); thresholds calibrated on training videos and
# stored in both files (the STAN's is a copy of the bundled one, recalibrated on the current motion boxes)
cp "${STAN:-models/stan-tiny-synth.safetensors}" "$W/stan-v2roi.safetensors"
$SV evaluate "$M" --checkpoint "$W/stan-v2roi.safetensors" --checkpoint "$OUT" --out "$W/eval_cnn_vs_stan" \
    --methods vanilla,gradcam,window --test-videos 48 --calib-videos 24 --calibrate
# the paper's other two sequence heads on the same pose-pretrained ResNet (docs/cnn.md's head table;
# not bundled): fully connected and LSTM, same stages, vanilla gradients evaluated
for H in fcl rnn; do
    HC=(--arch cnn-narrow-$H --views local --frames 8 --size 64 --sample-fps 5 --roi truth)
    $SV train "$M" --out "$W/cnn_${H}_A" "${HC[@]}" --init "$W/cnn_pre/pretrained.safetensors" \
        --freeze-stages 4 --epochs 60 --batch 12 --patience 15 --lr 1e-3 --threads 1 --max-minutes 20
    $SV train "$M" --out "$W/cnn_${H}_B" "${HC[@]}" --init "$W/cnn_${H}_A/best.safetensors" \
        --freeze-stages 2 --epochs 12 --batch 12 --patience 5 --lr 2e-4 --threads 1 --max-minutes 12 --no-augment
    python scripts/finalize_model.py "$W/cnn_${H}_B/best.safetensors" "$W/cnn-narrow-$H-synth.safetensors" \
        --name "cnn-narrow-$H-synth" --description "video labels only; pose-pretrained per-frame ResNet"
    $SV evaluate "$M" --checkpoint "$W/cnn-narrow-$H-synth.safetensors" --out "$W/eval_cnn_$H" \
        --methods vanilla --test-videos 48 --calib-videos 24 --calibrate
done

# the CNN's model-randomisation check (docs/cnn.md)
cp "$OUT" "$W/cnn-sanity.safetensors"
$SV evaluate "$M" --checkpoint "$W/cnn-sanity.safetensors" --out "$W/eval_cnn_sanity" --methods vanilla \
    --test-videos 24 --calib-videos 24 --no-short --sanity

# the control of the plot: the same CNN from scratch, end to end, with augmentation (stays at chance)
$SV train "$M" --out "$W/cnn_scratch" "${COMMON[@]}" --epochs 40 --batch 12 --patience 8 --lr 1e-3 --threads 1 \
    --max-minutes 15 --no-feature-norm
python scripts/plot_curves.py "$W/cnn_A" "$W/cnn_B" --pretrain "$W/cnn_pre" \
    --compare "same CNN from scratch=$W/cnn_scratch/history.csv" --out "$W/cnn-learning-curves.png"
echo "done: $OUT and $W/eval_cnn_vs_stan/report.md"
