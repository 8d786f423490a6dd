"""Editing labels in the app (offscreen): lanes, keys, undo, review file, autosave, recovery, exports.

Every test works on its own copy of the test video (the recovery file is named after the video), and
every message box and file dialog is answered by the ``answers`` fixture, so no test can hang on a modal
dialog.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import LONG, N_FRAMES, open_and_wait
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QInputDialog,
    QMessageBox,
    QStyle,
    QStyleOptionComboBox,
)

from stanviewer.core.review.recovery import recovery_path
from stanviewer.core.review.reviewfile import VideoRef, open_review, review_path
from stanviewer.qt import clip_dialog

B = QMessageBox.StandardButton


class Answers:
    """What the patched dialogs answer, and what they were asked."""

    def __init__(self) -> None:
        self.question = B.No  # restore? / attach anyway?
        self.close = B.Discard  # unsaved labels on close
        self.save_file = ""
        self.open_file = ""
        self.folder = ""
        self.item = ""
        self.clip_options = None  # ClipOptions the clip dialog answers with (None: the defaults)
        self.asked: list[tuple[str, str]] = []
        self.errors: list[tuple[str, str]] = []


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> Answers:
    a = Answers()

    def question(parent, title, text, buttons=None, default=None):
        a.asked.append((title, text))
        return a.close if title == "Unsaved labels" else a.question

    def critical(parent, title, text, *args, **kw):
        a.errors.append((title, text))
        return B.Ok

    monkeypatch.setattr(QMessageBox, "question", question)
    monkeypatch.setattr(QMessageBox, "critical", critical)
    monkeypatch.setattr(QMessageBox, "information", lambda *args, **kw: B.Ok)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kw: (a.save_file, ""))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kw: (a.open_file, ""))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kw: a.folder)
    monkeypatch.setattr(QInputDialog, "getItem", lambda *args, **kw: (a.item, bool(a.item)))

    def clips(parent, sources, folder, fps, **kw):
        from stanviewer.core.review.clips import ClipOptions
        from stanviewer.qt.clip_dialog import ClipChoice

        a.asked.append(("Export clips", ", ".join(sources)))
        ok = a.item in sources and a.folder
        return ClipChoice(a.item, Path(a.folder), a.clip_options or ClipOptions()) if ok else None

    monkeypatch.setattr(clip_dialog, "ask_clip_export", clips)
    return a


@pytest.fixture
def video(analysed_video: Path, tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A copy of the analysed test video under a name of its own (same content: the analysis is found)."""
    dst = tmp_path / f"{request.node.name[:40]}.mp4"
    shutil.copy(analysed_video, dst)
    return dst


def opened(qtbot, window, video: Path):
    open_and_wait(qtbot, window, video)
    assert window.review.review is not None
    return window.review.labels


