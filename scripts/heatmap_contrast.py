"""Can the saliency maps of flagged frames be seen at the app's default colour scale?

The app's default overlay scale ("whole video") divides every frame's map by the video's 99th-percentile
frame peak. This script analyses the demo video (``stanviewer demo``'s, seed 7 unless ``--seed``) with a
model and prints, for the frames at or above its calibrated threshold and for the others, the median of
each frame's map peak on that scale (1 = the video's 99th percentile), and the share of frames whose peak
is under 0.2 (a map hardly visible over the picture). Analyses go to a fresh cache folder.

    python scripts/heatmap_contrast.py [--checkpoint models/posture-narrow-synth.safetensors] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, default=REPO / "models" / "posture-narrow-synth.safetensors")
    ap.add_argument("--method", default=None, help="default: the model's recommended method")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.environ["STANVIEWER_CACHE_DIR"] = tempfile.mkdtemp(prefix="stanviewer-heat-")
    sys.path.insert(0, str(REPO))
    from stanviewer.core.demo import demo_video
    from stanviewer.core.explain.heatmaps import HeatmapReader
    from stanviewer.core.explain.scoring import AnalysisSettings
    from stanviewer.core.explain.store import analyze_video
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.progress import run_job

    video = run_job(demo_video(a.seed), stream=None)
    ck = load_checkpoint(a.checkpoint)
    method = a.method or ck.meta.get("default_method") or "vanilla"
    an, _folder = run_job(analyze_video(video, ck, AnalysisSettings(method=method, coverage="full")), stream=None)
    if an.heatmap_path is None:
        print(f"{method} has no saliency maps")
        return 1
    h = HeatmapReader(an.heatmap_path)
    peak = h.frame_max / max(h.video_scale, 1e-12)
    h.close()
    threshold = float((ck.meta.get("thresholds") or {}).get(method, {}).get("threshold", 0.5))
    flagged = np.asarray(an.scores) >= threshold
    print(f"{ck.meta.get('name', a.checkpoint.stem)}, {method}, threshold {threshold:.2f}, demo video seed {a.seed}")
    print("| frames | count | median map peak (1 = video's 99th percentile) | share under 0.2 |")
    print("|---|---|---|---|")
    for name, sel in (("flagged", flagged), ("not flagged", ~flagged)):
        if sel.any():
            print(f"| {name} | {int(sel.sum())} | {np.median(peak[sel]):.2f} | {np.mean(peak[sel] < 0.2):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
