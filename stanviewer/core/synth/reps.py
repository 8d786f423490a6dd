"""What the generator drew in each synthetic video: its repetitions, their compensation kind and the view.

``stanviewer synth`` writes ``synth.json`` beside ``videos/`` with every video's specification. This
module reads it back so that an evaluation can say *which kinds* of compensation a model's explanation
finds and which it misses (:func:`recall_by_kind`). Videos that do not come from the generator (no
``synth.json`` two folders up, or no entry for the video) simply have no repetitions here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["NORMAL_REP", "RepSpan", "recall_by_kind", "video_reps", "view_name"]

NORMAL_REP = "(normal repetition)"  # the kind of a repetition without compensation


@dataclass(frozen=True)
class RepSpan:
    kind: str  # the repetition's (first) compensation kind, or NORMAL_REP
    second: str | None  # a second kind drawn with it, if any
    view: str  # front, oblique or side
    start: int  # first frame
    end: int  # frame after the last


def view_name(yaw: float) -> str:
    """The generator's camera yaw (degrees) as the view it was drawn as: front, oblique or side."""
    s = abs(math.sin(math.radians(yaw)))
    return "side" if s > 0.7 else ("front" if s < 0.3 else "oblique")


@lru_cache(maxsize=32)
def _meta(path: str, mtime: float) -> dict[str, dict]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return {str(v["name"]): v for v in data.get("videos", []) if isinstance(v, dict) and "name" in v}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def video_reps(video: str | Path) -> list[RepSpan] | None:
    """The repetitions of a generated video (``None`` when the video has no generator record)."""
    video = Path(video)
    meta_path = video.parent.parent / "synth.json"
    try:
        mtime = meta_path.stat().st_mtime
    except OSError:
        return None
    spec = _meta(str(meta_path), mtime).get(video.stem)
    if spec is None:
        return None
    try:
        fps = float(spec["fps"])
        view = view_name(float(spec["yaw"]))
        out = []
        for r in spec["reps"]:
            t1 = float(r["start"]) + float(r["raise_s"]) + float(r["hold_s"]) + float(r["lower_s"])
            out.append(
                RepSpan(
                    str(r["comp"]) if r.get("comp") else NORMAL_REP,
                    str(r["comp2"]) if r.get("comp2") else None,
                    view,
                    int(math.floor(float(r["start"]) * fps)),
                    int(math.ceil(t1 * fps)),
                )
            )
        return out
    except (KeyError, TypeError, ValueError):
        return None


def recall_by_kind(videos: Iterable[tuple[Path, np.ndarray, np.ndarray]]) -> list[dict]:
    """Per (kind, view): repetitions, labelled frames and the share of them flagged (recall); for normal
    repetitions (which have no labelled frames) the share of their frames flagged (false alarms).

    ``videos``: (video path, flags bool [n], frame labels [n]) of generated videos; others are skipped.
    Rows are sorted by kind then view; a row ``view == "all"`` sums each kind over the views.
    """
    acc: dict[tuple[str, str], list[int]] = {}
    for path, flags, labels in videos:
        reps = video_reps(path)
        if not reps:
            continue
        n = min(len(flags), len(labels))
        f, y = np.asarray(flags[:n], bool), np.asarray(labels[:n]) > 0
        for r in reps:
            a, b = max(0, r.start), min(n, r.end)
            if b <= a:
                continue
            if r.kind == NORMAL_REP:
                frames, hit = b - a, int(f[a:b].sum())
            else:
                frames, hit = int(y[a:b].sum()), int((f[a:b] & y[a:b]).sum())
            for view in (r.view, "all"):
                c = acc.setdefault((r.kind, view), [0, 0, 0])
                c[0] += 1
                c[1] += frames
                c[2] += hit
    rows = []
    for (kind, view), (reps_n, frames, hit) in sorted(acc.items(), key=lambda kv: (kv[0][0] == NORMAL_REP, kv[0])):
        rows.append(
            {
                "kind": kind,
                "view": view,
                "repetitions": reps_n,
                "frames": frames,
                "flagged": hit,
                "share_flagged": hit / frames if frames else float("nan"),
            }
        )
    return rows
