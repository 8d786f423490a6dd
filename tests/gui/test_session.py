"""The document model and the small pure helpers behind the views (no window needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stanviewer.core.explain.result import Analysis
from stanviewer.core.explain.segments import SegmentOptions, segments_from_scores
from stanviewer.qt.session import RunInfo, Session, segment_stats
from stanviewer.qt.timeline import intervals_path, prediction_text
from stanviewer.qt.video_view import format_time, heat_rgba
from stanviewer.qt.workers import Thumbnails


class FakeReader:
    """What the session needs of a VideoReader: 25 fps, ``n`` frames."""

    def __init__(self, n: int = 100) -> None:
        self.frame_count = n
        self._t = np.arange(n) / 25.0
        self.info = SimpleNamespace(fps=25.0, duration_s=n / 25.0)
        self.path = "fake.mp4"
        self.closed = False

    def times(self) -> np.ndarray:
        return self._t.copy()

    def index_at_time(self, t: float) -> int:
        return int(min(max(np.searchsorted(self._t, t + 1e-9, side="right") - 1, 0), self.frame_count - 1))

    def close(self) -> None:
        self.closed = True


def analysis(scores: np.ndarray, threshold: float = 0.5) -> Analysis:
    meta = {"method": "vanilla", "threshold": threshold, "target": "compensation", "model": {"sha256": "a" * 64}}
    pred = {"class": "normal", "probabilities": {"normal": 0.7, "compensation": 0.3}}
    t = np.arange(len(scores)) / 25.0
    return Analysis(scores, scores, scores, t, [], pred, meta, None)


def test_segment_stats_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(500).astype(np.float32)
    s[rng.random(500) < 0.1] = np.nan
    segs = segments_from_scores(s, 0.4, SegmentOptions(merge_gap=3))
    peak, mean = segment_stats(s, segs)
    for g, p, m in zip(segs, peak, mean):
        assert p == pytest.approx(np.nanmax(s[g.start : g.end]))
        assert m == pytest.approx(np.nanmean(s[g.start : g.end]))


def test_session_threshold_segments_and_navigation(qtbot) -> None:
    s = Session()
    reader = FakeReader(100)
    s.set_video(reader)
    scores = np.zeros(100, np.float32)
    scores[10:20], scores[50:53], scores[70:90] = 0.9, 0.6, 0.7
    s.set_analysis(analysis(scores, threshold=0.65))
    assert [(g.start, g.end) for g in s.segments] == [(10, 20), (70, 90)]
    with qtbot.waitSignal(s.sigSegmentsChanged):
        s.set_threshold(0.5)
    assert [(g.start, g.end) for g in s.segments] == [(10, 20), (50, 53), (70, 90)]
    s.set_threshold(7)  # clamped
    assert s.threshold == 1.0 and s.segments == []
    s.set_threshold(0.5)
    s.set_frame(0)
    s.next_segment()
    assert (s.frame, s.selected) == (10, 0)
    s.next_segment()
    assert (s.frame, s.selected) == (50, 1)
    s.set_frame(60)
    s.previous_segment()
    assert (s.frame, s.selected) == (50, 1)
    assert s.segment_at(51) == 1 and s.segment_at(60) == -1
    s.select_segment(2)
    s.set_threshold(0.65)  # the selection follows the segment that overlaps it
    assert s.selected == 1 and s.segments[1].start == 70
    s.set_options(SegmentOptions(min_frames=11))
    assert [(g.start, g.end) for g in s.segments] == [(70, 90)]
    s.step_seconds(1.0)
    assert s.frame == 70 + 25
    s.set_frame(10_000)
    assert s.frame == 99
    with pytest.raises(Exception, match="another video"):
        s.set_analysis(analysis(np.zeros(50, np.float32)))
    tiers = s.tiers()
    assert tiers[0].intervals == [(70, 90)] and "0.65" in tiers[0].name
    s.set_video(None)
    assert reader.closed and s.analysis is None and s.segments == []


def test_partial_scores_grow_and_never_flag_nan(qtbot) -> None:
    s = Session()
    s.set_video(FakeReader(40))
    curve = np.full(40, np.nan, np.float32)
    curve[:10] = 0.9
    s.set_partial(curve)
    assert [(g.start, g.end) for g in s.segments] == [(0, 10)]
    assert s.score_at(5) == pytest.approx(0.9) and s.score_at(20) is None
    assert "Analysing" in prediction_text(s)
    s.set_partial(None)
    assert s.scores is None and s.segments == []


def test_a_running_analysis_is_cut_at_its_own_threshold_and_a_cancel_brings_back_the_old_one(qtbot) -> None:
    """Running a second method over a shown analysis: from its first partial curve on, the segments use the
    run's threshold (its model and method's), and settings follow the run's method; a cancel restores."""
    s = Session()
    s.set_video(FakeReader(40))
    scores = np.linspace(0, 1, 40).astype(np.float32)
    s.set_analysis(analysis(scores, threshold=0.8))
    thresholds = []
    s.sigThresholdChanged.connect(thresholds.append)
    s.begin_run(RunInfo("smoothgrad", "b" * 64, 0.3))
    assert s.threshold == 0.8 and s.method == "vanilla"  # nothing changes before the run's first curve
    curve = np.full(40, np.nan, np.float32)
    curve[:20] = 0.4
    s.set_partial(curve)
    assert s.threshold == 0.3 and thresholds == [0.3]
    assert (s.method, s.model_key) == ("smoothgrad", "b" * 64)
    assert [(g.start, g.end) for g in s.segments] == [(0, 20)]
    s.set_partial(curve)  # later partials keep the run's threshold (the user may have moved it)
    s.set_threshold(0.5)
    s.set_partial(curve)
    assert s.threshold == 0.5
    s.set_partial(None)  # cancelled: the shown analysis comes back with its threshold
    assert s.threshold == 0.8 and thresholds[-1] == 0.8 and s.method == "vanilla" and s.run is None
    assert [(g.start, g.end) for g in s.segments] == [(32, 40)]


