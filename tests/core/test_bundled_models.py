"""Every checkpoint shipped in models/: loads safely, small, says it is synthetic-only, has a model card."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stanviewer.core.models.bundled import BUNDLED_NAME, bundled_checkpoints, describe
from stanviewer.core.models.checkpoint import load_checkpoint
from stanviewer.core.models.registry import family
from stanviewer.core.paths import models_dir

SHIPPED = bundled_checkpoints()


def test_the_default_comes_first() -> None:
    if not SHIPPED:
        pytest.skip("no bundled models in this installation")
    assert SHIPPED[0].name == BUNDLED_NAME


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_checkpoint(path: Path) -> None:
    assert path.stat().st_size < 10 * 2**20, "checkpoints in models/ stay small (a few MB)"
    ck = load_checkpoint(path)
    assert ck.meta.get("synthetic_only") is True
    assert "synthetic" in ck.meta["training"]["data_description"]
    # new videos have no true boxes: a provider that finds the person itself
    assert ck.spec.roi_provider in ("motion", "checked"), ck.spec.roi_provider
    if ck.spec.roi_provider == "checked":  # it uses the bundled detector: the very file it was measured with
        from stanviewer.core.fileio import sha256_file
        from stanviewer.core.roi.learned import bundled_detector_path

        assert ck.meta["roi_detector"]["sha256"] == sha256_file(bundled_detector_path())
    th = ck.meta.get("thresholds", {})
    assert th, "calibrated thresholds (stanviewer evaluate --calibrate)"
    assert all(0.0 <= float(v["threshold"]) <= 1.0 for v in th.values())
    card = describe(path, ck.meta)
    assert "synthetic" in card.lower()
    # the model card in models/README.md names the file and the script that reproduces it
    readme = (models_dir() / "README.md").read_text(encoding="utf-8")
    assert path.name in readme
    T, S = ck.spec.frames, ck.spec.size
    if family(ck.spec.arch) == "posture":  # a whole-video model: joints per image, then per-frame logits
        from stanviewer.core.models.posture import to_video

        with torch.no_grad():
            upper = torch.rand(12, 3, S, S) if ck.model.cfg.upper else None  # its upper-body images
            q = ck.model.joints(torch.rand(12, 3, S, S), upper)
            f = ck.model.posture_features(to_video(q.double(), (100.0, 100.0, 200.0)))
            out = ck.model.frame_logits(f)
        assert q.shape == (12, 17, 2) and out.shape == (12,) and torch.isfinite(out).all()
        assert ck.meta["default_method"] == "posture"
        if ck.model.cfg.shifts:  # reads each image several times: the file says since when and why
            assert "shifts" in ck.meta.get("reading_history", "")
        return
    clips = [torch.rand(1, 3, T, S, S) for _ in ck.model.view_names]
    with torch.no_grad():
        if ck.spec.video_centre:  # judged against its video: the centre is measured first (analysis: pass 1)
            from stanviewer.core.models.stan import video_centre

            ck.model.set_video_centre(video_centre(ck.model.features(*[torch.rand(3, 3, T, S, S) for _ in clips])))
        out = ck.model(*clips)
    assert out.shape == (1, len(ck.spec.classes)) and torch.isfinite(out).all()
