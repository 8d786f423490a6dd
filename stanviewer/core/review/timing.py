"""Frames <-> seconds for exports and imports, from the video's presentation timestamps (DESIGN.md §3).

``FrameTimes.start_s(f)`` is the time of frame ``f`` (frame 0 at 0.0 s); the boundary ``f == N`` (the
end of an interval that runs to the last frame) is the end of the video (last frame's time plus its
duration). Imports map seconds back to the **nearest frame boundary**, so a time written with 3
decimals (BORIS) or whole milliseconds (ELAN) comes back to the same frame as long as frames are more
than 2 ms apart (anything under 500 fps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrameTimes"]


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

    def boundary_at(self, seconds: float) -> int:
        """The frame boundary (0..N) nearest to ``seconds``."""
        bounds = np.append(self.starts, self.end)
        k = int(np.searchsorted(bounds, seconds))
        if k <= 0:
            return 0
        if k >= bounds.size:
            return self.count
        return k if bounds[k] - seconds < seconds - bounds[k - 1] else k - 1
