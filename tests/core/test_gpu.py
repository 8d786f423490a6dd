"""On a CUDA GPU: whole-video analysis agrees with the CPU, uses mixed precision, and training runs there.

Skipped without CUDA (CI has none); run with ``python -m pytest -m gpu`` on a machine with a GPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
from stanviewer.core.manifest import read_manifest
from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.progress import run_job
from stanviewer.core.training.data import roi_for_video
from stanviewer.core.training.train import TrainConfig, select_device, train
from stanviewer.core.video import open_video

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("gpu-synth")
    return run_job(make_dataset(out, subjects=2, videos_per_subject=2, reps=(1, 2)), stream=None)


def _spec() -> ModelSpec:
    return ModelSpec(views="global+local", frames=8, size=64, sample_fps=5.0, roi_provider="truth", head_hidden=16)


def test_auto_selects_cuda() -> None:
    assert select_device("auto").type == "cuda"


@pytest.mark.parametrize("method", ["vanilla", "gradcam", "smoothgrad", "window"])
def test_gpu_analysis_matches_cpu(dataset: Path, tmp_path: Path, method: str) -> None:
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.safetensors", STAN(_spec()))
    entry = next(e for e in read_manifest(dataset) if e.split == "test")
    reader = open_video(dataset.parent / entry.video)
    roi = roi_for_video(reader, "truth", entry, dataset.parent)
    out = {}
    for dev in ("cpu", "cuda"):
        ck = load_checkpoint(path, dev)
        st = AnalysisSettings(method=method, device=dev, samples=4, heatmaps=False)
        out[dev] = run_job(analyze_reader(reader, ck, st, roi=roi), stream=None)
    a, b = out["cpu"], out["cuda"]
    assert b.meta["device"].startswith("cuda") and "autocast" in b.meta["precision"]
    assert a.meta["precision"] == "float32"
    assert b.scores.shape == a.scores.shape and np.isfinite(b.scores).all()
    if method == "smoothgrad":  # different noise draws on the two devices: compare loosely
        assert np.corrcoef(a.raw, b.raw)[0, 1] > 0.8
    else:
        assert np.corrcoef(a.raw, b.raw)[0, 1] > 0.95, "bf16 autocast changed the scores too much"
    np.testing.assert_allclose(b.window_prob, a.window_prob, atol=0.05)


def test_training_on_gpu(dataset: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, max_windows=4, device="cuda")
    res = run_job(train(dataset, _spec(), tmp_path / "run", cfg), stream=None)
    assert np.isfinite(res.history[0]["train_loss"])
    assert load_checkpoint(res.best).spec.feature_norm is False


def test_pose_pretraining_runs_on_cuda(dataset: Path, tmp_path: Path) -> None:
    from stanviewer.core.training.pretrain import pretrain_pose

    out = run_job(pretrain_pose(dataset, _spec(), tmp_path / "pre", steps=3, batch=4, device="cuda"), stream=None)
    ck = load_checkpoint(out)
    assert all(t.device.type == "cpu" for t in ck.model.state_dict().values())  # saved from the GPU, loads anywhere
