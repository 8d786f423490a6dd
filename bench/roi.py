"""Benchmark of the ROI providers (issue 4) on synthetic videos that record the figure's true box.

    python bench/roi.py [--data MANIFEST[,MANIFEST...]] [--subjects 6] [--videos-per-subject 4] [--seed 11]
                        [--out FILE.md]

Several manifests (comma-separated) are pooled into one table (subjects kept apart per manifest in the
leak check). Without ``--data`` it generates a small set (half compensation videos, most with background
distractors) under ``bench/.roi_data``. Prints Markdown tables:

1. per provider (``motion``; ``none`` = whole frame; ``csv`` fed with the true boxes, a sanity row):
   share of frames with IoU >= 0.7 against the true box, mean and median IoU, the same share on
   videos with distractors, the worst video's share, the videos whose crop square (``RoiTrack.crop_square``,
   what the local view is cut from) is off that of the true boxes (centre more than 0.1 of the side away, or
   side more than 15 % off), and frames/s (wall clock and per CPU second:
   the machine is shared, the second is the one to compare);
2. the leak check (DESIGN.md §6): cross-validated (leave-one-subject-out) AUROC of a logistic
   regression predicting the compensation label from per-video ROI statistics alone, for the
   ``crop_square`` statistics (what a model that crops with it sees: must stay at chance) and for
   per-frame box statistics (extremes included: they follow the trunk lean and may leak), each beside
   the 95th percentile of the same check with shuffled labels (its chance range on this set).
ROI results are computed without the cache (``use_cache=False``), with ``margin=0``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stanviewer.core.manifest import read_boxes_csv, read_manifest  # noqa: E402
from stanviewer.core.progress import run_job  # noqa: E402
from stanviewer.core.roi import RoiTrack, box_iou, compute_roi, square_off  # noqa: E402
from stanviewer.core.roi.leak import (  # noqa: E402
    BOX_FEATURES,
    box_features,
    leak_auroc,
    leak_null,
    square_features,
)
from stanviewer.core.video import open_video  # noqa: E402


def dataset(args: argparse.Namespace) -> list[Path]:
    if args.data:
        return [Path(m) for m in args.data.split(",") if m]
    out = ROOT / "bench" / ".roi_data"
    manifest = out / "manifest.csv"
    if manifest.exists() and (out / "synth.json").exists():
        meta = json.loads((out / "synth.json").read_text())
        if (meta["seed"], meta["subjects"], meta["videos_per_subject"]) == (
            args.seed,
            args.subjects,
            args.videos_per_subject,
        ):
            return [manifest]
    from stanviewer.core.synth import make_dataset

    print(f"generating {args.subjects}x{args.videos_per_subject} videos in {out} ...", file=sys.stderr)
    return [
        run_job(
            make_dataset(out, subjects=args.subjects, videos_per_subject=args.videos_per_subject, seed=args.seed),
            stream=sys.stderr,
        )
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", help="manifest.csv of a synthetic set (with a boxes column); several, comma-separated, are pooled"
    )
    ap.add_argument("--subjects", type=int, default=6)
    ap.add_argument("--videos-per-subject", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--providers", default="motion,none,csv")
    ap.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = ap.parse_args()

    manifests = dataset(args)
    items = []  # (manifest index, root, entry, has distractors)
    for k, manifest in enumerate(manifests):
        root = manifest.parent
        meta_path = root / "synth.json"
        distract = {}
        if meta_path.exists():
            distract = {v["name"]: int(v["distractors"]) for v in json.loads(meta_path.read_text())["videos"]}
        items += [(k, root, e, distract.get(e.name, 0) > 0) for e in read_manifest(manifest)]
    labels = [int(e.label == "compensation") for _, _, e, _ in items]
    groups = [f"{k}:{e.subject}" for k, _, e, _ in items]  # the same subject name in two sets is two people

    rows, leak_rows = [], []
    for name in args.providers.split(","):
        ious, ious_d, per_video, frames, wall, cpu = [], [], [], 0, 0.0, 0.0
        sq, bx, off = [], [], 0
        for _, root, e, has_distractors in items:
            truth_csv = root / e.extra["boxes"]
            params = {"file": truth_csv, "smooth": 0} if name == "csv" else {}
            with open_video(e.video) as r:
                t0, c0 = time.perf_counter(), time.process_time()
                track = run_job(compute_roi(r, name, use_cache=False, margin=0.0, **params), stream=None)
                wall += time.perf_counter() - t0
                cpu += time.process_time() - c0
                n = r.frame_count
            t = read_boxes_csv(truth_csv)
            truth = np.array([[x, y, x + w, y + h] for x, y, w, h in (t[i] for i in range(n))], np.float64)
            v = box_iou(track.boxes, truth)
            ious.append(v)
            per_video.append(float(np.mean(v >= 0.7)))
            if has_distractors:
                ious_d.append(v)
            frames += n
            true_track = RoiTrack(boxes=truth.astype(np.float32), confidence=np.ones(n, np.float32), size=track.size)
            off += square_off(track.crop_square(), true_track.crop_square())
            sq.append(square_features(track))
            bx.append(box_features(track))
            print(f"  {name:7s} {e.name}: IoU>=0.7 on {per_video[-1]:.0%} of {n} frames", file=sys.stderr)
        allv = np.concatenate(ious)
        dv = np.concatenate(ious_d) if ious_d else np.array([np.nan])
        rows.append(
            f"| {name} | {np.mean(allv >= 0.7):.1%} | {np.mean(allv):.3f} | {np.median(allv):.3f} "
            f"| {np.mean(dv >= 0.7):.1%} ({len(ious_d)}) | {min(per_video):.0%} | {off} | {frames / wall:.0f} "
            f"| {frames / max(cpu, 1e-9):.0f} |"
        )
        if name != "none":

            def with_chance(x: np.ndarray) -> str:
                a = leak_auroc(x, labels, groups)[0]
                hi = float(np.percentile(leak_null(x, labels, groups, n=100), 95))
                return f"{a:.2f} ({hi:.2f}){' **leak**' if a > hi else ''}"

            single = {f: leak_auroc(np.stack(bx)[:, [k]], labels, groups)[0] for k, f in enumerate(BOX_FEATURES)}
            best = max(single, key=lambda f: single[f])
            leak_rows.append(
                f"| {name} | {with_chance(np.stack(sq))} | {with_chance(np.stack(bx))} "
                f"| {best} {with_chance(np.stack(bx)[:, [BOX_FEATURES.index(best)]])} |"
            )

    n_frames = sum(len(v) for v in ious)
    text = [
        f"Data: {', '.join(str(m) for m in manifests)} ({len(items)} videos, {n_frames} frames,"
        f" {sum(labels)} compensation, {sum(1 for it in items if it[3])} with distractors)",
        "",
        "| provider | IoU>=0.7 | mean IoU | median IoU | IoU>=0.7, distractor videos (n) | worst video "
        "| videos whose crop square is off | frames/s (wall) | frames/s (CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
        "Leak check: leave-one-subject-out AUROC for the compensation label from ROI statistics alone; in"
        " brackets the 95th percentile of the same check with shuffled labels (100 shuffles): a leak is an"
        " AUROC above it (cross-validated AUROC is biased low on small sets: without information it is"
        " often well below 0.5)",
        "",
        "| provider | crop_square (side, cx, cy) | per-frame box stats (all 9) | highest single box stat |",
        "| --- | --- | --- | --- |",
        *leak_rows,
    ]
    print("\n".join(text))
    if args.out:
        args.out.write_text("\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
