"""Draw what the model sees: a synthetic frame with its true and motion ROI boxes, then its global and
local views at model size (upscaled for viewing), for a frame with compensation and one without.

    python scripts/roi_views.py [--video VIDEO --boxes BOXES.csv --labels LABELS.csv] [--size 64]
                                [--out docs/img/roi-views.png]

Without ``--video`` it draws a synthetic compensation video into a temporary folder (seed 5).
Green: the generator's true box; orange: the ``motion`` provider's box; blue: the local view's crop
square (one per video). Grey pixels in the local view are the neutral value (the normalisation mean).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stanviewer.core.manifest import read_boxes_csv, read_frame_labels
from stanviewer.core.progress import run_job
from stanviewer.core.roi import compute_roi
from stanviewer.core.video import open_video
from stanviewer.core.views import global_view, local_view


def _synthetic(tmp: Path) -> tuple[Path, Path, Path]:
    from stanviewer.core.synth import make_video, random_subject, random_video_spec

    rng = np.random.default_rng(5)
    spec = random_video_spec(rng, random_subject(rng, "PIC"), "roi_pic", True, reps=(2, 2))
    make_video(spec, tmp)
    return tmp / "videos" / "roi_pic.mp4", tmp / "boxes" / "roi_pic.csv", tmp / "labels" / "roi_pic.csv"


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.full((img.shape[0] + 22, img.shape[1], 3), 255, np.uint8)
    out[22:] = img
    cv2.putText(out, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", type=Path)
    ap.add_argument("--boxes", type=Path)
    ap.add_argument("--labels", type=Path)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("docs/img/roi-views.png"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    video, boxes_csv, labels_csv = (a.video, a.boxes, a.labels) if a.video else _synthetic(tmp)
    with open_video(video) as r:
        track = run_job(compute_roi(r, provider="motion", use_cache=False), stream=None)
        square = track.crop_square()
        labels = read_frame_labels(labels_csv, r.frame_count) if labels_csv else np.zeros(r.frame_count)
        truth = read_boxes_csv(boxes_csv) if boxes_csv else {}
        picks = [int(np.flatnonzero(labels)[len(np.flatnonzero(labels)) // 2])] if labels.any() else []
        picks.append(int(np.flatnonzero(labels == 0)[len(np.flatnonzero(labels == 0)) // 3]))
        rows = []
        for i in picks:
            frame = r.frame(i)
            shown = frame.copy()
            if i in truth:
                x, y, w, h = truth[i]
                cv2.rectangle(shown, (int(x), int(y)), (int(x + w), int(y + h)), (0, 200, 0), 2)
            b = track.boxes[i]
            cv2.rectangle(shown, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (255, 140, 0), 2)
            cx, cy, side = square
            p0, p1 = (int(cx - side / 2), int(cy - side / 2)), (int(cx + side / 2), int(cy + side / 2))
            cv2.rectangle(shown, p0, p1, (0, 90, 255), 1)
            h = shown.shape[0]
            g = cv2.resize(global_view(frame, a.size), (h, h), interpolation=cv2.INTER_NEAREST)
            loc = cv2.resize(local_view(frame, b, square, a.size), (h, h), interpolation=cv2.INTER_NEAREST)
            tag = "compensation" if labels[i] else "no compensation"
            rows.append(
                np.hstack(
                    [
                        _label(shown, f"frame {i} ({tag}): true box, motion box, crop"),
                        _label(g, f"global view {a.size}px"),
                        _label(loc, f"local view {a.size}px"),
                    ]
                )
            )
    img = np.vstack(rows)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
