"""Analyses run in one child process, so torch never runs (or even loads) in the GUI process.

Importing torch and running the model in a GUI-process thread stalls the GUI thread (a cold
``import torch`` held the GIL for up to 1.5 s on the 2-core development machine). Instead a single
long-lived child (``multiprocessing`` *spawn*, started on the first use) imports torch, keeps the last
checkpoint loaded and runs one job at a time, streaming messages over a pipe:

- parent -> child: ``("analyze", video, checkpoint, settings_dict)``, ``("devices",)``, ``("cancel",)``,
  ``("quit",)``;
- child -> parent: ``("progress", done, total, message, curve_or_None)``, ``("result", folder)``,
  ``("devices", [(text, name), ...])``, ``("error", kind, reason, path)``, ``("cancelled",)``.

:meth:`AnalysisServer.analyze` is a job (a generator yielding Progress) like any core job: the GUI runs
it in a :class:`~stanviewer.qt.workers.JobWorker`, and closing it (Cancel) asks the child to stop at its
next yield (the core job's ``finally`` blocks run there, so nothing half-written is left). This module
imports no Qt: the child imports it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing as mp
import os
import sys
import threading
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stanviewer.core.errors import StanError
from stanviewer.core.progress import Job, Progress

__all__ = ["AnalysisServer", "lower_priority", "nice_level", "server"]

log = logging.getLogger(__name__)
HEARTBEAT_S = 0.1


# --------------------------------------------------------------------------- the child
DEFAULT_NICE = 10


def nice_level() -> int:
    """How much below the GUI the analysis runs: ``STANVIEWER_ANALYSIS_NICE`` (default 10; 0 = the same)."""
    try:
        return max(0, int(os.environ.get("STANVIEWER_ANALYSIS_NICE", DEFAULT_NICE)))
    except ValueError:
        return DEFAULT_NICE


def lower_priority(target: int | None = None, pid: int = 0) -> str:
    """Run a process (``pid``; 0 = this one) below normal priority, so that the GUI process gets the cores
    first.

    An analysis keeps every core busy; at equal priority the operating system shares them with the GUI
    thread in time slices, and the window then misses its frames (``docs/benchmarks.md``). ``target`` is
    the absolute niceness (default: this process' own plus :func:`nice_level`), so that setting it twice —
    by the parent right after the start and by the child itself — is harmless. Returns what was done.
    """
    level = nice_level()
    if level <= 0:
        return "normal priority"
    try:
        if hasattr(os, "setpriority"):
            if target is None:
                target = os.getpriority(os.PRIO_PROCESS, 0) + level
            target = min(19, target)
            os.setpriority(os.PRIO_PROCESS, pid, target)
            return f"nice {target}"
        if sys.platform == "win32" and pid == 0:  # pragma: no cover - Windows
            import ctypes

            below_normal = 0x00004000
            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), below_normal)
            return "below normal priority"
    except OSError as e:  # not permitted: carry on at normal priority
        return f"normal priority ({e})"
    return "normal priority"


def _serve(conn: Any, nice: int | None = None) -> None:  # pragma: no cover - runs in the child process
    log.info("analysis process: %s", lower_priority(nice))
    cache: dict[tuple[str, float], Any] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind = msg[0]
        if kind == "quit":
            return
        if kind == "cancel":
            conn.send(("cancelled",))  # nothing was running
            continue
        try:
            if kind == "devices":
                conn.send(("devices", _devices()))
            elif kind == "analyze":
                _analyze(conn, cache, *msg[1:])
        except StanError as e:
            conn.send(("error", type(e).__name__, e.reason, None if e.path is None else str(e.path)))
        except BaseException as e:
            conn.send(("error", type(e).__name__, f"{e}\n{traceback.format_exc(limit=6)}", None))


def _devices() -> list[tuple[str, str]]:  # pragma: no cover - child
    import torch

    out = []
    if torch.cuda.is_available():
        for k in range(torch.cuda.device_count()):
            out.append((f"CUDA {k}: {torch.cuda.get_device_name(k)}", f"cuda:{k}"))
    mps_backend = getattr(torch.backends, "mps", None)
    if mps_backend is not None and mps_backend.is_available():
        out.append(("Apple MPS", "mps"))
    out.append((f"CPU ({torch.get_num_threads()} threads)", "cpu"))
    return out


def _analyze(conn: Any, cache: dict, video: str, ck_path: str, settings: dict) -> None:  # pragma: no cover
    import os

    from stanviewer.core.explain.result import AnalysisSettings
    from stanviewer.core.explain.store import analyze_video
    from stanviewer.core.models.checkpoint import load_checkpoint

    conn.send(("progress", 0, 0, "loading the model", None))
    key = (ck_path, os.path.getmtime(ck_path) if os.path.exists(ck_path) else 0.0)
    if key not in cache:
        cache.clear()
        cache[key] = load_checkpoint(ck_path)
    job = analyze_video(video, cache[key], AnalysisSettings(**settings))
    try:
        while True:
            if conn.poll() and conn.recv()[0] == "cancel":
                job.close()
                conn.send(("cancelled",))
                return
            try:
                p = next(job)
            except StopIteration as stop:
                _analysis, folder = stop.value
                conn.send(("result", str(folder)))
                return
            curve = p.partial.curve() if p.partial is not None else None
            conn.send(("progress", p.done, p.total, p.message, curve))
    finally:
        job.close()


# --------------------------------------------------------------------------- the parent
class AnalysisServer:
    """The child process and the pipe to it; one job at a time (others wait for the lock)."""

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()

    def _ensure(self) -> Any:
        if self._proc is None or not self._proc.is_alive():
            ctx = mp.get_context("spawn")
            parent, child = ctx.Pipe()
            # the niceness is set from here right after the start too: the child's interpreter start-up and
            # the import of the parent's main module (for the app, the CLI) run before its own call, and
            # at normal priority they competed with the window for the cores
            target = os.getpriority(os.PRIO_PROCESS, 0) + nice_level() if hasattr(os, "getpriority") else None
            self._proc = ctx.Process(target=_serve, args=(child, target), name="stanviewer-analysis", daemon=True)
            self._proc.start()
            if target is not None and nice_level() > 0:
                lower_priority(target, self._proc.pid)
            child.close()
            self._conn = parent
        return self._conn

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _recv(self, conn: Any) -> tuple | None:
        if not conn.poll(HEARTBEAT_S):
            if not self._proc.is_alive():
                raise StanError("the analysis process stopped unexpectedly (out of memory?)")
            return None
        return conn.recv()

    def analyze(self, video: str | Path, checkpoint: str | Path, settings: Any) -> Job[Path]:
        """A job: analyse ``video`` in the child; returns the analysis folder. Closing it cancels."""
        with self._lock:
            conn = self._ensure()
            conn.send(("analyze", str(video), str(checkpoint), asdict(settings)))
            finished = False
            last = Progress(0, 0, "starting the analysis process")
            try:
                yield last
                while True:
                    msg = self._recv(conn)
                    if msg is None:
                        yield Progress(last.done, last.total, last.message)  # lets a cancel through
                        continue
                    if msg[0] == "progress":
                        last = Progress(msg[1], msg[2], msg[3], partial=msg[4])
                        yield last
                    elif msg[0] == "result":
                        finished = True
                        return Path(msg[1])
                    elif msg[0] == "error":
                        finished = True
                        _raise(msg)
            finally:
                if not finished:
                    self._cancel(conn)

    def _cancel(self, conn: Any, timeout: float = 3.0) -> None:
        """Ask the child to stop the running job; if it does not answer within ``timeout`` (it only
        notices between windows, or it is still importing torch), stop the process: it restarts on the
        next use, and the unfinished result (no ``analysis.json``) is never offered."""
        import time

        try:
            conn.send(("cancel",))
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if conn.poll(0.1):
                    msg = conn.recv()
                    if msg[0] in ("cancelled", "result", "error"):
                        return
                elif not self._proc.is_alive():
                    return
        except (OSError, EOFError):
            pass
        log.info("the analysis process did not stop within %.0f s; stopping it", timeout)
        self.shutdown()

    def devices(self) -> Job[list[tuple[str, str]]]:
        """A job: the compute devices the child's torch sees."""
        with self._lock:
            conn = self._ensure()
            conn.send(("devices",))
            while True:
                yield Progress(0, 0, "checking devices")
                msg = self._recv(conn)
                if msg is None:
                    continue
                if msg[0] == "devices":
                    return msg[1]
                if msg[0] == "error":
                    _raise(msg)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Stop the child (at exit)."""
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return
        if conn is not None:  # None: the child is still starting (a window closed at once); just stop it
            with contextlib.suppress(OSError, EOFError, ValueError):
                conn.send(("quit",))
            proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout)
        if conn is not None:
            conn.close()


def _raise(msg: tuple) -> None:
    _, kind, reason, path = msg
    if kind in ("StanError", "VideoError", "CheckpointError", "LabelError", "Cancelled"):
        from stanviewer.core import errors

        raise getattr(errors, kind, StanError)(reason, path) if kind != "Cancelled" else errors.Cancelled(reason)
    raise StanError(f"{kind}: {reason}")


_SERVER: AnalysisServer | None = None


def server() -> AnalysisServer:
    """The process-wide analysis server (stopped at interpreter exit)."""
    global _SERVER
    if _SERVER is None:
        _SERVER = AnalysisServer()
        atexit.register(_SERVER.shutdown)
    return _SERVER
