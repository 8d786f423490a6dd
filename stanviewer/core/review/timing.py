"""Frames <-> seconds for exports and imports, from the video's presentation timestamps (DESIGN.md §3).

``FrameTimes.start_s(f)`` is the time of frame ``f`` (frame 0 at 0.0 s); the boundary ``f == N`` (the
end of an interval that runs to the last frame) is the end of the video (last frame's time plus its
duration). Imports map seconds back to the **nearest frame boundary**, so a time written with 3
decimals (BORIS) or whole milliseconds (ELAN) comes back to the same frame as long as frames are more
than 2 ms apart (anything under 500 fps).

Times that are not a range of the video are refused, not clamped onto the first or last frame
(:meth:`FrameTimes.range_problem`, the one rule of every import that reads seconds): not a number,
negative, a start after the end of the video (half a millisecond of rounding allowed), a stop more than
0.1 s (or one frame, when longer) after it, or a stop before the start. The slack on the stop is for
another program (ELAN, BORIS) that measured the video's duration a little longer: such a stop means the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["STOP_SLACK_S", "FrameTimes"]

#: how far (seconds) an imported stop may lie after the end of the video and still mean its end (module doc)
STOP_SLACK_S = 0.1


@dataclass(frozen=True)
class FrameTimes:
    """Seconds of every frame of one video.

    Attributes:
        starts: float64 [N], seconds of each frame relative to frame 0 (increasing).
        end: seconds at which the last frame ends (the video's duration).
    """

    starts: np.ndarray
    end: float

    @property
    def count(self) -> int:
        return int(self.starts.shape[0])

    @classmethod
    def from_reader(cls, reader: object) -> FrameTimes:
        """From an open :class:`~stanviewer.core.video.VideoReader` (exact, variable frame rates too)."""
        times = reader.times()  # type: ignore[attr-defined]
        return cls(np.asarray(times, np.float64), float(reader.info.duration_s))  # type: ignore[attr-defined]

    @classmethod
    def from_times(cls, times: np.ndarray) -> FrameTimes:
        """From per-frame times alone (e.g. an analysis' ``time_s``); the last frame lasts the median step."""
        t = np.asarray(times, np.float64)
        step = float(np.median(np.diff(t))) if t.size > 1 else 0.04
        return cls(t, float(t[-1] + step) if t.size else 0.0)

    @classmethod
    def from_fps(cls, n_frames: int, fps: float) -> FrameTimes:
        """Constant frame rate (only when the video itself is not available)."""
        return cls(np.arange(n_frames, dtype=np.float64) / fps, n_frames / fps)

    def start_s(self, frame: int) -> float:
        """Seconds of frame boundary ``frame`` (0..N; N is the end of the video)."""
        if frame >= self.count:
            return self.end
        return float(self.starts[max(0, frame)])

    def ms(self, frame: int) -> int:
        """Whole milliseconds of frame boundary ``frame`` (``round(pts * 1000)``)."""
        return int(round(self.start_s(frame) * 1000.0))

    def range_problem(self, t0: float, t1: float) -> str | None:
        """Why ``t0``..``t1`` seconds are not a time range inside this video (module doc), or None."""
        rounding = 0.0005 + 1e-9  # times written with 3 decimals or whole milliseconds
        last = self.end - float(self.starts[-1]) if self.count else 0.0
        slack = max(last, STOP_SLACK_S)
        inside = (
            math.isfinite(t0)
            and math.isfinite(t1)
            and 0.0 <= t0 <= t1
            and t0 <= self.end + rounding
            and t1 <= self.end + slack
        )
        return None if inside else f"times {t0:g}-{t1:g} s are not a range inside the video (0-{self.end:.3f} s)"

    def boundary_at(self, seconds: float) -> int:
        """The frame boundary (0..N) nearest to ``seconds``."""
        bounds = np.append(self.starts, self.end)
        k = int(np.searchsorted(bounds, seconds))
        if k <= 0:
            return 0
        if k >= bounds.size:
            return self.count
        return k if bounds[k] - seconds < seconds - bounds[k - 1] else k - 1
