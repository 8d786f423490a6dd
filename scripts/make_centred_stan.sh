#!/usr/bin/env bash
# The video-centred STAN (models/README.md, "Video-centred head"): a backbone pose-pretrained on 120 other
# synthetic subjects (scripts/gpu_stan_pretrain.sh on a GPU, about 6.5 minutes), then on 2 CPU cores
# (about 25 minutes): the head alone on centred features (stage A), then stages 3-4 with it (stage B).
#
#     scripts/make_centred_stan.sh PRETRAINED.safetensors [WORK_DIR]     (default: ./runs/centred)
#
# PRETRAINED is the pooled-head checkpoint the GPU script writes (OUT/pre_pooled.safetensors).
set -euo pipefail
PRE=${1:?pose-pretrained STAN backbone (scripts/gpu_stan_pretrain.sh OUT/pre_pooled.safetensors)}
W=${2:-runs/centred}
mkdir -p "$W"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="python -m stanviewer"
DATA=$W/synth48
M=$DATA/manifest.csv
[ -f "$M" ] || $SV synth "$DATA" --subjects 48 --videos-per-subject 8 --seed 1

COMMON=(--views local --frames 8 --size 64 --sample-fps 5 --roi truth --head-hidden 64 --batch 12 --video-centre
    --pool mean)
$SV train "$M" --out "$W/A" "${COMMON[@]}" --init "$PRE" --freeze-stages 4 --epochs 60 --patience 15 --lr 1e-3 \
    --threads 1
$SV train "$M" --out "$W/B" "${COMMON[@]}" --init "$W/A/best.safetensors" --freeze-stages 2 --epochs 12 \
    --patience 5 --lr 2e-4 --no-augment --threads 2

OUT=$W/stan-tiny-synth.safetensors
python scripts/finalize_model.py "$W/B/best.safetensors" "$OUT" --name stan-tiny-synth \
    --description "video labels only; backbone pose-pretrained on 120 other subjects (scripts/gpu_stan_pretrain.sh); head and stages 3-4 on video-centred features"
$SV evaluate "$M" --checkpoint "$OUT" --out "$W/eval" --methods window,occlusion-window --test-videos 48 \
    --calib-videos 24 --calibrate --no-short
echo "done: $OUT"
