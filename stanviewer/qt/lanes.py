"""Editable tier lanes beneath the timeline: the human tiers of the review, drawn from the labels model.

Mouse, on a human tier's lane (ELAN-like):

- **drag** selects a range of frames (the selection is drawn as an outline);
- **Shift+drag** creates an interval with the current label over the dragged frames;
- **drag an interval's edge** (within a few pixels of it) moves that edge; the whole drag is one undo
  step (:meth:`~stanviewer.core.review.model.LabelsModel.group`);
- **click** moves the playhead there and selects the interval under the pointer (or clears the selection).

Drags on the read-only lanes (the model's flagged segments, label files) pan the view as before. The
lanes redraw on the core's ``sig_changed``/``sig_selection`` (through :class:`ReviewController`'s Qt
signals). A frame ``f`` is drawn at x = f, so a frame boundary ``b`` sits at x = b - 0.5.
"""

from __future__ import annotations

import contextlib
import zlib
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFontMetrics

from stanviewer.core.review.model import EditError, Tier
from stanviewer.qt.review import ReviewController

__all__ = ["LABEL_COLORS", "LaneEditor", "LaneViewBox", "label_color"]

LABEL_COLORS = [(120, 200, 120), (200, 120, 220), (90, 200, 220), (240, 200, 90), (240, 110, 110), (150, 150, 240)]
EDGE_PIXELS = 6  # how close to an edge a drag grabs it
MAX_TEXTS = 200  # interval labels drawn as text (more are drawn without)


def label_color(label: str) -> tuple[int, int, int]:
    """A stable colour for a label text."""
    return LABEL_COLORS[zlib.crc32(label.encode("utf-8")) % len(LABEL_COLORS)]


