"""The desktop app end to end (offscreen): open, analyse, threshold, scrub and step, cancel, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gui_helpers import BUMPS, LONG, N_FRAMES, SHORT, bump_scores, open_and_wait
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QMessageBox

from stanviewer.core.errors import StanError
from stanviewer.core.explain.segments import segments_from_scores


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Capture error dialogs instead of showing them (title, text)."""
    seen: list[tuple[str, str]] = []

    def critical(parent, title, text, *a, **k):
        seen.append((title, text))
        return QMessageBox.StandardButton.Ok

    monkeypatch.setattr(QMessageBox, "critical", critical)
    return seen


def shaded_intervals(timeline) -> list[tuple[int, int]]:
    """The segments drawn on the timeline, read back from the shading path."""
    x, _ = timeline.shade.getData()
    if x is None or len(x) == 0:
        return []
    x = np.asarray(x).reshape(-1, 4)
    return [(int(round(r[0] + 0.5)), int(round(r[2] + 0.5))) for r in x]


def table_rows(panel) -> list[tuple[int, int]]:
    m = panel.model
    return [(m.cell(r, 1), m.cell(r, 2) + 1) for r in range(m.rowCount())]


def test_open_video_shows_first_frame_and_cached_analysis(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    s = window.session
    assert s.frame_count == N_FRAMES and window.view.shown == 0
    assert window.view.readout().startswith(f"frame 0 / {N_FRAMES - 1}   0:00.000")
    # reopening a video shows its cached analysis at once: curve, segments, table, prediction text
    assert s.analysis is not None and s.method == "vanilla"
    assert [(g.start, g.end) for g in s.segments] == [(a, b) for a, b, v in BUMPS if v >= 0.5]
    assert table_rows(window.segments_panel) == [(g.start, g.end) for g in s.segments]
    text = window.threshold_bar.prediction.text()
    assert "Model output" in text and "not a diagnosis" in text and "compensation" in text
    assert window.view._heat is not None  # the heatmap of the frame on screen arrived with it
    assert "99th-percentile" in window.colorbar.caption()
    assert window.windowTitle().startswith(analysed_video.name)
    assert "96×64" in window.video_label.text()
    # columns sized from the header and a widest-case cell (not by measuring every cell): nothing is cut off
    table, m = window.segments_panel.table, window.segments_panel.model
    fm = table.fontMetrics()
    for col in range(m.columnCount()):
        if table.isColumnHidden(col):  # a narrow panel leaves whole columns out (Mean, Last)
            continue
        widest = max(fm.horizontalAdvance(str(m.data(m.index(r, col)))) for r in range(m.rowCount()))
        assert table.columnWidth(col) >= widest, col


def test_timeline_refills_its_extra_curves_instead_of_rebuilding_them(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    tl, s = window.timeline, window.session
    s.set_curves({"gradcam": np.linspace(0, 1, N_FRAMES, dtype=np.float32)})
    item = tl.extra["gradcam"]
    s.set_curves({"gradcam": np.linspace(1, 0, N_FRAMES, dtype=np.float32)})
    assert tl.extra["gradcam"] is item and float(item.yData[0]) == 1.0
    s.set_curves({})
    assert "gradcam" not in tl.extra and item not in tl.plot.listDataItems()


def test_curves_are_named_by_method_and_model_and_follow_the_analysis_shown(
    qtbot, window, analysed_video: Path
) -> None:
    """Two models' "vanilla" are not one curve; the analysis shown before stays offered for comparison."""
    from dataclasses import replace as dc_replace

    from stanviewer.qt.session import curve_name

    open_and_wait(qtbot, window, analysed_video)
    tl, s = window.timeline, window.session
    first = s.analysis
    other = dc_replace(first, scores=first.scores[::-1].copy(), meta={**first.meta, "model": {"name": "other-model"}})
    assert curve_name(first) != curve_name(other) and curve_name(other).endswith("· other-model")
    s.set_analysis(other)
    names = tl.available_curves()
    assert curve_name(first) in names and curve_name(other) not in names  # the one on screen is not offered
    s.set_analysis(first)
    assert curve_name(other) in tl.available_curves() and curve_name(first) not in tl.available_curves()


def test_threshold_moves_segments_in_timeline_and_table(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    s, bar, tl, panel = window.session, window.threshold_bar, window.timeline, window.segments_panel
    scores = bump_scores()

    def check(t: float) -> None:
        want = [(g.start, g.end) for g in segments_from_scores(scores, t)]
        assert [(g.start, g.end) for g in s.segments] == want
        assert shaded_intervals(tl) == want
        assert table_rows(panel) == want
        assert bar.slider.value() == round(t * 1000) and abs(bar.spin.value() - t) < 1e-9
        assert abs(tl.threshold_line.value() - t) < 1e-9
        assert f"threshold {t:.2f}" in panel.summary.text()

    bar.spin.setValue(0.7)  # the spin box
    check(0.7)
    assert len(s.segments) == 2
    bar.slider.setValue(580)  # the slider
    check(0.58)
    assert len(s.segments) == 3
    tl.threshold_line.setValue(0.95)  # dragging the line sets its value and emits sigPositionChanged
    check(0.95)
    assert s.segments == [] and panel.model.rowCount() == 0
    tl.threshold_line.setValue(0.2)
    check(0.2)
    # peak and mean in the table come from the scores
    m = panel.model
    for r, (a, b) in enumerate(table_rows(panel)):
        assert m.cell(r, 6) == pytest.approx(scores[a:b].max())
        assert m.cell(r, 7) == pytest.approx(scores[a:b].mean())
    # minimum length drops the 3-frame bump; clicking a row jumps to its segment
    bar.min_seconds.setValue(0.16)  # 4 frames at 25 frames/s
    assert s.options.min_frames == 4 and "4 frames at 25 frames/s" in bar.min_seconds.toolTip()
    assert (100, 103) not in table_rows(panel)
    idx = m.index(1, 0)
    qtbot.mouseClick(panel.table.viewport(), Qt.MouseButton.LeftButton, pos=panel.table.visualRect(idx).center())
    assert s.selected == 1 and s.frame == s.segments[1].start
    qtbot.waitUntil(lambda: window.view.showing(s.segments[1].start))


def test_threshold_remembered_per_model_and_method(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    window.threshold_bar.spin.setValue(0.66)
    assert window.settings.threshold("f" * 64, "vanilla") == pytest.approx(0.66)
    window.session.set_analysis(window.session.analysis, window.session.analysis_folder, threshold=0.3)
    window.show_analysis(window.session.analysis, window.session.analysis_folder)
    assert window.session.threshold == pytest.approx(0.3)  # the last value set is the remembered one


def test_keys_step_and_scrub(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    s, view = window.session, window.view
    view.setFocus()

    def key(k: Qt.Key, mod: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
        qtbot.keyClick(view, k, mod)

    def shown(i: int) -> None:
        qtbot.waitUntil(lambda: view.showing(i), timeout=SHORT)
        assert s.frame == i
        assert view.readout().startswith(f"frame {i} /")
        assert window.timeline.playhead.value() == i

    for _ in range(3):
        key(Qt.Key.Key_Right)
    shown(3)
    key(Qt.Key.Key_Left)
    shown(2)
    key(Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)  # +1 s at 25 fps
    shown(27)
    key(Qt.Key.Key_End)
    shown(N_FRAMES - 1)
    key(Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    shown(N_FRAMES - 1 - 25)
    key(Qt.Key.Key_Home)
    shown(0)
    key(Qt.Key.Key_Left)  # stays at 0
    shown(0)
    key(Qt.Key.Key_N)  # next flagged segment
    shown(10)
    key(Qt.Key.Key_N)
    shown(40)
    key(Qt.Key.Key_P)
    shown(10)
    key(Qt.Key.Key_BracketRight)
    assert window.transport.speed == 1.5
    key(Qt.Key.Key_BracketLeft)
    key(Qt.Key.Key_BracketLeft)
    assert window.transport.speed == 0.75

    # click on the timeline: the playhead and the picture go there
    tl = window.timeline
    pos = tl.glw.mapFromScene(tl.frame_to_scene(60, 0.3))
    qtbot.mouseClick(tl.glw.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pos.x(), pos.y()))
    qtbot.waitUntil(lambda: view.shown in (59, 60, 61) and not view.preview, timeout=SHORT)
    assert s.frame == view.shown
    # dragging the playhead scrubs
    tl.playhead.setValue(85.2)
    shown(85)
    # once the previews are decoded, a far jump shows a low-resolution preview at once, then the frame
    thumbs = view.thumbs
    qtbot.waitUntil(lambda: bool(thumbs.ready.all()), timeout=SHORT)
    assert thumbs.stride == 1
    s.set_frame(110)
    assert view.shown == 110 and view.preview and "(preview)" in view.readout()
    shown(110)
    assert "(preview)" not in view.readout()


def test_playback_paced_by_clock_and_loops_segment(qtbot, window, analysed_video: Path) -> None:
    open_and_wait(qtbot, window, analysed_video)
    s, tr = window.session, window.transport
    s.select_segment(2)  # frames 70..89
    tr.set_loop(True)
    seen: list[int] = []
    s.sigFrameChanged.connect(seen.append)
    tr.set_speed(4.0)
    qtbot.keyClick(window.view, Qt.Key.Key_Space)
    assert tr.playing
    qtbot.waitUntil(lambda: seen.count(70) >= 2, timeout=SHORT)  # looped at least once
    qtbot.keyClick(window.view, Qt.Key.Key_Space)
    assert not tr.playing
    assert all(70 <= i < 90 for i in seen)
    tr.set_loop(False)
    s.set_frame(N_FRAMES - 10)
    tr.play()
    qtbot.waitUntil(lambda: not tr.playing, timeout=SHORT)  # stops at the end
    assert s.frame == N_FRAMES - 1


def test_run_analysis_with_tiny_model(qtbot, window, make_video, tiny_checkpoint: Path, dialogs) -> None:
    video = make_video("gui_run.mp4", 60, "h264", gop=30)
    open_and_wait(qtbot, window, video)
    s, ap = window.session, window.analysis_panel
    assert s.analysis is None and not ap.cached.isEnabled()
    ap.set_checkpoint(tiny_checkpoint)
    assert "tiny" in ap.card.text() and "global" in ap.views.text()
    ap.set_method("window")
    progress = []
    ap.run()
    ap.worker.sigProgress.connect(progress.append)
    qtbot.waitUntil(lambda: s.analysis is not None, timeout=LONG)
    assert not dialogs
    assert s.method == "window" and len(s.scores) == 60 and s.partial is None
    assert any(p.total > 0 for p in progress)
    _x, y = window.timeline.curve.getData()
    assert len(y) > 0
    assert table_rows(window.segments_panel) == [(g.start, g.end) for g in s.segments]
    assert "Model output" in window.threshold_bar.prediction.text()
    assert ap.message.text().startswith("Done")
    assert ap.cached.isEnabled() and "window" in ap.cached.itemText(0)


def test_a_run_is_cut_at_the_remembered_else_the_calibrated_threshold(qtbot, window, tiny_checkpoint: Path) -> None:
    ap, key = window.analysis_panel, "c" * 64
    ap.set_checkpoint(tiny_checkpoint)
    ap._run_method, ap._run_meta = "vanilla", {"thresholds": {"vanilla": {"threshold": 0.31}}}
    assert ap.run_threshold(key) == pytest.approx(0.31)
    window.settings.set_threshold(key, "vanilla", 0.66)
    assert ap.run_threshold(key) == pytest.approx(0.66)
    ap._run_meta = {"thresholds": {"window": {"threshold": 0.2}}}
    assert ap.run_threshold("d" * 64) == 0.5  # nothing known for this model and method


def test_cancel_analysis_midway(qtbot, window, make_video, tiny_checkpoint: Path, dialogs) -> None:
    video = make_video("gui_cancel.mp4", 400, "h264", gop=50)
    open_and_wait(qtbot, window, video)
    s, ap = window.session, window.analysis_panel
    ap.set_checkpoint(tiny_checkpoint)
    ap.set_method("vanilla")
    partials = []
    s.sigScoresChanged.connect(lambda: partials.append(s.partial is not None))

    def cancel_on_first_window(p) -> None:
        if p.total > 0:
            ap.worker.cancel()

    ap.run()
    ap.worker.sigProgress.connect(cancel_on_first_window, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: not ap.running, timeout=LONG)
    qtbot.waitUntil(lambda: ap.message.text().startswith("Cancelled"), timeout=SHORT)
    assert s.analysis is None and s.partial is None and s.segments == []
    assert not dialogs
    assert ap.run_button.isEnabled() and not ap.cancel_button.isEnabled()
    from stanviewer.core.explain.store import cached_analyses

    assert cached_analyses(s.reader.info.fingerprint) == []  # nothing half-written is offered later


def test_bad_files_give_a_dialog(qtbot, window, tmp_path: Path, dialogs, analysed_video: Path) -> None:
    bad = tmp_path / "not a video.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    with qtbot.waitSignal(window.sigOpenFailed, timeout=SHORT):
        window.open_path(bad)
    assert len(dialogs) == 1
    title, text = dialogs[0]
    assert "Cannot open" in title and str(bad) in text and "video" in text
    with qtbot.waitSignal(window.sigOpenFailed, timeout=SHORT):
        window.open_path(tmp_path / "missing.mp4")
    assert "file not found" in dialogs[1][1] and "missing.mp4" in dialogs[1][1]
    assert window.session.reader is None
    # still usable: a good file opens afterwards
    open_and_wait(qtbot, window, analysed_video)
    assert window.session.frame_count == N_FRAMES


def test_an_analysis_of_another_video_is_refused(qtbot, window, dialogs, analysed_video: Path, make_video) -> None:
    """``stanviewer open A.mp4 --analysis <B's folder>``: same frame count, other video: said, not shown on A."""
    from stanviewer.core.explain.store import cached_analyses
    from stanviewer.core.video import open_video

    with open_video(analysed_video) as r:
        folder = cached_analyses(r.info.fingerprint)[0]
    other = make_video("gui_other_same_length.mp4", N_FRAMES, "mjpeg")
    open_and_wait(qtbot, window, analysed_video)  # B is on screen, its analyses listed
    with qtbot.waitSignal(window.sigOpenFailed, timeout=SHORT):
        window.open_path(other, folder)
    assert dialogs and "analysis is of another video" in dialogs[-1][1] and window.session.analysis is None
    combo = window.analysis_panel.cached  # B's analyses are not offered for A (choosing one showed it on A)
    assert window.session.path == other and combo.findData(str(folder)) < 0
    from stanviewer.core.errors import StanError
    from stanviewer.core.explain.store import load_analysis

    with pytest.raises(StanError, match="analysis is of another video"):
        window.session.set_analysis(load_analysis(folder), folder)


def test_missing_bundled_model_is_a_clear_message(qtbot, window, analysed_video: Path, dialogs) -> None:
    from stanviewer.core.errors import CheckpointError
    from stanviewer.core.models.bundled import default_checkpoint_path

    try:
        default_checkpoint_path()
        pytest.skip("the bundled model is installed")
    except CheckpointError:
        pass
    ap = window.analysis_panel
    ap.set_checkpoint(None)
    assert "bundled model is missing" in ap.card.text()
    assert "bundled model missing" in window.model_label.text()
    open_and_wait(qtbot, window, analysed_video)
    ap.run()
    assert dialogs and "stan-tiny-synth.safetensors" in dialogs[-1][1] and "missing" in dialogs[-1][1]
    assert not ap.running


def test_settings_and_recent_files_persist(qtbot, tmp_path: Path, analysed_video: Path) -> None:
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    path = tmp_path / "s.ini"
    w = MainWindow(settings=AppSettings(path), probe_devices=False)
    qtbot.addWidget(w)
    w.show()
    open_and_wait(qtbot, w, analysed_video)
    # segment options default to 0.4 s each, in this 25 frames/s video's frames
    bar, s = w.threshold_bar, w.session
    assert (bar.min_seconds.value(), bar.merge_seconds.value()) == (pytest.approx(0.4), pytest.approx(0.4))
    assert (s.options.min_frames, s.options.merge_gap) == (10, 10) and "10 frames at 25" in bar.min_seconds.toolTip()
    raw = segments_from_scores(s.scores, s.threshold)
    assert all(g.end - g.start >= 10 for g in s.segments) and len(s.segments) <= len(raw)
    bar.min_seconds.setValue(0.8)
    bar.merge_seconds.setValue(0.0)
    assert (s.options.min_frames, s.options.merge_gap) == (20, 0)
    w.opacity.setValue(80)
    w.cmap.setCurrentText("viridis")
    w.floor.setCurrentIndex(w.floor.findData(0.3))
    w.analysis_panel.set_method("gradcam")
    w.close()
    w2 = MainWindow(settings=AppSettings(path), probe_devices=False)
    qtbot.addWidget(w2)
    try:
        assert w2.session.overlay.opacity == pytest.approx(0.8) and w2.session.overlay.colormap == "viridis"
        assert w2.session.overlay.floor == 0.3 and w2.floor.currentText() == "Hide < 0.3"
        assert w2.analysis_panel.method.currentData() == "gradcam"
        assert (w2.threshold_bar.min_seconds.value(), w2.threshold_bar.merge_seconds.value()) == (0.8, 0.0)
        assert w2.session.segment_seconds == (0.8, 0.0)
        assert w2.settings.recent()[0] == str(analysed_video.resolve())
        assert w2.recent_menu.actions()[0].text() == str(analysed_video.resolve())
        assert w2.settings.last_folder() == str(analysed_video.parent)
    finally:
        w2.close()


def test_overlay_controls_and_help(qtbot, window, analysed_video: Path) -> None:
    from stanviewer import DISCLAIMER
    from stanviewer.qt.dialogs import ShortcutsDialog, about_text

    open_and_wait(qtbot, window, analysed_video)
    qtbot.keyClick(window.view, Qt.Key.Key_H)
    assert not window.session.overlay.visible and not window.heat_check.isChecked()
    assert window.view._heat_image is None
    qtbot.keyClick(window.view, Qt.Key.Key_H)
    assert window.session.overlay.visible and window.view._heat_image is not None
    # the faint part of the map is left out by default; the floor moves with the control and says so
    assert window.session.overlay.floor == 0.1 and "under 0.1 hidden" in window.colorbar.caption()
    heat = window.view._heat
    assert heat is not None
    faint = (heat > 0) & (heat <= 0.1)
    alpha = window.view._heat_image.constBits().tobytes()
    if faint.any():  # the drawn image is transparent there
        a = np.frombuffer(alpha, np.uint8).reshape(*heat.shape, 4)[..., 3]
        assert (a[faint] == 0).all()
    window.floor.setCurrentIndex(window.floor.findData(0.0))
    assert window.session.overlay.floor == 0.0 and "hidden" not in window.colorbar.caption()
    window.scale.setCurrentIndex(1)
    assert window.session.overlay.relative_to == "frame" and "each frame" in window.colorbar.caption()
    dlg = ShortcutsDialog(window.actions(), window)
    keys = dict(dlg.rows)
    for k in ("Space", "Right", "Shift+Right", "Home", "End", "[", "]", "N", "P"):
        assert any(k in v.split(", ") for v in keys.values()), k
    text = about_text()
    assert DISCLAIMER.split(".")[0] in text and "synthetic" in text and "Logs" in text


def test_method_names_match_the_core() -> None:
    from stanviewer.core.explain.methods import METHODS
    from stanviewer.core.explain.posture import METHOD as POSTURE
    from stanviewer.qt.analysis_panel import METHOD_NAMES, POSTURE_METHOD

    assert (*METHODS, POSTURE) == METHOD_NAMES
    assert POSTURE_METHOD == POSTURE


def test_the_gui_process_never_imports_torch(analysed_video: Path) -> None:
    """Opening a video with a cached analysis, and showing it, must not load torch (it stalls the GUI)."""
    import subprocess
    import sys

    code = f"""
import sys, time
from stanviewer.qt.app import make_app
from stanviewer.qt.main_window import MainWindow
from stanviewer.qt.settings import AppSettings
app = make_app()
w = MainWindow(settings=AppSettings({str(analysed_video.parent / "notorch.ini")!r}), probe_devices=False)
w.show()
w.open_path({str(analysed_video)!r})
end = time.monotonic() + 300  # generous: it failed once at 60 s with a training run holding the other core
while time.monotonic() < end and w.session.analysis is None:
    app.processEvents(); time.sleep(0.01)
assert w.session.analysis is not None, "no analysis"
w.close()
print("torch" in sys.modules, "cv2" in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["False", "False"]


def test_running_an_analysis_keeps_torch_out_of_the_gui_process(
    analysed_video: Path, tiny_checkpoint: Path, env_with_repo: dict[str, str]
) -> None:
    """Run pressed: the analysis happens in the child process; the GUI process must not import torch (an
    import of the torch-importing scoring module for the settings class stalled the GUI thread for 3-5 s)."""
    import subprocess
    import sys

    code = f"""
import sys, time
from stanviewer.qt.app import make_app
from stanviewer.qt.main_window import MainWindow
from stanviewer.qt.settings import AppSettings
if __name__ == "__main__":
    app = make_app()
    w = MainWindow(settings=AppSettings({str(analysed_video.parent / "notorch-run.ini")!r}), probe_devices=False)
    w.show()
    w.open_path({str(analysed_video)!r})
    ap = w.analysis_panel
    ap.set_checkpoint({str(tiny_checkpoint)!r})
    ap.set_method("window")
    end = time.monotonic() + 60
    while time.monotonic() < end and (w.session.path is None or not ap.run_button.isEnabled()):
        app.processEvents(); time.sleep(0.01)
    ap.run()
    started = ap.running
    end = time.monotonic() + 600
    while time.monotonic() < end and ap.running:
        app.processEvents(); time.sleep(0.01)
    print("RESULT", started, ap.running, "torch" in sys.modules)
    w.close()
"""
    script = analysed_video.parent / "run_notorch.py"
    script.write_text(code, encoding="utf-8")
    # its own cache: the analysis it makes must not become the "newest cached analysis" other tests open
    env = dict(env_with_repo, STANVIEWER_CACHE_DIR=str(analysed_video.parent / "notorch-cache"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    assert line.split()[1:] == ["True", "False", "False"], line


def test_roi_boxes_are_computed_when_asked(qtbot, window, analysed_video: Path, dialogs) -> None:
    open_and_wait(qtbot, window, analysed_video)
    s = window.session
    assert window.roi_check.isEnabled() and s.roi_boxes is None
    qtbot.keyClick(window.view, Qt.Key.Key_R)
    assert s.overlay.roi_visible and window.roi_check.isChecked()
    qtbot.waitUntil(lambda: s.roi_boxes is not None or bool(dialogs), timeout=LONG)
    assert not dialogs
    assert s.roi_boxes.shape == (N_FRAMES, 4)
    assert "Finding the person" not in window.statusBar().currentMessage()  # done: the message goes at once
    window.view.repaint()  # draws the box of the frame on screen
    qtbot.keyClick(window.view, Qt.Key.Key_R)
    assert not s.overlay.roi_visible


def test_drop_a_file_and_zoom_keys(qtbot, window, analysed_video: Path) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(analysed_video))])
    ev = QDropEvent(
        QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    with qtbot.waitSignal(window.sigOpened, timeout=LONG):
        window.dropEvent(ev)
    assert window.session.frame_count == N_FRAMES
    tl, view = window.timeline, window.view
    full = tl.vb.viewRange()[0]
    qtbot.keyClick(view, Qt.Key.Key_Equal)
    lo, hi = tl.vb.viewRange()[0]
    assert hi - lo == pytest.approx((full[1] - full[0]) / 2, rel=0.05)
    qtbot.keyClick(view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)  # pan right
    assert tl.vb.viewRange()[0][0] > lo
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert tl.vb.viewRange()[0] == pytest.approx(full, abs=0.6)


def test_a_broken_checkpoint_gives_a_dialog_naming_it(
    qtbot, window, analysed_video: Path, tmp_path: Path, dialogs
) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    open_and_wait(qtbot, window, analysed_video)
    ap = window.analysis_panel
    ap.set_checkpoint(bad)
    assert "broken.safetensors" in ap.card.text()
    ap.run()
    qtbot.waitUntil(lambda: bool(dialogs), timeout=LONG)
    title, text = dialogs[-1]
    assert title == "Analysis failed" and "broken.safetensors" in text
    qtbot.waitUntil(lambda: not ap.running, timeout=SHORT)
    assert window.session.analysis is not None  # the cached analysis is still shown


def test_pyside_true_refcount_guard(qtbot) -> None:
    """PySide6 6.12.0's ``SignalInstance.emit`` drops a reference to ``True`` on every call, so a long
    session ends in "Fatal Python error: bool_dealloc" (Python < 3.12); make_app compensates."""
    import sys

    from PySide6.QtCore import QObject, Signal

    from stanviewer.qt.compat import true_refcount_guarded

    class Probe(QObject):
        sig = Signal()

    p = Probe()
    before = sys.getrefcount(True)
    for _ in range(1000):
        p.sig.emit()
    lost = before - sys.getrefcount(True)
    if lost > 0:
        assert true_refcount_guarded() and sys.getrefcount(True) > 1 << 39


def test_auto_run_after_opening_like_the_demo(qtbot, window, make_video, tiny_checkpoint: Path, dialogs) -> None:
    video = make_video("gui_auto.mp4", 50, "h264", gop=25)
    ap = window.analysis_panel
    ap.set_checkpoint(tiny_checkpoint)
    ap.set_method("window")
    window.auto_run = True  # what `stanviewer demo` asks for
    window.open_path(video)
    qtbot.waitUntil(lambda: window.session.analysis is not None or bool(dialogs), timeout=LONG)
    assert not dialogs and window.session.method == "window" and not window.auto_run


def test_every_bundled_model_is_offered(qtbot, tmp_path: Path, tiny_checkpoint: Path, monkeypatch) -> None:
    """Checkpoints shipped in models/ besides the default (the per-frame CNN baseline) are in the list."""
    import shutil

    import stanviewer.core.models.bundled as bundled
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(tiny_checkpoint, models / bundled.BUNDLED_NAME)
    shutil.copy(tiny_checkpoint, models / "cnn-narrow-patch-synth.safetensors")
    monkeypatch.setattr(bundled, "models_dir", lambda: models)
    assert [p.name for p in bundled.bundled_checkpoints()] == [
        bundled.BUNDLED_NAME,
        "cnn-narrow-patch-synth.safetensors",
    ]
    w = MainWindow(settings=AppSettings(tmp_path / "settings.ini"), probe_devices=False)
    qtbot.addWidget(w)
    ap = w.analysis_panel
    items = [ap.checkpoint.itemText(k) for k in range(ap.checkpoint.count())]
    assert items == ["Bundled model (stan-tiny-synth)", "Bundled model (cnn-narrow-patch-synth)"]
    ap.checkpoint.setCurrentIndex(1)
    assert ap.checkpoint_path() == models / "cnn-narrow-patch-synth.safetensors"
    w.close()


def test_threshold_label_stays_inside_the_plot(qtbot, window, analysed_video: Path) -> None:
    """The label shows the session's threshold (it kept its first value when the threshold was set elsewhere)
    and sits above the line for a low threshold, below it for a high one (it was cut off at the top at 0.60)."""
    open_and_wait(qtbot, window, analysed_video)
    s, label = window.session, window.timeline.threshold_line.label
    s.set_threshold(0.8)
    assert label.anchors[0] == (1, 0) and label.toPlainText() == "threshold 0.80"
    s.set_threshold(0.2)
    assert label.anchors[0] == (1, 1) and label.toPlainText() == "threshold 0.20"
    window.threshold_bar.spin.setValue(0.6)  # set from the spin box: the label follows
    assert label.toPlainText() == "threshold 0.60"
    tl = window.timeline
    s.set_threshold(0.95)
    qtbot.wait(50)
    top = tl.plot.vb.mapSceneToView(label.sceneBoundingRect().topLeft()).y()
    assert top <= 1.05 + 1e-6, "label drawn above the plot"


def test_each_model_opens_with_its_recommended_or_last_chosen_method(
    qtbot, tmp_path: Path, tiny_checkpoint: Path, monkeypatch
) -> None:
    """Switching models switches to that model's calibrated default method (marked in the list), unless the
    user chose another method for that model before."""
    import shutil

    import stanviewer.core.models.bundled as bundled
    from stanviewer.core.models.checkpoint import update_metadata
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    models = tmp_path / "models"
    models.mkdir()
    for name, model, default in ((bundled.BUNDLED_NAME, "stan", "window"), ("cnn-x.safetensors", "cnn", "vanilla")):
        shutil.copy(tiny_checkpoint, models / name)
        update_metadata(models / name, {"name": model, "default_method": default})
    monkeypatch.setattr(bundled, "models_dir", lambda: models)
    w = MainWindow(settings=AppSettings(tmp_path / "settings.ini"), probe_devices=False)
    qtbot.addWidget(w)
    ap = w.analysis_panel
    assert ap.method.currentData() == "window" and ap.method.currentText() == "window (recommended)"
    ap.checkpoint.setCurrentIndex(1)
    assert ap.method.currentData() == "vanilla" and ap.method.currentText() == "vanilla (recommended)"
    assert ap.method.itemText(ap.method.findData("window")) == "window"
    ap.set_method("gradcam")  # the user's choice for the CNN
    ap.checkpoint.setCurrentIndex(0)
    assert ap.method.currentData() == "window"
    ap.checkpoint.setCurrentIndex(1)
    assert ap.method.currentData() == "gradcam"
    w.close()


def test_partial_curves_repaint_only_what_changes(qtbot, window, analysed_video: Path, monkeypatch) -> None:
    """While an analysis runs, a partial curve repaints the video view's readout band (not the picture) and
    leaves the colour bar alone: whole-window repaints were the longest GUI stalls (docs/benchmarks.md)."""
    import numpy as np

    open_and_wait(qtbot, window, analysed_video)
    s, view, bar = window.session, window.view, window.colorbar
    qtbot.waitUntil(lambda: view._readout_drawn is not None, timeout=5000)
    curve = np.full(s.frame_count, np.nan, np.float32)
    curve[:5] = [0.1, 0.9, 0.3, 0.5, 0.2]
    s.set_partial(curve)  # the first partial clears the heatmap: a whole repaint
    window.repaint()
    calls: dict[str, list] = {"view": [], "bar": []}
    monkeypatch.setattr(view, "update", lambda *a: calls["view"].append(a))
    monkeypatch.setattr(bar, "update", lambda *a: calls["bar"].append(a))
    curve[5:10] = 0.7
    s.set_partial(curve)
    assert calls["bar"] == []
    assert all(len(a) == 1 and a[0].height() < view.height() / 2 for a in calls["view"]), calls["view"]
    s.set_partial(None)  # the analysis ended: everything repaints
    assert calls["bar"] and any(a == () for a in calls["view"])


def test_the_first_partial_curve_does_not_re_lay_out_the_timeline(qtbot, window, make_video) -> None:
    """The model's lane is there, empty, before any analysis, so the first partial curve of a run only fills it
    (a lane appearing then re-laid out the whole timeline: the longest stall of a run, docs/benchmarks.md)."""
    from PySide6.QtWidgets import QApplication

    open_and_wait(qtbot, window, make_video("gui_lanes.mp4", 40, "h264", gop=20))  # never analysed
    s, tl = window.session, window.timeline
    assert s.analysis is None and s.tiers()[0].name == "model" and s.tiers()[0].intervals == []
    window.repaint()
    before = (tl.lanes.geometry().height(), tl.plot.geometry().height())
    curve = np.full(s.frame_count, np.nan, np.float32)
    curve[:20] = 0.9
    s.set_partial(curve)
    QApplication.processEvents()
    assert (tl.lanes.geometry().height(), tl.plot.geometry().height()) == before
    assert s.tiers()[0].name.startswith("model ≥") and s.tiers()[0].intervals == [(0, 20)]


def test_video_view_scales_frame_and_heatmap_once_per_change(qtbot, window, analysed_video: Path) -> None:
    """Repaints that change neither the picture nor the size reuse the scaled images (a repaint used to
    scale the frame and the 96-px heatmap up again); a new size scales them again."""
    open_and_wait(qtbot, window, analysed_video)
    view = window.view
    qtbot.waitUntil(lambda: view._heat_image is not None, timeout=10000)
    view.repaint()
    first = {k: v[1] for k, v in view._fit_cache.items()}
    assert set(first) == {"frame", "heat"}
    view.repaint()
    assert all(view._fit_cache[k][1] is first[k] for k in first)
    rect = view.target_rect()
    assert abs(first["frame"].width() / first["frame"].devicePixelRatio() - rect.width()) <= 1
    view.resize(view.width() // 2, view.height() // 2)
    view.repaint()
    assert all(view._fit_cache[k][1] is not first[k] for k in first)


def test_a_posture_model_offers_its_own_method_only(qtbot, window, make_video, tmp_path: Path, dialogs) -> None:
    """A whole-video posture model runs with the 'posture' method, which no other model offers."""
    import torch

    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.models.posture import PostureMIL
    from stanviewer.core.models.stan import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec(arch="posture-narrow", views="local", frames=2, size=32, roi_provider="motion")
    ck = save_checkpoint(
        tmp_path / "posture.safetensors", PostureMIL(spec), {"name": "post", "default_method": "posture"}
    )
    video = make_video("gui_posture.mp4", 40, "h264", gop=20)
    open_and_wait(qtbot, window, video)
    s, ap = window.session, window.analysis_panel
    ap.set_checkpoint(ck)
    assert ap.method.currentData() == "posture" and "whole videos" in ap.card.text()
    assert not ap.stride.isEnabled() and ap.settings_for_run().stride is None
    with pytest.raises(StanError, match="its own method"):
        ap.set_method("vanilla")
    ap.run()
    qtbot.waitUntil(lambda: s.analysis is not None, timeout=LONG)
    assert not dialogs
    assert s.method == "posture" and len(s.scores) == 40
    assert table_rows(window.segments_panel) == [(g.start, g.end) for g in s.segments]
    ap.set_checkpoint(None)  # back to a window model: posture is not offered
    assert ap.method.currentData() != "posture" and ap.stride.isEnabled()
    with pytest.raises(StanError, match="needs a posture model"):
        ap.set_method("posture")


def test_the_panel_describes_the_analysis_on_screen(qtbot, window, make_video, tiny_checkpoint: Path) -> None:
    """Reopening a video, or picking an earlier analysis, puts its model, method and list entry in the panel."""
    import os

    from gui_helpers import write_fake_analysis

    from stanviewer.core.fileio import sha256_file
    from stanviewer.core.models.bundled import bundled_checkpoints

    ap, s = window.analysis_panel, window.session
    assert window.model_label.text().startswith("Model: ")  # said from the start, not only after a choice
    ap.set_checkpoint(tiny_checkpoint)  # a file of the user's, in the model list
    cnn = next(p for p in bundled_checkpoints() if p.name.startswith("cnn-"))
    video = make_video("gui_follow.mp4", 60, "h264", gop=30)
    from stanviewer.core.models.checkpoint import read_metadata

    def named(path: Path) -> str:  # the name an analysis records: the model file's own
        return str(read_metadata(path).get("name") or path.stem)

    older = write_fake_analysis(
        video, bump_scores(60), method="window", model=sha256_file(tiny_checkpoint), name=named(tiny_checkpoint)
    )
    newer = write_fake_analysis(video, bump_scores(60), method="vanilla", model=sha256_file(cnn), name=named(cnn))
    t = os.stat(newer / "analysis.json").st_mtime
    os.utime(older / "analysis.json", (t - 60, t - 60))
    ap.set_checkpoint(tiny_checkpoint)
    open_and_wait(qtbot, window, video)
    qtbot.waitUntil(lambda: s.analysis is not None, timeout=LONG)
    assert s.method == "vanilla" and ap.checkpoint_path() == cnn and ap.method.currentData() == "vanilla"
    assert cnn.stem in window.model_label.text() and ap.cached.currentData() == str(newer)
    k = ap.cached.findData(str(older))
    ap.cached.setCurrentIndex(k)
    ap.cached.activated.emit(k)
    qtbot.waitUntil(lambda: s.method == "window", timeout=LONG)
    assert ap.cached.currentData() == str(older)  # the list shows the one picked, not the newest again
    assert ap.checkpoint_path() == Path(tiny_checkpoint).resolve() and ap.method.currentData() == "window"
    assert "Model: " in window.model_label.text() and cnn.stem not in window.model_label.text()


def test_the_window_fits_a_laptop_screen_with_the_curve_readable(qtbot, window, analysed_video: Path) -> None:
    """1366x768 minus a task bar: the window fits, and the score plot keeps a readable height."""
    open_and_wait(qtbot, window, analysed_video)
    window.resize(1366, 740)
    qtbot.waitUntil(lambda: window.width() <= 1366 and window.height() <= 740, timeout=SHORT)
    hint = window.minimumSizeHint()
    assert hint.width() <= 1366 and hint.height() <= 740
    qtbot.waitUntil(lambda: window.timeline.vb.geometry().height() >= 90, timeout=SHORT)  # the curve's own area
    assert window.opacity.width() >= 60
    bar = window.colorbar  # its caption fits beside the colour bar; the tooltip says it in full
    room = bar.width() - min(220.0, bar.width() * 0.3) - 28
    assert bar.fontMetrics().horizontalAdvance(bar.caption()) <= room, (bar.caption(), room)
    bar.grab()  # paints, which sets the tooltip
    assert "comparable across frames" in bar.toolTip()
    t = window.segments_panel.table  # the segment table shows whole columns, Peak included, no clipping
    shown = [c for c in range(t.model().columnCount()) if not t.isColumnHidden(c)]
    assert 6 in shown and sum(t.columnWidth(c) for c in shown) <= t.viewport().width()
    window.resize(2400, 1300)
    window.resizeDocks([window.segments_dock], [520], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: not any(t.isColumnHidden(c) for c in range(8)), timeout=SHORT)  # room: all of them


def test_a_threshold_reads_the_same_everywhere(qtbot, window, analysed_video: Path) -> None:
    """0.455 in the box: the table's header, the model lane and the line's label say 0.455, not 0.46."""
    open_and_wait(qtbot, window, analysed_video)
    window.threshold_bar.spin.setValue(0.455)
    assert "at threshold 0.455" in window.segments_panel.summary.text()
    assert window.timeline.threshold_line.label.toPlainText() == "threshold 0.455"
    assert "model ≥ 0.455" in window.timeline._lane_names
    window.threshold_bar.spin.setValue(0.5)
    assert window.timeline.threshold_line.label.toPlainText() == "threshold 0.50"


def test_a_missing_bundled_model_does_not_stop_a_video_opening(
    qtbot, window, analysed_video: Path, monkeypatch, tmp_path: Path
) -> None:
    """The panel looks for the shown analysis's model among its entries: a missing bundled file is skipped."""
    from stanviewer.core.models import bundled

    monkeypatch.setattr(bundled, "BUNDLED_NAME", "no-such-model.safetensors")
    opened = []
    window.sigOpened.connect(opened.append)
    open_and_wait(qtbot, window, analysed_video)
    qtbot.waitUntil(lambda: bool(opened), timeout=LONG)
    assert window.session.analysis is not None and window.analysis_panel.cached.count() >= 1


def test_tab_reaches_the_analysis_threshold_and_review_controls(qtbot, window, analysed_video: Path) -> None:
    """Keyboard-only use: Tab from the picture visits the model, Run, the threshold, the segment options,
    the segments table and the review bar (it used to alternate between the picture and the timeline)."""
    from PySide6.QtWidgets import QApplication

    open_and_wait(qtbot, window, analysed_video)
    window.activateWindow()
    window.view.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.view, timeout=SHORT)
    seen = set()
    for _ in range(80):
        window.focusNextPrevChild(True)
        seen.add(QApplication.focusWidget())
    panel, bar = window.analysis_panel, window.threshold_bar
    for w in (panel.checkpoint, panel.method, panel.run_button, bar.spin, bar.min_seconds, bar.merge_seconds):
        assert w in seen, w
    assert window.segments_panel.table in seen


def test_the_overlay_choices_are_in_the_view_menu(qtbot, window) -> None:
    """Colour map, floor and scale, reachable from the keyboard (Alt+V) as well as beside the transport."""
    view = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    menus = {a.text(): a.menu() for a in view.actions() if a.menu() is not None}
    assert {"Heatmap colours", "Heatmap floor", "Heatmap scale"} <= set(menus)
    next(a for a in menus["Heatmap floor"].actions() if a.text() == "Hide < 0.2").trigger()
    assert window.session.overlay.floor == 0.2 and window.floor.currentText() == "Hide < 0.2"
    next(a for a in menus["Heatmap scale"].actions() if a.text() == "Each frame").trigger()
    assert window.session.overlay.relative_to == "frame"
    next(a for a in menus["Heatmap colours"].actions() if a.text() == "viridis").trigger()
    assert window.session.overlay.colormap == "viridis"