def key(qtbot, window, k: Qt.Key, mod: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    window.view.setFocus()
    qtbot.keyClick(window.view, k, mod)


def drag(qtbot, window, tier: str, f0: float, f1: float, mod=Qt.KeyboardModifier.NoModifier, steps: int = 4) -> None:
    """Press on ``tier``'s lane at frame ``f0``, move in steps to ``f1`` and release (real mouse events)."""
    tl = window.timeline
    view = tl.glw
    vp = view.viewport()

    def pos(f: float) -> QPointF:
        return QPointF(view.mapFromScene(tl.lane_to_scene(f, tier)))

    def send(kind, p: QPointF, button, buttons) -> None:
        ev = QMouseEvent(kind, p, QPointF(vp.mapToGlobal(p)), button, buttons, mod)
        QApplication.sendEvent(vp, ev)

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(QMouseEvent.Type.MouseMove, pos(f0), none, none)
    qtbot.wait(20)
    send(QMouseEvent.Type.MouseButtonPress, pos(f0), left, left)
    for k in range(1, steps + 1):
        qtbot.wait(20)  # pyqtgraph drops mouse moves closer than 10 ms apart
        send(QMouseEvent.Type.MouseMove, pos(f0 + (f1 - f0) * k / steps), none, left)
    qtbot.wait(20)
    send(QMouseEvent.Type.MouseButtonRelease, pos(f1), left, none)


def spans(labels, tier: str = "annotator") -> list[tuple[int, int, str]]:
    return labels.tier(tier).spans()


# ------------------------------------------------------------------------------------------------ tests
def test_model_tier_follows_the_timeline(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    s = window.session
    assert labels.tier_names() == ["model", "annotator", "therapist"]
    assert [(a, b) for a, b, _ in spans(labels, "model")] == [(g.start, g.end) for g in s.segments]
    window.threshold_bar.spin.setValue(0.7)
    assert [(a, b) for a, b, _ in spans(labels, "model")] == [(g.start, g.end) for g in s.segments]
    assert labels.proposal.meta["threshold"] == pytest.approx(0.7)
    window.threshold_bar.min_seconds.setValue(0.6)  # segment options too (15 frames at 25 frames/s)
    assert [(a, b) for a, b, _ in spans(labels, "model")] == [(g.start, g.end) for g in s.segments] == [(70, 90)]
    assert not window.review.dirty  # the proposal is derived data, not an edit
    # ... and what the window says agrees: no "unsaved changes" in the bar, no • in the title
    assert "unsaved" not in window.review_bar.state.text() and "•" not in window.windowTitle()
    # the human tiers have lanes of their own below the read-only ones
    tl = window.timeline
    assert tl.lane_row("annotator") == 1 and tl.lane_row("therapist") == 2
    ticks = [t for _, t in tl.lanes.getAxis("left")._tickLevels[0]]
    assert ticks[1:] == ["▸ annotator", "therapist"]


def test_edit_with_the_model_api_and_undo(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15, "lean")
    assert spans(labels) == [(5, 15, "lean")]
    assert window.review.dirty and "•" in window.windowTitle()
    # the lane draws it (one fill per label) and the selection outline covers it
    ed = window.lane_editor
    x, _ = ed.fills[0].getData()
    assert [round(v + 0.5) for v in x[:4:2]] == [5, 15]
    sx, _ = ed.sel_item.getData()
    assert min(sx) == pytest.approx(4.5) and max(sx) == pytest.approx(14.5)
    assert window.undo_action.isEnabled()
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert spans(labels) == []
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert spans(labels) == [(5, 15, "lean")]
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert spans(labels) == [(5, 15, "lean")]


def test_interval_labels_show_only_where_they_fit(qtbot, answers: Answers, window, video: Path) -> None:
    """A label is drawn inside its interval when it fits at the current zoom, hidden otherwise (short
    intervals' labels ran over their neighbours); zooming in shows it."""
    labels = opened(qtbot, window, video)
    labels.create("annotator", 0, N_FRAMES // 2, "long")
    labels.create("annotator", N_FRAMES // 2 + 2, N_FRAMES // 2 + 3, "trunk lean")
    ed = window.lane_editor
    shown = {iv.label: txt.isVisible() for txt, iv in zip(ed.texts, ed._text_ivs)}
    assert shown == {"long": True, "trunk lean": False}
    ed.vb.setXRange(N_FRAMES // 2, N_FRAMES // 2 + 10, padding=0)  # zoom in on the short one
    qtbot.waitUntil(lambda: all(t.isVisible() for t in ed.texts), timeout=2000)


def test_mouse_drags_select_create_and_move_edges(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    tl = window.timeline
    # a plain drag selects a range on the lane (frames under the start and end of the drag)
    drag(qtbot, window, "therapist", 30, 50)
    sel = labels.selection
    assert (sel.tier, sel.start, sel.end) == ("therapist", 30, 51)
    assert window.review.active_tier == "therapist" and spans(labels, "therapist") == []
    # Enter labels it with the current label
    window.review_bar.label.setCurrentText("trunk lean")
    key(qtbot, window, Qt.Key.Key_Return)
    assert spans(labels, "therapist") == [(30, 51, "trunk lean")]
    # Shift+drag creates an interval at once
    drag(qtbot, window, "annotator", 60, 80, Qt.KeyboardModifier.ShiftModifier)
    assert spans(labels) == [(60, 81, "trunk lean")]
    n_undo = len(labels._undo)
    # dragging the right edge moves it; the whole drag is one undo step
    drag(qtbot, window, "annotator", 80.5, 95.5, steps=6)
    assert spans(labels) == [(60, 96, "trunk lean")]
    assert len(labels._undo) == n_undo + 1
    # and the left edge
    drag(qtbot, window, "annotator", 59.5, 64.5)  # x = b - 0.5 is the boundary b
    assert spans(labels) == [(65, 96, "trunk lean")]
    labels.undo()
    assert spans(labels) == [(60, 96, "trunk lean")]
    labels.undo()
    assert spans(labels) == [(60, 81, "trunk lean")]
    # a click on an interval selects it and moves the playhead there
    vp = tl.glw.viewport()
    p = tl.glw.mapFromScene(tl.lane_to_scene(70, "annotator"))
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=p)
    assert labels.selected_interval() is not None and labels.selected_interval().start == 60
    assert window.session.frame == 70
    # drags on the read-only model lane still pan the view instead of editing
    before = dict(labels.spans())
    tl.zoom(4.0)
    lo = tl.vb.viewRange()[0][0]
    drag(qtbot, window, "model ≥ 0.50", 60, 55)
    assert labels.spans() == before and tl.vb.viewRange()[0][0] != pytest.approx(lo)


def test_editing_keys_at_the_playhead(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    s, ctl = window.session, window.review
    assert ctl.active_tier == "annotator"
    s.set_frame(12)
    key(qtbot, window, Qt.Key.Key_A)  # accept the flagged segment under the playhead (10-20)
    assert spans(labels) == [(10, 20, "compensation")]
    iv = labels.tier("annotator").at(12)
    assert iv.origin == "proposal" and iv.proposal.threshold == pytest.approx(s.threshold)
    # , and . nudge the selected edge (the right one after accepting; E switches)
    key(qtbot, window, Qt.Key.Key_Period)
    key(qtbot, window, Qt.Key.Key_Period)
    assert spans(labels) == [(10, 22, "compensation")]
    key(qtbot, window, Qt.Key.Key_E)
    key(qtbot, window, Qt.Key.Key_Comma)
    assert spans(labels) == [(9, 22, "compensation")]
    # S splits at the playhead, M merges again
    s.set_frame(15)
    key(qtbot, window, Qt.Key.Key_S)
    assert spans(labels) == [(9, 15, "compensation"), (15, 22, "compensation")]
    s.set_frame(10)
    key(qtbot, window, Qt.Key.Key_M)
    assert spans(labels) == [(9, 22, "compensation")]
    # I and O mark a selection at the playhead, Enter labels it
    s.set_frame(30)
    key(qtbot, window, Qt.Key.Key_I)
    s.set_frame(34)
    key(qtbot, window, Qt.Key.Key_O)
    sel = labels.selection
    assert (sel.start, sel.end) == (30, 35)
    key(qtbot, window, Qt.Key.Key_Return)
    assert spans(labels)[-1] == (30, 35, "compensation")
    # Delete removes the interval under the playhead
    s.set_frame(32)
    key(qtbot, window, Qt.Key.Key_Delete)
    assert spans(labels) == [(9, 22, "compensation")]
    # while an analysis runs, its segments are not final: A and Shift+A take nothing (the old proposal neither)
    s.set_frame(72)
    s.set_partial(np.full(s.frame_count, np.nan, np.float32))
    before = spans(labels)
    key(qtbot, window, Qt.Key.Key_A)
    key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert spans(labels) == before and "analysis is running" in window.statusBar().currentMessage()
    s.set_partial(None)
    # Shift+A accepts every flagged segment in one undo step
    n_undo = len(labels._undo)
    key(qtbot, window, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert len(labels._undo) == n_undo + 1
    assert [(a, b) for a, b, _ in spans(labels)] == [(9, 22), (40, 45), (70, 90), (100, 103)]
    # a key that cannot apply says why in the status bar
    s.set_frame(60)
    key(qtbot, window, Qt.Key.Key_S)
    assert "Cannot split" in window.statusBar().currentMessage()
    # the existing keys still work (N: next flagged segment)
    key(qtbot, window, Qt.Key.Key_N)
    assert s.frame == 70


def test_enter_in_the_threshold_box_still_commits_it(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.select_range("annotator", 3, 6)
    spin = window.threshold_bar.spin
    spin.setFocus()
    spin.selectAll()
    qtbot.keyClicks(spin, "0.8")
    qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert window.session.threshold == pytest.approx(0.8) and spans(labels) == []


def test_edits_work_while_playing(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    window.transport.play()
    try:
        qtbot.waitUntil(lambda: window.session.frame > 3, timeout=LONG)
        key(qtbot, window, Qt.Key.Key_I)
        qtbot.waitUntil(lambda: window.session.frame > labels.selection.start + 3, timeout=LONG)
        key(qtbot, window, Qt.Key.Key_O)
        key(qtbot, window, Qt.Key.Key_Return)
    finally:
        window.transport.pause()
    ((a, b, _),) = spans(labels)
    assert b - a >= 4


def test_status_and_tier_choice(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    bar = window.review_bar
    assert bar.status.currentData() == "unreviewed"
    window.status_actions["done"].trigger()
    assert labels.status == "done" and bar.status.currentData() == "done"
    bar.tier.setCurrentText("therapist")
    bar.tier.activated.emit(bar.tier.currentIndex())
    assert window.review.active_tier == "therapist"
    window.session.set_frame(42)
    key(qtbot, window, Qt.Key.Key_A)
    assert spans(labels, "therapist") == [(40, 45, "compensation")] and spans(labels) == []


def test_tier_box_shows_whole_names(qtbot, answers: Answers, window, video: Path) -> None:
    """The edit-tier box is as wide as its longest tier name (it showed 'annotatc' for 'annotator')."""
    opened(qtbot, window, video)
    bar = window.review_bar
    window.resize(1600, 1000)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    opt = QStyleOptionComboBox()
    bar.tier.initStyleOption(opt)
    field = bar.tier.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, bar.tier
    )
    fm = bar.tier.fontMetrics()
    for k in range(bar.tier.count()):
        assert field.width() >= fm.horizontalAdvance(bar.tier.itemText(k)), bar.tier.itemText(k)


def test_save_and_reopen(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15, "lean")
    key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    side = review_path(video)
    assert side == video.with_name(video.name + ".stanreview.json") and side.exists()
    assert not window.review.dirty and window.review_bar.state.text() == "saved"
    assert not recovery_path(window.review.review.video).exists()
    data = json.loads(side.read_text(encoding="utf-8"))
    assert data["tiers"][0]["name"] == "model"  # the proposal as it was, with its threshold
    window.review.close()
    labels2 = opened(qtbot, window, video)
    assert spans(labels2) == [(5, 15, "lean")] and not answers.asked


def second_window(qtbot, tmp_path: Path):
    """Another main window (as a second instance would be), with its own settings file."""
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    settings = AppSettings(tmp_path / "second.ini")
    settings.set_segment_seconds(0.0, 0.0)
    w = MainWindow(settings=settings, probe_devices=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def close_second(window, other) -> None:
    """Close ``other``; first stop ``window``'s frame grabber, which a window's shutdown would wait for (60 s)."""
    window.grabber.stop()
    other.review.close(ask=False)
    other.close()


def test_two_windows_never_overwrite_each_others_save_silently(
    qtbot, answers: Answers, window, video: Path, tmp_path: Path
) -> None:
    other = second_window(qtbot, tmp_path)
    try:
        la, lb = opened(qtbot, window, video), opened(qtbot, other, video)
        la.create("annotator", 5, 15, "from A")
        assert window.review.save()
        lb.create("therapist", 40, 60, "from B")
        rec = other.review.autosaver.path  # a recovery file of its own (the first window has the first one)
        assert rec != window.review.autosaver.path
        qtbot.waitUntil(rec.exists, timeout=2000)  # autosave goes on regardless
        # Cancel: nothing is written, B keeps its edits and their recovery file
        answers.question = B.Cancel
        assert not other.review.save()
        assert answers.asked[-1][0] == "Labels changed on disk" and video.name in answers.asked[-1][1]
        assert spans(open_review(VideoRef.open(video)).labels) == [(5, 15, "from A")]
        assert other.review.dirty and rec.exists()
        # No: B reloads A's save (its own unsaved changes dropped, as it said)
        answers.question = B.No
        assert other.review.save()
        lb = other.review.labels
        assert spans(lb) == [(5, 15, "from A")] and spans(lb, "therapist") == [] and not other.review.dirty
        assert not rec.exists()
        # Yes: B replaces A's save; then A's next save asks in turn
        lb.create("therapist", 40, 60, "from B")
        la.create("annotator", 70, 80, "more A")
        assert other.review.save()  # B saved after reloading: no conflict for B
        answers.question = B.Yes
        n = len(answers.asked)
        assert window.review.save() and answers.asked[n][0] == "Labels changed on disk"
        saved = open_review(VideoRef.open(video)).labels
        assert spans(saved) == [(5, 15, "from A"), (70, 80, "more A")] and spans(saved, "therapist") == []
    finally:
        close_second(window, other)


def test_a_second_window_leaves_the_first_windows_recovery_alone(
    qtbot, answers: Answers, window, video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stanviewer.core.review.recovery import find_recovery

    infos: list[tuple[str, str]] = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text, *a, **k: infos.append((title, text)))
    la = opened(qtbot, window, video)
    la.create("annotator", 5, 15, "unsaved A")
    rec = recovery_path(window.review.review.video)
    qtbot.waitUntil(rec.exists, timeout=2000)
    other = second_window(qtbot, tmp_path)
    try:
        answers.question = B.No  # were it asked to restore, No would delete the first window's recovery
        opened(qtbot, other, video)
        assert not answers.asked  # no crash happened: nothing to restore
        assert infos and infos[-1][0] == "Video open elsewhere" and "another window" in infos[-1][1]
        assert rec.exists() and other.review.autosaver.path != rec
        other.review.labels.create("therapist", 40, 60, "B")
        qtbot.waitUntil(other.review.autosaver.path.exists, timeout=2000)
        assert "unsaved A" in rec.read_text(encoding="utf-8")  # not overwritten by the second window
        assert other.review.close()  # Discard: drops the second window's recovery file, not the first's
        assert rec.exists()
    finally:
        close_second(window, other)
    # the first window dies without saving: its edits are offered as a crash's leftover
    window.review.autosaver.stop(flush=False)
    info = find_recovery(video)
    assert info is not None and info.path == rec
    window.review.review.generation = window.review.review.saved_generation  # let the fixture close quietly


def test_autosave_within_two_seconds(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    rec = recovery_path(window.review.review.video)
    assert not rec.exists()
    t0 = time.monotonic()
    labels.create("annotator", 20, 30)
    qtbot.waitUntil(rec.exists, timeout=2000)
    latency = time.monotonic() - t0
    data = json.loads(rec.read_text(encoding="utf-8"))
    assert next(t for t in data["tiers"] if t["name"] == "annotator")["intervals"][0]["start"] == 20
    qtbot.waitUntil(lambda: "autosaved" in window.review_bar.state.text(), timeout=2000)
    print(f"autosave latency {latency * 1000:.0f} ms")


def test_restore_after_a_crash(qtbot, answers: Answers, window, video: Path) -> None:
    # a crash: the autosaver wrote the recovery file, the review file was never saved
    review = open_review(VideoRef.open(video))
    review.labels.create("therapist", 40, 60, "trunk lean")
    review.write(recovery_path(review.video))
    answers.question = B.Yes
    labels = opened(qtbot, window, video)
    title, text = answers.asked[0]
    assert title == "Restore unsaved labels?" and "1 interval in 1 tier" in text and video.name in text
    assert spans(labels, "therapist") == [(40, 60, "trunk lean")]
    assert window.review.dirty  # restored, not yet saved
    assert window.review.save()
    assert json.loads(review_path(video).read_text(encoding="utf-8"))["tiers"]
    assert not recovery_path(review.video).exists()


def test_declined_restore_discards_the_recovery(qtbot, answers: Answers, window, video: Path) -> None:
    review = open_review(VideoRef.open(video))
    review.labels.create("therapist", 40, 60, "trunk lean")
    rec = review.write(recovery_path(review.video))
    answers.question = B.No
    labels = opened(qtbot, window, video)
    assert answers.asked and spans(labels, "therapist") == [] and not rec.exists()


def test_dirty_close_prompts(qtbot, answers: Answers, window, video: Path, analysed_video: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15)
    # Cancel keeps the window and the edits
    answers.close = B.Cancel
    window.close()
    assert window.isVisible() and window.review.review is not None
    assert answers.asked[-1][0] == "Unsaved labels"
    # switching video: Discard drops the edits and their recovery file
    rec = recovery_path(window.review.review.video)
    qtbot.waitUntil(rec.exists, timeout=2000)
    answers.close = B.Discard
    other = video.with_name("other.mp4")
    shutil.copy(analysed_video, other)
    open_and_wait(qtbot, window, other)
    assert not rec.exists() and not review_path(video).exists()
    # Save writes the review file before closing
    window.review.labels.create("annotator", 1, 3)
    answers.close = B.Save
    window.close()
    assert not window.isVisible()
    assert review_path(other).exists()


def test_a_video_name_that_is_not_utf8_saves_and_a_failed_save_keeps_the_window(
    qtbot, answers: Answers, window, analysed_video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    raw = os.fsencode(tmp_path) + b"/clip\xe9.mp4"  # a Latin-1 file name: 'clip\udce9.mp4' in Python
    shutil.copy(analysed_video, raw)
    video = Path(os.fsdecode(raw))
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15, "lean")
    rec = recovery_path(window.review.review.video)
    qtbot.waitUntil(rec.exists, timeout=2000)  # autosave works
    # a save that fails unexpectedly is a message; closing then keeps the window, the edits and the recovery
    from stanviewer.core.review import reviewfile

    def broken(data, path):
        raise ValueError("simulated")

    answers.close = B.Save
    with monkeypatch.context() as m:
        m.setattr(reviewfile, "encode_review_dict", broken)
        window.close()
    assert window.isVisible() and window.review.dirty and rec.exists()
    assert answers.errors and answers.errors[-1][0] == "Cannot save the labels"
    # Ctrl+S and Close > Save work, and the labels come back
    key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert not window.review.dirty and review_path(video).exists() and not rec.exists()
    window.review.labels.create("annotator", 20, 30, "more")
    window.close()
    assert not window.isVisible()
    assert spans(open_review(VideoRef.open(video)).labels) == [(5, 15, "lean"), (20, 30, "more")]


def test_a_failed_open_leaves_the_shown_video_editable(
    qtbot, answers: Answers, window, video: Path, tmp_path: Path
) -> None:
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15, "lean")
    answers.close = B.Save  # switching video: the labels are saved first
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 100)
    with qtbot.waitSignal(window.sigOpenFailed, timeout=LONG):
        window.open_path(bad)
    assert answers.errors and answers.errors[-1][0] == "Cannot open the video"
    assert window.session.path == video and window.review.review is not None  # the video and its review stay
    assert spans(window.review.labels) == [(5, 15, "lean")] and not window.review.dirty
    window.session.set_frame(30)
    key(qtbot, window, Qt.Key.Key_I)
    assert window.review.labels.selection is not None  # edit keys work
    key(qtbot, window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.statusBar().currentMessage().startswith("Saved")


def test_undoing_an_import_that_added_the_edit_tier_falls_back_to_an_existing_tier(
    qtbot, answers: Answers, window, video: Path, tmp_path: Path
) -> None:
    from stanviewer.core.review.formats import BORIS_COLUMNS

    opened(qtbot, window, video)
    f = tmp_path / "x.boris.csv"
    f.write_text(",".join(BORIS_COLUMNS) + "\n" + "o,d,,v,4.8,25,Rater 2,lean,,,STATE,1.0,2.0,,,\n", encoding="utf-8")
    answers.open_file = str(f)
    window.findChild(type(window.undo_action), "action_import_labels").trigger()
    bar = window.review_bar
    bar.tier.setCurrentText("Rater 2")
    bar.tier.activated.emit(bar.tier.currentIndex())
    assert window.review.active_tier == "Rater 2"
    key(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the wrong file: undo the import
    assert "Rater 2" not in window.review.human_tiers()
    assert window.review.active_tier == bar.tier.currentText() == "annotator"
    window.session.set_frame(30)
    key(qtbot, window, Qt.Key.Key_I)
    sel = window.review.labels.selection
    assert sel is not None and sel.tier == "annotator"


def test_export_and_import_via_the_menu(qtbot, answers: Answers, window, video: Path, tmp_path: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.create("annotator", 5, 15, "lean")
    labels.create("therapist", 40, 60, "trunk lean")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("labels.intervals.csv", "labels.eaf", "labels.boris.csv", "labels.labels.json"):
        answers.save_file = str(out / name)
        window.findChild(type(window.undo_action), "action_export_labels").trigger()
        assert (out / name).exists(), answers.errors
    assert "therapist" in (out / "labels.intervals.csv").read_text(encoding="utf-8")
    # import puts the tiers back (one undo step)
    labels.clear("annotator", 0, N_FRAMES)
    labels.clear("therapist", 0, N_FRAMES)
    answers.open_file = str(out / "labels.eaf")
    window.findChild(type(window.undo_action), "action_import_labels").trigger()
    assert not answers.errors
    assert spans(labels) == [(5, 15, "lean")] and spans(labels, "therapist") == [(40, 60, "trunk lean")]
    labels.undo()
    assert spans(labels) == []
    # a bad file is a dialog naming it
    bad = out / "bad.intervals.csv"
    bad.write_text("video,tier,label,start_frame,end_frame_excl\nx,annotator,a,9,3\n", encoding="utf-8")
    answers.open_file = str(bad)
    window.findChild(type(window.undo_action), "action_import_labels").trigger()
    assert answers.errors and str(bad) in answers.errors[-1][1]


def test_export_clips_via_the_menu(qtbot, answers: Answers, window, video: Path, tmp_path: Path) -> None:
    from stanviewer.core.review.clips import ClipOptions

    labels = opened(qtbot, window, video)
    labels.create("annotator", 40, 45, "lean")
    answers.item, answers.folder = "annotator", str(tmp_path / "clips")
    answers.clip_options = ClipOptions(padding=3, heatmap=True, timestamp=True, score_strip=True)
    with qtbot.waitSignal(window.review_files.sigClipsDone, timeout=LONG) as blocker:
        window.findChild(type(window.undo_action), "action_export_clips").trigger()
    assert answers.asked[-1] == ("Export clips", "model, annotator, the selected range")
    (clip,) = blocker.args[0]
    assert Path(clip).exists() and Path(clip).parent == tmp_path / "clips"
    side = json.loads(Path(str(clip) + ".json").read_text(encoding="utf-8"))
    assert side["options"]["heatmap"] and side["options"]["score_strip"] and side["options"]["timestamp"]
    assert side["segments"][0]["padded_start_frame"] == 37 and side["segments"][0]["clip_frames"] == 11
    qtbot.waitUntil(lambda: window.review_files.progress is None, timeout=LONG)


def test_the_clip_dialog_turns_choices_into_options(qtbot, tmp_path: Path) -> None:
    from stanviewer.qt.clip_dialog import ClipDialog
    from stanviewer.qt.settings import AppSettings

    settings = AppSettings(tmp_path / "s.ini")
    dlg = ClipDialog(
        ["model", "annotator"], str(tmp_path), 25.0, has_heatmaps=False, has_scores=True, settings=settings
    )
    qtbot.addWidget(dlg)
    assert not dlg.heatmap.isEnabled() and dlg.strip.isEnabled()  # this analysis has no maps to burn in
    dlg.source.setCurrentText("annotator")
    dlg.padding.setValue(1.0)
    dlg.timestamp.setChecked(True)
    c = dlg.choice()
    assert c is not None and c.source == "annotator" and c.folder == tmp_path
    assert (c.options.padding, c.options.timestamp, c.options.heatmap, c.options.merged) == (25, True, False, False)
    # the next export starts from the same choices
    again = ClipDialog(["model"], "/elsewhere", 30.0, has_heatmaps=True, has_scores=True, settings=settings)
    qtbot.addWidget(again)
    assert again.folder.text() == str(tmp_path) and again.padding.value() == 1.0 and again.timestamp.isChecked()
    assert again.choice().options.padding == 30  # seconds, in this video's frames
    again.folder.setText("")
    assert again.choice() is None


def test_burnt_in_heatmaps_are_drawn_as_the_app_shows_them(qtbot, tmp_path: Path) -> None:
    from stanviewer.qt.clip_dialog import ClipDialog, HeatStyle

    style = HeatStyle(0.7, "viridis", 0.2, "frame")
    dlg = ClipDialog(["model"], str(tmp_path), 25.0, has_heatmaps=True, has_scores=True, heat_style=style)
    qtbot.addWidget(dlg)
    assert "viridis, opacity 70%, values under 0.2 not drawn, each frame to its own peak" in dlg.heatmap.text()
    o = dlg.choice().options
    assert (o.heatmap_opacity, o.heatmap_colormap, o.heatmap_floor, o.heatmap_scale) == (0.7, "viridis", 0.2, "frame")


def test_report_via_the_menu(qtbot, answers: Answers, window, video: Path, tmp_path: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.accept_all("annotator")
    answers.save_file = str(tmp_path / "report.pdf")
    window.findChild(type(window.undo_action), "action_report").trigger()
    assert not answers.errors
    assert (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_shortcut_help_lists_the_editing_keys(qtbot, window) -> None:
    from stanviewer.qt.dialogs import ShortcutsDialog

    rows = dict(ShortcutsDialog(window.actions(), window).rows)
    assert rows["Accept the flagged segment at the playhead"] == "A"
    assert rows["Undo"] == "Ctrl+Z" and rows["Redo"] == "Ctrl+Shift+Z, Ctrl+Y"
    keys = [k for v in rows.values() for k in v.split(", ")]
    assert len(keys) == len(set(keys)), "two actions share a key"


def test_pyside_none_refcount_guard(qtbot) -> None:
    """PySide6 6.12.0 drops a reference to ``None`` on every void call (``setObjectName``, ``setText``...);
    editing makes many, and the tests aborted with "Fatal Python error: none_dealloc"; make_app compensates."""
    import sys

    from PySide6.QtCore import QObject

    from stanviewer.qt.compat import none_refcount_guarded

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        probe.setObjectName("x")
    if before - sys.getrefcount(None) > 0:
        assert none_refcount_guarded() and sys.getrefcount(None) > 1 << 39


def test_export_labels_follows_a_filter_the_user_changed() -> None:
    from stanviewer.qt.review_files import export_target

    # the suggested name kept, another filter chosen: the filter decides, and the name gets its extension
    assert export_target("/d/v.intervals.csv", "eaf", "intervals") == (Path("/d/v.eaf"), "eaf")
    assert export_target("/d/v.intervals.csv", "frames", "intervals") == (Path("/d/v.frames.csv"), "frames")
    # a name without an extension gets the filter's; a plain .csv stays a CSV of the filter's kind
    assert export_target("/d/notes", "eaf", "intervals") == (Path("/d/notes.eaf"), "eaf")
    assert export_target("/d/notes", None, "intervals") == (Path("/d/notes.intervals.csv"), "intervals")
    assert export_target("/d/a.csv", "boris", "intervals") == (Path("/d/a.csv"), "boris")
    assert export_target("/d/a.csv", "eaf", "intervals") == (Path("/d/a.eaf"), "eaf")
    # the filter left as it was: a name with a known extension decides
    assert export_target("/d/v.eaf", "intervals", "intervals") == (Path("/d/v.eaf"), "eaf")
    assert export_target("/d/v.labels.json", None, "intervals") == (Path("/d/v.labels.json"), "json")
    assert export_target("/d/v.json", "json", "intervals") == (Path("/d/v.json"), "json")


def test_enter_in_the_label_box_chooses_the_label(qtbot, answers: Answers, window, video: Path) -> None:
    labels = opened(qtbot, window, video)
    labels.clear_selection()
    edit = window.review_bar.label.lineEdit()
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, "shoulder hike")
    qtbot.keyClick(edit, Qt.Key.Key_Return)
    assert window.review.label == "shoulder hike"
    assert window.statusBar().currentMessage() == "New intervals get the label 'shoulder hike'"
    assert spans(labels) == []
