"""The video picture with its saliency overlay, ROI box and readout, and the overlay's colour bar.

:class:`VideoView` asks the :class:`~stanviewer.qt.workers.FrameGrabber` for frames at exactly the size
they take on screen (so they are drawn 1:1 and stay crisp; only a window larger than the video scales
up, smoothly), keeps recently decoded frames in a small LRU, and never decodes on the GUI thread. Until
the requested frame arrives it shows a low-resolution preview (:class:`~stanviewer.qt.workers.Thumbnails`)
when one is ready, else keeps the previous frame, and says so; the readout always describes the frame
that is actually on screen.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QLinearGradient, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from stanviewer.core.explain.overlay import HEAT_COLORMAPS, colormap_lut, heat_rgba
from stanviewer.qt.session import Session
from stanviewer.qt.workers import FrameGrabber, Grabbed, Thumbnails

__all__ = ["COLORMAPS", "ColorBar", "VideoView", "format_time", "heat_rgba"]

COLORMAPS = list(HEAT_COLORMAPS)


def format_time(seconds: float) -> str:
    """``m:ss.mmm`` (or ``h:mm:ss.mmm``)."""
    ms = int(round(seconds * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m}:{s:02d}.{ms:03d}"


def _qimage(arr: np.ndarray, fmt: QImage.Format) -> QImage:
    arr = np.ascontiguousarray(arr)
    h, w = arr.shape[:2]
    img = QImage(arr.data, w, h, arr.strides[0], fmt)
    img._keep = arr  # type: ignore[attr-defined] - the QImage borrows the array's memory
    return img


class VideoView(QWidget):
    """Draws the frame at ``session.frame`` with the heatmap overlay and ROI box.

    Signals:
        sigDisplayed(int, float, bool): a frame was painted (index, seconds since it was requested,
            True for the exact frame, False for a low-resolution preview).
    """

    sigDisplayed = Signal(int, float, bool)
    CACHE_BYTES = 160 << 20

    def __init__(self, session: Session, grabber: FrameGrabber, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.grabber = grabber
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 160)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._cache: OrderedDict[tuple[int, tuple[int, int]], Grabbed] = OrderedDict()
        self._cache_bytes = 0
        self._image: QImage | None = None
        self._heat_image: QImage | None = None
        self._heat: np.ndarray | None = None
        self.shown = -1  # index of the frame on screen (-1: none)
        self.preview = False  # the picture on screen is a low-resolution preview of frame ``shown``
        self._readout_drawn: tuple[str, QRectF] | None = None  # text and box of the last painted readout
        self._fit_cache: dict[str, tuple[tuple[int, int, int], QImage]] = {}  # slot -> (key, scaled image)
        self.thumbs: Thumbnails | None = None
        self._shown_size: tuple[int, int] | None = None
        self._asked_at: dict[int, float] = {}
        self._pending_paint: tuple[int, float] | None = None
        self.error: str | None = None
        self.forward = 12  # read-ahead (frames) when stepping; the transport raises it while playing
        self.forward_step = 1
        self._resize_timer = QTimer(self, singleShot=True, interval=60)
        self._resize_timer.timeout.connect(self._refresh)
        grabber.sigFrame.connect(self._on_grabbed)
        grabber.sigFailed.connect(self._on_failed)
        session.sigVideoChanged.connect(self._on_video)
        session.sigAnalysisChanged.connect(self._on_source)
        session.sigFrameChanged.connect(self.show_frame)
        session.sigOverlayChanged.connect(self._on_overlay)
        session.sigScoresChanged.connect(self._on_scores)

    def _on_scores(self) -> None:
        had_heat = self._heat_image is not None
        self._update_heat_image()  # no maps from an older analysis while a new one runs
        if had_heat or self._heat_image is not None or self._readout_drawn is None:
            self.update()
            return
        # a partial curve of a running analysis changes only the readout (the frame's score): repaint the band
        # it sits in, not the whole picture (a whole repaint joined the timeline's in one long GUI event)
        text, box = self._readout_drawn
        if self.readout() != text:
            self.update(QRectF(0, box.top() - 1, self.width(), box.height() + 2).toAlignedRect())

    # ---------------------------------------------------------------- geometry
    def target_rect(self) -> QRectF:
        """Where the picture goes: the largest rectangle of the video's aspect ratio in the widget."""
        r = self.session.reader
        if r is None:
            return QRectF(self.rect())
        vw, vh = r.size
        s = min(self.width() / vw, self.height() / vh)
        w, h = vw * s, vh * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def decode_size(self) -> tuple[int, int]:
        """Frame size to decode: the on-screen size in device pixels, at most the video's size."""
        r = self.session.reader
        vw, vh = r.size
        dpr = self.devicePixelRatioF()
        t = self.target_rect()
        w, h = round(t.width() * dpr), round(t.height() * dpr)
        if w >= vw or h >= vh:
            return (vw, vh)
        return (max(2, w), max(2, h))

    def sizeHint(self) -> QSize:
        return QSize(800, 480)

    # ---------------------------------------------------------------- requests
    def _on_video(self) -> None:
        self._clear()
        self._on_source()

    def _on_source(self) -> None:
        """A new video or analysis: point the grabber at it, drop cached frames, show the frame."""
        s = self.session
        heat = None
        if s.analysis is not None and s.analysis.heatmap_path is not None:
            heat = s.analysis.heatmap_path
        self.grabber.set_source(s.reader, heat, s.overlay.relative_to)
        self._clear()
        if s.reader is not None:
            self.show_frame(s.frame)
        self.update()

    def _on_overlay(self) -> None:
        mode = self.session.overlay.relative_to
        if self.grabber.heat_mode != mode:
            self._on_source()
            return
        self._update_heat_image()
        self.update()

    def _clear(self) -> None:
        self._cache.clear()
        self._cache_bytes = 0
        self._image, self._heat_image, self._heat = None, None, None
        self.shown, self._shown_size, self.error, self.preview = -1, None, None, False

    def set_thumbnails(self, thumbs: Thumbnails | None) -> None:
        """Previews to show while the exact frame is being decoded (filled by a worker)."""
        self.thumbs = thumbs

    def showing(self, i: int) -> bool:
        """True when the exact frame ``i`` (not a preview) is on screen."""
        return self.shown == i and not self.preview

    def _refresh(self) -> None:
        if self.session.reader is not None:
            self.show_frame(self.session.frame)

    def show_frame(self, i: int) -> None:
        """Show frame ``i``: at once from the cache, else ask the grabber (the latest request wins)."""
        if self.session.reader is None:
            return
        size = self.decode_size()
        now = time.perf_counter()
        hit = self._cache.get((i, size))
        if hit is not None:
            self._cache.move_to_end((i, size))
            self._display(hit, now)
        else:
            self._asked_at[i] = now
            self.grabber.request(i, size)
            t = self.thumbs.get(i) if self.thumbs is not None else None
            if t is not None and (self.shown != i or self.preview):
                self._image = _qimage(t[1], QImage.Format.Format_RGB888)
                self.shown, self._shown_size, self.preview, self.error = t[0], None, True, None
                self._heat, self._heat_image = None, None
                self._pending_paint = (t[0], now, False)
        self._top_up(i, size)
        self.update()

    def _top_up(self, i: int, size: tuple[int, int]) -> None:
        """Keep the frames around the playhead decoded ahead of time."""
        n = self.session.frame_count
        step = max(1, self.forward_step)
        fwd = [j for j in range(i + step, i + step * (self.forward + 1), step) if j < n]
        back = [j for j in range(i - 1, i - 9, -1) if j >= 0]
        missing = [j for j in fwd + back if (j, size) not in self._cache and j != i]
        if missing:
            self.grabber.readahead(missing, size)

    def _on_grabbed(self, g: Grabbed) -> None:
        if g.generation != self.grabber.generation or g.size is None:
            return
        key = (g.index, g.size)
        if key not in self._cache:
            self._cache[key] = g
            self._cache_bytes += g.rgb.nbytes
            while self._cache_bytes > self.CACHE_BYTES and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cache_bytes -= old.rgb.nbytes
        if g.index == self.session.frame and (g.index != self.shown or g.size != self._shown_size or self.preview):
            self._display(g, self._asked_at.pop(g.index, g.t_request))
            self.update()
        if len(self._asked_at) > 256:
            self._asked_at.clear()

    def _on_failed(self, i: int, message: str) -> None:
        if i == self.session.frame:
            self.error = message
            self.update()

    def _display(self, g: Grabbed, asked: float) -> None:
        self._image = _qimage(g.rgb, QImage.Format.Format_RGB888)
        self.shown, self._shown_size, self.error, self.preview = g.index, g.size, None, False
        self._heat = g.heat
        self._update_heat_image()
        self._pending_paint = (g.index, asked, True)

    def _update_heat_image(self) -> None:
        o = self.session.overlay
        if self._heat is None or not o.visible or self.session.partial is not None:
            self._heat_image = None
            return
        self._heat_image = _qimage(heat_rgba(self._heat, o.colormap, o.opacity, o.floor), QImage.Format.Format_RGBA8888)

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        self._resize_timer.start()

    # ---------------------------------------------------------------- painting
    def _fitted(self, slot: str, img: QImage | None, rect: QRectF) -> QImage | None:
        """``img`` smoothly scaled to ``rect`` in device pixels, kept until the image or the size changes:
        a repaint that changes neither (a partial curve, the timeline, a dialog) then only copies pixels
        instead of scaling the frame and the low-resolution heatmap again."""
        if img is None:
            return None
        dpr = self.devicePixelRatioF()
        w, h = max(1, round(rect.width() * dpr)), max(1, round(rect.height() * dpr))
        key = (img.cacheKey(), w, h)
        hit = self._fit_cache.get(slot)
        if hit is None or hit[0] != key:
            scaled = img.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
            scaled.setDevicePixelRatio(dpr)
            hit = self._fit_cache[slot] = (key, scaled)
        return hit[1]

    def paintEvent(self, e: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(24, 24, 24))
        s = self.session
        if s.reader is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Open a video (Ctrl+O) or drop a video file here")
            p.end()
            return
        rect = self.target_rect()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        for slot, img in (("frame", self._image), ("heat", self._heat_image)):
            fitted = self._fitted(slot, img, rect)
            if fitted is not None:
                p.drawImage(rect.topLeft(), fitted)
        if s.overlay.roi_visible and s.roi_boxes is not None and 0 <= self.shown < len(s.roi_boxes):
            self._draw_roi(p, rect, s.roi_boxes[self.shown])
        self._draw_readout(p, rect)
        p.end()
        if self._pending_paint is not None:
            i, asked, exact = self._pending_paint
            self._pending_paint = None
            self.sigDisplayed.emit(i, time.perf_counter() - asked, exact)

    def _draw_roi(self, p: QPainter, rect: QRectF, box: np.ndarray) -> None:
        vw, vh = self.session.reader.size
        sx, sy = rect.width() / vw, rect.height() / vh
        x0, y0, x1, y1 = (float(v) for v in box)
        if not np.isfinite([x0, y0, x1, y1]).all() or x1 <= x0 or y1 <= y0:
            return
        pen = QPen(QColor(80, 220, 255), 2, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(rect.x() + x0 * sx, rect.y() + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy))

    def readout(self) -> str:
        """Frame index, time and score of the frame on screen."""
        s = self.session
        i = self.shown
        if i < 0:
            return f"decoding frame {s.frame}…"
        score = s.score_at(i)
        sc = "score —" if score is None else f"score {score:.2f}"
        flag = "  ⚑ flagged" if s.segment_at(i) >= 0 else ""
        pv = "  (preview)" if self.preview else ""
        return f"frame {i} / {s.frame_count - 1}   {format_time(s.time_of(i))}   {sc}{flag}{pv}"

    def _draw_readout(self, p: QPainter, rect: QRectF) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(9.0, font.pointSizeF()))
        font.setStyleHint(QFont.StyleHint.Monospace)
        font.setFamily("monospace")
        p.setFont(font)
        lines = [self.readout()]
        if self.error:
            lines.append(f"cannot show frame {self.session.frame}: {self.error}")
        elif self.shown >= 0 and (self.shown != self.session.frame or self.preview):
            lines.append(f"decoding frame {self.session.frame}…")
        fm = p.fontMetrics()
        w = max(fm.horizontalAdvance(t) for t in lines) + 16
        h = fm.height() * len(lines) + 8
        box = QRectF(rect.x() + 8, rect.y() + 8, w, h)
        self._readout_drawn = (lines[0], box)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 160))
        p.drawRoundedRect(box, 4, 4)
        p.setPen(QColor(255, 255, 255))
        for k, t in enumerate(lines):
            p.drawText(QPointF(box.x() + 8, box.y() + 4 + fm.ascent() + k * fm.height()), t)


