"""The table of flagged segments: live as the threshold moves; click a row to jump to the segment."""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QItemSelectionModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableView, QVBoxLayout, QWidget

from stanviewer.core.explain.segments import format_threshold
from stanviewer.qt.session import Session
from stanviewer.qt.video_view import format_time

__all__ = ["SegmentsModel", "SegmentsPanel"]

COLUMNS = ["#", "First", "Last", "Start", "End", "Dur. (s)", "Peak", "Mean"]
DROP_FIRST = (7, 2)  # Mean, then Last: the columns a narrow panel leaves out first
TIPS = [
    "Segment number",
    "First flagged frame (0-based index)",
    "Last flagged frame (0-based index, inclusive)",
    "Time of the first frame",
    "Time at which the segment ends (start of the first frame after it)",
    "End minus start, in seconds",
    "Highest score in the segment",
    "Mean score over the segment",
]

Index = QModelIndex | QPersistentModelIndex


_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_USER = int(Qt.ItemDataRole.UserRole.value)
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)


def options_text(session: Session) -> str:
    """How the segments were cut besides the threshold, in words ("" when every run of frames counts)."""
    o, fps = session.options, session.fps
    parts = []
    if o.min_frames > 1:
        parts.append(f"≥ {o.min_frames / fps:.2f} s" if fps > 0 else f"≥ {o.min_frames} frames")
    if o.merge_gap > 0:
        parts.append(f"gaps ≤ {o.merge_gap / fps:.2f} s joined" if fps > 0 else f"gaps ≤ {o.merge_gap} frames joined")
    return f" ({', '.join(parts)})" if parts else ""


