"""scripts/posture_ceiling.py runs end to end on a tiny synthetic set (true joints and a pose checkpoint)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from stanviewer.core.models.checkpoint import save_checkpoint
from stanviewer.core.models.registry import build_model
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import run_job

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "posture_ceiling.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("posture_ceiling", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["posture_ceiling"] = mod
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop("posture_ceiling", None)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("posture-synth")
    return run_job(make_dataset(out, subjects=4, videos_per_subject=2, reps=(1, 1), seed=2), stream=None)


def test_posture_features_drop_the_video_median_posture(script) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    p = rng.normal(100, 5, (30, len(script.JOINTS), 2))
    p[:, script.JOINTS.index("head"), 1] -= 150  # a standing figure: head far above the ankles
    moved = p + np.array([40.0, -7.0])  # the same posture elsewhere in the picture
    f = script.posture_features(p)
    np.testing.assert_allclose(script.posture_features(moved), f, atol=1e-5)
    assert f.shape == (30, len(script.JOINTS) * 2 * len(script.CONTEXT))
    assert abs(float(np.median(f[:, : len(script.JOINTS) * 2]))) < 0.05


@pytest.mark.parametrize("roi", [None, "none"])
def test_runs_on_true_and_predicted_joints(
    script, dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], roi: str | None
) -> None:
    spec = ModelSpec(arch="cnn-narrow-patch", views="local", frames=4, size=32, sample_fps=5.0, roi_provider="truth")
    ck = save_checkpoint(tmp_path / "pose.safetensors", build_model(spec))
    args = [str(dataset), "--epochs", "1", "--noise", "0,3", "--test-videos", "8", "--calib-videos", "4"]
    assert script.main([*args, "--pose-checkpoint", str(ck), *(["--roi", roi] if roi else [])]) == 0
    out = capsys.readouterr().out
    rows = [r for r in out.splitlines() if r.startswith("| ") and not r.startswith("| scores")]
    assert len(rows) == 1 + 1 + 2 + 1 + 1 + 1  # lean, supervised, MIL at 2 noises; images: lean, true, predicted
    assert all(re.search(r"\*\*\d+\.\d\*\*", r) for r in rows)
    assert "joints predicted from pixels by pose.safetensors" in out


def test_a_manifest_without_joints_is_a_clear_error(script, tmp_path: Path, capsys) -> None:
    m = tmp_path / "manifest.csv"
    m.write_text("video,subject,label,split\nv.mp4,S1,compensation,train\nw.mp4,S2,compensation,test\n")
    assert script.main([str(m)]) == 2
    assert "error:" in capsys.readouterr().err
