"""Shared fixtures: an isolated cache folder and small generated videos.

No Qt here: ``tests/core`` must run with PySide6 absent. Videos are tiny (96x64, a few hundred frames)
and generated once per session with :class:`~stanviewer.core.encode.VideoWriter`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from stanviewer.core.encode import VideoWriter

#: (width, height) of the small test videos
SMALL = (96, 64)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``STANVIEWER_CACHE_DIR`` (and the data/log folders) at a per-session temporary folder."""
    root = tmp_path_factory.mktemp("user")
    names = {"STANVIEWER_CACHE_DIR": "cache", "STANVIEWER_DATA_DIR": "data", "STANVIEWER_LOG_DIR": "log"}
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in names.items():
            mp.setenv(var, str(root / sub))
        yield root / "cache"


def pattern_frame(i: int, width: int = SMALL[0], height: int = SMALL[1]) -> np.ndarray:
    """A smooth, moving RGB test picture that differs in every frame ``i`` (uint8 [H, W, 3]).

    Smooth motion keeps libx264's scene-cut detection quiet, so keyframes land exactly every ``gop``
    frames; the yellow square makes neighbouring frames clearly different.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = 128 + 60 * np.sin((xx + i) / 9.0)
    img[..., 1] = 128 + 60 * np.cos((yy - i * 0.5) / 7.0)
    img[..., 2] = 100 + 40 * np.sin((xx + yy) / 13.0 + i / 10)
    side = max(2, min(width, height) // 8)
    cx = width / 2 + (width / 2 - side) * math.sin(i / 17)
    cy = height / 2 + (height / 2 - side) * math.sin(i / 11)
    x, y = int(cx) - side // 2, int(cy) - side // 2
    img[max(0, y) : y + side, max(0, x) : x + side] = (255, 255, 0)
    return img


def write_video(path: Path, n: int, codec: str = "h264", size: tuple[int, int] = SMALL, **kw: object) -> Path:
    """Write ``n`` :func:`pattern_frame` frames to ``path`` at 25 fps (``kw`` go to VideoWriter)."""
    fps = kw.pop("fps", 25)
    with VideoWriter(path, fps, codec, **kw) as w:  # type: ignore[arg-type]
        for i in range(n):
            w.write(pattern_frame(i, *size))
    return path


def decode_all(path: Path) -> list[np.ndarray]:
    """The reference: every frame of a plain sequential PyAV decode, as RGB arrays."""
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def make_video(video_dir: Path) -> Callable[..., Path]:
    """Factory ``make_video(name, n, codec="h264", size=SMALL, **writer_kw)``; each file is made once."""
    made: dict[str, Path] = {}

    def make(name: str, n: int, codec: str = "h264", size: tuple[int, int] = SMALL, **kw: object) -> Path:
        if name not in made:
            made[name] = write_video(video_dir / name, n, codec, size, **kw)
        return made[name]

    return make


@pytest.fixture(scope="session")
def h264_bframes(make_video: Callable[..., Path]) -> Path:
    """H.264 MP4 with B-frames (3) and a long GOP (120 frames): 300 frames, keyframes at 0, 120, 240."""
    return make_video("h264_bframes.mp4", 300, "h264", gop=120, bframes=3)


@pytest.fixture(scope="session")
def mp4v_file(make_video: Callable[..., Path]) -> Path:
    """MPEG-4 part 2 in MP4: 200 frames, GOP 80."""
    return make_video("mp4v.mp4", 200, "mp4v", gop=80)


@pytest.fixture(scope="session")
def mjpeg_file(make_video: Callable[..., Path]) -> Path:
    """Motion JPEG in AVI (every frame a keyframe): 120 frames."""
    return make_video("mjpeg.avi", 120, "mjpeg")


@pytest.fixture(scope="session")
def mkv_file(make_video: Callable[..., Path]) -> Path:
    """H.264 in Matroska: 250 frames, GOP 100, B-frames."""
    return make_video("h264.mkv", 250, "h264", gop=100, bframes=2)


@pytest.fixture(scope="session")
def reference_frames() -> Callable[[Path], list[np.ndarray]]:
    """``reference_frames(path)``: the sequential decode of a file, computed once per file."""
    memo: dict[Path, list[np.ndarray]] = {}

    def get(path: Path) -> list[np.ndarray]:
        if path not in memo:
            memo[path] = decode_all(path)
        return memo[path]

    return get


@pytest.fixture(scope="session")
def pattern() -> Callable[..., np.ndarray]:
    """:func:`pattern_frame` (the picture of frame i) for tests that need the source pixels."""
    return pattern_frame


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random STAN (global view, 8 frames of 32 px, one block per stage) saved as a checkpoint."""
    import torch

    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.models.stan import STAN, ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(
        views="global",
        frames=8,
        size=32,
        backbone={"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 64], "head_dim": 16, "name": "micro"},
    )
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny-random.safetensors", STAN(spec), {"name": "tiny"})


@pytest.fixture(scope="session")
def env_with_repo(_isolated_cache: Path) -> dict[str, str]:
    """The environment for subprocesses: the repository on ``PYTHONPATH`` (works without installing)."""
    repo = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
