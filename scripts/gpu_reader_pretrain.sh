#!/usr/bin/env bash
# Pose pretraining of the posture model's reader (the narrow ResNet) on many more synthetic subjects than
# the 36 training subjects of the standard data set, sized for one GPU machine with many cores (the
# 10-minute slot of a lent machine). Same task and crops as step 1 of scripts/make_posture_model.sh
# (the app's motion boxes, local view 64 px, generator joints as targets, no label of any kind); only
# the data (a separate draw, every subject used for training) and the number of steps differ.
#
#     SUBJECTS=120 SEED=211 STEPS=6000 scripts/gpu_reader_pretrain.sh WORK_DIR [OUT_DIR]
#
# The draw's seed must differ from the evaluation sets' (1: the standard set, 71 / 97 / 131: the fresh
# draws J, K, L of docs/posture.md), so that no test subject is seen. MINUTES (default 6.5) bounds the
# pretraining steps so that the run ends inside the slot; the log says where a guard stopped it.
# POSE_DATA=1 draws the videos with `synth --pose-data` (every repetition compensated: the reader sees
# shoulder hikes and trunk rotations in far more images; measured: readers trained on the usual draws read
# a hike at a fifth to a third of its height, docs/posture.md "Which compensations it misses"). Not yet
# measured with a reader trained on such data. POSE_DATA=free draws them with `synth --pose-data free`
# (compensations as events on their own timing and side, repetitions normal: a raised shoulder is not
# tied to a raised arm; docs/posture.md, eighteenth session; measured on CPU as reader data: worse).
# MASK_BOX=video pretrains on local views masked by one stable box per video (`--mask-box video`; the
# posture model trained from such a reader must use it too): the per-frame mask's edge moves when an arm
# is raised and the readers read it as a shoulder moving (docs/posture.md, eighteenth session).
# OUT_DIR receives the small results (checkpoint, history, logs, manifest), never the videos.
set -euo pipefail
W=${1:?work dir}
OUT=${2:-$W/out}
SUBJECTS=${SUBJECTS:-120}
VPS=${VPS:-4}
SEED=${SEED:-211}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-48}
MINUTES=${MINUTES:-6.5}
WORKERS=${WORKERS:-$(nproc)}
DEVICE=${DEVICE:-auto}
POSE_DATA=${POSE_DATA:-0}
MASK_BOX=${MASK_BOX:-frame}
mkdir -p "$W" "$OUT"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="${PYTHON:-python} -m stanviewer"
DATA=$W/reader$SUBJECTS-seed$SEED
SYNTH_EXTRA=()
if [ "$POSE_DATA" = 1 ]; then DATA=$DATA-pose; SYNTH_EXTRA=(--pose-data); fi
if [ "$POSE_DATA" = free ]; then DATA=$DATA-free; SYNTH_EXTRA=(--pose-data free); fi
M=$DATA/manifest.csv
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/timeline.txt"; }

stamp "synth $SUBJECTS subjects x $VPS videos, seed $SEED, every subject in the train split, $WORKERS workers"
[ -f "$M" ] || $SV synth "$DATA" --subjects "$SUBJECTS" --videos-per-subject "$VPS" --seed "$SEED" \
    --workers "$WORKERS" ${SYNTH_EXTRA[@]+"${SYNTH_EXTRA[@]}"} > "$OUT/synth.log" 2>&1
# every subject of this draw trains the reader (synth keeps at least one test subject: move it over)
python3 "$(dirname "$0")/all_train_split.py" "$M"
cp "$M" "$OUT/reader_manifest.csv"
VIEW=(--arch cnn-narrow-patch --frames 8 --views local --size 64 --sample-fps 5 --roi motion --mask-box "$MASK_BOX")
stamp "motion boxes and local views of every video (cached; one pretraining step)"
$SV pretrain "$M" --out "$W/warm" "${VIEW[@]}" --steps 1 --batch 2 --device cpu --workers "$WORKERS" \
    > "$OUT/cache.log" 2>&1
left=$(python3 -c "print(round(max(0.5, $MINUTES - ($(date +%s) - $t0) / 60), 2))")
stamp "pretrain, $STEPS steps of $BATCH clips (guard: $left min)"
$SV pretrain "$M" --out "$W/pose_reader" "${VIEW[@]}" --steps "$STEPS" --batch "$BATCH" --device "$DEVICE" \
    --max-minutes "$left" > "$OUT/pretrain.log" 2>&1
stamp "done"
cp "$W/pose_reader/pretrained.safetensors" "$OUT/reader_pretrained.safetensors"
cp "$W/pose_reader/pretrain_history.csv" "$OUT/reader_pretrain_history.csv"
tail -n 3 "$OUT/reader_pretrain_history.csv"
