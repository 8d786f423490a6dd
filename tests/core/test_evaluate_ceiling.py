"""The window-classifier ceiling (``oracle_window_scores``) on hand-made labels."""

from __future__ import annotations

import numpy as np
import pytest

from stanviewer.core.evaluate import oracle_window_scores
from stanviewer.core.explain.segments import calibrate_threshold, frame_f1


def test_share_of_labelled_frames_per_window() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.uint8)
    # windows of 4 at stride 4: [0:4] share 0, [4:8] share 1 -> each frame in one window
    assert np.allclose(oracle_window_scores(y, 4, 4), [0, 0, 0, 0, 1, 1, 1, 1])
    # stride 2 adds window [2:6] (share 0.5): frames 2-5 average two windows
    assert np.allclose(oracle_window_scores(y, 4, 2), [0, 0, 0.25, 0.25, 0.75, 0.75, 1, 1])
    assert np.allclose(oracle_window_scores(y, 4, 2, mode="any"), [0, 0, 0.5, 0.5, 1, 1, 1, 1])


def test_every_frame_covered_when_length_is_not_a_multiple_of_the_stride() -> None:
    y = np.zeros(11, np.uint8)
    y[-1] = 1
    s = oracle_window_scores(y, 4, 3)
    assert s.shape == (11,) and s[-1] == pytest.approx(0.25)  # the last window [7:11] is added
    assert np.all(np.isfinite(s))


def test_longer_windows_lower_the_ceiling() -> None:
    rng = np.random.default_rng(0)
    videos = []
    for _ in range(6):
        y = np.zeros(400, np.uint8)
        for a in rng.choice(np.arange(20, 360), 2, replace=False):
            y[a : a + 40] = 1  # two 40-frame events
        videos.append(y)
    f1 = {}
    for w in (8, 32, 120):
        th, _ = calibrate_threshold([(oracle_window_scores(y, w), y) for y in videos])
        f1[w] = np.mean([frame_f1(oracle_window_scores(y, w), y, th).f1 for y in videos])
    assert f1[8] > 0.95 and f1[8] >= f1[32] > f1[120]
    assert f1[120] < 0.9  # windows three times the event length smear it


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="mode"):
        oracle_window_scores(np.zeros(4), 2, mode="max")
