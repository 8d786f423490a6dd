"""The document model: one source of truth for every number on screen.

A :class:`Session` holds the open video, its analysis (final, or partial while it runs), the threshold
and segment options, the flagged segments, the current frame, the selected segment, the overlay
settings and read-only label tiers. Views take the session in ``__init__``, subscribe to its ``sig…``
signals and call its setters; they never keep their own copy of the data. The only Qt it uses is
``QObject``/``Signal``; all arithmetic (segments, their statistics, navigation) is plain numpy, and
flagged segments always come from :func:`stanviewer.core.explain.segments.segments_from_scores`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from stanviewer.core.errors import StanError
from stanviewer.core.explain.overlay import DEFAULT_FLOOR
from stanviewer.core.explain.segments import Segment, SegmentOptions, format_threshold, segments_from_scores

if TYPE_CHECKING:  # the scoring module imports torch; the window must not wait for it
    from stanviewer.core.explain.scoring import Analysis

__all__ = ["Overlay", "Session", "Tier", "find_label_file", "segment_stats"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Overlay:
    """How the heatmap and ROI box are drawn over the video."""

    visible: bool = True
    opacity: float = 0.5
    colormap: str = "inferno"
    relative_to: str = "video"  # video | frame (HeatmapReader.get)
    floor: float = DEFAULT_FLOOR  # map values at or under it are not drawn (stanviewer.core.explain.overlay)
    roi_visible: bool = False


def curve_name(analysis: Analysis) -> str:
    """How an analysis' curve is named for comparison: its method and its model (``vanilla · cnn-…``)."""
    model = (analysis.meta.get("model") or {}).get("name", "?")
    return f"{analysis.meta.get('method', '?')} · {model}"


@dataclass(frozen=True)
class RunInfo:
    """A running analysis: its method, its model (checkpoint SHA-256) and the threshold its curve is cut at
    (the one remembered for that model and method, else the model's calibrated one)."""

    method: str
    model_key: str
    threshold: float


@dataclass
class Tier:
    """A read-only lane of intervals ``[start, end)`` beneath the timeline."""

    name: str
    intervals: list[tuple[int, int]] = field(default_factory=list)
    source: str = ""  # where it comes from (file, "model")
    color: tuple[int, int, int] = (90, 140, 220)


def segment_stats(scores: np.ndarray, segments: list[Segment]) -> tuple[np.ndarray, np.ndarray]:
    """Peak and mean score of each segment (float64 [S] each; NaN scores are ignored)."""
    if not segments:
        return np.zeros(0), np.zeros(0)
    s = np.asarray(scores, np.float64)
    starts = np.array([g.start for g in segments], np.int64)
    ends = np.array([g.end for g in segments], np.int64)
    ok = np.isfinite(s)
    cs = np.concatenate([[0.0], np.cumsum(np.where(ok, s, 0.0))])
    cn = np.concatenate([[0], np.cumsum(ok)])
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cs[ends] - cs[starts]) / (cn[ends] - cn[starts])
    padded = np.concatenate([np.where(ok, s, -np.inf), [-np.inf]])
    bounds = np.empty(2 * len(segments), np.int64)
    bounds[0::2], bounds[1::2] = starts, ends
    peak = np.maximum.reduceat(padded, bounds)[0::2]
    return np.where(np.isfinite(peak), peak, np.nan), mean


def find_label_file(video: Path) -> Path | None:
    """A per-frame label file for ``video``: ``<stem>.labels.csv`` beside it, or ``../labels/<stem>.csv``
    (the layout of ``stanviewer synth`` data sets)."""
    for cand in (video.with_suffix(".labels.csv"), video.parent.parent / "labels" / f"{video.stem}.csv"):
        if cand.is_file():
            return cand
    return None


