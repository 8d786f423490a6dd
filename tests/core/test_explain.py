"""Attribution methods, whole-video stitching, segments, F1 and calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stanviewer.core.explain.methods import LogOdds, frame_scores, frozen, make_method
from stanviewer.core.explain.scoring import normalise_scores, plan_windows
from stanviewer.core.explain.segments import (
    Segment,
    SegmentOptions,
    calibrate_threshold,
    flags_from_segments,
    frame_f1,
    segments_from_scores,
)
from stanviewer.core.metrics import auroc, cohen_kappa, prf
from stanviewer.core.models.stan import STAN, ModelSpec


@pytest.fixture(scope="module")
def model() -> STAN:
    torch.manual_seed(0)
    m = STAN(ModelSpec(views="global+local", frames=4, size=32))
    return m.eval()


def _clips(seed: int = 0, b: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, 3, 4, 32, 32, generator=g) for _ in range(2))  # type: ignore[return-value]


def test_log_odds_binary_is_logit_difference(model: STAN) -> None:
    x = _clips()
    with torch.no_grad():
        logits = model(*x)
        lo = LogOdds(model)(*x)
    assert torch.allclose(lo[:, 1], logits[:, 1] - logits[:, 0], atol=1e-5)
    assert torch.allclose(lo[:, 0], -lo[:, 1], atol=1e-5)


def test_vanilla_equals_autograd(model: STAN) -> None:
    x = _clips()
    attr = make_method("vanilla", model).attribute(x, target=1)
    xs = tuple(c.clone().requires_grad_(True) for c in x)
    with frozen(model):
        out = LogOdds(model)(*xs)[:, 1].sum()
        grads = torch.autograd.grad(out, xs)
    for a, g in zip(attr, grads):
        assert a.shape == g.shape
        assert torch.allclose(a, g.abs(), atol=1e-6)


def test_parameters_frozen_and_restored(model: STAN) -> None:
    model.train()
    make_method("vanilla", model).attribute(_clips(), target=1)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_smoothgrad_batched_equals_unbatched(model: STAN) -> None:
    x = _clips(b=1)
    a1 = make_method("smoothgrad", model, samples=6, sigma=0.1, batch=6).attribute(x, target=1)
    a2 = make_method("smoothgrad", model, samples=6, sigma=0.1, batch=1).attribute(x, target=1)
    for u, v in zip(a1, a2):
        assert torch.allclose(u, v, atol=1e-5)
    # and it is not just the vanilla gradient
    van = make_method("vanilla", model).attribute(x, target=1)
    assert not torch.allclose(a1[0], van[0])


def test_gradcam_covers_every_frame(model: STAN) -> None:
    x = _clips()
    attr = make_method("gradcam", model).attribute(x, target=1)
    for a, c in zip(attr, x):
        assert a.shape == c.shape
        assert (a >= 0).all()
    s = frame_scores(attr)
    assert s.shape == (2, 4)
    assert torch.isfinite(s).all()


def test_no_hooks_left_after_error(model: STAN) -> None:
    m = make_method("gradcam", model)
    with pytest.raises(Exception):  # noqa: B017 - any error from a wrong input shape
        m.attribute((torch.randn(1, 3, 4, 32, 32),), target=1)  # one view for a two-view model
    blk = model.last_block
    assert not blk._forward_hooks and not blk._backward_hooks and not getattr(blk, "_forward_pre_hooks", {})


@pytest.mark.parametrize("name", ["ig", "occlusion", "window"])
def test_extra_methods_shapes(model: STAN, name: str) -> None:
    x = _clips()
    attr = make_method(name, model).attribute(x, target=1)
    assert [a.shape for a in attr] == [c.shape for c in x]
    assert frame_scores(attr).shape == (2, 4)


def test_occlusion_measures_drop() -> None:
    """A model whose evidence is the mean of frame 2 only: occluding frame 2 is the only drop."""

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e = x[:, :, 2].mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(e), e], 1)

    x = torch.zeros(1, 3, 4, 8, 8)
    x[:, :, 2] = 1.0
    (a,) = make_method("occlusion", Probe()).attribute((x,), target=1)
    s = frame_scores((a,))[0]
    assert s[2] > 0.5 and torch.all(s[[0, 1, 3]] == 0)


@pytest.mark.parametrize("n,step,coverage", [(37, 3, "full"), (37, 3, "sampled"), (5, 2, "full"), (101, 1, "full")])
def test_plan_windows_covers_every_frame(n: int, step: int, coverage: str) -> None:
    wins = plan_windows(n, frames=8, step=step, stride=3, coverage=coverage)
    seen = np.zeros(n, int)
    for w in wins:
        assert len(w) == 8
        assert np.all(np.diff(w) >= 0) and w.max() < n
        seen[np.unique(w)] += 1
    if coverage == "full":
        assert (seen > 0).all()
    else:
        assert (seen[::step] > 0).all()


def test_normalise_scores() -> None:
    raw = np.r_[np.zeros(500), np.ones(495), np.full(5, 1000.0)]  # the top 0.5% are outliers: clipped
    s = normalise_scores(raw)
    assert s.min() == 0.0 and s.max() == 1.0
    assert np.all(s[500:] == 1.0)
    assert np.all(normalise_scores(np.full(10, 3.0)) == 0.0)
    # a video whose frames are all the same: float32 rounding in the raw scores is not a curve
    flat = np.float32(0.182482) + np.float32(1e-7) * (np.arange(300, dtype=np.float32) % 7)
    assert np.all(normalise_scores(flat) == 0.0)
    small = 1e-9 * np.array([1.0, 2.0, 3.0, 4.0, 5.0])  # tiny gradients with a real spread still scale
    assert normalise_scores(small).max() == 1.0


def test_segments_basic_and_options() -> None:
    s = np.array([0, 0.6, 0.7, 0.2, 0.8, 0, 0, 0.9, 0.55, 0.45, 0.2])
    assert segments_from_scores(s, 0.5) == [Segment(1, 3), Segment(4, 5), Segment(7, 9)]
    assert segments_from_scores(s, 0.5, SegmentOptions(merge_gap=1)) == [Segment(1, 5), Segment(7, 9)]
    assert segments_from_scores(s, 0.5, SegmentOptions(min_frames=2)) == [Segment(1, 3), Segment(7, 9)]
    assert segments_from_scores(s, 0.5, SegmentOptions(hysteresis=0.1)) == [
        Segment(1, 3),
        Segment(4, 5),
        Segment(7, 10),
    ]
    assert segments_from_scores(s, 2.0) == []
    assert segments_from_scores(np.array([np.nan, 1.0]), 0.5) == [Segment(1, 2)]
    f = flags_from_segments([Segment(1, 3)], 5)
    assert f.tolist() == [0, 1, 1, 0, 0]


def test_segment_options_from_seconds_follow_the_frame_rate() -> None:
    assert SegmentOptions.from_seconds(25.0) == SegmentOptions(10, 10)  # the defaults: 0.4 s and 0.4 s
    assert SegmentOptions.from_seconds(15.0, 0.4, 0.2) == SegmentOptions(6, 3)
    assert SegmentOptions.from_seconds(30.0, 0.0, 0.0, 0.1) == SegmentOptions(1, 0, 0.1)  # every segment kept
    for bad in (0.0, -5.0, float("nan"), float("inf"), 1e9):
        assert SegmentOptions.from_seconds(bad) == SegmentOptions(1, 0)
    # a per-frame comb: two 0.2 s runs 0.2 s apart become one segment, a lone 0.12 s flicker is dropped
    s = np.zeros(100)
    s[10:15] = s[20:25] = s[60:63] = 1.0
    assert segments_from_scores(s, 0.5, SegmentOptions.from_seconds(25.0)) == [Segment(10, 25)]


def test_segment_lengths_follow_the_frames_own_times_when_the_frame_rate_varies() -> None:
    """90 frames at 30 fps, then 2 fps: a 0.67 s run in the fast part is dropped and a 2.5 s run in the slow
    part kept at a 1 s minimum (at the average rate it was the other way round)."""
    times = np.concatenate([np.arange(90) / 30, 3.0 + np.arange(1, 31) / 2])
    s = np.zeros(times.size)
    s[10:30] = 1.0  # 20 frames at 30 fps: 0.67 s
    s[95:100] = 1.0  # 5 frames at 2 fps: 2.5 s
    fps = (times.size - 1) / (times[-1] - times[0])
    o = SegmentOptions.from_seconds(fps, 1.0, 0.0, times=times)
    assert o.seconds == (1.0, 0.0) and segments_from_scores(s, 0.5, o) == [Segment(95, 100)]
    # gaps too: 0.5 s apart at 2 fps is one frame, joined at a 0.6 s merge gap
    s2 = np.zeros(times.size)
    s2[100:102] = s2[103:105] = 1.0
    joined = SegmentOptions.from_seconds(fps, 0.0, 0.6, times=times)
    assert segments_from_scores(s2, 0.5, joined) == [Segment(100, 105)]
    # a constant frame rate keeps the whole-frame rounding (and equal options compare equal)
    cfr = np.arange(100) / 25
    assert SegmentOptions.from_seconds(25.0, times=cfr) == SegmentOptions(10, 10)
    assert SegmentOptions.from_seconds(25.0, times=cfr).seconds is None
    mkv = np.round(np.arange(300) / 29.97, 3)  # Matroska's milliseconds: 33 and 34 ms frames, still constant
    assert SegmentOptions.from_seconds(29.97, times=mkv).seconds is None


def test_prf_and_frame_f1() -> None:
    m = prf(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0]))
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 1, 1, 1)
    assert m.f1 == pytest.approx(0.5)
    s = np.array([0.9, 0.8, 0.1, 0.1])
    assert frame_f1(s, np.array([1, 1, 0, 0]), 0.5).f1 == 1.0
    assert prf(np.zeros(3), np.zeros(3)).f1 == 1.0


def test_calibration_picks_f1_maximising_threshold() -> None:
    rng = np.random.default_rng(0)
    vids = []
    for _ in range(5):
        y = np.zeros(100, np.uint8)
        y[30:60] = 1
        s = np.where(y == 1, 0.7, 0.2) + rng.normal(0, 0.05, 100)
        vids.append((np.clip(s, 0, 1), y))
    th, f = calibrate_threshold(vids)
    # brute force check over the same grid
    grid = np.round(np.arange(0, 1.0001, 0.01), 4)
    best = max(
        grid,
        key=lambda t: (
            sum(frame_f1(s, y, t).tp for s, y in vids)
            * 2
            / max(1, sum(2 * frame_f1(s, y, t).tp + frame_f1(s, y, t).fp + frame_f1(s, y, t).fn for s, y in vids))
        ),
    )
    assert f == pytest.approx(1.0)
    assert 0.3 < th < 0.6
    assert frame_f1(vids[0][0], vids[0][1], float(best)).f1 == pytest.approx(1.0)


def test_auroc_and_kappa() -> None:
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.array([1, 1])))
    assert cohen_kappa(np.array([1, 0, 1, 0]), np.array([1, 0, 1, 0])) == pytest.approx(1.0)
    assert cohen_kappa(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.0)


def test_partial_scores_stop_at_the_settled_frames_and_fill_unsampled_ones() -> None:
    from stanviewer.core.explain.result import PartialScores

    raw = np.array([1.0, 0.0, 3.0, 0.0, 5.0, 6.0, 7.0])
    count = np.array([1, 0, 1, 0, 1, 1, 0])  # frames 1 and 3 unsampled ("sampled" coverage), 6 not reached
    part = PartialScores(raw, count, np.zeros(7), final=5)
    c = part.curve()
    assert np.all(np.isnan(c[5:]))  # frame 5 has a score but a window holding it is still pending
    np.testing.assert_allclose(c[:5], normalise_scores(np.array([1.0, 2.0, 3.0, 4.0, 5.0])), atol=1e-6)
    legacy = PartialScores(raw, count, np.zeros(7)).curve()  # without ``final``: every frame reached so far
    assert not np.isnan(legacy[5]) and np.isnan(legacy[1])


def test_eta_follows_each_phase_of_a_job() -> None:
    """Reading 15000 frames took 30 s, then 3745 windows start: the first window reports must not promise
    116 minutes (the time since the job started divided by the new phase's tiny fraction)."""
    from stanviewer.core.progress import Eta, Progress, format_eta

    eta = Eta(settle=0.5)
    assert eta.seconds_left(Progress(0, 15000, "reading"), now=0.0) is None
    assert eta.seconds_left(Progress(7500, 15000, "reading"), now=15.0) == pytest.approx(15.0)
    assert eta.seconds_left(Progress(32, 3745, "window: window 32/3745"), now=30.0) is None  # a new phase
    assert eta.seconds_left(Progress(64, 3745, "window: window 64/3745"), now=30.2) is None  # not settled yet
    left = eta.seconds_left(Progress(1920, 3745, "window: window 1920/3745"), now=60.0)
    assert left == pytest.approx(30.0 / 1888 * 1825)
    assert format_eta(75.4) == "1:15" and format_eta(None) == "--:--"


def test_an_analysis_says_when_its_segments_deserve_caution() -> None:
    """No person in most frames, or a video-level output of the other class: the app and `analyze` say so."""
    from stanviewer.core.explain.result import Analysis

    def make(found: float | None, pred: str) -> Analysis:
        z = np.zeros(10, np.float32)
        meta = {"target": "compensation", "person_found": found}
        return Analysis(z, z, z, np.arange(10) / 25, [], {"class": pred}, meta)

    assert make(1.0, "compensation").cautions() == []
    assert make(None, "compensation").cautions() == []  # boxes given, or no local view: nothing to say
    notes = make(0.0, "normal").cautions()
    assert len(notes) == 2 and "found someone in only 0% of the frames" in notes[0] and "'normal'" in notes[1]
