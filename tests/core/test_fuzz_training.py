"""Seeded fuzzing of the training loaders: the resume state (trainer_state.safetensors) and the decoded
training-data cache. A damaged resume file gives a CheckpointError naming it; a damaged cache file is
treated as absent and the video is decoded again."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzz_helpers import assert_no_leaks, blobs, fuzz_loader, json_mutants
from review_helpers import make_video

from stanviewer.core.errors import CheckpointError
from stanviewer.core.fileio import fingerprint
from stanviewer.core.manifest import ManifestEntry
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.paths import cache_dir
from stanviewer.core.training.data import PREP_VERSION, VideoSample, _cache_key, _read_cache, prepare_video
from stanviewer.core.training.train import _load_state, _save_state


def _optimizer() -> torch.optim.Optimizer:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    return torch.optim.AdamW(model.parameters(), lr=1e-3)


def _state_file(path: Path) -> Path:
    opt = _optimizer()
    params = [p for g in opt.param_groups for p in g["params"]]
    sum((p**2).sum() for p in params).backward()
    opt.step()
    info = {"epoch": 3, "step": 12, "best_val": 0.25, "bad_epochs": 1, "history": [{"epoch": 0, "loss": 0.7}]}
    _save_state(path, opt, info)
    return path


def test_resume_state_fuzzed(tmp_path: Path) -> None:
    """Before the fix (then with 120 JSON-damaged copies, 420 cases) 319 leaked: SafetensorError 284,
    TypeError 21, KeyError 6, ValueError 5, JSONDecodeError 2; one more loaded with a non-integer epoch."""
    valid = _state_file(tmp_path / "valid.safetensors")
    assert _load_state(valid, _optimizer())["epoch"] == 3
    rng = random.Random(401)
    data = valid.read_bytes()
    cases = blobs(data, rng)
    # well-formed safetensors whose JSON state (in the metadata) is damaged
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(valid), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        state = f.metadata()["state"]
    for k, text in enumerate(json_mutants(state.encode(), rng, 80)):
        p = tmp_path / f"m{k}.safetensors"
        save_file(tensors, str(p), metadata={"state": text.decode()})
        cases.append(p.read_bytes())

    def load(p: Path) -> dict:
        info = _load_state(p, _optimizer())
        assert isinstance(info["epoch"], int) and isinstance(info["history"], list)
        return info

    assert_no_leaks(fuzz_loader(load, tmp_path / "trainer_state.safetensors", cases, expected=CheckpointError))


def test_resume_state_of_another_model(tmp_path: Path) -> None:
    valid = _state_file(tmp_path / "trainer_state.safetensors")
    other = torch.optim.AdamW(torch.nn.Linear(5, 5).parameters())
    with pytest.raises(CheckpointError, match=r"trainer_state\.safetensors"):
        _load_state(valid, other)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("train") / "clip.mp4", 30)


def test_damaged_training_cache_is_rebuilt(video: Path) -> None:
    """A damaged cache file reads as absent (None) or as exactly what was written, and prepare_video then
    decodes the video again. (prepare_video already caught everything here; the check of the shapes is new.)"""
    spec = ModelSpec(views="global", size=32, frames=4, sample_fps=5.0)
    entry = ManifestEntry(video=video, subject="s1", label="normal")
    fresh = prepare_video(entry, spec, video.parent, spec.classes)
    path = cache_dir() / "train" / f"{_cache_key(fingerprint(video), spec)}.npz"  # the cache is shared
    assert path.is_file()
    cases = blobs(path.read_bytes(), random.Random(402))

    def read(p: Path) -> object:
        got = _read_cache(p, ["global"], 32, 30)
        if got is not None:
            assert np.array_equal(got[0], fresh.images) and np.array_equal(got[1], fresh.frame_index)
        return got

    assert_no_leaks(fuzz_loader(read, path, cases))

    def same(s: object) -> None:
        assert isinstance(s, VideoSample)
        assert np.array_equal(s.images, fresh.images) and np.array_equal(s.frame_index, fresh.frame_index)
        assert s.frame_size == fresh.frame_size and s.square == fresh.square

    def prepare(p: Path) -> VideoSample:
        return prepare_video(entry, spec, video.parent, spec.classes)

    assert_no_leaks(fuzz_loader(prepare, path, cases[::25], accept=same))


def test_the_training_cache_follows_the_roi_provider_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """Crops made with older person boxes must not be reused after the provider changed (its version)."""
    from stanviewer.core.roi.motion import MotionProvider

    spec = ModelSpec(views="local", roi_provider="motion")
    before = _cache_key("f" * 40, spec)
    monkeypatch.setattr(MotionProvider, "version", MotionProvider.version + 1)
    assert _cache_key("f" * 40, spec) != before
    truth = ModelSpec(views="local", roi_provider="truth")
    assert _cache_key("f" * 40, truth).endswith(f"_truth_v{PREP_VERSION}")  # the generator's boxes: no version
