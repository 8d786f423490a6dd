"""Helpers for the review/export tests (Qt-free): tiny videos whose frames differ clearly, fake analyses.

Imported by ``tests/core/test_review_*.py`` and ``tests/gui/test_report.py`` (``tests/`` is on the path).
"""

from __future__ import annotations

import csv
import json
from fractions import Fraction
from pathlib import Path

import numpy as np

from stanviewer.core.encode import VideoWriter
from stanviewer.core.fileio import fingerprint

SIZE = (64, 48)
N = 30
#: presentation times (ms) of a variable-frame-rate video (two frames 1 ms apart)
VFR_MS = [0, 40, 80, 200, 233, 300, 500, 540, 541, 1000]


def frame_picture(i: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Frame ``i``: smooth colours, a moving square and a top band whose brightness encodes ``i``."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = 120 + 50 * np.sin((xx + 2 * i) / 7.0)
    img[..., 1] = 120 + 50 * np.cos((yy - i) / 6.0)
    img[..., 2] = 100 + 40 * np.sin((xx + yy) / 11.0 + i / 5)
    img[: h // 4] = (i * 8) % 256
    x = (i * 2) % (w - 8)
    img[h // 2 : h // 2 + 8, x : x + 8] = (255, 255, 0)
    return img


def make_video(path: Path, n: int = N, size: tuple[int, int] = SIZE, fps: float = 25) -> Path:
    """An H.264 MP4 of ``n`` :func:`frame_picture` frames at ``fps``."""
    with VideoWriter(path, fps, "h264", gop=10) as w:
        for i in range(n):
            w.write(frame_picture(i, size))
    return path


def make_vfr_video(path: Path) -> Path:
    """A variable-frame-rate H.264 MP4 with frames at :data:`VFR_MS`."""
    with VideoWriter(path, 25, "h264", time_base=Fraction(1, 1000), gop=30) as w:
        for i, pts in enumerate(VFR_MS):
            w.write(frame_picture(i), pts=pts)
    return path


def fake_analysis(
    folder: Path,
    video: Path,
    scores: np.ndarray,
    times: np.ndarray,
    *,
    threshold: float = 0.5,
    heatmaps: bool = False,
    size: tuple[int, int] = SIZE,
) -> Path:
    """An analysis folder as ``stanviewer analyze`` writes it (without running a model)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(scores)
    with (folder / "scores.csv").open("w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["frame", "time_s", "score", "raw", "window_prob"])
        for i in range(n):
            w.writerow([i, f"{times[i]:.6f}", f"{scores[i]:.6f}", f"{scores[i]:.6f}", "0.9"])
    meta = {
        "format": "stanviewer-analysis/1",
        "video": {"path": str(video), "fingerprint": fingerprint(video), "frames": n, "fps": 25.0},
        "model": {"name": "stan-test", "sha256": "ab" * 32, "classes": ["normal", "compensation"]},
        "target": "compensation",
        "prediction": {"class": "compensation", "probabilities": {"normal": 0.2, "compensation": 0.8}},
        "method": "smoothgrad",
        "method_params": {"samples": 8, "sigma": 0.15},
        "normalisation": {"kind": "per-video min-max after clipping", "clip_percentiles": [1.0, 99.0]},
        "threshold": threshold,
    }
    if heatmaps:
        from stanviewer.core.explain.heatmaps import HeatmapWriter

        hw = HeatmapWriter(folder / "heatmaps.zip", n, size[0], size[1], side=32)
        yy, xx = np.mgrid[0 : hw.h, 0 : hw.w].astype(np.float32)
        for i in range(n):
            cx = (i * 2) % hw.w
            hw.put(i, np.exp(-((xx - cx) ** 2 + (yy - hw.h / 2) ** 2) / 20.0) * (0.2 + scores[i]))
        hw.close()
        meta["heatmaps"] = "heatmaps.zip"
    (folder / "analysis.json").write_text(json.dumps(meta), encoding="utf-8")
    return folder


def bump_scores(n: int = N, ranges: tuple[tuple[int, int], ...] = ((5, 11), (18, 24))) -> np.ndarray:
    """Scores that are 0.9 inside ``ranges`` and 0.1 elsewhere."""
    s = np.full(n, 0.1, np.float32)
    for a, b in ranges:
        s[a:b] = 0.9
    return s
