"""Clip export: frame-exact H.264 clips, padding, merged, burn-in, sidecar, cancel, unwritable folders, full disk."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from review_helpers import bump_scores, fake_analysis, make_vfr_video, make_video

from stanviewer.core.errors import Cancelled, VideoError
from stanviewer.core.progress import run_job
from stanviewer.core.review import clips as clips_mod
from stanviewer.core.review.clips import ClipOptions, ClipRequest, export_clips
from stanviewer.core.video import open_video


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("clips") / "source.mp4")


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _check_exact(clip: Path, src: Path, first: int, count: int) -> None:
    """The clip has ``count`` frames; its first/last frames match source frames ``first``/``first+count-1``."""
    with open_video(clip) as c, open_video(src) as s:
        assert c.frame_count == count
        for k, j in ((0, first), (count - 1, first + count - 1)):
            got = c.frame(k)
            assert _mad(got, s.frame(j)) < 6
            near = [i for i in (j - 1, j + 1) if 0 <= i < s.frame_count]
            assert all(_mad(got, s.frame(j)) < _mad(got, s.frame(i)) for i in near)  # not a neighbour


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*")) if folder.exists() else []


def test_clips_are_frame_exact(video: Path, tmp_path: Path) -> None:
    reqs = [ClipRequest(3, 11, "annotator", "lean"), ClipRequest(29, 30, "model", "compensation")]
    paths = run_job(export_clips(video, reqs, tmp_path / "out"), stream=None)
    assert [p.name for p in paths] == ["source_annotator_f000003-000011.mp4", "source_model_f000029-000030.mp4"]
    _check_exact(paths[0], video, 3, 8)
    _check_exact(paths[1], video, 29, 1)
    side = json.loads(Path(str(paths[0]) + ".json").read_text(encoding="utf-8"))
    seg = side["segments"][0]
    assert (seg["start_frame"], seg["end_frame_excl"], seg["tier"], seg["label"]) == (3, 11, "annotator", "lean")
    assert seg["start_s"] == pytest.approx(0.12) and seg["end_s"] == pytest.approx(0.44)
    assert side["video"]["fingerprint"] and side["clip"]["frames"] == 8 and side["clip"]["codec"] == "h264"
    assert _files(tmp_path / "out") == sorted([p.name for p in paths] + [p.name + ".json" for p in paths])


def test_padding_is_clamped_and_merged_holds_every_segment(video: Path, tmp_path: Path) -> None:
    reqs = [ClipRequest(1, 5), ClipRequest(20, 28)]
    paths = run_job(export_clips(video, reqs, tmp_path, ClipOptions(padding=3)), stream=None)
    _check_exact(paths[0], video, 0, 8)  # 1-3 clamps at frame 0
    _check_exact(paths[1], video, 17, 13)  # 28+3 clamps at 30
    merged = run_job(export_clips(video, reqs, tmp_path / "m", ClipOptions(merged=True)), stream=None)
    assert len(merged) == 1 and merged[0].name == "source_model_clips.mp4"
    side = json.loads(Path(str(merged[0]) + ".json").read_text(encoding="utf-8"))
    assert [s["selected_clip_frames"] for s in side["segments"]] == [[0, 4], [4, 12]]
    with open_video(merged[0]) as c, open_video(video) as s:
        assert c.frame_count == 12
        assert _mad(c.frame(4), s.frame(20)) < 6 and _mad(c.frame(3), s.frame(4)) < 6


def test_variable_frame_rate_clip_keeps_frames_and_times(tmp_path: Path) -> None:
    vfr = make_vfr_video(tmp_path / "vfr.mp4")
    (path,) = run_job(export_clips(vfr, [ClipRequest(2, 9)], tmp_path / "o"), stream=None)
    _check_exact(path, vfr, 2, 7)
    with open_video(path) as c:
        np.testing.assert_allclose(c.times(), (np.array([80, 200, 233, 300, 500, 540, 541]) - 80) / 1000, atol=2e-3)


def test_burn_in_and_provenance(video: Path, tmp_path: Path) -> None:
    with open_video(video) as r:
        times = r.times()
    scores = bump_scores()
    folder = fake_analysis(tmp_path / "analysis", video, scores, times, heatmaps=True)
    opts = ClipOptions(heatmap=True, timestamp=True, score_strip=True)
    prov = {"model": "stan-test", "method": "smoothgrad", "normalisation": {"kind": "min-max"}}
    (path,) = run_job(
        export_clips(
            video,
            [ClipRequest(5, 11)],
            tmp_path / "b",
            opts,
            scores=scores,
            threshold=0.5,
            heatmaps=folder / "heatmaps.zip",
            provenance=prov,
        ),
        stream=None,
    )
    with open_video(path) as c, open_video(video) as s:
        assert c.frame_count == 6
        assert c.size[1] > s.size[1]  # the score strip is added under the picture
        top = c.frame(0)[: s.size[1]]
        assert _mad(top, s.frame(5)) > 3  # the heatmap and the timestamp changed the picture
    side = json.loads(Path(str(path) + ".json").read_text(encoding="utf-8"))
    assert side["analysis"]["model"] == "stan-test" and side["analysis"]["threshold"] == 0.5
    assert side["options"]["heatmap"] and side["segments"][0]["peak_score"] == pytest.approx(0.9)
    with pytest.raises(VideoError, match="heatmaps"):
        run_job(export_clips(video, [ClipRequest(0, 2)], tmp_path / "c", ClipOptions(heatmap=True)), stream=None)


def test_closing_the_job_leaves_no_file(video: Path, tmp_path: Path) -> None:
    out = tmp_path / "cancelled"
    job = export_clips(video, [ClipRequest(0, 10), ClipRequest(12, 30)], out)
    for _ in range(15):  # the first clip is complete, the second half-written
        next(job)
    job.close()  # what a GUI worker does on cancel
    assert _files(out) == []


def test_cancel_event_raises_cancelled_and_leaves_no_file(video: Path, tmp_path: Path) -> None:
    cancel = threading.Event()
    out = tmp_path / "cancelled"
    job = export_clips(video, [ClipRequest(0, 10), ClipRequest(12, 30)], out, ClipOptions(merged=True), cancel=cancel)
    seen = 0
    with pytest.raises(Cancelled):
        for _p in job:
            seen += 1
            if seen == 12:
                cancel.set()
    assert _files(out) == []


def test_failure_in_a_later_clip_removes_the_earlier_ones(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class DiskFull(clips_mod.VideoWriter):
        made = 0

        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            DiskFull.made += 1

        def write(self, frame: np.ndarray, pts: int | None = None) -> None:
            if DiskFull.made == 2 and self.frames_written == 3:
                self.abort()
                raise VideoError("cannot write video (the disk is full)", self.path)
            super().write(frame, pts)

    monkeypatch.setattr(clips_mod, "VideoWriter", DiskFull)
    out = tmp_path / "full"
    with pytest.raises(VideoError, match="disk is full"):
        run_job(export_clips(video, [ClipRequest(0, 5), ClipRequest(10, 20)], out), stream=None)
    assert _files(out) == []


@contextlib.contextmanager
def _mounted(folder: Path, options: str) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode(errors='replace').strip()})")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def _read_only_folder(folder: Path) -> Iterator[Path]:
    """chmod 555 for a normal user; a read-only mount for root (root writes through permissions)."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
    else:
        with _mounted(folder, "ro,size=64k"):
            yield folder


def test_read_only_target_folder_is_a_clear_error(video: Path, tmp_path: Path) -> None:
    with _read_only_folder(tmp_path / "ro") as ro:
        with pytest.raises(VideoError) as e:
            run_job(export_clips(video, [ClipRequest(0, 5)], ro), stream=None)
        assert str(ro) in str(e.value) and "not writable" in str(e.value)
        with pytest.raises(VideoError, match="cannot be created"):
            run_job(export_clips(video, [ClipRequest(0, 5)], ro / "sub"), stream=None)
        assert _files(ro) == []


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    big = make_video(tmp_path / "big.mp4", n=60, size=(320, 240))
    small = tmp_path / "small"
    with _mounted(small, "size=48k"):
        with pytest.raises(VideoError) as e:
            run_job(export_clips(big, [ClipRequest(0, 60)], small, ClipOptions(crf=0)), stream=None)
        assert "disk is full" in str(e.value) and str(small / "big_model_f000000-000060.mp4") in str(e.value)
        assert _files(small) == []
