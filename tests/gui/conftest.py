"""Fixtures for the app's tests (pytest-qt, offscreen): windows, tiny videos, analyses, a tiny model.

Every test fails if it leaves one of the app's QThreads running (napari's ``_dangling_qthreads``).
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from gui_helpers import N_FRAMES, bump_scores, write_fake_analysis
from PySide6.QtWidgets import QApplication


@pytest.fixture(autouse=True)
def _no_dangling_qthreads() -> Iterator[None]:
    """Fail a test that leaves a worker or frame-grabber thread running after its window closed."""
    yield
    from stanviewer.qt.workers import live_workers

    deadline = time.monotonic() + 2.0
    while live_workers() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    left = live_workers()
    names = [w.objectName() for w in left]
    for w in left:  # do not let them leak into the next test either
        if hasattr(w, "cancel"):
            w.cancel()
        if hasattr(w, "stop"):
            w.stop()
        w.wait(60000)
    assert not left, f"QThreads left running: {names}"


@pytest.fixture(scope="session", autouse=True)
def _qt_config() -> None:
    from stanviewer.qt.app import make_app

    make_app()


@pytest.fixture
def window(qtbot, tmp_path: Path):
    """A main window with its own settings file; closed (and its threads stopped) after the test.

    Its segments are the plain runs of frames at or above the threshold (minimum length and merge gap 0 s,
    so that tests can count them); ``test_segment_options_default_to_seconds`` covers the app's defaults."""
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    settings = AppSettings(tmp_path / "settings.ini")
    settings.set_segment_seconds(0.0, 0.0)
    w = MainWindow(settings=settings, probe_devices=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    w.activateWindow()
    yield w
    w.close()


@pytest.fixture(scope="session")
def test_video(make_video: Callable[..., Path]) -> Path:
    """120 frames, 96x64, 25 fps, H.264 with B-frames and a 30-frame GOP."""
    return make_video("gui_main.mp4", N_FRAMES, "h264", gop=30)


@pytest.fixture(scope="session")
def analysed_video(test_video: Path) -> Path:
    """The test video with a cached fake analysis (scores :func:`bump_scores`)."""
    write_fake_analysis(test_video, bump_scores())
    return test_video
