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
    start = time.monotonic()
    last = 0.0
    drew = False
    tty = stream is not None and hasattr(stream, "isatty") and stream.isatty()
    try:
        while True:
            p = next(job)
            if on_progress is not None:
                on_progress(p)
            now = time.monotonic()
            if stream is not None and (now - last >= min_interval):
                last = now
                line = format_progress(p, now - start)
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


def format_progress(p: Progress, elapsed: float) -> str:
    """``[#####-----]  42%  12/30  eta 0:31  message``."""
    width = 24
    if p.total > 0:
        frac = p.fraction
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        eta = elapsed / frac - elapsed if frac > 0 else float("nan")
        eta_s = "--:--" if eta != eta else f"{int(eta) // 60}:{int(eta) % 60:02d}"
        return f"[{bar}] {frac * 100:3.0f}%  {p.done}/{p.total}  eta {eta_s}  {p.message}"
    return f"[{'?' * width}] {p.done}  {p.message}"
