"""Seeded fuzzing of video opening: random bytes, truncated and byte-overwritten copies of small videos
(MP4, MKV and AVI as the project's VideoWriter writes them) and of the frame-index cache. Opening and
reading every frame gives a VideoError naming the file (or works), never another exception or a hang;
a damaged index cache is rebuilt."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import assert_no_leaks, blobs, fuzz_loader

from stanviewer.core.errors import VideoError
from stanviewer.core.video import FrameIndex, VideoReader, open_video


def _open_and_read(path: Path) -> int:
    with open_video(path, use_index_cache=False) as r:
        n = 0
        for _i, frame in r.iter_frames(0, r.frame_count):
            assert frame.shape == (r.size[1], r.size[0], 3)
            n += 1
        r.frame(r.frame_count // 2)  # a seek
        assert n == r.frame_count
        return n


@pytest.mark.parametrize(
    ("name", "codec", "n_cases"), [("clip.mp4", "h264", 150), ("clip.mkv", "h264", 70), ("clip.avi", "mjpeg", 100)]
)
def test_video_open_fuzzed(
    name: str, codec: str, n_cases: int, make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """Before the fix 1 of these 150 MP4s (and 2 of 100 MKVs) leaked AttributeError: a damaged header left
    the stream without a decoder context, and the error message itself read its codec name."""
    valid = make_video(f"fuzz_{name}", 20, codec, gop=5)
    assert _open_and_read(valid) == 20
    rng = random.Random(501 + len(name) + len(codec))
    cases = blobs(valid.read_bytes(), rng, n_random=n_cases // 5, n_damaged=n_cases - n_cases // 5)
    assert_no_leaks(fuzz_loader(_open_and_read, tmp_path / name, cases, expected=VideoError))


def test_damaged_index_cache_is_rebuilt(make_video: Callable[..., Path]) -> None:
    video = make_video("fuzz_index.mp4", 20, "h264", gop=5)
    with open_video(video, use_index_cache=False) as r:
        pts = r.index.pts.copy()
    with open_video(video) as r:  # writes the cache
        index_path = r._index_path()
    cases = blobs(index_path.read_bytes(), random.Random(510), n_random=30, n_damaged=270)

    def loads_or_none(p: Path) -> object:
        index = FrameIndex.load(p)
        assert index is None or np.array_equal(index.pts, pts), "a damaged index loads with other timestamps"
        return index

    assert_no_leaks(fuzz_loader(loads_or_none, index_path, cases))
    cases = cases[::10]  # opening the video with each: slower

    def same(reader: object) -> None:
        assert isinstance(reader, VideoReader)
        try:
            assert np.array_equal(reader.index.pts, pts), "a damaged index cache was used"
            assert reader.frame(19).shape[2] == 3
        finally:
            reader.close()

    assert_no_leaks(fuzz_loader(lambda p: open_video(video), index_path, cases, expected=VideoError, accept=same))