class SegmentsModel(QAbstractTableModel):
    """Rows of :attr:`Session.segments`; every number comes from the session."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self._values: dict[int, list] = {}  # row -> cell values, until the segments change
        self._texts: dict[int, list[str]] = {}
        session.sigSegmentsChanged.connect(self._reset)
        session.sigVideoChanged.connect(self._reset)

    def _reset(self) -> None:
        self.beginResetModel()
        self._values.clear()
        self._texts.clear()
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.session.segments)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def end_time(self, row: int) -> float:
        s = self.session
        g = s.segments[row]
        if g.end < s.frame_count:
            return s.time_of(g.end)
        return float(s.reader.info.duration_s) if s.reader is not None else s.time_of(g.end - 1)

    def cell(self, row: int, col: int) -> Any:
        """The value of a cell (numbers for sorting and tests)."""
        return self._row(row)[col]

    def _row(self, row: int) -> list:
        # a repaint asks for every visible cell several times (600-700 calls): compute each row once
        v = self._values.get(row)
        if v is None:
            s = self.session
            g = s.segments[row]
            t0, t1 = s.time_of(g.start), self.end_time(row)
            peak, mean = float(s.peaks[row]), float(s.means[row])
            v = self._values[row] = [row + 1, g.start, g.end - 1, t0, t1, t1 - t0, peak, mean]
        return v

    def _text(self, row: int, col: int) -> str:
        t = self._texts.get(row)
        if t is None:
            v = self._row(row)
            t = self._texts[row] = [
                str(v[0]), str(v[1]), str(v[2]), format_time(v[3]), format_time(v[4]),
                f"{v[5]:.2f}", f"{v[6]:.2f}", f"{v[7]:.2f}",
            ]  # fmt: skip
        return t[col]

    def data(self, index: Index, role: int = _DISPLAY) -> Any:
        # Qt asks for 7 roles of every visible cell on each repaint: roles are compared as plain ints (no enum
        # arithmetic per call; table repaint 7.4 -> 6.7 ms with 133 segments, measured alternately)
        if role == _DISPLAY:
            return self._text(index.row(), index.column()) if index.isValid() else None
        if role == _ALIGN:
            return _RIGHT
        if role == _USER and index.isValid():
            return self.cell(index.row(), index.column())
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole:
                return TIPS[section]
        return None


class SegmentsPanel(QWidget):
    """Summary line plus the table; the selected row is the session's selected segment."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.model = SegmentsModel(session)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        # sized once: resizing to the contents on every threshold move costs time with thousands of rows
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self._sized = False
        self._widths: list[int] = []
        self.table.setAlternatingRowColors(True)
        self.table.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        lay.addWidget(self.table)
        self.table.clicked.connect(self._on_clicked)
        self.table.activated.connect(self._on_clicked)
        session.sigSegmentsChanged.connect(self._on_segments)
        session.sigSelectedChanged.connect(self._on_selected)
        self._on_segments()

    def _on_clicked(self, index: QModelIndex) -> None:
        self.session.select_segment(index.row(), jump=True)

    def _on_segments(self) -> None:
        s = self.session
        n = len(s.segments)
        if s.scores is None:
            self.summary.setText("No analysis: flagged segments appear here.")
        else:
            frames = sum(g.frames for g in s.segments)
            share = 100.0 * frames / max(1, s.frame_count)
            self.summary.setText(
                f"<b>{n}</b> flagged segment{'s' if n != 1 else ''} at threshold {format_threshold(s.threshold)}"
                f"{options_text(s)}: {frames} frames ({share:.1f}% of the video). "
                "Click a row to jump; N/P step through them."
            )
            a = s.analysis
            if a is not None and s.partial is None:
                for note in a.cautions():  # the same cautions `analyze` prints
                    self.summary.setText(self.summary.text() + f"<br><i>{html.escape(note[0].upper() + note[1:])}.</i>")
        if not self._sized and n:
            self._size_columns()
            self._sized = True
        self._on_selected(s.selected)

    def _size_columns(self) -> None:
        """Column widths from the header and a widest-case cell, by font metrics.

        ``resizeColumnsToContents`` measured every cell: 37 ms in the handler of a finished analysis (one
        event, so the GUI thread stalled), and more with thousands of segments.
        """
        fm = self.table.fontMetrics()
        hm = self.table.horizontalHeader().fontMetrics()
        s = self.session
        n = max(len(s.segments), s.frame_count)
        last = format_time(max(0.0, s.time_of(max(0, s.frame_count - 1)))) if s.frame_count else "0:00.000"
        longest = s.time_of(max(0, s.frame_count - 1)) if s.frame_count else 0.0  # a segment lasts at most that
        widest = [str(max(99, len(s.segments))), str(n), str(n), last, last, f"{longest:.2f}", "1.00", "1.00"]
        self._widths = []
        for col, (head, cell) in enumerate(zip(COLUMNS, widest)):
            w = max(hm.horizontalAdvance(head) + 12, fm.horizontalAdvance(cell) + 10)
            self.table.setColumnWidth(col, w)
            self._widths.append(w)
        self._fit_visible()

    def _fit_visible(self) -> None:
        """Hide the columns a narrow panel cannot show (Mean, then Last: Dur. and End say the same) instead of
        clipping Peak behind a scroll bar; a wider panel shows them again."""
        if not self._widths:
            return
        room = self.table.viewport().width()
        hidden: list[int] = []
        for col in (*DROP_FIRST, None):
            if sum(w for c, w in enumerate(self._widths) if c not in hidden) <= room or col is None:
                break
            hidden.append(col)
        for c in range(len(COLUMNS)):
            self.table.setColumnHidden(c, c in hidden)
        names = ", ".join(COLUMNS[c] for c in hidden)
        self.table.horizontalHeader().setToolTip(f"Widen this panel to show: {names}" if hidden else "")

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        self._fit_visible()

    def _on_selected(self, row: int) -> None:
        sm = self.table.selectionModel()
        sm.blockSignals(True)
        if row < 0:
            sm.clearSelection()
        else:
            idx = self.model.index(row, 0)
            sm.select(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(idx)
        sm.blockSignals(False)
        self.table.viewport().update()
