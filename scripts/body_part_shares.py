"""Which body parts does the posture model's evidence rest on, per compensation kind?

For each compensated repetition of a synthetic draw (``stanviewer synth``; its ``synth.json`` says which
repetitions are compensated, and how), the frames from the middle of the raise to the end of the hold that
the model flags: the share of their evidence that each body part's displacement carries
(:func:`stanviewer.core.explain.posture.joint_contributions`, the quantity the body-part maps draw). Prints a
table by kind: the mean shares of shoulders, head + neck and pelvis, and how often each is the largest.

    python scripts/body_part_shares.py DRAW [--checkpoint FILE] [--videos 48]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
GROUPS = {"shoulders": ("shoulder_l", "shoulder_r"), "head + neck": ("head", "neck"), "pelvis": ("pelvis",)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("draw", type=Path, help="a folder written by `stanviewer synth` (synth.json, videos/)")
    ap.add_argument("--checkpoint", type=Path, default=REPO / "models" / "posture-narrow-synth.safetensors")
    ap.add_argument("--videos", type=int, default=48, help="at most this many compensation videos")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from stanviewer.core.explain.posture import analyze_posture, joint_contributions
    from stanviewer.core.explain.result import AnalysisSettings
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.models.posture import JOINT_NAMES
    from stanviewer.core.progress import run_job
    from stanviewer.core.video import open_video

    ck = load_checkpoint(a.checkpoint)
    threshold = ck.threshold("posture")
    index = {g: [JOINT_NAMES.index(j) for j in js] for g, js in GROUPS.items()}
    meta = json.loads((a.draw / "synth.json").read_text(encoding="utf-8"))
    by_kind: dict[str, list[dict[str, float]]] = {}
    videos = [v for v in meta["videos"] if v["compensation"]][: a.videos]
    for v in videos:
        path = next((a.draw / "videos").rglob(v["name"] + ".*"))
        got: dict = {}
        with open_video(path) as r:
            st = AnalysisSettings(method="posture", coverage="sampled", heatmaps=False)
            an = run_job(analyze_posture(r, ck, st, readings=got), stream=None)
            fps = r.fps
        rows = got["rows"]
        c = joint_contributions(ck.model, got["joints"], got["square"], got["rows_step"])
        flagged = np.asarray(an.scores)[rows] >= threshold
        t = rows / fps
        for rep in v["reps"]:
            if not rep["comp"]:
                continue
            sel = (
                flagged
                & (t >= rep["start"] + rep["raise_s"] / 2)
                & (t <= rep["start"] + rep["raise_s"] + rep["hold_s"])
            )
            total = c[sel].sum()
            if total <= 0:
                continue
            by_kind.setdefault(rep["comp"], []).append({g: float(c[sel][:, j].sum() / total) for g, j in index.items()})
    print(f"{ck.name}, {len(videos)} compensation videos of {a.draw}, threshold {threshold:.2f}")
    print("| kind | repetitions flagged | " + " | ".join(f"{g} (mean share)" for g in GROUPS) + " | largest |")
    print("|---|---|" + "---|" * len(GROUPS) + "---|")
    for kind, reps in sorted(by_kind.items()):
        shares = " | ".join(f"{np.mean([r[g] for r in reps]):.2f}" for g in GROUPS)
        top = Counter(max(r, key=r.get) for r in reps).most_common()
        print(f"| {kind} | {len(reps)} | {shares} | {', '.join(f'{g} {k}' for g, k in top)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
