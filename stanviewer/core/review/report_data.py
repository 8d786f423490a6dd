"""What a review report shows, gathered without Qt (the PDF itself is drawn by ``stanviewer.qt.report``).

:func:`gather` collects, for one video: the provenance lines (video, review status and reviewer, model,
method, threshold, normalisation, prediction), the per-frame scores and times, every tier's intervals,
and one row per segment (the ``model`` tier's flagged segments first, then each human tier's
intervals) with a thumbnail of its key frame — the peak-score frame when scores exist, else the middle
frame — plain and with the heatmap overlay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from stanviewer import DISCLAIMER, __version__
from stanviewer.core.explain.segments import format_threshold
from stanviewer.core.review.model import Tier
from stanviewer.core.review.reviewfile import Review
from stanviewer.core.review.timing import FrameTimes

__all__ = ["ReportData", "ReportRow", "gather"]


@dataclass
class ReportRow:
    """One segment of the table."""

    tier: str
    label: str
    start: int
    end: int  # exclusive
    start_s: float
    end_s: float
    key_frame: int
    peak: float | None
    thumb: np.ndarray | None = None  # uint8 [h, w, 3]
    thumb_heat: np.ndarray | None = None


@dataclass
class ReportData:
    """Everything one report page set needs."""

    title: str
    facts: list[tuple[str, str]]
    n_frames: int
    duration_s: float
    times: np.ndarray
    scores: np.ndarray | None
    threshold: float | None
    tiers: list[Tier]
    rows: list[ReportRow]
    more_rows: int
    disclaimer: str = DISCLAIMER
    notes: list[str] = field(default_factory=list)


def _fmt_s(t: float) -> str:
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m)}:{s:06.3f}"


def _frames_s(k: int, fps: float) -> str:
    return f"{k / fps:.2f} s = {k} frames" if fps and fps > 0 else f"{k} frames"


def _facts(review: Review, analysis: Any, threshold: float | None) -> list[tuple[str, str]]:
    v = review.video
    lab = review.labels
    out = [
        ("Video", v.path),
        ("Fingerprint", v.fingerprint[:16] + "…"),
        ("Frames", f"{v.frames} (0-based, end-exclusive ranges), {v.fps:.3f} fps, {_fmt_s(v.duration_s)}"),
        ("Review status", lab.status.replace("_", " ")),
        ("Reviewer", lab.reviewer or "—"),
        ("Last change", review.modified.replace("T", " ").replace("Z", " UTC")),
    ]
    prop = lab.proposal
    meta = dict(prop.meta) if prop is not None else {}
    if analysis is not None:
        am = analysis.meta
        model = am.get("model", {})
        pred = am.get("prediction", {})
        probs = pred.get("probabilities", {})
        norm = am.get("normalisation", {})
        params = am.get("method_params") or {}
        out += [
            ("Model", f"{model.get('name', '?')} (SHA-256 {str(model.get('sha256', ''))[:12]}…)"),
            ("Explained class", str(am.get("target", "?"))),
            (
                "Model output",
                f"{pred.get('class', '?')} (p = {probs.get(pred.get('class'), float('nan')):.2f}; not a diagnosis)"
                if pred
                else "—",
            ),
            ("Method", f"{am.get('method', '?')}" + (f" {params}" if params else "")),
            (
                "Normalisation",
                f"{norm.get('kind', '?')}"
                + (f", clip percentiles {norm['clip_percentiles']}" if norm.get("clip_percentiles") else "")
                + (f", pixels -> frame: {norm['aggregate']}" if norm.get("aggregate") else ""),
            ),
        ]
    elif meta:
        out += [("Model", str(meta.get("model", "?"))), ("Method", str(meta.get("method", "?")))]
    else:
        out.append(("Model", "no analysis attached"))
    if threshold is not None:
        seg = meta.get("segment_options") or {}
        extra = ""
        if seg:  # in seconds, as the app's threshold bar shows them, and in this video's frames
            mn, gap = int(seg.get("min_frames", 1)), int(seg.get("merge_gap", 0))
            extra = f" (segments at least {_frames_s(mn, v.fps)}; gaps up to {_frames_s(gap, v.fps)} joined)"
        out.append(("Threshold", f"{format_threshold(threshold)}{extra}"))
    out.append(("Software", f"stanviewer {__version__}, report of {datetime.now().strftime('%Y-%m-%d %H:%M')}"))
    return out


def gather(
    review: Review,
    *,
    analysis: Any = None,
    threshold: float | None = None,
    times: FrameTimes | None = None,
    tiers: list[str] | None = None,
    max_rows: int = 60,
    thumb_width: int = 160,
) -> ReportData:
    """Collect the report's content (decodes one frame per segment row, up to ``max_rows`` rows)."""
    from stanviewer.core.explain.overlay import blend_heat
    from stanviewer.core.video import open_video

    lab = review.labels
    n = lab.n_frames
    scores = None if analysis is None else np.asarray(analysis.scores, np.float32)
    if threshold is None and lab.proposal is not None:
        threshold = lab.proposal.meta.get("threshold")
    sel = [t for t in lab.all_tiers() if not tiers or t.name in tiers]
    all_rows: list[ReportRow] = []
    notes: list[str] = []
    video = Path(review.video.path)
    reader = None
    if video.exists():
        reader = open_video(video)
    else:
        notes.append(f"the video {video} is not available: no thumbnails")
    try:
        ft = times or (FrameTimes.from_reader(reader) if reader is not None else None)
        ft = ft or FrameTimes.from_fps(n, review.video.fps)
        for t in sel:
            for iv in t.intervals:
                peak = None
                key = (iv.start + iv.end - 1) // 2
                if scores is not None:
                    seg = scores[iv.start : iv.end]
                    key = iv.start + int(np.nanargmax(seg))
                    peak = float(np.nanmax(seg))
                all_rows.append(
                    ReportRow(t.name, iv.label, iv.start, iv.end, ft.start_s(iv.start), ft.start_s(iv.end), key, peak)
                )
        rows = all_rows[:max_rows]
        heat = None
        if analysis is not None and getattr(analysis, "heatmap_path", None) is not None:
            from stanviewer.core.explain.heatmaps import HeatmapReader

            heat = HeatmapReader(analysis.heatmap_path)
        if reader is not None:
            w, h = reader.size
            size = (thumb_width, max(2, round(thumb_width * h / w)))
            for r in sorted(rows, key=lambda r: r.key_frame):
                r.thumb = reader.frame(r.key_frame, size)
                if heat is not None:
                    r.thumb_heat = blend_heat(r.thumb, heat.get(r.key_frame), 0.55)
        if heat is not None:
            heat.close()
        elif analysis is not None:
            notes.append("the analysis has no heatmaps (analysed without them or with a window method)")
        return ReportData(
            title=f"Review report: {video.name}",
            facts=_facts(review, analysis, threshold),
            n_frames=n,
            duration_s=ft.end,
            times=ft.starts,
            scores=scores,
            threshold=threshold,
            tiers=sel,
            rows=rows,
            more_rows=len(all_rows) - len(rows),
            notes=notes,
        )
    finally:
        if reader is not None:
            reader.close()
