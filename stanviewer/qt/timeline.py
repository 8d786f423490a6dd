"""The score timeline (pyqtgraph): curve, threshold, flagged segments, playhead, lanes and overview.

Three plots share one scene: the **main** plot (the chosen method's per-frame score, other curves on
demand, the draggable threshold line, flagged segments shaded, the draggable playhead; x in frames with
a time axis below and frame numbers above), the **lanes** (read-only label tiers, x-linked) and the
**overview** (the whole video with a region that is the main plot's view; drag it to pan). Long curves
are drawn with peak downsampling and clip-to-view; segments are one filled path, however many.

A frame ``f`` is drawn at x = f; a segment ``[start, end)`` is shaded from ``start - 0.5`` to
``end - 0.5``, so the shading covers exactly its frames.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from stanviewer.core.explain.segments import format_threshold
from stanviewer.qt.lanes import LaneViewBox
from stanviewer.qt.session import Session, curve_name

__all__ = ["ThresholdBar", "TimeAxis", "Timeline", "intervals_path", "prediction_text"]

CURVE_COLORS = [(80, 170, 255), (120, 220, 120), (220, 120, 220), (240, 220, 90), (160, 160, 160), (90, 220, 220)]
AXIS_WIDTH = 118
OVERVIEW_HEIGHT = 64
PLOT_MIN_HEIGHT = 170  # the score plot with its frame and time axes (about 110 px of curve)


def intervals_path(intervals: list[tuple[int, int]], y0: float, y1: float) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of one path whose fill down to ``y0`` draws a box per interval ``[start, end)``."""
    if not intervals:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(intervals, np.float64) - 0.5
    x = np.repeat(a, 2, axis=1).ravel()  # s, s, e, e
    y = np.tile([y0, y1, y1, y0], len(a))
    return x, y


def prediction_text(session: Session) -> str:
    """The model's video-level output, worded as model output (never as a diagnosis)."""
    a = session.analysis
    if session.partial is not None:
        how = f" with {session.run.method}" if session.run is not None else ""
        return (
            f"<b>Analysing{how}…</b> the curve and flagged segments grow as the model's windows finish; "
            "saliency maps appear when it is done."
        )
    if a is None:
        if session.reader is None:
            return "No video open."
        return "No analysis yet: choose a model and method in the Analysis panel and press Run."
    pred = a.prediction or {}
    cls = pred.get("class", "?")
    p = (pred.get("probabilities") or {}).get(cls)
    target = a.meta.get("target", "?")
    pt = (pred.get("probabilities") or {}).get(target)
    ptxt = f" (p = {p:.2f})" if isinstance(p, (int, float)) else ""
    extra = f", p({target}) = {pt:.2f}" if isinstance(pt, (int, float)) and target != cls else ""
    if (a.meta.get("normalisation") or {}).get("clip_percentiles") is None and a.meta.get("normalisation"):
        scale = "the model's per-frame probability, the same scale in every video"
    else:
        scale = f"scaled 0–1 per video ({_clip_text(a.meta)} percentile → 0–1)"
    return (
        f"<b>Model output</b> (not a diagnosis): predicted class <b>{cls}</b>{ptxt}{extra}. "
        f"Curve: <b>{a.meta.get('method')}</b> score for '{target}', {scale}."
    )


def _clip_text(meta: dict) -> str:
    c = (meta.get("normalisation") or {}).get("clip_percentiles") or [1, 99]
    return f"{c[0]:g}st–{c[1]:g}th"


class TimeAxis(pg.AxisItem):
    """An axis over frame coordinates that ticks and labels seconds (from the frames' timestamps)."""

    def __init__(self, session: Session, orientation: str = "bottom") -> None:
        super().__init__(orientation)
        self.session = session

    def _to_time(self, x: float) -> float:
        t = self.session.times
        if len(t) == 0:
            return 0.0
        return float(np.interp(x, np.arange(len(t)), t))

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list:
        t = self.session.times
        if len(t) < 2:
            return super().tickValues(minVal, maxVal, size)
        levels = super().tickValues(self._to_time(minVal), self._to_time(maxVal), size)
        frames = np.arange(len(t))
        return [(sp, [float(np.interp(v, t, frames)) for v in vals]) for sp, vals in levels]

    def tickStrings(self, values: list, scale: float, spacing: float) -> list[str]:
        out = []
        for v in values:
            s = self._to_time(v)
            m, sec = divmod(s, 60)
            out.append(
                f"{int(m)}:{sec:04.1f}" if spacing < 60 and not float(sec).is_integer() else f"{int(m)}:{sec:02.0f}"
            )
        return out


