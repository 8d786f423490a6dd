"""Seeded fuzzing of the ROI file loaders: boxes/joints CSV, NTU .skeleton, RoiTrack .npz and the ROI cache.

Damaged input files give a RoiError naming the file (or load cleanly); a damaged cache file is treated as
absent and the boxes are computed again."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import assert_no_leaks, blobs, fuzz_loader
from review_helpers import make_video

from stanviewer.core.errors import RoiError
from stanviewer.core.progress import run_job
from stanviewer.core.roi import RoiTrack, compute_roi, make_provider, read_roi_csv, read_skeleton
from stanviewer.core.roi.cache import cache_path
from stanviewer.core.synth.dataset import _write_rows
from stanviewer.core.video import VideoReader, open_video

N = 30


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VideoReader]:
    with open_video(make_video(tmp_path_factory.mktemp("roi") / "clip.mp4", N)) as r:
        yield r


def _boxes_csv(path: Path) -> Path:
    _write_rows(path, ["frame", "x", "y", "w", "h"], ([i, 5 + i, 4.5, 20, 30] for i in range(0, N, 2)))
    return path


def _joints_csv(path: Path) -> Path:
    header = ["frame"] + [f"j{k}_{c}" for k in range(4) for c in "xy"]
    _write_rows(path, header, ([i, *(f"{10 + i + k * 3:.1f}" for k in range(8))] for i in range(N)))
    return path


def _skeleton(path: Path, frames: int = 6) -> Path:
    """An NTU RGB+D file: two bodies per frame (the second one from frame 3 on), 25 joints each."""
    lines = [str(frames)]
    for f in range(frames):
        ids = ["72057594037931101", "72057594037931102"][: 1 + (f >= 3)]
        lines.append(str(len(ids)))
        for b, body_id in enumerate(ids):
            lines += [f"{body_id} 0 1 2 1 2 0 0.05 -0.1 2", "25"]
            for j in range(25):
                x, y = 400 + 600 * b + (j % 5) * 50, 200 + (j // 5) * 150 + f
                lines.append(f"0.1 0.2 3.0 250.5 200.25 {x:.4f} {y:.4f} 0.9 0.01 -0.02 0.3 {2 - (j == 7)}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def _provider_fuzzed(name: str, path: Path, cases: list, reader: VideoReader) -> None:
    """A file-backed ROI provider on every third case: boxes, or a RoiError — never another exception."""
    provider = make_provider(name, file=path, smooth=0)

    def track(p: Path) -> RoiTrack:
        return run_job(compute_roi(reader, provider, use_cache=False), stream=None)

    assert_no_leaks(fuzz_loader(track, path, cases[::3], expected=RoiError))


@pytest.mark.parametrize("kind", ["boxes", "joints"])
def test_roi_csv_fuzzed(kind: str, tmp_path: Path, reader: VideoReader) -> None:
    valid = (_boxes_csv if kind == "boxes" else _joints_csv)(tmp_path / "valid.csv")
    assert read_roi_csv(valid)[0] == kind
    cases = blobs(valid.read_bytes(), random.Random(201 + (kind == "joints")))
    path = tmp_path / "roi.csv"
    assert_no_leaks(fuzz_loader(read_roi_csv, path, cases, expected=RoiError))
    _provider_fuzzed("csv", path, cases, reader)  # the provider too: what parses must also become boxes


def test_skeleton_fuzzed(tmp_path: Path, reader: VideoReader) -> None:
    valid = _skeleton(tmp_path / "valid.skeleton")
    assert len(read_skeleton(valid)) == 6
    cases = blobs(valid.read_bytes(), random.Random(203))
    path = tmp_path / "S001C001P001R001A001.skeleton"
    assert_no_leaks(fuzz_loader(read_skeleton, path, cases, expected=RoiError))
    _provider_fuzzed("skeleton", path, cases, reader)


def test_skeleton_huge_counts_are_errors_not_allocations(tmp_path: Path) -> None:
    """A damaged count must not make the reader allocate for it: a joint count of 10^12 raised MemoryError
    ("Unable to allocate 87.3 TiB") before the fix."""
    path = tmp_path / "big.skeleton"
    path.write_text("1\n1\n72057594037931101 0 1 2 1 2 0 0.05 -0.1 2\n999999999999\n" + "0 " * 11 + "0\n")
    with pytest.raises(RoiError, match="line 6: the file ends early"):
        read_skeleton(path)


def _track(joints: bool) -> RoiTrack:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 40, (N, 2))
    boxes = np.concatenate([xy, xy + 20], axis=1)
    j = rng.uniform(0, 60, (N, 5, 2)) if joints else None
    return RoiTrack(boxes, np.linspace(0, 1, N), (64, 48), j, "csv", {"file": "x.csv", "smooth": 0})


@pytest.mark.parametrize("joints", [False, True])
def test_roi_track_fuzzed(joints: bool, tmp_path: Path) -> None:
    """Before the fix 243 (no joints) and 254 (joints) of these 300 leaked zipfile.BadZipFile, zlib.error,
    EOFError or NotImplementedError."""
    valid = tmp_path / "valid.npz"
    _track(joints).save(valid)
    assert len(RoiTrack.load(valid)) == N
    cases = blobs(valid.read_bytes(), random.Random(204 + joints))
    assert_no_leaks(fuzz_loader(RoiTrack.load, tmp_path / "track.npz", cases, expected=RoiError))


def test_damaged_roi_cache_is_recomputed(reader: VideoReader) -> None:
    """compute_roi treats a damaged cache file as absent: the boxes come out as computed afresh.

    Before the fix 113 of these 140 escaped compute_roi (RoiTrack.load raised BadZipFile, zlib.error...,
    not the RoiError the cache lookup suppresses)."""
    provider = make_provider("none")
    fresh = run_job(compute_roi(reader, provider, use_cache=False), stream=None)
    path = cache_path(reader, provider)
    run_job(compute_roi(reader, provider), stream=None)
    cases = blobs(path.read_bytes(), random.Random(206), n_random=20, n_damaged=120)

    def same(track: object) -> None:
        assert isinstance(track, RoiTrack)
        assert np.array_equal(track.boxes, fresh.boxes) and np.array_equal(track.confidence, fresh.confidence)

    def cached(p: Path) -> RoiTrack:
        return run_job(compute_roi(reader, provider), stream=None)

    assert_no_leaks(fuzz_loader(cached, path, cases, accept=same))
