"""The analysis cache key: a cached analysis is reused only for the same video, model, settings and ROI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.core.explain.result import AnalysisSettings
from stanviewer.core.explain.store import analysis_key, analyze_video, roi_identity
from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.progress import Progress
from stanviewer.core.roi.files import NoneProvider


def test_roi_identity_follows_views_and_provider_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert roi_identity({"views": "global", "roi_provider": "motion"}) is None
    local = roi_identity({"views": "local", "roi_provider": "truth"})
    assert local is not None and local["provider"] == "motion"  # boxes from files -> motion on new videos
    assert roi_identity(ModelSpec(views="global+local", roi_provider="none"))["provider"] == "none"
    st = AnalysisSettings(method="vanilla")
    k1 = analysis_key("fp", "sha", st, local)
    from stanviewer.core.roi.motion import MotionProvider

    monkeypatch.setattr(MotionProvider, "version", MotionProvider.version + 1)
    k2 = analysis_key("fp", "sha", st, roi_identity({"views": "local", "roi_provider": "truth"}))
    assert k1 != k2
    assert analysis_key("fp", "sha", st) == analysis_key("fp", "sha", st, None)


def _run(job) -> tuple[object, list[str]]:
    msgs = []
    try:
        while True:
            p = next(job)
            if isinstance(p, Progress):
                msgs.append(p.message)
    except StopIteration as e:
        return e.value, msgs


def test_cached_analysis_is_not_reused_after_the_roi_provider_changed(
    make_video: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    spec = ModelSpec(
        views="local",
        frames=4,
        size=32,
        roi_provider="none",
        backbone={"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 64], "head_dim": 16, "name": "micro"},
    )
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", STAN(spec), {"name": "micro"}))
    video = make_video("store_roi.mp4", 20)
    st = AnalysisSettings(method="window", heatmaps=False)
    (a1, f1), _ = _run(analyze_video(video, ck, st))
    (a2, f2), msgs = _run(analyze_video(video, ck, st))
    assert f2 == f1 and "cached" in msgs and np.allclose(a1.scores, a2.scores, atol=1e-5)
    monkeypatch.setattr(NoneProvider, "version", 2, raising=False)  # a new person finder
    (_, f3), msgs = _run(analyze_video(video, ck, st))
    assert f3 != f1 and "cached" not in msgs
