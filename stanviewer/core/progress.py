"""Long jobs are generators that yield :class:`Progress` and ``return`` their result.

The CLI drains them with a progress bar (:func:`run_job`); the GUI runs them in a worker and cancels by
not asking for the next item. A job may attach a partial result to its progress so that a viewer can
draw it as it grows.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal, TextIO, TypeVar

R = TypeVar("R")


@dataclass
class Progress:
    """How far a job is.

    Attributes:
        done: units finished so far.
        total: units in all (0 when unknown).
        message: what the job is doing now.
        partial: optional partial result (e.g. scores computed so far).
    """

    done: int
    total: int
    message: str = ""
    partial: Any = None

    @property
    def fraction(self) -> float:
        return 0.0 if self.total <= 0 else min(1.0, self.done / self.total)


Job = Generator[Progress, None, R]


def nested(job: Job[R], done: int, total: int, label: str) -> Job[R]:
    """Run ``job`` as step ``done`` of ``total`` of an outer job; returns its result.

    Its progress is re-yielded on the outer scale (so a bar shows how far the whole batch is), with the
    inner step in the message: ``"label: inner message (3/20)"``; partial results are passed on.
    """
    try:
        while True:
            p = next(job)
            inner = f" ({p.done}/{p.total})" if p.total > 0 else ""
            yield Progress(done, total, f"{label}: {p.message}{inner}", p.partial)
    except StopIteration as stop:
        return stop.value


def run_job(
    job: Job[R],
    *,
    stream: TextIO | Literal["stderr"] | None = "stderr",
    on_progress: Callable[[Progress], None] | None = None,
    min_interval: float = 0.2,
) -> R:
    """Drain a job, drawing a one-line progress bar on ``stream`` (a tty) and returning its result.

    ``stream`` defaults to the ``sys.stderr`` of the moment of the call (not of the import, which a
    redirection or a test's capture may have replaced since); ``None`` draws nothing.
    """
    if stream == "stderr":
        stream = sys.stderr
    eta = Eta()
    last = 0.0
    drew = False
    tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
    try:
        while True:
            p = next(job)
            if on_progress is not None:
                on_progress(p)
            now = time.monotonic()
            left = eta.seconds_left(p, now)
            if stream is not None and (now - last >= min_interval):
                last = now
                line = format_progress(p, left)
                if tty:
                    stream.write("\r" + line[:120].ljust(120))
                    drew = True
                else:
                    stream.write(line + "\n")
                stream.flush()
    except StopIteration as stop:
        if drew and stream is not None:
            stream.write("\r" + " " * 120 + "\r")
            stream.flush()
        return stop.value


class Eta:
    """Time left in the current phase of a job, from that phase's own pace.

    A job's progress restarts when it moves to a new phase (reading the video, then scoring its windows):
    the count and its total change. Measured from the job's start, the first reports of a phase gave an
    ETA 100x too long; each phase is timed from its own first report instead, and none is given before
    it has run for ``settle`` seconds.
    """

    def __init__(self, settle: float = 0.5) -> None:
        self.settle = settle
        self._phase: tuple[int, str] | None = None
        self._t0 = 0.0
        self._done0 = 0

    def seconds_left(self, p: Progress, now: float | None = None) -> float | None:
        """Seconds left in ``p``'s phase, None while unknown."""
        now = time.monotonic() if now is None else now
        if p.total <= 0:
            return None
        phase = (p.total, p.message.split(":", 1)[0])
        if phase != self._phase or p.done < self._done0:
            self._phase, self._t0, self._done0 = phase, now, p.done
            return None
        dt, done = now - self._t0, p.done - self._done0
        if done <= 0 or dt < self.settle:
            return None
        return dt / done * (p.total - p.done)


def format_eta(seconds: float | None) -> str:
    """``m:ss`` (or ``--:--`` when unknown)."""
    if seconds is None or seconds != seconds:
        return "--:--"
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def format_progress(p: Progress, eta: float | None) -> str:
    """``[#####-----]  42%  12/30  eta 0:31  message`` (``eta``: seconds left in this phase, or None)."""
    width = 24
    if p.total > 0:
        frac = p.fraction
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        return f"[{bar}] {frac * 100:3.0f}%  {p.done}/{p.total}  eta {format_eta(eta)}  {p.message}"
    return f"[{'?' * width}] {p.done}  {p.message}"
