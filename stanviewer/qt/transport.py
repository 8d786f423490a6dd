"""Playback: a clock-paced player that drops frames when decoding falls behind, its buttons and keys.

:class:`Transport` never waits for a frame. On every tick it computes the frame that should be on screen
now (from the frames' timestamps, so variable frame rates stay right), moves the session's playhead
there, and lets the video view show the newest frame the decoder delivers; frames that arrive too late
are simply never requested.
"""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QStyle, QToolButton, QWidget

from stanviewer.qt.session import Session
from stanviewer.qt.video_view import VideoView

__all__ = ["SPEEDS", "Transport", "TransportBar", "make_actions"]

SPEEDS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


class Transport(QObject):
    """Play/pause, speed and loop over a :class:`Session`.

    Signals:
        sigPlayingChanged(bool), sigSpeedChanged(float), sigLoopChanged(bool).
    """

    sigPlayingChanged = Signal(bool)
    sigSpeedChanged = Signal(float)
    sigLoopChanged = Signal(bool)

    def __init__(self, session: Session, view: VideoView | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.view = view
        self.playing = False
        self.speed = 1.0
        self.loop = False
        self._clock = QElapsedTimer()
        self._t0 = 0.0  # media seconds at the start of the clock
        self._ticking = False
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        session.sigFrameChanged.connect(self._on_frame)
        session.sigVideoChanged.connect(self.pause)

    # ---------------------------------------------------------------- play / pause
    def play(self) -> None:
        s = self.session
        if s.reader is None or self.playing:
            return
        if s.frame >= s.frame_count - 1 and not self._loop_segment():
            s.set_frame(0)  # at the end: play from the start
        self.playing = True
        self._rebase()
        fps = max(1.0, s.fps * self.speed)
        self._timer.start(int(max(4, min(20, 500 / fps))))
        self._set_readahead()
        self.sigPlayingChanged.emit(True)

    def pause(self) -> None:
        if not self.playing:
            return
        self.playing = False
        self._timer.stop()
        self._set_readahead()
        self.sigPlayingChanged.emit(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def set_speed(self, speed: float) -> None:
        speed = float(min(max(speed, SPEEDS[0]), SPEEDS[-1]))
        if speed == self.speed:
            return
        self.speed = speed
        if self.playing:
            self._rebase()
            self._set_readahead()
        self.sigSpeedChanged.emit(speed)

    def faster(self) -> None:
        self.set_speed(next((v for v in SPEEDS if v > self.speed + 1e-9), SPEEDS[-1]))

    def slower(self) -> None:
        self.set_speed(next((v for v in reversed(SPEEDS) if v < self.speed - 1e-9), SPEEDS[0]))

    def set_loop(self, on: bool) -> None:
        if on != self.loop:
            self.loop = bool(on)
            self.sigLoopChanged.emit(self.loop)

    # ---------------------------------------------------------------- stepping (pauses playback)
    def step(self, frames: int) -> None:
        self.pause()
        self.session.step(frames)

    def step_seconds(self, seconds: float) -> None:
        self.pause()
        self.session.step_seconds(seconds)

    def home(self) -> None:
        self.pause()
        self.session.set_frame(0)

    def end(self) -> None:
        self.pause()
        self.session.set_frame(self.session.frame_count - 1)

    # ---------------------------------------------------------------- the clock
    def _loop_segment(self) -> tuple[int, int] | None:
        s = self.session
        if self.loop and 0 <= s.selected < len(s.segments):
            g = s.segments[s.selected]
            return g.start, g.end
        return None

    def _rebase(self) -> None:
        self._t0 = self.session.time_of(self.session.frame)
        self._clock.restart()

    def _on_frame(self, i: int) -> None:
        if self.playing and not self._ticking:
            self._rebase()  # the user moved the playhead while playing: continue from there

    def _set_readahead(self) -> None:
        if self.view is None:
            return
        if self.playing:
            self.view.forward_step = max(1, round(self.speed)) if self.speed > 1.5 else 1
            self.view.forward = 24
        else:
            self.view.forward_step, self.view.forward = 1, 12

    def _tick(self) -> None:
        s = self.session
        if s.reader is None:
            self.pause()
            return
        t = self._t0 + self._clock.elapsed() / 1000.0 * self.speed
        target = s.reader.index_at_time(t)
        seg = self._loop_segment()
        if seg is not None:
            start, end = seg
            if target >= end or target < start:
                target = start
                self._ticking = True
                s.set_frame(start)
                self._ticking = False
                self._rebase()
                return
        elif target >= s.frame_count - 1:
            self._ticking = True
            s.set_frame(0 if self.loop else s.frame_count - 1)  # loop without a selection: the whole video
            self._ticking = False
            self._rebase() if self.loop else self.pause()
            return
        if target != s.frame:
            self._ticking = True
            s.set_frame(target)
            self._ticking = False


def make_actions(transport: Transport, parent: QWidget) -> dict[str, QAction]:
    """The playback actions with their shortcuts (added to the window so they work everywhere)."""
    s = transport.session
    spec: list[tuple[str, str, list[str], object]] = [
        ("play", "Play / pause", ["Space"], transport.toggle),
        ("next_frame", "Next frame", ["Right"], lambda: transport.step(1)),
        ("prev_frame", "Previous frame", ["Left"], lambda: transport.step(-1)),
        ("fwd_1s", "Forward 1 second", ["Shift+Right"], lambda: transport.step_seconds(1.0)),
        ("back_1s", "Back 1 second", ["Shift+Left"], lambda: transport.step_seconds(-1.0)),
        ("home", "First frame", ["Home"], transport.home),
        ("end", "Last frame", ["End"], transport.end),
        ("faster", "Faster", ["]"], transport.faster),
        ("slower", "Slower", ["["], transport.slower),
        ("next_seg", "Next flagged segment", ["N"], s.next_segment),
        ("prev_seg", "Previous flagged segment", ["P"], s.previous_segment),
        ("loop", "Loop the selected segment", ["L"], None),
    ]
    actions: dict[str, QAction] = {}
    for name, text, keys, slot in spec:
        a = QAction(text, parent)
        a.setShortcuts([QKeySequence(k) for k in keys])
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        a.setObjectName(f"action_{name}")
        if slot is not None:
            a.triggered.connect(slot)
        parent.addAction(a)
        actions[name] = a
    loop = actions["loop"]
    loop.setCheckable(True)
    loop.toggled.connect(transport.set_loop)
    transport.sigLoopChanged.connect(
        lambda on: (loop.blockSignals(True), loop.setChecked(on), loop.blockSignals(False))
    )
    return actions


class TransportBar(QWidget):
    """Buttons, speed and loop under the video (buttons take no focus: the keys keep working)."""

    def __init__(self, transport: Transport, actions: dict[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transport = transport
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        st = self.style()
        icons = {
            "home": QStyle.StandardPixmap.SP_MediaSkipBackward,
            "back_1s": QStyle.StandardPixmap.SP_MediaSeekBackward,
            "prev_frame": QStyle.StandardPixmap.SP_ArrowLeft,
            "play": QStyle.StandardPixmap.SP_MediaPlay,
            "next_frame": QStyle.StandardPixmap.SP_ArrowRight,
            "fwd_1s": QStyle.StandardPixmap.SP_MediaSeekForward,
            "end": QStyle.StandardPixmap.SP_MediaSkipForward,
        }
        self.buttons: dict[str, QToolButton] = {}
        for name, icon in icons.items():
            b = QToolButton(self)
            b.setIcon(st.standardIcon(icon))
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            a = actions[name]
            b.setToolTip(f"{a.text()} ({a.shortcut().toString()})")
            b.clicked.connect(a.trigger)
            lay.addWidget(b)
            self.buttons[name] = b
        lay.addSpacing(12)
        lay.addWidget(QLabel("Speed"))
        self.speed = QComboBox(self)
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for v in SPEEDS:
            self.speed.addItem(f"{v:g}×", v)
        self.speed.setToolTip("Playback speed ([ slower, ] faster)")
        self.speed.currentIndexChanged.connect(lambda k: transport.set_speed(self.speed.itemData(k)))
        lay.addWidget(self.speed)
        self.loop = QCheckBox("Loop", self)
        self.loop.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.loop.setToolTip("Play the selected flagged segment over and over (L)")
        self.loop.toggled.connect(transport.set_loop)
        lay.addWidget(self.loop)
        lay.addStretch(1)
        transport.sigPlayingChanged.connect(self._on_playing)
        transport.sigSpeedChanged.connect(self._on_speed)
        transport.sigLoopChanged.connect(self._on_loop)
        self._on_speed(transport.speed)

    def _on_playing(self, playing: bool) -> None:
        icon = QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        self.buttons["play"].setIcon(self.style().standardIcon(icon))

    def _on_speed(self, speed: float) -> None:
        k = min(range(len(SPEEDS)), key=lambda j: abs(SPEEDS[j] - speed))
        self.speed.blockSignals(True)
        self.speed.setCurrentIndex(k)
        self.speed.blockSignals(False)

    def _on_loop(self, on: bool) -> None:
        self.loop.blockSignals(True)
        self.loop.setChecked(on)
        self.loop.blockSignals(False)
