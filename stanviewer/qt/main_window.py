"""The main window: assembles the session, the views and the workers; menus, settings, drag-and-drop.

Opening a video runs in a worker (the frame index of a long file takes a while to build the first
time); it also loads the newest cached analysis of the video, the curves of other cached methods and a
label file found beside the video, so that reopening shows everything at once. The video's review
(editable label tiers, review file, autosave, crash recovery) is :class:`~stanviewer.qt.review.ReviewController`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QByteArray, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from stanviewer.core.errors import StanError
from stanviewer.core.explain.overlay import DEFAULT_FLOOR, FLOORS
from stanviewer.core.progress import Job, Progress
from stanviewer.core.review.model import MODEL_TIER
from stanviewer.qt.analysis_panel import AnalysisPanel
from stanviewer.qt.dialogs import ShortcutsDialog, show_about, show_error
from stanviewer.qt.lanes import LaneEditor
from stanviewer.qt.review import ReviewController
from stanviewer.qt.review_bar import STATUS_TEXT, ReviewBar
from stanviewer.qt.review_files import ReviewFiles
from stanviewer.qt.segments_panel import SegmentsPanel
from stanviewer.qt.session import Session, Tier, curve_name, find_label_file
from stanviewer.qt.settings import AppSettings
from stanviewer.qt.timeline import ThresholdBar, Timeline
from stanviewer.qt.transport import Transport, TransportBar, make_actions
from stanviewer.qt.video_view import COLORMAPS, ColorBar, VideoView
from stanviewer.qt.workers import FrameGrabber, JobWorker, Thumbnails, live_workers

__all__ = ["MainWindow", "OpenResult", "open_job"]

log = logging.getLogger(__name__)
VIDEO_FILTER = "Videos (*.mp4 *.m4v *.mov *.avi *.mkv *.webm *.mpg *.mpeg *.wmv *.mts *.m2ts);;All files (*)"
HAS_ROI = importlib.util.find_spec("stanviewer.core.roi") is not None


@dataclass
class OpenResult:
    """What :func:`open_job` found for a video."""

    path: Path
    reader: Any
    analysis: Any = None
    folder: Path | None = None
    cached: list[tuple[Path, dict]] = field(default_factory=list)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    tiers: list[Tier] = field(default_factory=list)


def open_job(path: Path, analysis_folder: Path | None = None) -> Job[OpenResult]:
    """Open a video with its analyses and labels (runs in a worker).

    The first progress item carries the :class:`OpenResult` with just the reader, so the window shows
    the video at once; the cached analyses follow (loading them imports torch the first time).
    """
    from stanviewer.core.explain.segments import segments_from_scores
    from stanviewer.core.manifest import read_frame_labels
    from stanviewer.core.video import open_video

    yield Progress(0, 2, f"opening {path.name}")
    reader = open_video(path)
    handed_over = False  # after the first yield the window owns the reader
    try:
        n = reader.frame_count
        res = OpenResult(path=path, reader=reader)
        label_file = find_label_file(path)
        if label_file is not None:
            try:
                labels = read_frame_labels(label_file, n)
                iv = [(g.start, g.end) for g in segments_from_scores(labels.astype(np.float32), 0.5)]
                res.tiers.append(Tier("labels", iv, source=str(label_file), color=(90, 160, 240)))
            except StanError as e:
                log.warning("label file ignored: %s", e)
        handed_over = True
        yield Progress(1, 2, "looking for cached analyses", partial=res)
        from stanviewer.core.explain.store import cached_analyses, load_analysis

        folders = [Path(analysis_folder)] if analysis_folder else []
        folders += [f for f in cached_analyses(reader.info.fingerprint) if f not in folders]
        for f in folders[:20]:
            try:
                res.cached.append((f, json.loads((f / "analysis.json").read_text(encoding="utf-8"))))
            except (OSError, ValueError) as e:
                if analysis_folder is not None and f == Path(analysis_folder):
                    raise StanError(f"analysis.json cannot be read ({e})", f) from e
        for k, (f, _meta) in enumerate(res.cached):
            try:
                a = load_analysis(f)
            except StanError:
                if k == 0 and analysis_folder is not None:
                    raise
                continue
            made_of = (a.meta.get("video") or {}).get("fingerprint")
            if k == 0 and analysis_folder is not None and made_of and made_of != reader.info.fingerprint:
                raise StanError(
                    f"the analysis is of another video ({(a.meta.get('video') or {}).get('path', '?')}; its "
                    f"fingerprint differs from {path.name}'s)",
                    f,
                )
            if len(a.scores) != n:
                if k == 0 and analysis_folder is not None:
                    raise StanError(f"the analysis has {len(a.scores)} frames, the video {n}: another video?", f)
                continue
            if res.analysis is None:
                res.analysis, res.folder = a, f
            res.curves.setdefault(curve_name(a), a.scores)  # method · model: two models' "vanilla" differ
            if len(res.curves) >= 6:
                break
    except BaseException:
        if not handed_over:
            reader.close()
        raise
    return res


class MainWindow(QMainWindow):
    """The stanviewer window.

    Signals:
        sigOpened(Path): a video finished opening (with its cached analyses, if any).
        sigOpenFailed(Path): a video could not be opened (a dialog said why).
    """

    sigOpened = Signal(object)
    sigOpenFailed = Signal(object)

    def __init__(self, settings: AppSettings | None = None, probe_devices: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("stanviewer")
        self.setAcceptDrops(True)
        self.settings = settings or AppSettings()
        self.session = Session(self)
        self.grabber = FrameGrabber()
        self.grabber.start()
        self._opener: JobWorker | None = None
        self._roi_worker: JobWorker | None = None
        self._thumb_worker: JobWorker | None = None
        self.auto_run = False

        self.view = VideoView(self.session, self.grabber)
        self.colorbar = ColorBar(self.session)
        self.transport = Transport(self.session, self.view, self)
        self.playback_actions = make_actions(self.transport, self)
        self.transport_bar = TransportBar(self.transport, self.playback_actions)
        self.timeline = Timeline(self.session)
        self.threshold_bar = ThresholdBar(self.session, self.timeline)
        self.analysis_panel = AnalysisPanel(self.session, self.settings)
        self.segments_panel = SegmentsPanel(self.session)
        self.review = ReviewController(self.session, self)
        self.review_files = ReviewFiles(self.review, self, self.settings)
        self.review_bar = ReviewBar(self.review)
        self.lane_editor = LaneEditor(self.timeline, self.review)
        self.timeline.lane_editor = self.lane_editor
        self._build_overlay_bar()
        self._build_layout()
        self._build_menus()
        self._build_status()
        self._connect()
        self._restore()
        if probe_devices:
            self.analysis_panel.probe_devices()

    # ---------------------------------------------------------------- construction
    def _build_overlay_bar(self) -> None:
        o = self.session.overlay
        bar = QWidget(self)
        lay = QHBoxLayout(bar)
        lay.setContentsMargins(4, 0, 4, 0)
        self.heat_check = QCheckBox("Heatmap", bar)
        self.heat_check.setToolTip("Show where the model looked (H)")
        self.heat_check.setChecked(o.visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal, bar)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(o.opacity * 100))
        self.opacity.setMinimumWidth(60)  # it shrank to a 15 px stub that looked like a check box
        self.opacity.setMaximumWidth(120)
        self.opacity.setToolTip("Heatmap opacity")
        self.cmap = QComboBox(bar)
        self.cmap.addItems(COLORMAPS)
        self.cmap.setToolTip("Heatmap colour map")
        self.floor = QComboBox(bar)
        for f in FLOORS:
            self.floor.addItem(f"Hide < {f:g}" if f > 0 else "Show all", f)
        self.floor.setCurrentIndex(max(0, self.floor.findData(o.floor)))
        self.floor.setToolTip(
            "Map values under this are not drawn: the faint, widespread part of a gradient map would tint the "
            "whole crop (the colour bar hatches what is hidden)"
        )
        self.scale = QComboBox(bar)
        self.scale.addItem("Whole video", "video")
        self.scale.addItem("Each frame", "frame")
        self.scale.setToolTip(
            "Colour scale. Whole video: colours comparable across frames. Each frame: scaled to its own peak."
        )
        self.roi_check = QCheckBox("ROI box", bar)
        self.roi_check.setToolTip("Show the person box used for the local view (R)")
        if not HAS_ROI:
            self.roi_check.setEnabled(False)
            self.roi_check.setToolTip("ROI boxes are not available in this version")
        for w in (self.heat_check, self.opacity, self.cmap, self.floor, self.scale, self.roi_check):
            w.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        lay.addWidget(self.heat_check)
        lay.addWidget(QLabel("Opacity"))
        lay.addWidget(self.opacity)
        lay.addWidget(self.cmap)
        lay.addWidget(self.floor)
        lay.addWidget(self.scale)
        lay.addWidget(self.roi_check)
        lay.addStretch(1)
        self.overlay_bar = bar

    def _build_layout(self) -> None:
        top = QWidget(self)
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.setSpacing(2)
        tl.addWidget(self.view, 1)
        tl.addWidget(self.colorbar)
        row = QHBoxLayout()
        row.addWidget(self.transport_bar, 1)
        row.addWidget(self.overlay_bar)
        tl.addLayout(row)
        bottom = QWidget(self)
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(0)
        bl.addWidget(self.threshold_bar)
        bl.addWidget(self.review_bar)
        bl.addWidget(self.timeline, 1)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        top.setMinimumHeight(260)  # the bottom's minimum comes from its bars and the timeline's plot and lanes
        self.splitter.setSizes([560, 420])
        self.setCentralWidget(self.splitter)
        self.analysis_dock = QDockWidget("Analysis", self)
        self.analysis_dock.setObjectName("dock_analysis")
        self.analysis_dock.setWidget(self.analysis_panel)
        self.segments_dock = QDockWidget("Flagged segments", self)
        self.segments_dock.setObjectName("dock_segments")
        self.segments_dock.setWidget(self.segments_panel)
        # narrow enough for a 1366 px laptop screen beside the video's controls (the docks were 430 px)
        self.analysis_dock.setMinimumWidth(320)
        self.segments_dock.setMinimumWidth(320)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.analysis_dock)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.segments_dock)
        self.splitter.setObjectName("splitter")

    def _action(self, menu: Any, text: str, slot: Any, keys: list[str] | None = None, name: str = "") -> QAction:
        a = QAction(text, self)
        if keys:
            a.setShortcuts([QKeySequence(k) for k in keys])
        a.triggered.connect(slot)
        if name:
            a.setObjectName(f"action_{name}")
        menu.addAction(a)
        self.addAction(a)
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "&Open video…", self.choose_video, ["Ctrl+O"], "open")
        self.recent_menu = f.addMenu("Open &recent")
        self._action(f, "Open &analysis folder…", self.choose_analysis, [], "open_analysis")
        f.addSeparator()
        self._action(f, "&Save labels", self.review.save, ["Ctrl+S"], "save")
        self._action(f, "&Import labels…", self.review_files.import_labels, [], "import_labels")
        self._action(f, "&Export labels…", self.review_files.export_labels, [], "export_labels")
        self._action(f, "Export &clips…", self.review_files.export_clips, [], "export_clips")
        self._action(f, "&Report (PDF)…", self.review_files.report, [], "report")
        f.addSeparator()
        self._action(f, "&Quit", self.close, ["Ctrl+Q"], "quit")
        self._build_edit_menu(mb.addMenu("&Edit"))
        v = mb.addMenu("&View")
        self.heat_action = self._action(v, "Heatmap overlay", lambda: self.heat_check.toggle(), ["H"], "heatmap")
        self.roi_action = self._action(v, "ROI box", lambda: self.roi_check.toggle(), ["R"], "roi")
        self.roi_action.setEnabled(HAS_ROI)
        self._overlay_menus(v)  # the overlay bar's choices, reachable from the keyboard (Alt+V)
        v.addSeparator()
        self._action(v, "Zoom in timeline", lambda: self.timeline.zoom(2.0), ["=", "+"], "zoom_in")
        self._action(v, "Zoom out timeline", lambda: self.timeline.zoom(0.5), ["-"], "zoom_out")
        self._action(v, "Show the whole video", self.timeline.fit, ["0"], "zoom_fit")
        self._action(v, "Pan timeline left", lambda: self.timeline.pan(-0.5), ["Ctrl+Left"], "pan_left")
        self._action(v, "Pan timeline right", lambda: self.timeline.pan(0.5), ["Ctrl+Right"], "pan_right")
        v.addSeparator()
        v.addAction(self.analysis_dock.toggleViewAction())
        v.addAction(self.segments_dock.toggleViewAction())
        p = mb.addMenu("&Playback")
        for a in self.playback_actions.values():
            p.addAction(a)
        an = mb.addMenu("&Analysis")
        self._action(an, "&Run analysis", self.analysis_panel.run, ["Ctrl+R"], "run")
        self._action(an, "&Cancel analysis", self.analysis_panel.cancel, ["Esc"], "cancel")
        h = mb.addMenu("&Help")
        self._action(h, "&Keyboard shortcuts", self.show_shortcuts, ["F1", "?"], "shortcuts")
        self._action(h, "&About stanviewer", lambda: show_about(self, str(self.settings.path)), [], "about")
        self._rebuild_recent()

    def _overlay_menus(self, v: Any) -> None:
        """View ▸ Heatmap colours / floor / scale: the same choices as the combo boxes beside the transport
        (which follow, since the menus set the combos)."""
        for title, combo, items in (
            ("Heatmap colours", self.cmap, [(self.cmap.itemText(k), k) for k in range(self.cmap.count())]),
            ("Heatmap floor", self.floor, [(self.floor.itemText(k), k) for k in range(self.floor.count())]),
            ("Heatmap scale", self.scale, [(self.scale.itemText(k), k) for k in range(self.scale.count())]),
        ):
            menu = v.addMenu(title)
            group = QActionGroup(menu)
            for text, k in items:
                act = menu.addAction(text)
                act.setCheckable(True)
                group.addAction(act)
                act.triggered.connect(lambda _on=False, c=combo, i=k: c.setCurrentIndex(i))
            menu.aboutToShow.connect(
                lambda m=menu, c=combo: [a.setChecked(j == c.currentIndex()) for j, a in enumerate(m.actions())]
            )

    def _build_edit_menu(self, e: Any) -> None:
        r = self.review
        self.undo_action = self._action(e, "&Undo", r.undo, ["Ctrl+Z"], "undo")
        self.redo_action = self._action(e, "&Redo", r.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "redo")
        for a in (self.undo_action, self.redo_action):
            a.setEnabled(False)
        e.addSeparator()
        self._action(e, "&Accept the flagged segment at the playhead", r.accept, ["A"], "accept")
        self._action(e, "Accept all flagged segments", r.accept_all, ["Shift+A"], "accept_all")
        self._action(e, "Selection starts at the playhead", r.mark_in, ["I"], "mark_in")
        self._action(e, "Selection ends at the playhead", r.mark_out, ["O"], "mark_out")
        self._action(e, "&Label the selection", self._label_selection, ["Return", "Enter"], "label")
        self._action(e, "&Delete the interval at the playhead", r.delete, ["Delete"], "delete")
        self._action(e, "Move the selected edge one frame earlier", lambda: r.nudge(-1), [","], "nudge_left")
        self._action(e, "Move the selected edge one frame later", lambda: r.nudge(1), ["."], "nudge_right")
        self._action(e, "Switch the selected edge (left / right)", r.toggle_edge, ["E"], "switch_edge")
        self._action(e, "&Split the interval at the playhead", r.split, ["S"], "split")
        self._action(e, "&Merge the interval with the next", r.merge, ["M"], "merge")
        e.addSeparator()
        self.status_menu = e.addMenu("Review &status")
        group = QActionGroup(self)
        self.status_actions: dict[str, QAction] = {}
        for key, text in STATUS_TEXT.items():
            a = self.status_menu.addAction(text)
            a.setCheckable(True)
            a.setObjectName(f"action_status_{key}")
            a.triggered.connect(lambda _c=False, k=key: r.set_status(k))
            group.addAction(a)
            self.status_actions[key] = a

    def _label_selection(self) -> None:
        fw = QApplication.focusWidget()
        if isinstance(fw, QAbstractSpinBox):  # Enter in a number box (threshold...) commits it, as before
            fw.interpretText()
            return
        box = self.review_bar.label
        self.review.set_label(box.currentText())  # a label typed but not yet applied
        lab = self.review.labels
        in_box = fw is not None and (fw is box or box.isAncestorOf(fw))
        if in_box and (lab is None or lab.selection is None or lab.selection.tier == MODEL_TIER):
            # Enter in the label box with nothing selected: it only chooses the label of new intervals
            self.statusBar().showMessage(f"New intervals get the label '{self.review.label}'", 6000)
            return
        self.review.label_selection()

    def _on_review_state(self) -> None:
        lab = self.review.labels
        if lab is not None and lab.status in self.status_actions:
            self.status_actions[lab.status].setChecked(True)
        for a in self.status_actions.values():
            a.setEnabled(lab is not None)
        p = self.session.path
        if p is not None:
            self.setWindowTitle(f"{p.name}{' •' if self.review.dirty else ''} — stanviewer")

    def _build_status(self) -> None:
        sb = self.statusBar()
        self.video_label = QLabel("", self)
        self.device_label = QLabel("Device: checking…", self)
        self.model_label = QLabel("", self)
        for w in (self.video_label, self.device_label, self.model_label):
            sb.addPermanentWidget(w)
        self.model_label.setText(self._model_text or "")

    _model_text = ""

    def _connect(self) -> None:
        s = self.session
        self.heat_check.toggled.connect(lambda on: s.set_overlay(visible=on))
        self.opacity.valueChanged.connect(lambda v: s.set_overlay(opacity=v / 100.0))
        self.cmap.currentTextChanged.connect(lambda name: s.set_overlay(colormap=name))
        self.floor.currentIndexChanged.connect(lambda _k: s.set_overlay(floor=float(self.floor.currentData())))
        self.scale.currentIndexChanged.connect(lambda _k: s.set_overlay(relative_to=self.scale.currentData()))
        self.roi_check.toggled.connect(self._on_roi_toggled)
        s.sigOverlayChanged.connect(self._on_overlay)
        s.sigThresholdChanged.connect(self._remember_threshold)
        s.sigVideoChanged.connect(self._on_video)
        self.threshold_bar.set_segment_seconds(*self.settings.segment_seconds())
        self.threshold_bar.sigSegmentSecondsChanged.connect(self.settings.set_segment_seconds)
        ap = self.analysis_panel
        ap.sigAnalysisReady.connect(self.show_analysis)
        ap.sigStatus.connect(lambda m: self.statusBar().showMessage(m, 5000))
        ap.sigModelText.connect(self._set_model_text)
        ap.sigDeviceText.connect(self.device_label.setText)
        self._set_model_text(ap.model_text or self._model_text)
        r = self.review
        r.sigMessage.connect(lambda m: self.statusBar().showMessage(m, 6000))
        r.sigHistoryChanged.connect(self._on_history)
        r.sigLabelsChanged.connect(self._on_review_state)
        r.sigReviewChanged.connect(self._on_review_state)
        r.sigSaved.connect(lambda _p: self._on_review_state())
        r.sigAutosaveFailed.connect(
            lambda e: self.statusBar().showMessage(f"Autosave failed: {e} (your edits are still in memory)", 10000)
        )

    def _on_history(self, can_undo: bool, can_redo: bool) -> None:
        lab = self.review.labels
        self.undo_action.setEnabled(can_undo)
        self.redo_action.setEnabled(can_redo)
        self.undo_action.setText(f"&Undo {lab.undo_text}" if can_undo and lab is not None else "&Undo")
        self.redo_action.setText(f"&Redo {lab.redo_text}" if can_redo and lab is not None else "&Redo")

    def _set_model_text(self, text: str) -> None:
        self._model_text = text
        if hasattr(self, "model_label"):
            self.model_label.setText(text)

    def _restore(self) -> None:
        geometry, state = self.settings.window_state()
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 900)
        if state is not None:
            self.restoreState(state)
        split = self.settings.get("window/splitter")
        if isinstance(split, QByteArray):
            self.splitter.restoreState(split)
        st = self.settings  # read everything first: applying one value saves all overlay settings
        opacity, cmap = int(st.get("overlay/opacity", 50, int)), str(st.get("overlay/colormap", "inferno"))
        visible, rel = bool(st.get("overlay/visible", True, bool)), st.get("overlay/relative_to", "video")
        floor = st.get("overlay/floor", DEFAULT_FLOOR, float)
        self.opacity.setValue(opacity)
        k = self.floor.findData(floor)
        self.floor.setCurrentIndex(k if k >= 0 else self.floor.findData(DEFAULT_FLOOR))
        self.cmap.setCurrentText(cmap)
        self.heat_check.setChecked(visible)
        self.scale.setCurrentIndex(max(0, self.scale.findData(rel)))

    # ---------------------------------------------------------------- opening
    def choose_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", self.settings.last_folder(), VIDEO_FILTER)
        if path:
            self.open_path(path)

    def choose_analysis(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open an analysis folder", self.settings.last_folder())
        if folder:
            self.open_analysis_folder(Path(folder))

    def open_analysis_folder(self, folder: Path) -> None:
        """Open the video an analysis folder was made from, showing that analysis."""
        try:
            meta = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
            video = Path(meta["video"]["path"])
        except (OSError, ValueError, KeyError) as e:
            show_error(self, "Cannot open the analysis", StanError(f"not an analysis folder ({e})", folder))
            return
        self.open_path(video, folder)

    def open_path(self, path: str | Path, analysis_folder: str | Path | None = None) -> None:
        """Open a video (in a worker); errors become a dialog naming the file."""
        path = Path(path)
        if not self.review.close(ask=True):  # unsaved labels: Save / Discard / Cancel
            return
        if self._opener is not None and self._opener.isRunning():
            self._opener.cancel()
        self.analysis_panel.cancel()
        self.transport.pause()
        self.statusBar().showMessage(f"Opening {path.name}…")
        folder = Path(analysis_folder) if analysis_folder else None
        w = JobWorker(lambda: open_job(path, folder), "open")
        w.sigProgress.connect(self._on_open_progress)
        w.sigReturned.connect(self._on_opened)
        w.sigErrored.connect(lambda e: self._on_open_failed(path, e, w))
        self._opener = w
        w.start()

    def _on_open_failed(self, path: Path, err: BaseException, worker: Any = None) -> None:
        self.statusBar().showMessage(f"Cannot open {path.name}", 8000)
        show_error(self, "Cannot open the video", err)
        s = self.session
        newer = worker is not None and worker is not self._opener  # a later open superseded this one
        if self.review.review is None and s.reader is not None and s.path is not None and not newer:
            # open_path closed the review of the video still on screen (after Save/Discard): open it again,
            # so that the video that stays is fully editable
            self.review.open_for(s.path, s.reader)
        self.sigOpenFailed.emit(path)

    def _on_open_progress(self, p: Progress) -> None:
        res = p.partial
        if not isinstance(res, OpenResult):
            return
        if self.sender() is not self._opener:  # a newer open superseded this one
            res.reader.close()
            return
        s = self.session
        s.set_video(res.reader, res.path)
        self.analysis_panel.set_cached([])  # the last video's analyses are not this one's (filled when it opens)
        s.set_label_tiers(res.tiers)
        self.review.open_for(res.path, res.reader)
        self._start_previews(res.path, res.reader)
        self.settings.set_last_folder(res.path.parent)
        self.settings.add_recent(res.path)
        self._rebuild_recent()
        self.setWindowTitle(f"{res.path.name} — stanviewer")
        labels = "".join(f"; tier '{t.name}' from {Path(t.source).name}" for t in res.tiers)
        self.statusBar().showMessage(f"Opened {res.path.name}{labels}", 8000)
        self.view.setFocus()

    def _start_previews(self, path: Path, reader: Any) -> None:
        """Decode low-resolution previews of the whole video in the background (for instant seeks)."""
        if self._thumb_worker is not None:
            self._thumb_worker.cancel()
        thumbs = Thumbnails(reader.frame_count, reader.size)
        self.view.set_thumbnails(thumbs)
        self._thumb_worker = JobWorker(lambda: thumbs.job(path), "previews")
        self._thumb_worker.start(JobWorker.Priority.LowestPriority)

    def _on_opened(self, res: OpenResult) -> None:
        if self.session.reader is not res.reader:  # superseded by a newer open
            return
        if res.analysis is not None:
            self.show_analysis(res.analysis, res.folder)
            self.statusBar().showMessage(f"Opened {res.path.name} (cached analysis shown)", 5000)
        self.session.set_curves(res.curves)
        self.analysis_panel.set_cached(res.cached)
        self.sigOpened.emit(res.path)
        if self.auto_run:
            self.auto_run = False
            self.analysis_panel.run()

    def show_analysis(self, analysis: Any, folder: Path | None) -> None:
        """Show a finished analysis with the threshold remembered for its model and method."""
        s = self.session
        if s.reader is None:  # the video was closed (or the window shut down) while the result was on its way
            return
        model = str(analysis.meta.get("model", {}).get("sha256") or analysis.meta.get("model", {}).get("name"))
        remembered = self.settings.threshold(model, str(analysis.meta.get("method")))
        try:
            s.set_analysis(analysis, folder, threshold=remembered)
        except StanError as e:
            show_error(self, "Cannot show the analysis", e)
            return
        if s.reader is not None:
            from stanviewer.core.explain.store import cached_analyses

            entries = []
            for f in cached_analyses(s.reader.info.fingerprint)[:20]:
                try:
                    entries.append((f, json.loads((f / "analysis.json").read_text(encoding="utf-8"))))
                except (OSError, ValueError):
                    continue
            self.analysis_panel.set_cached(entries)
        self.analysis_panel.follow(analysis.meta, folder)
        if s.overlay.roi_visible:
            self._ensure_roi()

    def _remember_threshold(self, t: float) -> None:
        self.settings.set_threshold(self.session.model_key, self.session.method, t)

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        items = self.settings.recent()
        for p in items:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _c=False, path=p: self.open_path(path))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.settings.clear_recent(), self._rebuild_recent()))
        self.recent_menu.setEnabled(bool(items))

    def _on_video(self) -> None:
        r = self.session.reader
        if r is None:
            self.video_label.setText("")
            return
        i = r.info
        vfr = ", variable frame rate" if i.variable_fps else ""
        self.video_label.setText(f"{i.width}×{i.height} · {i.fps:.3f} fps{vfr} · {i.frame_count} frames · {i.codec}")

    # ---------------------------------------------------------------- overlay and ROI
    def _on_overlay(self) -> None:
        o = self.session.overlay
        for w, v in ((self.heat_check, o.visible), (self.roi_check, o.roi_visible)):
            w.blockSignals(True)
            w.setChecked(v)
            w.blockSignals(False)
        st = self.settings
        st.set("overlay/opacity", int(round(o.opacity * 100)))
        st.set("overlay/colormap", o.colormap)
        st.set("overlay/visible", o.visible)
        st.set("overlay/relative_to", o.relative_to)
        st.set("overlay/floor", o.floor)

    def _on_roi_toggled(self, on: bool) -> None:
        self.session.set_overlay(roi_visible=on)
        if on:
            self._ensure_roi()

    def _ensure_roi(self) -> None:
        """Compute the ROI boxes of the open video lazily (in a worker), once."""
        s = self.session
        if not HAS_ROI or s.path is None or s.roi_boxes is not None:
            return
        if self._roi_worker is not None and self._roi_worker.isRunning():
            return
        path = s.path
        provider = ((self.analysis_panel.meta or {}).get("spec") or {}).get("roi_provider", "motion")

        def job() -> Job[np.ndarray]:
            from stanviewer.core.roi import PROVIDERS, compute_roi, inference_provider
            from stanviewer.core.video import open_video

            # a model trained with boxes from files ("truth", "csv") has none for a new video: use motion
            name = inference_provider(provider)
            name = name if name in PROVIDERS else "motion"
            with open_video(path) as reader:
                track = yield from compute_roi(reader, name)
            return np.asarray(track.boxes, np.float32)

        w = JobWorker(job, "roi")
        message = "Finding the person in every frame (ROI boxes)…"

        def done(boxes: np.ndarray) -> None:
            if self.statusBar().currentMessage() == message:  # it no longer is: say so at once
                self.statusBar().clearMessage()
            if self.session.path == path:
                self.session.set_roi_boxes(boxes)

        w.sigReturned.connect(done)
        w.sigErrored.connect(lambda e: show_error(self, "ROI boxes unavailable", e))
        self.statusBar().showMessage(message, 5000)
        self._roi_worker = w
        w.start()

    # ---------------------------------------------------------------- help
    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.actions(), self).exec()

    # ---------------------------------------------------------------- drag and drop
    def dragEnterEvent(self, e: QDragEnterEvent) -> None:
        if e.mimeData().hasUrls() and any(u.isLocalFile() for u in e.mimeData().urls()):
            e.acceptProposedAction()

    def dropEvent(self, e: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in e.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        e.acceptProposedAction()
        first = paths[0]
        if first.is_dir() and (first / "analysis.json").exists():
            self.open_analysis_folder(first)
        else:
            self.open_path(first)
        if len(paths) > 1:
            self.statusBar().showMessage(f"Opened {first.name}; one video at a time ({len(paths) - 1} ignored)", 8000)

    # ---------------------------------------------------------------- closing
    def shutdown(self) -> None:
        """Stop playback and every worker, save settings, close the video (idempotent)."""
        self.transport.pause()
        self.settings.set_window_state(self.saveGeometry(), self.saveState())
        self.settings.set("window/splitter", self.splitter.saveState())
        self.settings.sync()
        self.analysis_panel.shutdown()
        self.review.close(ask=False)  # unsaved edits stay in the recovery file
        for w in (self._opener, self._roi_worker, self._thumb_worker, self.review_files.clip_worker):
            if w is not None and w.isRunning():
                w.cancel()
                w.wait(60000)
        self.grabber.stop()
        for w in live_workers():
            w.wait(60000)
        self.session.close()

    def closeEvent(self, e: QCloseEvent) -> None:
        if not self.review.close(ask=True):  # unsaved labels: Save / Discard / Cancel
            e.ignore()
            return
        self.shutdown()
        super().closeEvent(e)
