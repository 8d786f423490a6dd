"""Background work: run core jobs off the GUI thread, and decode frames where the latest request wins.

:class:`JobWorker` runs a job (a generator yielding :class:`~stanviewer.core.progress.Progress`, DESIGN.md
§2) in a ``QThread``; :meth:`JobWorker.cancel` stops it at the next yield by not asking for the next item
(the generator is closed, so its ``finally`` blocks run in the worker thread). Same contract as superqt's
``GeneratorWorker``: ``sigReturned`` is not emitted after a cancel.

:class:`FrameGrabber` owns all decoding for the display (ephyviewer's ``QFrameGrabber``, Kinovea's
pre-buffer): requests replace each other (the latest wins), and when idle it reads ahead around the
playhead so that stepping and playing hit the reader's LRU cache. The GUI thread never seeks the decoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QThread, Signal

from stanviewer.core.errors import StanError
from stanviewer.core.progress import Job, Progress

__all__ = ["FrameGrabber", "Grabbed", "JobWorker", "Thumbnails", "live_workers"]

log = logging.getLogger(__name__)

_LIVE: set[QThread] = set()


def live_workers() -> list[QThread]:
    """Workers started by this module that are still running (for shutdown and tests)."""
    return [w for w in list(_LIVE) if w.isRunning()]


class JobWorker(QThread):
    """Run ``factory()`` (which returns a job generator) in a thread.

    The factory is called in the worker thread, so even the job's set-up (opening files, importing
    torch) stays off the GUI thread.

    Signals:
        sigProgress(Progress): after every yield.
        sigReturned(object): the job's return value (not after a cancel or an error).
        sigErrored(BaseException): the job raised.
        sigAborted(): the job was cancelled.
        sigDone(): always last, whatever happened.
    """

    sigProgress = Signal(object)
    sigReturned = Signal(object)
    sigErrored = Signal(object)
    sigAborted = Signal()
    sigDone = Signal()

    def __init__(self, factory: Callable[[], Job[Any]], name: str = "job") -> None:
        super().__init__()
        self._factory = factory
        self._abort = threading.Event()
        self.name = name
        self.setObjectName(f"stanviewer-{name}")
        self.started_at = 0.0
        # set in the worker thread just before sigDone: slots of sigDone run while the thread is still ending
        # (isRunning() is then still True), so "is the job over?" is asked of this, not of isRunning()
        self.job_over = False
        self.finished.connect(self._forget)

    def cancel(self) -> None:
        """Ask the job to stop at its next yield (returns at once)."""
        self._abort.set()

    @property
    def cancelled(self) -> bool:
        return self._abort.is_set()

    def start(self, *args: Any) -> None:
        _LIVE.add(self)
        self.started_at = time.monotonic()
        super().start(*args)

    def _forget(self) -> None:
        _LIVE.discard(self)

    def run(self) -> None:
        job = None
        try:
            job = self._factory()
            while True:
                if self._abort.is_set():
                    job.close()
                    self.sigAborted.emit()
                    return
                p = next(job)
                if self._abort.is_set():
                    continue  # close at the top of the loop
                self.sigProgress.emit(p)
        except StopIteration as stop:
            if self._abort.is_set():
                self.sigAborted.emit()
            else:
                self.sigReturned.emit(stop.value)
        except BaseException as e:
            if not isinstance(e, StanError):
                log.exception("job %s failed", self.name)
            self.sigErrored.emit(e)
        finally:
            self.job_over = True
            self.sigDone.emit()


def call_job(fn: Callable[[], Any], message: str = "") -> Job[Any]:
    """Wrap a plain function as a job (one Progress, then its result) for :class:`JobWorker`."""
    yield Progress(0, 0, message)
    return fn()


# --------------------------------------------------------------------------- frames
Size = tuple[int, int]


@dataclass
class Grabbed:
    """A decoded frame: ``rgb`` uint8 [H, W, 3] at ``size``; ``heat`` float32 [h, w] in [0, 1] or None."""

    index: int
    size: Size | None
    rgb: np.ndarray
    heat: np.ndarray | None
    requested: bool  # True when it answers a request (False: read-ahead)
    generation: int  # the source generation it belongs to (stale frames are ignored)
    t_request: float  # time.perf_counter() of the request (read-ahead: of the decode)


class FrameGrabber(QThread):
    """Decode frames in one thread. ``request(i, size)`` replaces any pending request.

    After each request it reads ahead ``ahead`` frames forward and ``behind`` backward (stopping as soon
    as a new request arrives). Heatmaps come from a :class:`~stanviewer.core.explain.heatmaps.HeatmapReader`
    opened in this thread.

    Signals:
        sigFrame(Grabbed): a frame was decoded (requested or read ahead).
        sigFailed(int, str): a requested frame could not be decoded.
    """

    sigFrame = Signal(object)
    sigFailed = Signal(int, str)

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("stanviewer-frame-grabber")
        self._cond = threading.Condition()
        self._request: tuple[int, Size | None, float] | None = None
        self._queue: list[tuple[int, Size | None]] = []
        self._stop = False
        self._reader: Any = None
        self._heat_path: Path | None = None
        self._heat_mode = "video"
        self._generation = 0
        self.ahead = 12
        self.behind = 8

    # ---------------------------------------------------------------- called from the GUI thread
    def set_source(self, reader: Any, heat_path: Path | None = None, heat_mode: str = "video") -> int:
        """Decode from ``reader`` (and ``heat_path``); returns the new generation number."""
        with self._cond:
            self._reader = reader
            self._heat_path = Path(heat_path) if heat_path else None
            self._heat_mode = heat_mode
            self._generation += 1
            self._request = None
            self._queue = []
            self._cond.notify()
            return self._generation

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def heat_mode(self) -> str:
        return self._heat_mode

    def request(self, index: int, size: Size | None) -> None:
        """Decode frame ``index`` at ``size`` next (drops a pending request and the read-ahead)."""
        with self._cond:
            self._request = (int(index), size, time.perf_counter())
            self._queue = []
            self._cond.notify()

    def readahead(self, indices: list[int], size: Size | None) -> None:
        """Decode these frames when idle (replaces the read-ahead queue; a request goes first)."""
        with self._cond:
            self._queue = [(int(i), size) for i in indices]
            self._cond.notify()

    def start(self, *args: Any) -> None:
        _LIVE.add(self)
        self.finished.connect(lambda: _LIVE.discard(self))
        super().start(*args)

    def stop(self, wait_ms: int = 5000) -> None:
        """Stop the thread and wait for it."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self.wait(wait_ms)

    # ---------------------------------------------------------------- the thread
    def run(self) -> None:
        heat_reader = None
        heat_open: tuple[Path | None, int] = (None, -1)
        while True:
            with self._cond:
                while not self._stop and self._request is None and not self._queue:
                    self._cond.wait()
                if self._stop:
                    break
                if self._request is not None:
                    index, size, t_req = self._request
                    self._request = None
                    requested = True
                    n = self._reader.frame_count if self._reader is not None else 0
                    fwd = [j for j in range(index + 1, index + 1 + self.ahead) if j < n]
                    back = [j for j in range(index - 1, index - 1 - self.behind, -1) if j >= 0]
                    # forward first (cheap: decoding continues), then one step back (one seek at most)
                    self._queue = [(j, size) for j in fwd] + [(j, size) for j in back]
                else:
                    index, size = self._queue.pop(0)
                    requested = False
                    t_req = time.perf_counter()
                reader, gen = self._reader, self._generation
                heat_path, heat_mode = self._heat_path, self._heat_mode
            if reader is None:
                continue
            try:
                if heat_open != (heat_path, gen):
                    if heat_reader is not None:
                        heat_reader.close()
                    heat_reader = _open_heat(heat_path)
                    heat_open = (heat_path, gen)
                rgb = reader.frame(index, size)
                heat = _read_heat(heat_reader, index, heat_mode)
            except (StanError, IndexError, OSError, ValueError, KeyError) as e:
                if requested:
                    self.sigFailed.emit(index, str(e))
                continue
            except Exception as e:
                log.exception("frame %d failed", index)
                if requested:
                    self.sigFailed.emit(index, f"{type(e).__name__}: {e}")
                continue
            self.sigFrame.emit(Grabbed(index, size, rgb, heat, requested, gen, t_req))
        if heat_reader is not None:
            heat_reader.close()


