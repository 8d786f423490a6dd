#!/usr/bin/env bash
# Pose pretraining of the STAN backbone (tiny UniFormer) on many more synthetic subjects than the 36
# training subjects of the standard data set, sized for the 10-minute slot of one lent GPU machine.
# Same two steps as scripts/make_bundled_model.sh (joints through the flattened feature map, then through
# the pooled features; generator joints as targets, no label of any kind) on a separate draw whose every
# subject trains; only the data and the number of steps differ.
#
#     SUBJECTS=120 SEED=211 scripts/gpu_stan_pretrain.sh WORK_DIR [OUT_DIR]
#
# The draw's seed must differ from the evaluation sets' (see docs/posture.md for the seeds used). The
# step counts are set from a 40-step speed probe so that both cosine schedules end inside MINUTES (the
# guards of --max-minutes only cut a stage that runs slower than probed; the logs say so).
set -euo pipefail
W=${1:?work dir}
OUT=${2:-$W/out}
SUBJECTS=${SUBJECTS:-120}
VPS=${VPS:-4}
SEED=${SEED:-211}
ROI=${ROI:-truth}
BATCH=${BATCH:-32}
MINUTES=${MINUTES:-8}
WORKERS=${WORKERS:-$(nproc)}
DEVICE=${DEVICE:-auto}
mkdir -p "$W" "$OUT"
export STANVIEWER_CACHE_DIR=${STANVIEWER_CACHE_DIR:-$W/cache}
SV="${PYTHON:-python} -m stanviewer"
DATA=$W/pose$SUBJECTS-seed$SEED
M=$DATA/manifest.csv
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$OUT/timeline.txt"; }
left() { python3 -c "print(round(max(0.3, $MINUTES - ($(date +%s) - $t0) / 60), 2))"; }

stamp "synth $SUBJECTS subjects x $VPS videos, seed $SEED, every subject in the train split, $WORKERS workers"
[ -f "$M" ] || $SV synth "$DATA" --subjects "$SUBJECTS" --videos-per-subject "$VPS" --seed "$SEED" \
    --workers "$WORKERS" > "$OUT/synth.log" 2>&1
python3 "$(dirname "$0")/all_train_split.py" "$M"
cp "$M" "$OUT/pose_manifest.csv"
VIEW=(--arch tiny --frames 8 --views local --size 64 --sample-fps 5 --roi "$ROI")
stamp "local views of every video (cached)"
$SV pretrain "$M" --out "$W/warm" "${VIEW[@]}" --steps 1 --batch 2 --device cpu --workers "$WORKERS" \
    > "$OUT/cache.log" 2>&1
stamp "speed probe: 40 steps of $BATCH clips"
$SV pretrain "$M" --out "$W/probe" "${VIEW[@]}" --spatial-head --steps 40 --batch "$BATCH" --device "$DEVICE" \
    > "$OUT/probe.log" 2>&1
rate=$(python3 -c "import csv; r=list(csv.DictReader(open('$W/probe/pretrain_history.csv')))[-1]; print(max(1.0, float(r['step']) / max(0.01, float(r['minutes']))))")
avail=$(left)
FLAT_STEPS=$(python3 -c "print(int(0.6 * 0.9 * $avail * $rate))")
POOL_STEPS=$(python3 -c "print(int(0.4 * 0.9 * $avail * $rate))")
stamp "probe: $rate steps/min; flat head $FLAT_STEPS steps, pooled head $POOL_STEPS steps ($avail min left)"
$SV pretrain "$M" --out "$W/pre_flat" "${VIEW[@]}" --spatial-head --steps "$FLAT_STEPS" --batch "$BATCH" \
    --device "$DEVICE" --max-minutes "$(python3 -c "print(0.62 * $avail)")" > "$OUT/pre_flat.log" 2>&1
stamp "flat head done"
$SV pretrain "$M" --out "$W/pre_pooled" "${VIEW[@]}" --init "$W/pre_flat/pretrained.safetensors" \
    --steps "$POOL_STEPS" --batch "$BATCH" --device "$DEVICE" --max-minutes "$(left)" > "$OUT/pre_pooled.log" 2>&1
stamp "done"
for d in pre_flat pre_pooled; do
    cp "$W/$d/pretrain_history.csv" "$OUT/${d}_history.csv"
    cp "$W/$d/pretrained.safetensors" "$OUT/$d.safetensors"
    tail -n 2 "$OUT/${d}_history.csv"
done