class LaneViewBox(pg.ViewBox):
    """A ViewBox that offers mouse clicks and drags to an editor first (else it pans as usual)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.editor: LaneEditor | None = None

    def mouseDragEvent(self, ev: Any, axis: Any = None) -> None:
        if self.editor is not None and self.editor.drag(ev):
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: Any) -> None:
        if self.editor is not None and self.editor.click(ev):
            return
        super().mouseClickEvent(ev)


class LaneEditor:
    """Draws the human tiers on the timeline's lanes plot and turns mouse gestures into edits.

    Args:
        timeline: the :class:`~stanviewer.qt.timeline.Timeline` (its ``lanes`` plot has a :class:`LaneViewBox`).
        controller: the review of the open video.
    """

    def __init__(self, timeline: Any, controller: ReviewController) -> None:
        self.timeline = timeline
        self.ctl = controller
        self.plot = timeline.lanes
        self.vb: LaneViewBox = self.plot.getViewBox()
        self.vb.editor = self
        self.offset = 0  # lanes above the human tiers (read-only ones)
        self.fills: list[pg.PlotCurveItem] = []
        self.texts: list[pg.TextItem] = []
        self.active_band = pg.LinearRegionItem(
            orientation="horizontal", movable=False, brush=pg.mkBrush(255, 255, 255, 18), pen=pg.mkPen(None)
        )
        self.active_band.setZValue(-10)
        self.plot.addItem(self.active_band)
        self.sel_item = pg.PlotCurveItem(pen=pg.mkPen(255, 230, 80, width=2), connect="pairs")
        self.sel_item.setZValue(15)
        self.plot.addItem(self.sel_item)
        self.edge_item = pg.PlotCurveItem(pen=pg.mkPen(255, 255, 255, width=3))
        self.edge_item.setZValue(16)
        self.plot.addItem(self.edge_item)
        self._drag: dict[str, Any] | None = None
        self._group: contextlib.AbstractContextManager[None] | None = None
        self._text_ivs: list[Any] = []  # the interval of each text item
        self.vb.sigXRangeChanged.connect(self.fit_texts)
        self.vb.sigResized.connect(self.fit_texts)
        for sig in (controller.sigLabelsChanged, controller.sigReviewChanged):
            sig.connect(timeline.refresh_lanes)
        controller.sigSelectionChanged.connect(self.redraw_selection)
        controller.sigActiveChanged.connect(timeline.refresh_lanes)

    # ---------------------------------------------------------------- drawing
    def names(self) -> list[str]:
        return self.ctl.human_tiers()

    def tick_names(self) -> list[str]:
        """Lane titles: the active tier is marked."""
        return [f"▸ {n}" if n == self.ctl.active_tier else n for n in self.names()]

    def redraw(self, offset: int) -> None:
        """Draw the human tiers in lanes ``offset``, ``offset + 1``, ... (called by the timeline)."""
        self.offset = offset
        lab = self.ctl.labels
        tiers: list[Tier] = list(lab.tiers) if lab is not None else []
        groups: list[tuple[int, str, list[tuple[int, int]]]] = []
        for k, t in enumerate(tiers):
            by_label: dict[str, list[tuple[int, int]]] = {}
            for iv in t.intervals:
                by_label.setdefault(iv.label, []).append((iv.start, iv.end))
            groups += [(offset + k, label, ivs) for label, ivs in by_label.items()]
        while len(self.fills) > len(groups):
            self.plot.removeItem(self.fills.pop())
        while len(self.fills) < len(groups):
            item = pg.PlotCurveItem(pen=pg.mkPen(20, 20, 24, width=1))
            self.plot.addItem(item)
            self.fills.append(item)
        from stanviewer.qt.timeline import intervals_path

        for item, (row, label, ivs) in zip(self.fills, groups):
            item.setData(*intervals_path(ivs, row + 0.15, row + 0.85))
            item.setFillLevel(row + 0.15)
            item.setBrush(pg.mkBrush(*label_color(label), 210))
        self._draw_texts(tiers, offset)
        names = self.names()
        if self.ctl.active_tier in names:
            row = offset + names.index(self.ctl.active_tier)
            self.active_band.setRegion((row, row + 1))
            self.active_band.setVisible(True)
        else:
            self.active_band.setVisible(False)
        self.redraw_selection()

    def _draw_texts(self, tiers: list[Tier], offset: int) -> None:
        items = [(offset + k, iv) for k, t in enumerate(tiers) for iv in t.intervals][:MAX_TEXTS]
        while len(self.texts) > len(items):
            self.plot.removeItem(self.texts.pop())
        while len(self.texts) < len(items):
            txt = pg.TextItem(color=(15, 15, 18), anchor=(0, 0.5))
            txt.setZValue(12)
            self.plot.addItem(txt)
            self.texts.append(txt)
        for txt, (row, iv) in zip(self.texts, items):
            txt.setText(iv.label)
            txt.setPos(iv.start - 0.5, row + 0.5)
        self._text_ivs = [iv for _, iv in items]
        self.fit_texts()

    def fit_texts(self, *_: Any) -> None:
        """Show an interval's label only where it fits inside the interval at the current zoom (labels of
        short intervals ran over their neighbours)."""
        (x0, x1), width = self.vb.viewRange()[0], self.vb.width()
        per_frame = width / max(1e-9, x1 - x0)
        for txt, iv in zip(self.texts, self._text_ivs):
            fm = QFontMetrics(txt.textItem.font())
            txt.setVisible((iv.end - iv.start) * per_frame >= fm.horizontalAdvance(iv.label) + 8)

    def redraw_selection(self) -> None:
        lab = self.ctl.labels
        sel = None if lab is None else lab.selection
        names = self.names()
        if sel is None or sel.tier not in names:
            self.sel_item.setData([], [])
            self.edge_item.setData([], [])
            return
        row = self.offset + names.index(sel.tier)
        a, b, y0, y1 = sel.start - 0.5, sel.end - 0.5, row + 0.08, row + 0.92
        x = np.array([a, b, b, b, b, a, a, a], np.float64)
        y = np.array([y0, y0, y0, y1, y1, y1, y1, y0], np.float64)
        self.sel_item.setData(x, y)
        if lab is not None and lab.selected_interval() is not None:
            e = a if self.ctl.edge == "left" else b
            self.edge_item.setData([e, e], [row + 0.02, row + 0.98])
        else:
            self.edge_item.setData([], [])

    # ---------------------------------------------------------------- mouse -> edits
    def _tier_at(self, y: float) -> str | None:
        k = int(np.floor(y)) - self.offset
        names = self.names()
        return names[k] if 0 <= k < len(names) else None

    def _edge_near(self, tier: str, x: float) -> tuple[int, str] | None:
        """(a frame inside the interval, "left"/"right") of the interval edge nearest ``x``, within reach."""
        lab = self.ctl.labels
        if lab is None:
            return None
        px = self.vb.viewPixelSize()[0]
        tol = max(EDGE_PIXELS * px, 0.3)
        best: tuple[float, int, str] | None = None
        for iv in lab.tier(tier).intervals:
            for edge, bx in (("left", iv.start - 0.5), ("right", iv.end - 0.5)):
                d = abs(x - bx)
                if d <= tol and (best is None or d < best[0]):
                    best = (d, iv.start, edge)
        return None if best is None else (best[1], best[2])

    def _frame(self, x: float) -> int:
        n = max(1, self.ctl.session.frame_count)
        return int(min(max(round(x), 0), n - 1))

    def click(self, ev: Any) -> bool:
        """Left click on a human lane: seek there and select the interval under the pointer."""
        if ev.button() != Qt.MouseButton.LeftButton or self.ctl.labels is None:
            return False
        p = self.vb.mapSceneToView(ev.scenePos())
        tier = self._tier_at(p.y())
        if tier is None:
            return False
        ev.accept()
        f = self._frame(p.x())
        self.ctl.set_active_tier(tier)
        iv = self.ctl.labels.select(tier, f)
        if iv is not None:
            self.ctl.set_edge("left" if f - iv.start < iv.end - 1 - f else "right")
        self.timeline.seek(f)
        return True

    def drag(self, ev: Any) -> bool:
        """Left drag on a human lane: select a range, create an interval (Shift) or move an edge."""
        lab = self.ctl.labels
        if ev.button() != Qt.MouseButton.LeftButton or lab is None:
            return False
        if ev.isStart():
            p0 = self.vb.mapToView(ev.buttonDownPos())
            tier = self._tier_at(p0.y())
            if tier is None:
                return False
            ev.accept()
            self.ctl.set_active_tier(tier)
            edge = self._edge_near(tier, p0.x())
            if edge is not None:
                at, side = edge
                self._group = lab.group(f"move {side} edge")
                self._group.__enter__()
                self._drag = {"mode": "edge", "tier": tier, "at": at, "edge": side}
                self.ctl.set_edge(side)
                lab.select(tier, at)
            else:
                shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                self._drag = {"mode": "create" if shift else "select", "tier": tier, "f0": self._frame(p0.x())}
        if self._drag is None:
            return False
        ev.accept()
        d = self._drag
        x = self.vb.mapToView(ev.pos()).x()
        try:
            if d["mode"] == "edge":
                to = int(min(max(round(x + 0.5), 0), lab.n_frames))
                iv = lab.move_edge(d["tier"], d["at"], d["edge"], to)
                d["at"] = iv.start
            else:
                f = self._frame(x)
                a, b = min(d["f0"], f), max(d["f0"], f) + 1
                if d["mode"] == "create" and ev.isFinish():
                    lab.create(d["tier"], a, b, self.ctl.label)
                else:
                    lab.select_range(d["tier"], a, b)
        except EditError as e:
            self.ctl.sigMessage.emit(str(e))
        finally:
            if ev.isFinish():
                self._finish()
        return True

    def _finish(self) -> None:
        self._drag = None
        if self._group is not None:
            group, self._group = self._group, None
            group.__exit__(None, None, None)