def test_a_finished_run_ends_the_run_state(qtbot) -> None:
    s = Session()
    s.set_video(FakeReader(20))
    s.begin_run(RunInfo("vanilla", "a" * 64, 0.3))
    s.set_partial(np.full(20, 0.5, np.float32))
    s.set_analysis(analysis(np.zeros(20, np.float32), threshold=0.7))
    assert s.run is None and s.threshold == 0.7 and s.partial is None


def test_prediction_is_worded_as_model_output(qtbot) -> None:
    s = Session()
    s.set_video(FakeReader(10))
    s.set_analysis(analysis(np.zeros(10, np.float32)))
    text = prediction_text(s)
    assert "Model output" in text and "not a diagnosis" in text and "normal" in text and "p = 0.70" in text
    assert "diagnos" not in text.replace("not a diagnosis", "")


def test_the_caption_says_which_scale_the_curve_uses(qtbot) -> None:
    """Per-video 0-1 scaling (every gradient method) or a probability on one scale (posture models)."""
    s = Session()
    s.set_video(FakeReader(10))
    a = analysis(np.zeros(10, np.float32))
    a.meta["normalisation"] = {"kind": "per-video min-max after clipping", "clip_percentiles": [1, 99]}
    s.set_analysis(a)
    assert "scaled 0–1 per video (1st–99th percentile" in prediction_text(s)
    b = analysis(np.zeros(10, np.float32))
    b.meta["normalisation"] = {"kind": "frame probability", "clip_percentiles": None}
    s.set_analysis(b)
    text = prediction_text(s)
    assert "per-frame probability, the same scale in every video" in text and "scaled 0–1" not in text
    assert "diagnos" not in text.replace("not a diagnosis", "")


def test_small_helpers() -> None:
    x, y = intervals_path([(2, 5), (9, 10)], 0.0, 1.0)
    assert x.tolist() == [1.5, 1.5, 4.5, 4.5, 8.5, 8.5, 9.5, 9.5] and y.tolist() == [0, 1, 1, 0] * 2
    assert format_time(0) == "0:00.000" and format_time(61.5) == "1:01.500" and format_time(3723.25) == "1:02:03.250"
    rgba = heat_rgba(np.array([[0.0, 0.08, 1.0]], np.float32), "inferno", 0.5, 0.1)
    assert rgba.shape == (1, 3, 4) and rgba[0, 0, 3] == rgba[0, 1, 3] == 0 and rgba[0, 2, 3] == 128


def test_thumbnails_stay_within_budget() -> None:
    t = Thumbnails(90_000, (160, 120), side=160, budget=96 << 20)
    assert t.data.nbytes <= 96 << 20 and t.stride > 1
    assert t.get(1234) is None
    t.ready[:] = True
    j, img = t.get(1234)
    assert abs(j - 1234) <= t.stride / 2 and img.shape == (120, 160, 3)
    small = Thumbnails(300, (640, 480))
    assert small.stride == 1 and small.size == (160, 120)


def test_segment_options_in_seconds_follow_each_videos_frame_rate_and_are_worded(qtbot) -> None:
    from stanviewer.qt.segments_panel import options_text

    s = Session()
    s.set_video(FakeReader(100))  # 25 frames/s
    assert options_text(s) == ""
    s.set_segment_seconds(0.4, 0.2)
    assert (s.options.min_frames, s.options.merge_gap) == (10, 5)
    assert options_text(s) == " (≥ 0.40 s, gaps ≤ 0.20 s joined)"
    slow = FakeReader(50)
    slow.info.fps = 10.0
    s.set_video(slow)  # the seconds stay, the frames follow the new video
    assert (s.options.min_frames, s.options.merge_gap) == (4, 2)
    s.set_options(SegmentOptions(min_frames=3))  # frames set directly: kept for the next video
    s.set_video(FakeReader(100))
    assert s.segment_seconds is None and s.options.min_frames == 3


def test_remembered_segment_seconds_survive_a_damaged_settings_file(tmp_path) -> None:
    from stanviewer.qt.settings import AppSettings

    st = AppSettings(tmp_path / "s.ini")
    assert st.segment_seconds() == (0.4, 0.4)  # nothing remembered: the defaults
    st.set_segment_seconds(0.8, 0.0)
    assert st.segment_seconds() == (0.8, 0.0)
    for bad in ("abc", "-3", "1e9", "nan"):
        st.set("segments/min_seconds", bad)
        assert st.segment_seconds() == (0.4, 0.0), bad
