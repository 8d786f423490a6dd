"""The PDF review report of one video, drawn with QPdfWriter and QPainter (no window needed).

``write_report(review, path, analysis=..., threshold=...)`` writes an A4 PDF:

1. title and provenance: video, fingerprint, frames; review status, reviewer, last change; model,
   explained class, prediction, method, normalisation, threshold; software;
2. the timeline: the score curve over time with the threshold (dashed) and the flagged segments
   shaded, and one lane per tier (``model``, ``annotator``, ``therapist``, ...) with its intervals;
3. the segment table (continued on further pages): tier, label, frames ``[start, end)``, times,
   duration, peak score, and thumbnails of the key frame without and with the heatmap;
4. the research-use disclaimer (:data:`stanviewer.DISCLAIMER`) and page numbers on every page.

The content is gathered Qt-free by :func:`stanviewer.core.review.report_data.gather`. Works offscreen: a
``QGuiApplication`` is created on the ``offscreen`` platform when there is none and no display. The file
is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPageLayout,
    QPageSize,
    QPainter,
    QPainterPath,
    QPdfWriter,
    QPen,
)

from stanviewer.core.errors import StanError
from stanviewer.core.explain.segments import format_threshold
from stanviewer.core.fileio import make_temp
from stanviewer.core.review.report_data import ReportData, ReportRow, gather
from stanviewer.core.review.reviewfile import Review

__all__ = ["render_report", "write_report"]

DPI = 150
_app: Any = None
TIER_COLORS = {"model": QColor(230, 120, 30), "annotator": QColor(40, 110, 200), "therapist": QColor(30, 150, 90)}


def _ensure_app() -> None:
    """Fonts need an application object: make a QApplication (not a bare QGuiApplication, so that widgets
    still work later in the same process), offscreen when there is no display."""
    global _app
    if QGuiApplication.instance() is None:
        from PySide6.QtWidgets import QApplication

        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        _app = QApplication(["stanviewer-report"])


def _color(tier: str) -> QColor:
    if tier in TIER_COLORS:
        return TIER_COLORS[tier]
    return QColor.fromHsv(zlib.crc32(tier.encode()) % 360, 160, 180)


def _qimage(arr: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _font(size: float, bold: bool = False) -> QFont:
    f = QFont("DejaVu Sans")
    f.setPointSizeF(size)
    f.setBold(bold)
    return f


def _fmt_s(t: float) -> str:
    m, s = divmod(max(0.0, t), 60)
    return f"{int(m)}:{s:06.3f}"


class _Pages:
    """Page handling: margins, footer (disclaimer, page number), a cursor ``y`` going down."""

    def __init__(self, writer: QPdfWriter, painter: QPainter, data: ReportData) -> None:
        self.w, self.p, self.data = writer, painter, data
        self.width = float(writer.width())
        self.height = float(writer.height())
        self.footer_h = 70.0
        self.y = 0.0
        self.page = 1

    @property
    def bottom(self) -> float:
        return self.height - self.footer_h

    def footer(self) -> None:
        p = self.p
        p.setPen(QColor(90, 90, 90))
        p.setFont(_font(7))
        rect = QRectF(0, self.bottom + 12, self.width - 80, self.footer_h - 12)
        p.drawText(rect, Qt.TextFlag.TextWordWrap, self.data.disclaimer)
        p.drawText(QRectF(self.width - 80, self.bottom + 12, 80, 30), Qt.AlignmentFlag.AlignRight, f"page {self.page}")
        p.drawLine(QPointF(0, self.bottom + 6), QPointF(self.width, self.bottom + 6))

    def need(self, h: float) -> None:
        if self.y + h > self.bottom:
            self.footer()
            self.w.newPage()
            self.page += 1
            self.y = 0.0

    def text(self, s: str, size: float = 9, bold: bool = False, color: QColor | None = None) -> None:
        p = self.p
        p.setFont(_font(size, bold))
        p.setPen(color or QColor(20, 20, 20))
        rect = QRectF(0, self.y, self.width, 1000)
        bound = p.boundingRect(rect, Qt.TextFlag.TextWordWrap, s)
        self.need(bound.height())
        p.drawText(QRectF(0, self.y, self.width, bound.height() + 2), Qt.TextFlag.TextWordWrap, s)
        self.y += bound.height() + 4


def _draw_facts(pg: _Pages) -> None:
    p = pg.p
    p.setFont(_font(8.5))
    fm = QFontMetricsF(p.font())
    key_w = max(fm.horizontalAdvance(k) for k, _ in pg.data.facts) + 20
    for k, v in pg.data.facts:
        rect = p.boundingRect(QRectF(key_w, 0, pg.width - key_w, 1000), Qt.TextFlag.TextWordWrap, v)
        h = max(rect.height(), fm.height())
        pg.need(h)
        p.setPen(QColor(90, 90, 90))
        p.drawText(QRectF(0, pg.y, key_w, h), Qt.AlignmentFlag.AlignLeft, k)
        p.setPen(QColor(20, 20, 20))
        p.drawText(QRectF(key_w, pg.y, pg.width - key_w, h + 2), Qt.TextFlag.TextWordWrap, v)
        pg.y += h + 2


def _draw_timeline(pg: _Pages) -> None:
    d, p = pg.data, pg.p
    lane_h, plot_h = 22.0, 200.0 if d.scores is not None else 0.0
    total = plot_h + 40 + lane_h * len(d.tiers) + 10
    pg.need(total)
    left, right = 110.0, pg.width - 10
    top = pg.y
    span = max(d.duration_s, 1e-6)

    def x_of(t: float) -> float:
        return left + (right - left) * t / span

    def x_frame(f: int) -> float:
        return x_of(float(d.times[f]) if f < d.n_frames else d.duration_s)

    p.setFont(_font(7))
    if d.scores is not None:
        plot = QRectF(left, top, right - left, plot_h)
        p.fillRect(plot, QColor(248, 248, 250))
        model = next((t for t in d.tiers if t.name == "model"), None)
        if model is not None:
            for iv in model.intervals:
                p.fillRect(
                    QRectF(x_frame(iv.start), top, x_frame(iv.end) - x_frame(iv.start), plot_h), QColor(255, 215, 170)
                )
        path = QPainterPath()
        s = np.nan_to_num(d.scores, nan=0.0)
        step = max(1, len(s) // int(4 * (right - left)))  # enough points for the page; the PDF stays small
        for k, i in enumerate(range(0, len(s), step)):
            seg = s[i : i + step]
            pt = QPointF(x_of(float(d.times[i])), top + plot_h * (1 - float(seg.max())))
            path.moveTo(pt) if k == 0 else path.lineTo(pt)
        p.setPen(QPen(QColor(20, 60, 160), 2.0))
        p.drawPath(path)
        if d.threshold is not None:
            y = top + plot_h * (1 - float(d.threshold))
            p.setPen(QPen(QColor(200, 30, 30), 1.5, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(left, y), QPointF(right, y))
            p.drawText(
                QRectF(right - 200, y - 18, 196, 16),
                Qt.AlignmentFlag.AlignRight,
                f"threshold {format_threshold(d.threshold)}",
            )
        p.setPen(QColor(60, 60, 60))
        p.drawRect(plot)
        for v in (0.0, 0.5, 1.0):
            y = top + plot_h * (1 - v)
            p.drawText(QRectF(left - 40, y - 8, 34, 16), Qt.AlignmentFlag.AlignRight, f"{v:.1f}")
        p.save()
        p.translate(left - 60, top + plot_h / 2)
        p.rotate(-90)
        p.drawText(QRectF(-60, -8, 120, 16), Qt.AlignmentFlag.AlignCenter, "score")
        p.restore()
    y_axis = top + plot_h
    ticks = _ticks(span)
    p.setPen(QColor(60, 60, 60))
    for t in ticks:
        x = x_of(t)
        p.drawLine(QPointF(x, y_axis), QPointF(x, y_axis + 5))
        p.drawText(QRectF(x - 40, y_axis + 6, 80, 16), Qt.AlignmentFlag.AlignCenter, f"{t:g} s")
    y = y_axis + 30
    for t in d.tiers:
        p.setPen(QColor(40, 40, 40))
        p.drawText(QRectF(0, y, left - 8, lane_h), Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, t.name)
        p.fillRect(QRectF(left, y + 3, right - left, lane_h - 6), QColor(240, 240, 240))
        for iv in t.intervals:
            r = QRectF(x_frame(iv.start), y + 3, max(1.0, x_frame(iv.end) - x_frame(iv.start)), lane_h - 6)
            p.fillRect(r, _color(t.name))
        y += lane_h
    pg.y = y + 6
    caption = "Lanes: the intervals of each tier (frames in presentation order)."
    if d.scores is not None:
        caption = (
            "Curve: score per frame (scale: see Normalisation); dashed: threshold; shaded: flagged segments "
            "(model tier). " + caption
        )
    pg.text(caption, 7, color=QColor(90, 90, 90))
    pg.y += 4


def _ticks(span: float) -> list[float]:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= 10:
            return [k * step for k in range(int(span / step) + 1)]
    return [0.0, span]


COLUMNS = [("#", 30), ("tier", 100), ("label", 150), ("frames", 110), ("time (s)", 130), ("dur. (s)", 70), ("peak", 50)]
GAP = 12.0


def _draw_table(pg: _Pages) -> None:
    d, p = pg.data, pg.p
    if not d.rows:
        pg.text("No segments: nothing is flagged or labelled.", 9)
        return
    thumb_w = 160.0
    first = d.rows[0].thumb
    thumb_h = thumb_w * first.shape[0] / first.shape[1] if first is not None else 0.0
    row_h = max(thumb_h + 6, 22.0)

    def header() -> None:
        p.setFont(_font(7.5, bold=True))
        p.setPen(QColor(40, 40, 40))
        x = 0.0
        for name, w in COLUMNS:
            p.drawText(QRectF(x, pg.y, w, 18), Qt.AlignmentFlag.AlignLeft, name)
            x += w
        x += GAP
        if first is not None:
            p.drawText(QRectF(x, pg.y, thumb_w, 18), Qt.AlignmentFlag.AlignLeft, "key frame")
            p.drawText(QRectF(x + thumb_w + 8, pg.y, thumb_w + 40, 18), Qt.AlignmentFlag.AlignLeft, "with heatmap")
        pg.y += 20

    pg.need(20 + row_h)
    header()
    for k, r in enumerate(d.rows):
        if pg.y + row_h > pg.bottom:
            pg.need(pg.height)
            header()
        _draw_row(pg, k + 1, r, row_h, thumb_w, thumb_h)
    if d.more_rows:
        pg.text(f"… and {d.more_rows} more segment(s), listed in the intervals export.", 8)


def _draw_row(pg: _Pages, k: int, r: ReportRow, row_h: float, thumb_w: float, thumb_h: float) -> None:
    p = pg.p
    if k % 2 == 0:
        p.fillRect(QRectF(0, pg.y - 2, pg.width, row_h), QColor(246, 246, 246))
    p.setFont(_font(7.5))
    p.setPen(QColor(20, 20, 20))
    vals = [
        str(k),
        r.tier,
        r.label,
        f"[{r.start}, {r.end})",
        f"{r.start_s:.3f}–{r.end_s:.3f}",
        f"{r.end_s - r.start_s:.2f}",
        "—" if r.peak is None else f"{r.peak:.2f}",
    ]
    x = 0.0
    for (_, w), v in zip(COLUMNS, vals):
        p.drawText(QRectF(x, pg.y, w - 4, row_h), Qt.TextFlag.TextWordWrap, v)
        x += w
    x += GAP
    if r.thumb is not None:
        p.drawImage(QRectF(x, pg.y, thumb_w, thumb_h), _qimage(r.thumb))
        p.setFont(_font(6.5))
        p.drawText(QRectF(x + 2, pg.y + thumb_h - 14, thumb_w, 14), Qt.AlignmentFlag.AlignLeft, f"f {r.key_frame}")
        if r.thumb_heat is not None:
            p.drawImage(QRectF(x + thumb_w + 8, pg.y, thumb_w, thumb_h), _qimage(r.thumb_heat))
        else:
            p.drawText(QRectF(x + thumb_w + 8, pg.y, thumb_w, thumb_h), Qt.AlignmentFlag.AlignCenter, "no heatmap")
    pg.y += row_h


def render_report(data: ReportData, path: str | Path) -> Path:
    """Draw ``data`` into a PDF at ``path`` (written in place; :func:`write_report` makes it atomic)."""
    _ensure_app()
    writer = QPdfWriter(str(path))
    writer.setResolution(DPI)
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A4))
    writer.setPageMargins(QMarginsF(12, 12, 12, 12), QPageLayout.Unit.Millimeter)
    writer.setTitle(data.title)
    writer.setCreator("stanviewer")
    painter = QPainter()
    if not painter.begin(writer):
        raise StanError("cannot write the PDF", path)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        pg = _Pages(writer, painter, data)
        pg.text(data.title, 15, bold=True)
        pg.text(data.disclaimer, 8, color=QColor(150, 40, 40))
        pg.y += 6
        _draw_facts(pg)
        for note in data.notes:
            pg.text(f"Note: {note}", 8, color=QColor(120, 80, 0))
        pg.y += 14
        pg.text("Timeline", 11, bold=True)
        _draw_timeline(pg)
        pg.text("Segments", 11, bold=True)
        _draw_table(pg)
        pg.footer()
    finally:
        painter.end()
    return Path(path)


def write_report(
    review: Review,
    path: str | Path,
    *,
    analysis: Any = None,
    threshold: float | None = None,
    tiers: list[str] | None = None,
    max_rows: int = 60,
) -> Path:
    """Write the PDF report of ``review`` (with its analysis, when given) to ``path``; returns the path.

    Args:
        review: the video's review (its ``model`` tier is the flagged segments, when set).
        path: output ``.pdf``; written under a temporary name and renamed into place.
        analysis: the :class:`~stanviewer.core.explain.scoring.Analysis` (scores, heatmaps, provenance).
        threshold: the threshold to show (default: the ``model`` tier's).
        tiers: tiers to include (default: all).
        max_rows: segment rows with thumbnails; the rest are counted.
    """
    path = Path(path)
    data = gather(review, analysis=analysis, threshold=threshold, tiers=tiers, max_rows=max_rows)
    try:
        tmp = make_temp(path, ".pdf")
    except OSError as e:
        raise StanError(f"cannot write the report ({e.strerror or e})", path) from e
    try:
        render_report(data, tmp)
        if tmp.stat().st_size == 0:
            raise StanError("the PDF could not be written (empty file)", path)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path
