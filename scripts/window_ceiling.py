"""How much frame-level F1 can a window-probability curve reach at best? A perfect window classifier.

For each window length, every frame's score is the mean over the windows that hold it of the share of
labelled frames in the window (a perfectly calibrated window probability; ``any``: 1 if the window holds
any labelled frame). The threshold is calibrated on training videos and applied to test videos exactly as
``stanviewer evaluate`` does (protocol a, long sequence: target-class videos, every frame), so the rows
are ceilings for the ``window`` method of a model with that window span. Needs labels only, no model.

    python scripts/window_ceiling.py DATA/manifest.csv [--spans 0.4,0.8,1.6,3.2] [--test-videos 48]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stanviewer.core.errors import StanError
from stanviewer.core.evaluate import _pick, _pooled, oracle_window_scores
from stanviewer.core.explain.segments import calibrate_threshold
from stanviewer.core.manifest import read_frame_labels, read_manifest
from stanviewer.core.video import open_video


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--spans", default="0.4,0.8,1.6,3.2", help="window spans in seconds (1.6 = 8 frames at 5/s)")
    ap.add_argument("--target", default="compensation", help="the class whose frames are labelled")
    ap.add_argument("--test-videos", type=int, default=48)
    ap.add_argument("--calib-videos", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        entries = read_manifest(args.manifest)
        train = [e for e in entries if (e.split or "train") == "train" and e.label == args.target]
        test_all = _pick([e for e in entries if e.split == "test"], args.test_videos, args.seed)
        test = [e for e in test_all if e.label == args.target]
        calib = _pick(train, args.calib_videos, args.seed)
        if not calib or not test:
            print(f"error: {args.manifest}: needs '{args.target}' videos in both splits", file=sys.stderr)
            return 2

        def labelled(es: list) -> list[tuple[np.ndarray, float]]:
            out = []
            for e in es:
                with open_video(e.video) as v:
                    n, fps = v.info.frame_count, v.info.fps
                out.append((read_frame_labels(e.frame_labels, n), fps))
            return out

        cal, tst = labelled(calib), labelled(test)
    except StanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    flag_all = _pooled([(np.ones(len(y)), y) for y, _ in tst], 0.5)["f1"]
    print(f"{len(cal)} calibration, {len(tst)} test videos of class '{args.target}'; flag-all F1 {100 * flag_all:.1f}")
    print("| window span (s) | window probability | threshold | precision | recall | **F1** |")
    print("|---|---|---|---|---|---|")
    for span in (float(x) for x in args.spans.split(",")):
        for mode in ("share", "any"):

            def score(y: np.ndarray, fps: float, span: float = span, mode: str = mode) -> np.ndarray:
                return oracle_window_scores(y, max(1, round(span * fps)), mode=mode)

            th, _ = calibrate_threshold([(score(y, f), y) for y, f in cal])
            r = _pooled([(score(y, f), y) for y, f in tst], th)
            name = "perfect share" if mode == "share" else "perfect any-frame detector"
            print(
                f"| {span:.1f} | {name} | {th:.2f} | {100 * r['precision']:.1f} | {100 * r['recall']:.1f} "
                f"| **{100 * r['f1']:.1f}** |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