class Timeline(QWidget):
    """The plots. Clicking or dragging the playhead scrubs; the threshold line drags the threshold.

    Signals:
        sigSeek(int): the user clicked or dragged to a frame (already applied to the session).
    """

    sigSeek = Signal(int)

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._visible_curves: set[str] = set()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.glw = pg.GraphicsLayoutWidget(self)
        self.glw.setBackground((22, 22, 26))
        self.glw.ci.setSpacing(2)
        lay.addWidget(self.glw)

        # main plot
        self.plot = self.glw.addPlot(row=0, col=0, axisItems={"bottom": TimeAxis(session)})
        self.plot.showAxis("top")
        self.plot.getAxis("top").setLabel("frame")
        self.plot.getAxis("left").setLabel("score")
        self.plot.getAxis("left").setWidth(AXIS_WIDTH)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.setYRange(-0.02, 1.05, padding=0)
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.vb = self.plot.getViewBox()
        self.shade = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(230, 120, 40, 70), fillLevel=-0.02)
        self.shade_sel = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(255, 200, 60, 110), fillLevel=-0.02)
        self.plot.addItem(self.shade)
        self.plot.addItem(self.shade_sel)
        self.extra: dict[str, pg.PlotDataItem] = {}
        self._pens = [pg.mkPen(*c, width=1) for c in CURVE_COLORS]
        self._pen_of: dict[str, int] = {}
        self.curve = self._curve(pg.mkPen(255, 150, 60, width=2))
        self.threshold_line = pg.InfiniteLine(
            pos=session.threshold,
            angle=0,
            movable=True,
            bounds=(0.0, 1.0),
            pen=pg.mkPen(255, 80, 80, width=2, style=Qt.PenStyle.DashLine),
            hoverPen=pg.mkPen(255, 120, 120, width=3),
            label=f"threshold {format_threshold(session.threshold)}",
            labelOpts={
                "position": 0.985,
                "color": (255, 150, 150),
                "fill": (20, 20, 24, 200),
                "anchors": [(1, 1), (1, 1)],
            },
        )
        self.threshold_line.setZValue(20)
        self._place_threshold_label(session.threshold)
        self.plot.addItem(self.threshold_line)
        self.playhead = pg.InfiniteLine(
            pos=0, angle=90, movable=True, pen=pg.mkPen(255, 255, 255, width=2), hoverPen=pg.mkPen(255, 255, 0, width=3)
        )
        self.playhead.setZValue(30)
        self.plot.addItem(self.playhead)

        # lanes (human tiers become editable when a LaneEditor is attached: stanviewer.qt.lanes)
        self.lane_editor: object | None = None
        self.lanes = self.glw.addPlot(row=1, col=0, viewBox=LaneViewBox())
        self.lanes.setXLink(self.plot)
        self.lanes.getAxis("left").setWidth(AXIS_WIDTH)
        self.lanes.getAxis("left").setStyle(hideOverlappingLabels=False)
        self.lanes.hideAxis("bottom")
        self.lanes.setMouseEnabled(x=True, y=False)
        self.lanes.hideButtons()
        self.lanes.setMenuEnabled(False)
        self.lanes.getViewBox().invertY(True)
        self.lane_items: list[pg.PlotCurveItem] = []
        self._lane_names: list[str] | None = None  # names the lanes axis shows (its ticks)
        self.lane_head = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen(255, 255, 255, width=1))
        self.lanes.addItem(self.lane_head)

        # overview
        self.overview = self.glw.addPlot(row=2, col=0, axisItems={"bottom": TimeAxis(session)})
        self.overview.getAxis("left").setWidth(AXIS_WIDTH)
        self.overview.getAxis("left").setTicks([[(0.5, "overview")]])
        self.overview.setMouseEnabled(x=False, y=False)
        self.overview.hideButtons()
        self.overview.setMenuEnabled(False)
        self.overview.setYRange(0, 1.05, padding=0)
        self.ov_shade = pg.PlotCurveItem(pen=None, brush=pg.mkBrush(230, 120, 40, 90), fillLevel=0)
        self.overview.addItem(self.ov_shade)
        self.ov_curve = pg.PlotDataItem(pen=pg.mkPen(255, 150, 60, width=1))
        self.ov_curve.setDownsampling(auto=True, method="peak")
        self.overview.addItem(self.ov_curve)
        self.region = pg.LinearRegionItem(brush=pg.mkBrush(255, 255, 255, 40), pen=pg.mkPen(255, 255, 255, 120))
        self.region.setZValue(10)
        self.overview.addItem(self.region)
        self.ov_head = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen(255, 255, 255, width=1))
        self.overview.addItem(self.ov_head)

        lay_ci = self.glw.ci.layout
        lay_ci.setRowStretchFactor(0, 6)
        lay_ci.setRowStretchFactor(1, 1)
        lay_ci.setRowStretchFactor(2, 1)
        self.overview.setFixedHeight(OVERVIEW_HEIGHT)
        self._fit_minimum_height(0)

        self.threshold_line.sigPositionChanged.connect(self._on_threshold_dragged)
        self.playhead.sigPositionChanged.connect(self._on_playhead_dragged)
        self.region.sigRegionChanged.connect(self._on_region)
        self.vb.sigXRangeChanged.connect(self._on_xrange)
        self.glw.scene().sigMouseClicked.connect(self._on_click)
        session.sigVideoChanged.connect(self._on_video)
        session.sigScoresChanged.connect(self._on_scores)
        session.sigThresholdChanged.connect(self._on_threshold)
        session.sigSegmentsChanged.connect(self._on_segments)
        session.sigSelectedChanged.connect(lambda _k: self._on_segments())
        session.sigFrameChanged.connect(self._on_frame)
        session.sigCurvesChanged.connect(self._on_curves)
        session.sigTiersChanged.connect(self._on_tiers)
        self._on_video()

    def _curve(self, pen: object) -> pg.PlotDataItem:
        c = pg.PlotDataItem(pen=pen)
        c.setDownsampling(auto=True, method="peak")
        c.setClipToView(True)
        self.plot.addItem(c)
        return c

    # ---------------------------------------------------------------- model -> view
    def _on_video(self) -> None:
        n = self.session.frame_count
        hi = max(1, n) - 0.5
        for p in (self.plot, self.overview):
            p.setLimits(xMin=-0.5, xMax=hi, minXRange=min(10, max(1, n)))
        self.plot.setXRange(-0.5, hi, padding=0)
        self.overview.setXRange(-0.5, hi, padding=0)
        self.region.setBounds((-0.5, hi))
        self.playhead.setBounds((0, max(0, n - 1)))
        self._on_scores()
        self._on_tiers()
        self._on_frame(self.session.frame)

    def _on_scores(self) -> None:
        s = self.session.scores
        if s is None:
            self.curve.setData([], [])
            self.ov_curve.setData([], [])
        else:
            connect = "finite" if self.session.partial is not None else "all"
            x = np.arange(len(s), dtype=np.float64)
            self.curve.setData(x, s, connect=connect)
            self.ov_curve.setData(x, s, connect=connect)
        self._on_curves()
        self._on_segments()

    def _on_curves(self) -> None:
        # items are kept and refilled: removing and re-adding them (and building pens) cost ~17 ms a call, in
        # the same event as the rest of a finished analysis' redraw
        curves = sorted(self.available_curves().items())
        names = [name for name, _ in curves]
        for name in [n for n in self.extra if n not in names]:
            self.plot.removeItem(self.extra.pop(name))
            self._pen_of.pop(name, None)
        for k, (name, y) in enumerate(curves):
            item = self.extra.get(name)
            if item is None:
                item = self.extra[name] = self._curve(None)
                item.setZValue(-1)
            if self._pen_of.get(name) != k % len(self._pens):
                self._pen_of[name] = k % len(self._pens)
                item.setPen(self._pens[self._pen_of[name]])
            item.setData(np.arange(len(y), dtype=np.float64), y, connect="finite")
            item.setVisible(name in self._visible_curves)

    def available_curves(self) -> dict[str, np.ndarray]:
        """Curves that can be toggled: the video's other analyses (method · model) and the window probability."""
        a = self.session.analysis
        shown = None if a is None else curve_name(a)
        out = {k: v for k, v in self.session.curves.items() if k != shown}
        if a is not None and self.session.partial is None and np.isfinite(a.window_prob).any():
            out["window probability"] = a.window_prob
        return out

    def set_curve_visible(self, name: str, visible: bool) -> None:
        (self._visible_curves.add if visible else self._visible_curves.discard)(name)
        if name in self.extra:
            self.extra[name].setVisible(visible)

    def _on_threshold(self, t: float) -> None:
        self.threshold_line.blockSignals(True)
        self.threshold_line.setValue(t)
        self.threshold_line.blockSignals(False)
        self.threshold_line.label.setFormat(f"threshold {format_threshold(t)}")  # as the box and the table say
        self._place_threshold_label(t)

    def _place_threshold_label(self, t: float) -> None:
        """Refresh the label's text (the line's signals are blocked while the session moves it, so the label
        would keep showing the old value) and put it above a low threshold line and below a high one, so it is
        never cut off at the top."""
        label = self.threshold_line.label
        anchor = (1, 0) if t >= 0.5 else (1, 1)
        label.anchors = [anchor, anchor]
        label.setText(label.format.format(value=t))
        label.updatePosition()

    def _on_segments(self) -> None:
        s = self.session
        iv = [(g.start, g.end) for g in s.segments]
        self.shade.setData(*intervals_path(iv, -0.02, 1.05))
        self.ov_shade.setData(*intervals_path(iv, 0.0, 1.05))
        sel = [iv[s.selected]] if 0 <= s.selected < len(iv) else []
        self.shade_sel.setData(*intervals_path(sel, -0.02, 1.05))

    def _on_tiers(self) -> None:
        tiers = self.session.tiers()
        while len(self.lane_items) > len(tiers):
            self.lanes.removeItem(self.lane_items.pop())
        while len(self.lane_items) < len(tiers):  # items are reused: the model tier changes on every drag
            item = pg.PlotCurveItem(pen=None)
            self.lanes.addItem(item)
            self.lane_items.append(item)
        for k, (tier, item) in enumerate(zip(tiers, self.lane_items)):
            item.setData(*intervals_path(tier.intervals, k + 0.15, k + 0.85))
            item.setFillLevel(k + 0.15)
            item.setBrush(pg.mkBrush(*tier.color, 200))
        names = [t.name for t in tiers]
        editor = self.lane_editor
        if editor is not None:
            editor.redraw(len(tiers))  # type: ignore[attr-defined]
            names += editor.tick_names()  # type: ignore[attr-defined]
        if names != self._lane_names:
            # only when the lanes themselves change: new ticks make the axis rebuild its picture, and this
            # runs on every partial curve of a running analysis (the model tier follows the scores)
            self._lane_names = names
            self.lanes.getAxis("left").setTicks([[(k + 0.5, n) for k, n in enumerate(names)]])
            self.lanes.setYRange(0, max(1, len(names)), padding=0)
            self.lanes.setFixedHeight(12 + 24 * max(1, len(names)))
            self.lanes.setVisible(bool(names))
            self._fit_minimum_height(12 + 24 * max(1, len(names)) if names else 0)

    def _fit_minimum_height(self, lanes: int) -> None:
        """The score plot keeps at least PLOT_MIN_HEIGHT px (axes included) beside the fixed-height lanes and
        overview: on a short window (a 1366x768 laptop) the splitter gave it ~60 px, with its curve gone."""
        self.setMinimumHeight(PLOT_MIN_HEIGHT + lanes + OVERVIEW_HEIGHT + 12)

    def refresh_lanes(self) -> None:
        """Redraw the lanes (read-only tiers and the review's tiers)."""
        self._on_tiers()

    def lane_row(self, name: str) -> int:
        """Row of a lane by its tier name (read-only lanes first, then the review's tiers); -1 if none."""
        names = [t.name for t in self.session.tiers()]
        if self.lane_editor is not None:
            names += self.lane_editor.names()  # type: ignore[attr-defined]
        return names.index(name) if name in names else -1

    def lane_to_scene(self, frame: float, name: str) -> object:
        """Scene position of ``frame`` in the middle of a lane (for tests and benchmarks)."""
        return self.lanes.getViewBox().mapViewToScene(pg.Point(frame, self.lane_row(name) + 0.5))

    def _on_frame(self, i: int) -> None:
        for line in (self.playhead, self.lane_head, self.ov_head):
            line.blockSignals(True)
            line.setValue(i)
            line.blockSignals(False)
        lo, hi = self.vb.viewRange()[0]
        n = self.session.frame_count
        if n and (i < lo or i > hi) and hi - lo < n - 1:  # zoomed in and the playhead left the view: page
            width = hi - lo
            start = min(max(-0.5, i - 0.1 * width), n - 0.5 - width)
            self.plot.setXRange(start, start + width, padding=0)

    def _on_xrange(self, *_: object) -> None:
        lo, hi = self.vb.viewRange()[0]
        self.region.blockSignals(True)
        self.region.setRegion((lo, hi))
        self.region.blockSignals(False)

    # ---------------------------------------------------------------- view -> model
    def _on_threshold_dragged(self) -> None:
        self.session.set_threshold(float(self.threshold_line.value()))

    def _on_playhead_dragged(self) -> None:
        self.seek(int(round(self.playhead.value())))

    def _on_region(self) -> None:
        lo, hi = self.region.getRegion()
        self.vb.blockSignals(True)
        self.plot.setXRange(lo, hi, padding=0)
        self.vb.blockSignals(False)

    def _on_click(self, ev: object) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.isAccepted():  # type: ignore[attr-defined]
            return
        pos = ev.scenePos()  # type: ignore[attr-defined]
        for p in (self.plot, self.lanes, self.overview):
            vb = p.getViewBox()
            if p.isVisible() and vb.sceneBoundingRect().contains(pos):
                self.seek(int(round(vb.mapSceneToView(pos).x())))
                return

    def seek(self, frame: int) -> None:
        """Move the playhead to ``frame`` (clamped) as a user action."""
        n = self.session.frame_count
        if n == 0:
            return
        frame = min(max(frame, 0), n - 1)
        self.session.set_frame(frame)
        self.sigSeek.emit(frame)

    def frame_to_scene(self, frame: float, y: float = 0.5) -> object:
        """Scene position of (frame, y) in the main plot (for tests and benchmarks)."""
        return self.vb.mapViewToScene(pg.Point(frame, y))

    # ---------------------------------------------------------------- zoom and pan (keys)
    def zoom(self, factor: float) -> None:
        """Zoom the x axis by ``factor`` (> 1 zooms in) around the playhead."""
        lo, hi = self.vb.viewRange()[0]
        n = max(1, self.session.frame_count)
        c = float(self.session.frame)
        width = min(max((hi - lo) / factor, 10.0), n)
        start = min(max(-0.5, c - (c - lo) / (hi - lo) * width if hi > lo else c - width / 2), n - 0.5 - width)
        self.plot.setXRange(start, start + width, padding=0)

    def pan(self, fraction: float) -> None:
        lo, hi = self.vb.viewRange()[0]
        n = self.session.frame_count
        d = (hi - lo) * fraction
        d = min(max(d, -0.5 - lo), n - 0.5 - hi)
        self.plot.setXRange(lo + d, hi + d, padding=0)

    def fit(self) -> None:
        self.plot.setXRange(-0.5, max(1, self.session.frame_count) - 0.5, padding=0)


