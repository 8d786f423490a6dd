"""Helpers shared by the app's tests: the fake analysis with known scores, opening and waiting."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_FRAMES = 120  # frames of the standard test video (25 fps, 96x64)
# Waits end as soon as their condition holds; the limits are generous because the development machine
# is shared with training jobs (a cold ``import torch`` there has taken minutes).
SHORT = 60_000  # ms: a frame on screen
LONG = 600_000  # ms: opening, an analysis (the analysis process imports torch)


def open_and_wait(qtbot, w, path: Path, timeout: int = LONG) -> None:
    """Open ``path`` in window ``w`` and wait until the video and its cached analyses are shown."""
    with qtbot.waitSignal(w.sigOpened, timeout=timeout):
        w.open_path(path)
    qtbot.waitUntil(lambda: w.view.showing(w.session.frame), timeout=timeout)


#: scores of the fake analysis: a low background with four bumps of known height
BUMPS = [(10, 20, 0.9), (40, 45, 0.6), (70, 90, 0.75), (100, 103, 0.55)]


def bump_scores(n: int = N_FRAMES) -> np.ndarray:
    s = np.full(n, 0.1, np.float32)
    for a, b, v in BUMPS:
        s[a:b] = v
    return s


def write_fake_analysis(
    video: Path, scores: np.ndarray, method: str = "vanilla", model: str = "f" * 64, name: str = "fake-model"
) -> Path:
    """A cached analysis of ``video`` with these scores and blob heatmaps (found by ``cached_analyses``)."""
    from stanviewer.core.explain.heatmaps import HeatmapWriter
    from stanviewer.core.explain.scoring import Analysis
    from stanviewer.core.explain.store import cache_folder, save_analysis
    from stanviewer.core.video import open_video

    with open_video(video) as r:
        fp, times, (w, h) = r.info.fingerprint, r.times(), r.size
    folder = cache_folder(fp, f"test-{method}-{model[:6]}")
    folder.mkdir(parents=True, exist_ok=True)
    hw = HeatmapWriter(folder / "heat.zip", len(scores), w, h, side=48)
    yy, xx = np.mgrid[0 : hw.h, 0 : hw.w].astype(np.float32)
    for i, v in enumerate(scores):
        cx = hw.w * (0.2 + 0.6 * i / max(1, len(scores) - 1))
        hw.put(i, float(v) * np.exp(-((xx - cx) ** 2 + (yy - hw.h / 2) ** 2) / (2 * (hw.h / 5) ** 2)))
    heat = hw.close()
    meta = {
        "format": "stanviewer-analysis/1",
        "video": {"path": str(video), "fingerprint": fp, "frames": len(scores)},
        "model": {"name": name, "sha256": model, "classes": ["normal", "compensation"]},
        "target": "compensation",
        "prediction": {"class": "compensation", "probabilities": {"normal": 0.2, "compensation": 0.8}},
        "method": method,
        "views": "global",
        "normalisation": {"kind": "per-video min-max after clipping", "clip_percentiles": [1.0, 99.0]},
        "threshold": 0.5,
    }
    a = Analysis(
        scores=scores,
        raw=scores,
        window_prob=np.clip(scores + 0.05, 0, 1),
        times=times,
        windows=[],
        prediction=meta["prediction"],
        meta=meta,
        heatmap_path=heat,
    )
    save_analysis(a, folder)
    (folder / "heat.zip").unlink()
    return folder
