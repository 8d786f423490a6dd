#!/usr/bin/env bash
# The bundled STAN recipe (scripts/make_bundled_model.sh) on a larger synthetic set, sized for one GPU
# machine with many cores: the only change to the recipe is the number of training subjects.
#
#     SUBJECTS=96 WORKERS=16 scripts/gpu_more_subjects.sh WORK_DIR [OUT_DIR]
#
# Every stage has a time guard (--max-minutes) so that the whole run fits a 10-minute slot; the logs
# say whether a guard stopped a stage early. OUT_DIR receives the small results (checkpoints, histories,
# logs, manifest), never the videos.
set -euo pipefail
W=${1:?work dir}
OUT=${2:-$W/out}
SUBJECTS=${SUBJECTS:-96}
SEED=${SEED:-7}
WORKERS=${WORKERS:-$(nproc)}
DEVICE=${DEVICE:-auto}
PRE_STEPS=${PRE_STEPS:-1500}
POOL_STEPS=${POOL_STEPS:-700}
EPOCHS_A=${EPOCHS_A:-60}
EPOCHS_B=${EPOCHS_B:-12}
SIZE=${SIZE:-64}
mkdir -p "$W" "$OUT"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="${PYTHON:-python} -m stanviewer"
DATA=$W/synth$SUBJECTS
M=$DATA/manifest.csv
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/timeline.txt"; }

stamp "synth $SUBJECTS subjects, $WORKERS workers"
[ -f "$M" ] || $SV synth "$DATA" --subjects "$SUBJECTS" --videos-per-subject 8 --seed "$SEED" --workers "$WORKERS" \
    > "$OUT/synth.log" 2>&1
cp "$M" "$DATA/synth.json" "$OUT/" 2>/dev/null || true

SPEC=(--frames 8 --size "$SIZE" --sample-fps 5 --roi truth)
stamp "pretrain (flat head)"
$SV pretrain "$M" --out "$W/pre_flat" --views global+local "${SPEC[@]}" --spatial-head --steps "$PRE_STEPS" \
    --batch 24 --device "$DEVICE" --workers "$WORKERS" --max-minutes "${MAX_PRE:-1.5}" > "$OUT/pre_flat.log" 2>&1
stamp "pretrain (pooled head)"
$SV pretrain "$M" --out "$W/pre_pooled" --views global+local "${SPEC[@]}" --init "$W/pre_flat/pretrained.safetensors" \
    --steps "$POOL_STEPS" --batch 24 --device "$DEVICE" --max-minutes "${MAX_POOL:-0.75}" > "$OUT/pre_pooled.log" 2>&1
stamp "stage A"
$SV train "$M" --out "$W/A" --views local "${SPEC[@]}" --init "$W/pre_pooled/pretrained.safetensors" \
    --freeze-stages 4 --head-hidden 64 --epochs "$EPOCHS_A" --batch 12 --patience 15 --lr 1e-3 \
    --device "$DEVICE" --workers "$WORKERS" --max-minutes "${MAX_A:-1.0}" > "$OUT/A.log" 2>&1
stamp "stage B"
$SV train "$M" --out "$W/B" --views local "${SPEC[@]}" --init "$W/A/best.safetensors" \
    --freeze-stages 2 --head-hidden 64 --epochs "$EPOCHS_B" --batch 12 --patience 5 --lr 2e-4 --no-augment \
    --device "$DEVICE" --max-minutes "${MAX_B:-2.5}" > "$OUT/B.log" 2>&1
stamp "done"
for d in pre_flat pre_pooled A B; do  # flat names: OUT may be a folder that keeps no subfolders
    for f in "$W/$d"/*.csv; do cp "$f" "$OUT/${d}_$(basename "$f")" 2>/dev/null || true; done
done
cp "$W/pre_pooled/pretrained.safetensors" "$OUT/pre_pooled.safetensors" 2>/dev/null || true
cp "$W/A/best.safetensors" "$OUT/A_best.safetensors" 2>/dev/null || true
cp "$W/B/best.safetensors" "$OUT/B_best.safetensors" 2>/dev/null || true
grep -h "^validation\|^test" "$OUT/A.log" "$OUT/B.log" || true