class Session(QObject):
    """The open video and everything derived from it.

    Signals:
        sigVideoChanged(): a video was opened or closed.
        sigAnalysisChanged(): the final analysis changed (or was cleared).
        sigScoresChanged(): the curve changed (final analysis or a running analysis' partial scores).
        sigThresholdChanged(float): the threshold changed.
        sigSegmentsChanged(): the flagged segments changed (threshold, options or scores).
        sigFrameChanged(int): the current frame changed.
        sigSelectedChanged(int): the selected segment (row, -1 for none) changed.
        sigOverlayChanged(): overlay settings changed.
        sigCurvesChanged(): the set of other methods' curves changed.
        sigTiersChanged(): the label tiers changed.
    """

    sigVideoChanged = Signal()
    sigAnalysisChanged = Signal()
    sigScoresChanged = Signal()
    sigThresholdChanged = Signal(float)
    sigSegmentsChanged = Signal()
    sigFrameChanged = Signal(int)
    sigSelectedChanged = Signal(int)
    sigOverlayChanged = Signal()
    sigCurvesChanged = Signal()
    sigTiersChanged = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.reader: Any = None  # stanviewer.core.video.VideoReader
        self.times = np.zeros(0)
        self.analysis: Analysis | None = None
        self.analysis_folder: Path | None = None
        self.partial: np.ndarray | None = None
        self.run: RunInfo | None = None  # the analysis whose partial curves are (or will be) shown
        self._kept_threshold: float | None = None  # the threshold shown before the run's first partial
        self.threshold = 0.5
        self.options = SegmentOptions()
        # (minimum duration, merge gap) in seconds, turned into ``options`` at each video's frame rate; None
        # while options are set in frames (set_options)
        self.segment_seconds: tuple[float, float] | None = None
        self.segments: list[Segment] = []
        self.peaks = np.zeros(0)
        self.means = np.zeros(0)
        self.frame = 0
        self.selected = -1
        self.overlay = Overlay()
        self.curves: dict[str, np.ndarray] = {}  # other methods' scores (cached analyses)
        self.label_tiers: list[Tier] = []
        self.roi_boxes: np.ndarray | None = None

    # ---------------------------------------------------------------- read-only views of the state
    @property
    def frame_count(self) -> int:
        return 0 if self.reader is None else int(self.reader.frame_count)

    @property
    def fps(self) -> float:
        return 0.0 if self.reader is None else float(self.reader.info.fps)

    @property
    def scores(self) -> np.ndarray | None:
        """The curve on screen: the final scores, or the partial ones while an analysis runs."""
        if self.partial is not None:
            return self.partial
        return None if self.analysis is None else self.analysis.scores

    @property
    def method(self) -> str | None:
        """The method of the curve on screen (a running analysis' while its partial curve is shown)."""
        if self.partial is not None and self.run is not None:
            return self.run.method
        return None if self.analysis is None else str(self.analysis.meta.get("method"))

    @property
    def model_key(self) -> str | None:
        """Identifies the model of the curve on screen (checkpoint SHA-256), for per-model settings."""
        if self.partial is not None and self.run is not None:
            return self.run.model_key
        if self.analysis is None:
            return None
        m = self.analysis.meta.get("model", {})
        return str(m.get("sha256") or m.get("name") or "unknown")

    def time_of(self, i: int) -> float:
        return float(self.times[i]) if 0 <= i < len(self.times) else 0.0

    def score_at(self, i: int) -> float | None:
        s = self.scores
        if s is None or not 0 <= i < len(s) or not np.isfinite(s[i]):
            return None
        return float(s[i])

    def tiers(self) -> list[Tier]:
        """The lanes beneath the timeline: the model's flagged segments, then label files. The model's lane is
        there as soon as a video is open (empty until an analysis shows): a lane appearing with the first
        partial curve re-laid out the whole timeline in that event, the longest GUI stall of a run."""
        if self.scores is None and self.reader is None:
            return list(self.label_tiers)
        shown = self.scores is not None
        name = f"model ≥ {format_threshold(self.threshold)}" if shown else "model"
        spans = [(g.start, g.end) for g in self.segments] if shown else []
        return [Tier(name, spans, source="model", color=(230, 120, 40)), *self.label_tiers]

    # ---------------------------------------------------------------- video
    def set_video(self, reader: Any, path: Path | None = None) -> None:
        """Show ``reader`` (a VideoReader; None closes). Clears the analysis; closes the old reader."""
        old = self.reader
        self.reader = reader
        self.path = None if reader is None else Path(path or reader.path)
        self.times = np.zeros(0) if reader is None else reader.times()
        self.analysis, self.analysis_folder, self.partial = None, None, None
        self.run, self._kept_threshold = None, None
        if self.segment_seconds is not None and reader is not None:
            self.options = self._options_from_seconds()
        self.curves, self.roi_boxes, self.selected, self.frame = {}, None, -1, 0
        self.label_tiers = []
        self._recompute_segments(emit=False)
        self.sigVideoChanged.emit()
        self.sigAnalysisChanged.emit()
        self.sigScoresChanged.emit()
        self.sigSegmentsChanged.emit()
        self.sigCurvesChanged.emit()
        self.sigTiersChanged.emit()
        self.sigFrameChanged.emit(0)
        if old is not None and old is not reader:
            old.close()

    def set_label_tiers(self, tiers: list[Tier]) -> None:
        self.label_tiers = list(tiers)
        self.sigTiersChanged.emit()

    # ---------------------------------------------------------------- analysis
    def set_analysis(
        self, analysis: Analysis | None, folder: Path | None = None, threshold: float | None = None
    ) -> None:
        """Show a finished analysis (None clears). ``threshold`` overrides the analysis' default."""
        if analysis is not None and len(analysis.scores) != self.frame_count:
            raise StanError(
                f"the analysis has {len(analysis.scores)} frames, the video {self.frame_count}; "
                "it belongs to another video",
                folder,
            )
        made_of = None if analysis is None else (analysis.meta.get("video") or {}).get("fingerprint")
        if made_of and self.reader is not None and made_of != self.reader.info.fingerprint:
            raise StanError("the analysis is of another video (its fingerprint differs)", folder)
        self.analysis, self.analysis_folder, self.partial = analysis, folder, None
        self.run, self._kept_threshold = None, None
        if analysis is not None:
            t = threshold if threshold is not None else float(analysis.meta.get("threshold", 0.5))
            self.threshold = float(np.clip(t, 0.0, 1.0))
            if len(analysis.scores) == self.frame_count:  # kept for comparison once another one is shown
                self.curves[curve_name(analysis)] = analysis.scores
        self.sigAnalysisChanged.emit()
        self.sigScoresChanged.emit()
        self.sigThresholdChanged.emit(self.threshold)
        self.sigCurvesChanged.emit()
        self._recompute_segments()

    def begin_run(self, run: RunInfo) -> None:
        """An analysis started: its partial curves will be cut at ``run.threshold`` (its model and method's),
        from the first partial on; until then the curve on screen keeps its own threshold."""
        self.run = run

    def set_partial(self, curve: np.ndarray | None) -> None:
        """Scores of a running analysis (NaN where not reached yet); None when it ends. If it ends without a
        result (cancelled, failed), the threshold shown before it comes back."""
        if curve is not None and len(curve) != self.frame_count:
            return
        first = curve is not None and self.partial is None
        self.partial = None if curve is None else np.asarray(curve, np.float32)
        changed = False
        if first and self.run is not None:
            self._kept_threshold = self.threshold
            changed = self.run.threshold != self.threshold
            self.threshold = self.run.threshold
        elif curve is None:
            if self._kept_threshold is not None:
                changed = self._kept_threshold != self.threshold
                self.threshold = self._kept_threshold
            self.run, self._kept_threshold = None, None
        self.sigScoresChanged.emit()
        if changed:
            self.sigThresholdChanged.emit(self.threshold)
        self._recompute_segments()

    def set_curves(self, curves: dict[str, np.ndarray]) -> None:
        """Scores of the video's analyses, named by :func:`curve_name` (toggleable on the timeline; the one on
        screen is left out there)."""
        n = self.frame_count
        self.curves = {k: v for k, v in curves.items() if len(v) == n}
        if self.analysis is not None and len(self.analysis.scores) == n:
            self.curves[curve_name(self.analysis)] = self.analysis.scores
        self.sigCurvesChanged.emit()

    def set_roi_boxes(self, boxes: np.ndarray | None) -> None:
        self.roi_boxes = boxes
        self.sigOverlayChanged.emit()

    # ---------------------------------------------------------------- threshold and segments
    def set_threshold(self, t: float) -> None:
        t = float(np.clip(round(float(t), 4), 0.0, 1.0))
        if t == self.threshold:
            return
        self.threshold = t
        self.sigThresholdChanged.emit(t)
        self._recompute_segments()

    def set_options(self, options: SegmentOptions) -> None:
        """Segment options in frames (they stay when another video opens)."""
        self.segment_seconds = None
        self._set_options(options)

    def set_segment_seconds(self, min_seconds: float, merge_seconds: float) -> None:
        """Drop flagged segments shorter than ``min_seconds`` and join those at most ``merge_seconds`` apart,
        at this (and every later) video's frame rate."""
        self.segment_seconds = (max(0.0, float(min_seconds)), max(0.0, float(merge_seconds)))
        self._set_options(self._options_from_seconds())

    def _options_from_seconds(self) -> SegmentOptions:
        assert self.segment_seconds is not None
        times = self.times if len(self.times) else None  # a variable frame rate: seconds of its own frames
        return SegmentOptions.from_seconds(self.fps, *self.segment_seconds, self.options.hysteresis, times)

    def _set_options(self, options: SegmentOptions) -> None:
        if options == self.options:
            return
        self.options = options
        self._recompute_segments()

    def _recompute_segments(self, emit: bool = True) -> None:
        s = self.scores
        sel = self.segments[self.selected] if 0 <= self.selected < len(self.segments) else None
        if s is None:
            self.segments, self.peaks, self.means = [], np.zeros(0), np.zeros(0)
        else:
            self.segments = segments_from_scores(s, self.threshold, self.options)
            self.peaks, self.means = segment_stats(s, self.segments)
        new_sel = -1
        if sel is not None:  # keep the selection on the segment that overlaps the old one most
            best = 0
            for k, g in enumerate(self.segments):
                ov = min(g.end, sel.end) - max(g.start, sel.start)
                if ov > best:
                    best, new_sel = ov, k
        if emit:
            self.sigSegmentsChanged.emit()
            self.sigTiersChanged.emit()
        if new_sel != self.selected:
            self.selected = new_sel
            if emit:
                self.sigSelectedChanged.emit(new_sel)

    # ---------------------------------------------------------------- navigation
    def set_frame(self, i: int) -> None:
        n = self.frame_count
        if n == 0:
            return
        i = int(min(max(int(i), 0), n - 1))
        if i == self.frame:
            return
        self.frame = i
        self.sigFrameChanged.emit(i)

    def step(self, frames: int) -> None:
        self.set_frame(self.frame + frames)

    def seek_time(self, seconds: float) -> None:
        if self.reader is not None:
            self.set_frame(self.reader.index_at_time(seconds))

    def step_seconds(self, seconds: float) -> None:
        self.seek_time(self.time_of(self.frame) + seconds)

    def select_segment(self, row: int, jump: bool = True) -> None:
        """Select segment ``row`` (-1: none); ``jump`` moves the playhead to its first frame."""
        row = row if 0 <= row < len(self.segments) else -1
        if row != self.selected:
            self.selected = row
            self.sigSelectedChanged.emit(row)
        if jump and row >= 0:
            self.set_frame(self.segments[row].start)

    def next_segment(self) -> None:
        """Jump to the first flagged segment that starts after the current frame."""
        for k, g in enumerate(self.segments):
            if g.start > self.frame:
                self.select_segment(k)
                return

    def previous_segment(self) -> None:
        """Jump to the start of the segment containing the frame, or of the previous one."""
        for k in range(len(self.segments) - 1, -1, -1):
            if self.segments[k].start < self.frame:
                self.select_segment(k)
                return

    def segment_at(self, i: int) -> int:
        """Row of the segment containing frame ``i`` (-1: none)."""
        starts = [g.start for g in self.segments]
        k = int(np.searchsorted(starts, i, side="right")) - 1
        return k if k >= 0 and self.segments[k].end > i else -1

    # ---------------------------------------------------------------- overlay
    def set_overlay(self, **changes: Any) -> None:
        new = replace(self.overlay, **changes)
        if new != self.overlay:
            self.overlay = new
            self.sigOverlayChanged.emit()

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
