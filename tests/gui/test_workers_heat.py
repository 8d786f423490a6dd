"""The frame grabber's heatmap reading: a damaged heatmaps file or chunk hides the overlay, never the frame."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from stanviewer.core.explain.heatmaps import CHUNK, HeatmapWriter
from stanviewer.qt.workers import _open_heat, _read_heat


def _heatmaps(path: Path, n: int) -> Path:
    w = HeatmapWriter(path, n, 64, 48, side=32)
    for i in range(n):
        w.put(i, np.full((w.h, w.w), i + 1.0, np.float32))
    return w.close()


def test_damaged_chunk_gives_no_overlay_for_its_frames_only(tmp_path: Path) -> None:
    good = _heatmaps(tmp_path / "good.zip", CHUNK + 3)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = b"not an array" if item.filename == "chunk_00001.npy" else src.read(item.filename)
            dst.writestr(item, data)
    reader = _open_heat(bad)
    assert reader is not None
    try:
        assert _read_heat(reader, 0, "video") is not None  # chunk 0 is intact
        assert _read_heat(reader, CHUNK + 1, "video") is None  # chunk 1 is damaged: no overlay, no exception
    finally:
        reader.close()


def test_unreadable_heatmaps_file_opens_as_none(tmp_path: Path) -> None:
    junk = tmp_path / "heatmaps.zip"
    junk.write_bytes(b"PK\x03\x04 truncated")
    assert _open_heat(junk) is None
    assert _open_heat(tmp_path / "missing.zip") is None
    assert _read_heat(None, 3, "video") is None


def test_a_job_is_over_when_sigdone_arrives_though_its_thread_is_still_ending(qtbot) -> None:
    """sigDone is emitted from the thread's last lines, so isRunning() can still be True in its slots: the
    analysis panel's Run button stayed disabled after a cancel (seen once in CI). job_over says it is over."""
    from PySide6.QtCore import Qt

    from stanviewer.qt.workers import JobWorker

    def job():
        yield from ()
        return 1

    seen: list[tuple[bool, bool]] = []
    w = JobWorker(job, "over")
    w.sigDone.connect(lambda: seen.append((w.isRunning(), w.job_over)), Qt.ConnectionType.DirectConnection)
    assert not w.job_over
    w.start()
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    w.wait(5000)
    assert seen == [(True, True)]