class ColorBar(QWidget):
    """A horizontal colour bar for the heatmap that states what the colours mean."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.setFixedHeight(36)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        session.sigOverlayChanged.connect(self.update)
        session.sigAnalysisChanged.connect(self.update)
        session.sigScoresChanged.connect(self._on_scores)
        self._caption_drawn: str | None = None

    def _on_scores(self) -> None:
        if self.caption() != self._caption_drawn:  # partial curves leave it as it is: no repaint
            self.update()

    def caption(self) -> str:
        """The short line beside the bar (it fits a 1366 px window); :meth:`explanation` is the tooltip."""
        s = self.session
        a = s.analysis
        if s.partial is not None:
            return "Analysing: the saliency maps appear when the analysis finishes"
        if a is None:
            return "Saliency overlay: run an analysis to see where the model looked"
        if a.heatmap_path is None:
            return f"No saliency map: method '{s.method}' scores whole windows (no spatial detail)"
        scale = "each frame to its own peak" if s.overlay.relative_to == "frame" else "1 = video's 99th-percentile peak"
        hidden = f"; under {s.overlay.floor:g} hidden" if s.overlay.floor > 0 else ""
        what = "Body parts" if s.method == "posture" else "Saliency"
        return f"{what} ({s.method}, '{a.meta.get('target', '?')}'): {scale}{hidden}"

    def explanation(self) -> str:
        """The caption in full (the bar's tooltip)."""
        s = self.session
        a = s.analysis
        if a is None or a.heatmap_path is None or s.partial is not None:
            return self.caption()
        if s.overlay.relative_to == "frame":
            scale = "each frame scaled to its own maximum (not comparable across frames)"
        else:
            scale = "1 = this video's 99th-percentile frame peak (comparable across frames)"
        hidden = f"; values under {s.overlay.floor:g} are not drawn" if s.overlay.floor > 0 else ""
        what = (
            "Body parts behind the evidence: a blob at each joint the model read, as strong as that joint's "
            "displacement from the video's usual posture adds to the frame's evidence"
            if s.method == "posture"
            else "Saliency: where a change of the input would change the model's output most"
        )
        return f"{what}. Method {s.method}, class '{a.meta.get('target', '?')}'; 0 → 1, {scale}{hidden}."

    def paintEvent(self, e: QPaintEvent) -> None:
        p = QPainter(self)
        s = self.session
        bar = QRectF(8, 4, min(220.0, self.width() * 0.3), 12)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        lut = colormap_lut(s.overlay.colormap)
        for k in range(0, 256, 16):
            c = lut[k]
            grad.setColorAt(k / 255, QColor(int(c[0]), int(c[1]), int(c[2])))
        c = lut[255]
        grad.setColorAt(1.0, QColor(int(c[0]), int(c[1]), int(c[2])))
        p.fillRect(bar, grad)
        floor = s.overlay.floor
        if floor > 0:  # the values the overlay leaves out: hatched, as the picture shows through there
            hidden = QRectF(bar.x(), bar.y(), bar.width() * floor, bar.height())
            p.fillRect(hidden, self.palette().window())
            p.fillRect(hidden, QBrush(self.palette().mid().color(), Qt.BrushStyle.BDiagPattern))
        p.setPen(self.palette().windowText().color())
        fm = p.fontMetrics()
        for v in (0.0, 0.5, 1.0):
            x = bar.x() + v * bar.width()
            t = f"{v:g}"
            p.drawText(QPointF(x - fm.horizontalAdvance(t) / 2, bar.bottom() + fm.ascent() + 2), t)
        text = self._caption_drawn = self.caption()
        if not s.overlay.visible and s.analysis is not None:
            text = "Overlay hidden (press H). " + text  # first: a cut line must still say it
        room = QRectF(bar.right() + 12, 0, self.width() - bar.right() - 16, self.height())
        text = fm.elidedText(text, Qt.TextElideMode.ElideRight, int(room.width()))  # "…", never a cut word
        p.drawText(room, int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)
        self.setToolTip(self.explanation())
        p.end()