def _open_heat(path: Path | None) -> Any:
    if path is None or not Path(path).exists():
        return None
    from stanviewer.core.explain.heatmaps import HeatmapReader

    try:
        return HeatmapReader(path)
    except (StanError, OSError, KeyError, ValueError) as e:
        log.warning("heatmaps %s cannot be read: %s", path, e)
        return None


def _read_heat(heat_reader: Any, index: int, mode: str) -> np.ndarray | None:
    """The frame's heatmap, or None when there is none or its chunk is damaged (the frame still shows)."""
    if heat_reader is None:
        return None
    try:
        return heat_reader.get(index, mode)
    except StanError as e:  # HeatmapError: one damaged chunk must not hide the video
        log.warning("heatmap of frame %d cannot be read: %s", index, e)
        return None


# --------------------------------------------------------------------------- previews
class Thumbnails:
    """Low-resolution copies of the frames (every ``stride``-th), for an instant preview on a seek.

    Filled by :meth:`job` in a worker (one sequential decode with its own reader); read on the GUI
    thread. Memory is bounded by ``budget`` bytes: long videos keep every ``stride``-th frame only.
    """

    def __init__(self, n_frames: int, video_size: Size, side: int = 160, budget: int = 96 << 20) -> None:
        vw, vh = video_size
        s = min(1.0, side / max(vw, vh))
        self.size: Size = (max(2, round(vw * s)), max(2, round(vh * s)))
        w, h = self.size
        self.n = n_frames
        self.stride = max(1, -(-n_frames * w * h * 3 // budget))
        m = -(-n_frames // self.stride)
        self.data = np.zeros((m, h, w, 3), np.uint8)
        self.ready = np.zeros(m, bool)

    def get(self, i: int) -> tuple[int, np.ndarray] | None:
        """(frame index, picture) of the stored frame nearest to ``i``, or None if not decoded yet."""
        k = min(max(int(round(i / self.stride)), 0), len(self.ready) - 1)
        return (k * self.stride, self.data[k]) if self.ready[k] else None

    def job(self, path: Path) -> Job[int]:
        """Decode the video once at thumbnail size (a job; returns the number of frames stored)."""
        from stanviewer.core.video import open_video

        yield Progress(0, self.n, "previews")
        stored = 0
        with open_video(path) as reader:
            for i, frame in reader.iter_frames(0, self.n, size=self.size):
                if i % self.stride == 0:
                    self.data[i // self.stride] = frame
                    self.ready[i // self.stride] = True
                    stored += 1
                if i % 50 == 0:
                    yield Progress(i, self.n, "previews")
        return stored