class ThresholdBar(QWidget):
    """The prediction text, and the threshold as a slider and a spin box (synced both ways with the line).

    Segment options (minimum length, gap merging) sit beside it, in seconds (each video's frame rate turns
    them into frames; the tooltips say how many), and a menu toggles other curves.

    Signals:
        sigSegmentSecondsChanged(float, float): the user changed the minimum length or the merge gap.
    """

    sigSegmentSecondsChanged = Signal(float, float)

    def __init__(self, session: Session, timeline: Timeline, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.timeline = timeline
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 4, 6, 2)
        outer.setSpacing(2)
        self.prediction = QLabel(self)
        self.prediction.setWordWrap(True)
        self.prediction.setTextFormat(Qt.TextFormat.RichText)
        outer.addWidget(self.prediction)
        row = QHBoxLayout()
        outer.addLayout(row)
        row.addWidget(QLabel("Threshold"))
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, 1000)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.setMinimumWidth(160)
        self.slider.setToolTip("Frames scoring at or above the threshold are flagged (drag the red line too)")
        row.addWidget(self.slider, 2)
        self.spin = QDoubleSpinBox(self)
        self.spin.setRange(0.0, 1.0)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.01)
        self.spin.setKeyboardTracking(False)
        self.spin.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        row.addWidget(self.spin)
        row.addSpacing(12)
        row.addWidget(QLabel("Min. length"))
        self.min_seconds = self._seconds_box(0.0, "Drop flagged segments shorter than this")
        row.addWidget(self.min_seconds)
        row.addWidget(QLabel("Merge gaps ≤"))
        self.merge_seconds = self._seconds_box(0.0, "Join flagged segments separated by at most this")
        row.addWidget(self.merge_seconds)
        row.addSpacing(12)
        self.curves_button = QToolButton(self)
        self.curves_button.setText("Curves ▾")
        self.curves_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.curves_button.setToolTip(
            "Compare with this video's other analyses (method · model, cached) and the window probability"
        )
        self.curves_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.curves_menu = QMenu(self)
        self.curves_button.setMenu(self.curves_menu)
        row.addWidget(self.curves_button)
        row.addStretch(1)

        self.slider.valueChanged.connect(lambda v: session.set_threshold(v / 1000.0))
        self.spin.valueChanged.connect(session.set_threshold)
        self.min_seconds.valueChanged.connect(self._on_options)
        self.merge_seconds.valueChanged.connect(self._on_options)
        session.sigVideoChanged.connect(self._on_video)
        session.sigThresholdChanged.connect(self._on_threshold)
        session.sigAnalysisChanged.connect(self._on_analysis)
        session.sigScoresChanged.connect(self._on_analysis)
        session.sigCurvesChanged.connect(self._rebuild_menu)
        self._on_threshold(session.threshold)
        self._on_analysis()

    def _on_threshold(self, t: float) -> None:
        for w, v in ((self.slider, int(round(t * 1000))), (self.spin, t)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)

    def _seconds_box(self, value: float, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox(self)
        box.setRange(0.0, 60.0)
        box.setDecimals(2)
        box.setSingleStep(0.1)
        box.setSuffix(" s")
        box.setKeyboardTracking(False)
        box.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        box.setValue(value)
        box.setProperty("tip", tip)
        box.setToolTip(tip)
        return box

    def set_segment_seconds(self, min_seconds: float, merge_seconds: float) -> None:
        """Show and apply these segment options (the app's defaults or the remembered ones)."""
        for box, v in ((self.min_seconds, min_seconds), (self.merge_seconds, merge_seconds)):
            box.blockSignals(True)
            box.setValue(v)
            box.blockSignals(False)
        self._on_options()

    def _on_options(self) -> None:
        self.session.set_segment_seconds(self.min_seconds.value(), self.merge_seconds.value())
        self._on_video()
        self.sigSegmentSecondsChanged.emit(self.min_seconds.value(), self.merge_seconds.value())

    def _on_video(self) -> None:
        """Tooltips say what the seconds are in this video's frames."""
        o, fps = self.session.options, self.session.fps
        for box, frames in ((self.min_seconds, o.min_frames), (self.merge_seconds, o.merge_gap)):
            at = f" ({frames} frame{'s' if frames != 1 else ''} at {fps:g} frames/s)" if fps > 0 else ""
            box.setToolTip(f"{box.property('tip')}{at}")

    def _on_analysis(self) -> None:
        self.prediction.setText(prediction_text(self.session))
        has = self.session.scores is not None
        for w in (self.slider, self.spin, self.min_seconds, self.merge_seconds):
            w.setEnabled(has)
        self._rebuild_menu()

    def _rebuild_menu(self) -> None:
        self.curves_menu.clear()
        names = sorted(self.timeline.available_curves())
        for k, name in enumerate(names):
            a = QAction(name, self.curves_menu)
            a.setCheckable(True)
            a.setChecked(name in self.timeline._visible_curves)
            color = CURVE_COLORS[k % len(CURVE_COLORS)]
            a.setToolTip(f"colour {QColor(*color).name()}")
            a.toggled.connect(lambda on, n=name: self.timeline.set_curve_visible(n, on))
            self.curves_menu.addAction(a)
        self.curves_button.setEnabled(bool(names))
