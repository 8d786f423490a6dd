"""ROI providers, post-processing, caching, file parsers and the label-leak check (no Qt)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stanviewer.core.errors import RoiError
from stanviewer.core.manifest import read_boxes_csv, read_manifest
from stanviewer.core.progress import Progress, run_job
from stanviewer.core.roi import (
    RoiTrack,
    compute_roi,
    expand_boxes,
    fill_gaps,
    finish_boxes,
    make_provider,
    read_skeleton,
    smooth_boxes,
)
from stanviewer.core.roi import (
    box_iou as iou,
)
from stanviewer.core.roi.cache import cache_path
from stanviewer.core.roi.leak import auroc, box_features, leak_auroc, leak_null, square_features
from stanviewer.core.roi.pose import INSTALL_HINT
from stanviewer.core.video import open_video


def true_boxes(path: Path, n: int) -> np.ndarray:
    rows = read_boxes_csv(path)
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (rows[i] for i in range(n))], np.float64)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def roi_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic set: 3 subjects x 4 videos (half compensation), one repetition each."""
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("roi_synth")
    return run_job(make_dataset(out, subjects=3, videos_per_subject=4, seed=7, reps=(1, 1)), stream=None)


@pytest.fixture(scope="session")
def motion_tracks(roi_dataset: Path) -> list[tuple[object, RoiTrack, np.ndarray]]:
    """(manifest entry, motion track, true boxes) for every video of :func:`roi_dataset`."""
    out = []
    for e in read_manifest(roi_dataset):
        with open_video(e.video) as r:
            track = run_job(compute_roi(r, "motion"), stream=None)
            truth = true_boxes(roi_dataset.parent / e.extra["boxes"], r.frame_count)
        out.append((e, track, truth))
    return out


@pytest.fixture(scope="session")
def small_video(make_video: Callable[..., Path]) -> Path:
    return make_video("roi_small.mp4", 30)  # 96x64, 30 frames


# --------------------------------------------------------------------------- post-processing
def test_fill_gaps_interpolates_inside_and_carries_at_the_ends() -> None:
    nan = [np.nan] * 4
    raw = np.array([nan, [0, 0, 10, 10], nan, nan, [30, 0, 40, 10], nan], np.float64)
    boxes, conf = fill_gaps(raw, np.array([0.9, 0.8, 0.7, 0.7, 0.6, 0.5]))
    np.testing.assert_allclose(boxes[0], [0, 0, 10, 10])  # carried backwards
    np.testing.assert_allclose(boxes[2], [10, 0, 20, 10])  # interpolated
    np.testing.assert_allclose(boxes[3], [20, 0, 30, 10])
    np.testing.assert_allclose(boxes[5], [30, 0, 40, 10])  # carried forwards
    np.testing.assert_allclose(conf, [0, 0.8, 0, 0, 0.6, 0], atol=1e-6)  # filled frames: confidence 0


def test_nothing_found_gives_the_whole_frame_with_zero_confidence() -> None:
    boxes, conf = finish_boxes(np.full((4, 4), np.nan), None, (64, 48))
    np.testing.assert_allclose(boxes, [[0, 0, 64, 48]] * 4)
    assert (conf == 0).all()


def test_margin_and_clamping() -> None:
    b = np.array([[10, 10, 30, 50], [0, 0, 64, 48], [-5, 40, 20, 60]], np.float64)
    grown = expand_boxes(b, margin=0.1, margin_px=1)
    np.testing.assert_allclose(grown[0], [7, 5, 33, 55])  # 10% of 20 wide / 40 high, plus 1 px
    out, _ = finish_boxes(b, None, (64, 48), smooth=0, margin=0.1)
    assert (out[:, 0] >= 0).all() and (out[:, 1] >= 0).all()
    assert (out[:, 2] <= 64).all() and (out[:, 3] <= 48).all()
    np.testing.assert_allclose(out[1], [0, 0, 64, 48])
    np.testing.assert_allclose(out[2], [0, 38, 22.5, 48])  # clamped on the left and the bottom
    assert ((out[:, 2] - out[:, 0]) >= 1).all() and ((out[:, 3] - out[:, 1]) >= 1).all()


def test_smoothing_removes_a_one_frame_spike_and_keeps_constant_boxes() -> None:
    b = np.tile([10.0, 10, 20, 20], (21, 1))
    b[10] = [0, 0, 60, 60]
    out = smooth_boxes(b, 5)
    np.testing.assert_allclose(out, np.tile([10.0, 10, 20, 20], (21, 1)), atol=1e-5)
    ramp = np.stack([np.arange(20.0)] * 4, axis=1) + np.array([0, 0, 5, 5])
    np.testing.assert_allclose(smooth_boxes(ramp, 5), ramp, atol=1e-5)  # steady motion is kept, ends included


# --------------------------------------------------------------------------- track, crop square
def test_track_round_trip_and_crop_square(tmp_path: Path) -> None:
    boxes = np.tile([20.0, 10, 40, 90], (50, 1))
    boxes[:5, 2] = 80  # a few wide frames (reaching out) must not change the square
    joints = np.random.default_rng(0).uniform(0, 90, (50, 3, 2)).astype(np.float32)
    t = RoiTrack(boxes, np.linspace(0, 1, 50), (160, 120), joints, "csv", {"file": "x.csv", "n": 3})
    t.save(tmp_path / "t.npz")
    back = RoiTrack.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.boxes, t.boxes)
    np.testing.assert_array_equal(back.joints, t.joints)
    assert back.size == (160, 120) and back.provider == "csv" and back.params == {"file": "x.csv", "n": 3}
    cx, cy, side = t.crop_square()
    assert (cx, cy) == (30.0, 50.0)
    assert side == pytest.approx(80 * 1.15)
    (tmp_path / "bad.npz").write_bytes(b"not a track")
    with pytest.raises(RoiError, match=r"bad\.npz"):
        RoiTrack.load(tmp_path / "bad.npz")


# --------------------------------------------------------------------------- simple providers, cache
def test_none_provider_is_the_whole_frame(small_video: Path) -> None:
    with open_video(small_video) as r:
        t = run_job(compute_roi(r, "none"), stream=None)
        assert len(t) == r.frame_count
        np.testing.assert_array_equal(t.boxes, np.tile([0, 0, *r.size], (r.frame_count, 1)))
        assert (t.confidence == 1).all()


def test_unknown_provider_and_parameter_are_clear_errors() -> None:
    with pytest.raises(RoiError, match=r"unknown ROI provider 'openpose'.*motion"):
        make_provider("openpose")
    with pytest.raises(RoiError, match=r"no parameter.*colour"):
        make_provider("motion", colour=3)
    with pytest.raises(RoiError, match="needs a file"):
        make_provider("csv")


def test_cache_hit_is_instant_and_keyed_by_parameters(small_video: Path) -> None:
    with open_video(small_video) as r:
        prov = make_provider("motion")
        path = cache_path(r, prov)
        assert not path.exists()
        first = run_job(compute_roi(r, prov), stream=None)
        assert path.exists()
        seen: list[Progress] = []
        t0 = time.perf_counter()
        second = run_job(compute_roi(r, "motion"), stream=None, on_progress=seen.append)
        assert time.perf_counter() - t0 < 0.5
        assert any("cache" in p.message for p in seen)
        np.testing.assert_array_equal(first.boxes, second.boxes)
        assert cache_path(r, make_provider("motion", margin=0.1)) != path


def test_csv_boxes_and_joints(small_video: Path, tmp_path: Path) -> None:
    with open_video(small_video) as r:
        n = r.frame_count
        rows = ["frame,x,y,w,h"] + [f"{i},{10 + i},5,20,30" for i in range(n) if i != 7]
        (tmp_path / "boxes.csv").write_text("\n".join(rows) + "\n")
        t = run_job(compute_roi(r, "csv", file=tmp_path / "boxes.csv", smooth=0), stream=None)
        np.testing.assert_allclose(t.boxes[3], [13, 5, 33, 35])
        np.testing.assert_allclose(t.boxes[7], [17, 5, 37, 35])  # interpolated
        assert t.confidence[7] == 0 and t.confidence[3] == 1
        head = "frame,a_x,a_y,b_x,b_y"
        rows = [head] + [f"{i},10,10,30,50" for i in range(n)]
        rows[5] = "4,,,30,50"  # one joint unknown in frame 4
        (tmp_path / "joints.csv").write_text("\n".join(rows) + "\n")
        t = run_job(compute_roi(r, "csv", file=tmp_path / "joints.csv", smooth=0, joint_pad=0), stream=None)
        assert t.joints is not None and t.joints.shape == (n, 2, 2)
        np.testing.assert_allclose(t.boxes[0], [10, 10, 30, 50])
        assert np.isnan(t.joints[4, 0]).all()
        (tmp_path / "bad.csv").write_text("frame,x,y,w,h\n0,1,2,3,4\n1,1,2,three,4\n")
        with pytest.raises(RoiError, match=r"bad\.csv: line 3"):
            run_job(compute_roi(r, "csv", file=tmp_path / "bad.csv"), stream=None)
        # another video's file (many more rows than frames) is refused; a frame or two past the end is not
        other = ["frame,x,y,w,h"] + [f"{i},10,5,20,30" for i in range(n + 40)]
        (tmp_path / "other.csv").write_text("\n".join(other) + "\n")
        with pytest.raises(RoiError, match=r"other\.csv: has rows up to frame .*is it this video's file"):
            run_job(compute_roi(r, "csv", file=tmp_path / "other.csv", smooth=0), stream=None)
        (tmp_path / "near.csv").write_text("\n".join(other[: n + 2]) + "\n")
        t = run_job(compute_roi(r, "csv", file=tmp_path / "near.csv", smooth=0), stream=None)
        assert t.confidence.min() == 1


# --------------------------------------------------------------------------- NTU RGB+D skeleton files
def _joint_line(x: float, y: float, state: int = 2) -> str:
    # x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ trackingState
    return f"0.1 0.2 3.0 250.5 200.25 {x:.4f} {y:.4f} 0.9 0.01 -0.02 0.3 {state}"


def _body(body_id: str, x0: float, y0: float, scale: float = 1.0) -> list[str]:
    lines = [f"{body_id} 0 1 2 1 2 0 0.05 -0.1 2", "25"]
    for j in range(25):  # joints spread over a 200 x 600 px (colour video) figure
        lines.append(_joint_line(x0 + (j % 5) * 50 * scale, y0 + (j // 5) * 150 * scale))
    return lines


def write_skeleton(path: Path, bodies_per_frame: list[list[tuple[str, float, float]]]) -> Path:
    lines = [str(len(bodies_per_frame))]
    for bodies in bodies_per_frame:
        lines.append(str(len(bodies)))
        for body_id, x0, y0 in bodies:
            lines += _body(body_id, x0, y0)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_skeleton_file_parses_and_follows_the_main_body(small_video: Path, tmp_path: Path) -> None:
    main = "72057594037931101"
    with open_video(small_video) as r:
        n = r.frame_count
        frames = [[(main, 960.0, 240.0)] for _ in range(n)]
        frames[3] = []  # nobody tracked
        frames[4] = []
        frames[6] = [("72057594037931999", 100.0, 100.0), (main, 980.0, 240.0)]  # a second person
        path = write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", frames)
        parsed = read_skeleton(path)
        assert len(parsed) == n and [len(b) for b in parsed[2:7]] == [1, 0, 0, 1, 2]
        assert parsed[6][1].body_id == main and parsed[6][1].joints.shape == (25, 12)
        np.testing.assert_allclose(parsed[0][0].color_xy[6], [960 + 50, 240 + 150])
        t = run_job(compute_roi(r, "skeleton", file=path, smooth=0, joint_pad=0), stream=None)
        w, h = r.size
        sx, sy = w / 1920, h / 1080
        np.testing.assert_allclose(t.boxes[0], [960 * sx, 240 * sy, 1160 * sx, 840 * sy], rtol=1e-5)
        np.testing.assert_allclose(t.boxes[6], [980 * sx, 240 * sy, 1180 * sx, 840 * sy], rtol=1e-5)  # not the other
        assert t.confidence[3] == 0 and t.confidence[0] == 1  # frames 3-4 carried through
        np.testing.assert_allclose(t.boxes[3], t.boxes[2])
        assert t.joints is not None and t.joints.shape == (n, 25, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the file ends early"),
        ("two\n", "line 1: expected the frame count"),
        ("1\n1\n" + "\n".join(_body("7", 0, 0)[:10]) + "\n", "line 13: the file ends early.*joint 8 of body 0"),
        ("1\n1\n" + "\n".join(_body("7", 0, 0)).replace(" 0.3 2\n", " 0.3\n", 1) + "\n", "line 5: expected 12"),
        ("1\n1\n7 0 1 2\n", "line 3: expected 10 values for the body-info line"),
        ("1\n1\n" + "\n".join(_body("7", 0, 0)) + "\n0\n", "line 30: unexpected text"),
        ("1\n1\n" + "\n".join(_body("7", 0, 0)).replace("0.9", "abc", 1) + "\n", "line 5: joint 0 .* not a number"),
    ],
)
def test_malformed_skeleton_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.skeleton"
    path.write_text(text)
    with pytest.raises(RoiError, match=message) as err:
        read_skeleton(path)
    assert "bad.skeleton" in str(err.value)


# --------------------------------------------------------------------------- pose (optional extra)
def test_pose_without_mediapipe_says_how_to_install(small_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes ``import mediapipe`` fail
    with open_video(small_video) as r, pytest.raises(RoiError) as err:
        run_job(compute_roi(r, "pose", use_cache=False), stream=None)
    text = str(err.value)
    assert 'pip install "stanviewer[pose]"' in text
    assert "pip install --no-deps mediapipe==0.10.21" in text
    assert INSTALL_HINT in text


def test_pose_finds_the_astronaut() -> None:
    """On a real photo (scikit-image's astronaut.png), when the pose extra is installed."""
    pytest.importorskip("mediapipe")
    skimage = pytest.importorskip("skimage")
    import cv2

    from stanviewer.core.roi.pose import load_pose_module, pose_joints

    img = cv2.imread(str(Path(skimage.__file__).parent / "data" / "astronaut.png"))[..., ::-1]
    with load_pose_module().Pose(static_image_mode=True, model_complexity=1) as est:
        joints, conf = pose_joints(img, est, 0.5)
    assert conf > 0.5
    known = joints[np.isfinite(joints).all(axis=1)]
    x0, y0 = known.min(axis=0)
    x1, y1 = known.max(axis=0)
    person = np.array([[0.0, 30, 370, 512]])  # the astronaut (suit and head) in the 512x512 photo
    assert iou(np.array([[x0, y0, x1, y1]]), person)[0] > 0.2
    assert 120 < (x0 + x1) / 2 < 300 and 60 < (y0 + y1) / 2 < 400


# --------------------------------------------------------------------------- motion on synthetic videos
def test_motion_boxes_match_the_figure(motion_tracks: list) -> None:
    """A regression floor, not the goal: today ~half the videos are tracked (whole-frame boxes score 0)."""
    shares = []
    for _entry, track, truth in motion_tracks:
        assert track.boxes.shape == truth.shape
        shares.append(float(np.mean(iou(track.boxes, truth) >= 0.6)))
    assert np.mean(shares) >= 0.5, shares


def test_motion_meets_the_issue_target(motion_tracks: list) -> None:
    """Issue 4: IoU >= 0.7 on >= 90% of frames (95.1% here with motion version 9, 94.9% with 6-8, 93.3% with
    5; 72.6% with version 4, whose GrabCut lost one subject's grey legs against a pink wall and floor)."""
    ious = np.concatenate([iou(track.boxes, truth) for _, track, truth in motion_tracks])
    assert np.mean(ious >= 0.7) >= 0.9


def _figure(h: int = 60, w: int = 60) -> np.ndarray:
    """A stick person (head, trunk, arms apart, two legs) as a 0/1 mask."""
    m = np.zeros((h, w), np.uint8)
    m[5:13, 26:34] = 1  # head
    m[13:32, 22:38] = 1  # trunk
    m[14:30, 17:20] = m[14:30, 40:43] = 1  # arms, apart from the trunk
    m[32:55, 23:28] = m[32:55, 32:37] = 1  # legs
    return m


def test_not_a_block_tells_a_figure_from_a_cupboard() -> None:
    from stanviewer.core.roi.motion import _not_a_block

    cupboard = np.zeros((60, 60), np.uint8)
    cupboard[10:50, 20:40] = 1
    assert _not_a_block(cupboard) == 0.0
    assert _not_a_block(_figure()) == 1.0
    assert _not_a_block(np.zeros((5, 5), np.uint8)) == 0.0


def test_likeliest_segment_prefers_the_figure_to_a_poster_the_arm_touches() -> None:
    from stanviewer.core.roi.motion import _likeliest_segment

    lab = np.zeros((60, 90), np.int32)
    lab[:, :60][_figure() > 0] = 1
    lab[2:20, 50:80] = 2  # a poster next to the raised arm, overlapping the motion blob more
    overlap = np.array([10, 40])
    assert _likeliest_segment(lab, overlap) == 0
    assert _likeliest_segment(lab, np.array([1, 40])) == 1  # barely touching: not considered


def test_drop_side_blocks_removes_a_poster_beside_the_figure_and_keeps_the_limbs() -> None:
    from stanviewer.core.roi.motion import _drop_side_blocks

    fig = _figure()
    np.testing.assert_array_equal(_drop_side_blocks(fig, 0.1, 0.08, 0.8), fig)
    joined = fig.copy()
    joined[15:35, 40:58] = 1  # a poster touching the arm, joined to the body by GrabCut
    out = _drop_side_blocks(joined, 0.1, 0.08, 0.8)
    assert not out[15:35, 44:58].any()
    np.testing.assert_array_equal(out[:, :40], fig[:, :40])


def test_drop_top_block_removes_a_window_on_the_head_only() -> None:
    from stanviewer.core.roi.motion import _drop_top_block

    fig = _figure()
    np.testing.assert_array_equal(_drop_top_block(fig), fig)  # the head alone is no block
    tall = np.zeros((80, 60), np.uint8)
    tall[15:75] = fig
    joined = tall.copy()
    joined[2:20, 20:40] = 1  # a window above the head, touching it
    np.testing.assert_array_equal(_drop_top_block(joined), tall)


def _room_with_legs(leg: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A brick-striped wall over a floor, a figure with legs of colour ``leg`` and a cupboard beside
    them: ``(picture, upper body mask, whole figure mask)``."""
    img = np.zeros((100, 120, 3), np.uint8)
    img[:80] = (170, 102, 204)  # wall
    img[:80:8] = (150, 90, 180)  # mortar rows
    img[80:] = (195, 108, 131)  # floor
    img[40:85, 85:110] = (90, 60, 40)  # a cupboard beside the legs, down to the floor
    fig = np.zeros((100, 120), np.uint8)
    fig[10:18, 56:64] = 1  # head
    fig[18:45, 50:70] = 1  # trunk
    upper = fig.copy()
    fig[45:86, 53:58] = fig[45:86, 62:67] = 1  # legs, down to the feet at row 86
    img[fig > 0] = (60, 140, 60)
    img[45:86][fig[45:86] > 0] = leg
    return img, upper, fig


def test_extend_down_finds_legs_that_differ_from_their_own_row_only() -> None:
    from stanviewer.core.roi.motion import _extend_down

    img, upper, fig = _room_with_legs((180, 124, 166))  # between the wall and the floor in colour
    out = _extend_down(img, upper, 1.5)
    np.testing.assert_array_equal(out, fig)  # the legs join, the floor under the feet and the cupboard do not
    np.testing.assert_array_equal(_extend_down(img, fig, 1.5), fig)  # nothing under the feet: unchanged
    np.testing.assert_array_equal(_extend_down(img, upper, 0.0), upper)  # turned off
    short = fig * (np.arange(100) < 62)[:, None].astype(np.uint8)  # half the upper body's 35 rows below it
    np.testing.assert_array_equal(_extend_down(img, upper, 0.5), short)
    wall_legs, upper2, _ = _room_with_legs((172, 104, 206))  # legs the colour of the wall: nothing to find
    np.testing.assert_array_equal(_extend_down(wall_legs, upper2, 1.5), upper2)
    np.testing.assert_array_equal(_extend_down(img, np.zeros_like(upper), 1.5), np.zeros_like(upper))


def test_row_contrast_compares_pixels_with_their_own_row_beside_them() -> None:
    from stanviewer.core.roi.motion import _row_contrast

    img = np.zeros((6, 30, 3), np.uint8)
    img[:, :] = (100, 100, 100)
    img[3] = (200, 50, 50)  # a row of another colour (a mortar row) is like its own row
    img[1, 14:16] = (20, 200, 20)  # a spot that differs
    img[4, 20:] = (0, 0, 0)  # a cupboard on the right only: the left strip still says "wall"
    out = _row_contrast(img, 0, 6, 10, 20, 8, 20.0)
    assert out.shape == (6, 10)
    assert out[1, 4:6].all() and out.sum() == 2
    assert _row_contrast(img, 0, 6, 0, 30, 8, 20.0) is None  # no strip beside the columns


def test_extend_up_adds_a_lost_head_but_not_a_poster_over_the_person() -> None:
    from stanviewer.core.roi.motion import _extend_up

    img, _, fig = _room_with_legs((60, 140, 60))
    headless = fig.copy()
    headless[10:18] = 0  # GrabCut kept the body from the shoulders down
    np.testing.assert_array_equal(_extend_up(img, headless, 0.3), fig)  # the head joins, the wall above it does not
    np.testing.assert_array_equal(_extend_up(img, fig, 0.3), fig)  # it has its head: wall above, unchanged
    np.testing.assert_array_equal(_extend_up(img, headless, 0.0), headless)  # turned off
    np.testing.assert_array_equal(_extend_up(img, np.zeros_like(fig), 0.3), np.zeros_like(fig))
    tall = img.copy()
    tall[0:10, 57:63] = (90, 60, 40)  # a narrow poster from the picture's top down onto the head: no wall above
    np.testing.assert_array_equal(_extend_up(tall, headless, 0.3), headless)
    wide = img.copy()
    wide[2:10, 48:72] = (90, 60, 40)  # a wide window right over the head
    np.testing.assert_array_equal(_extend_up(wide, headless, 0.3), headless)
    np.testing.assert_array_equal(_extend_up(wide, fig, 0.3), fig)


def test_majority_keeps_the_pixels_most_runs_agree_on() -> None:
    from stanviewer.core.roi.motion import _majority

    a, b, c = (np.zeros((4, 4), np.uint8) for _ in range(3))
    a[0, :] = b[0, :] = 1
    c[1, :] = 1
    a[2, 0] = 1
    out = _majority([a, b, c])
    assert out.dtype == np.uint8 and out[0].all() and not out[1:].any()
    np.testing.assert_array_equal(_majority([c]), c)


def test_reach_gate_covers_the_arms_reach_around_the_upper_body_only() -> None:
    from stanviewer.core.roi.motion import _reach_gate

    body = np.zeros((110, 100), np.uint8)
    body[30:90, 45:55] = 1  # 60 high
    gate = _reach_gate(body, 0.45)
    assert gate[body > 0].all()
    assert gate[12, 20] and gate[60, 20]  # above the head, beside the chest: an arm reaches there
    assert not gate[85, 20] and not gate[100, 50]  # beside the feet, below them
    assert not gate[5, 50]  # far above the head


def test_motion_chunk_is_deterministic() -> None:
    """GrabCut starts from OpenCV's global random generator: the provider seeds it, so the state left by
    other OpenCV calls does not change the boxes."""
    import cv2

    from stanviewer.core.roi.motion import analyse_chunk

    rng = np.random.default_rng(3)
    h, w, n = 60, 80, 24
    room = np.full((h, w, 3), (170, 180, 150), np.uint8)
    room[10:40, 55:75] = (90, 60, 140)  # a cupboard
    frames = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        f = room.copy()
        f[8:14, 28:34] = (220, 170, 130)  # head
        f[14:32, 25:37] = (40, 90, 160)  # trunk
        f[32:56, 26:30] = f[32:56, 32:36] = (50, 50, 60)  # legs
        y = 14 - int(8 * abs(np.sin(t / 4)))  # a rising arm
        f[y : y + 14, 38:41] = (220, 170, 130)
        frames[t] = np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8)
    cv2.setRNGSeed(123)
    b1, c1 = analyse_chunk(frames, 1.0)
    cv2.setRNGSeed(456)
    b2, c2 = analyse_chunk(frames, 1.0)
    np.testing.assert_array_equal(b1, b2)
    np.testing.assert_array_equal(c1, c2)
    assert np.isfinite(b1).all() and c1.max() > 0


def test_crop_square_does_not_leak_the_label(motion_tracks: list) -> None:
    labels = [int(e.label == "compensation") for e, _, _ in motion_tracks]
    groups = [e.subject for e, _, _ in motion_tracks]
    feats = np.stack([square_features(t) for _, t, _ in motion_tracks])
    score, _ = leak_auroc(feats, labels, groups)
    chance = leak_null(feats, labels, groups, n=60)
    assert score <= np.percentile(chance, 95), (score, np.percentile(chance, [5, 50, 95]))


def test_leak_check_flags_features_without_information_at_chance_rate() -> None:
    """Cross-validated AUROC is biased low on small sets (with the fitted intercept in the held-out scores,
    features without information scored 0.36 on average under leave-one-out, some runs 0.00), so a leak is
    judged against the same check with shuffled labels: noise is flagged one time in twenty (measured: 6 of
    150 runs like these; 10 runs here, seeded)."""
    rng = np.random.default_rng(100)
    flagged, runs = 0, []
    for k in range(10):
        y = rng.permutation(np.r_[np.zeros(28, int), np.ones(20, int)])
        x = rng.normal(size=(48, 2))
        a = leak_auroc(x, y, None)[0]
        runs.append(a)
        flagged += a > leak_null(x, y, None, n=19, seed=1000 + k).max()  # p < 0.05 exactly (rank among 20)
    assert flagged <= 2, (flagged, runs)
    assert np.mean(runs) > 0.38, runs


def test_leak_check_detects_a_leak() -> None:
    """The classifier itself is not blind: features that carry the label give a high AUROC."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    x = rng.normal(0, 1, (24, 3))
    x[:, 1] += 1.5 * y
    groups = np.repeat(np.arange(6), 4).astype(str)
    assert leak_auroc(x, y, groups)[0] > 0.8
    assert leak_auroc(x, y, groups)[0] > np.percentile(leak_null(x, y, groups, n=60), 95)
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert box_features(RoiTrack(np.tile([0.0, 0, 10, 20], (5, 1)), np.ones(5), (40, 40))).shape == (9,)


def _hand_at_hip() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """A figure (head, purple shirt, orange legs) on a salmon wall whose only motion is a hand at hip
    height: ``(picture, motion blob, its box)``."""
    rng = np.random.default_rng(0)
    img = np.zeros((120, 160, 3), np.uint8)
    img[:] = (205, 120, 100)  # wall
    img[112:] = (150, 150, 150)  # floor
    img += rng.integers(0, 6, img.shape, dtype=np.uint8)
    img[12:22, 68:78] = (230, 190, 160)  # head
    img[22:60, 62:84] = (100, 60, 120)  # shirt
    img[60:112, 67:74] = img[60:112, 76:82] = (200, 110, 40)  # legs
    core = np.zeros((120, 160), bool)
    core[50:64, 62:70] = True
    return img, core, (62, 50, 70, 64)


def test_static_body_from_a_low_blob_keeps_a_leg_unless_the_rectangle_starts_higher() -> None:
    import cv2

    from stanviewer.core.roi.motion import _leg_only, static_body

    img, core, box = _hand_at_hip()
    cv2.setRNGSeed(0)
    leg = static_body(img, core, box, 0.5)  # the rectangle starts in the shirt: its colour is background
    assert leg is not None and _leg_only(leg, 120)
    cv2.setRNGSeed(0)
    whole = static_body(img, core, box, 0.5, up=0.35)
    assert whole is not None and not _leg_only(whole, 120)
    ys, xs = np.nonzero(whole)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (62, 12, 84, 112)


def test_leg_only_tells_a_single_leg_from_a_person() -> None:
    from stanviewer.core.roi.motion import _leg_only

    assert not _leg_only(_figure(), 60)  # 50 rows high, 26 wide
    leg = np.zeros((120, 160), np.uint8)
    leg[60:110, 66:72] = 1
    assert _leg_only(leg, 120)
    assert not _leg_only(leg, 90)  # as thin, but more than half the frame high: a person seen from the side
    thick = leg.copy()
    thick[60:110, 60:80] = 1
    assert not _leg_only(thick, 120)


def test_motion_on_body_discounts_motion_that_hangs_over_the_body() -> None:
    from stanviewer.core.roi.motion import _motion_on_body

    fig = _figure()  # rows 5 to 54
    assert _motion_on_body(fig, (14, 15, 45, 30)) == 1.0  # arms swinging beside the trunk
    assert _motion_on_body(fig, (14, 0, 45, 20)) == 1.0  # an arm raised over the head: a quarter above the top
    assert _motion_on_body(fig, (10, 0, 50, 5)) == 0.0  # a pendulum swinging wholly over it
    assert _motion_on_body(fig, (10, 0, 50, 6)) == pytest.approx((0.9 - 5 / 6) / 0.2)  # fading in between


def test_extend_up_finds_a_head_in_front_of_a_striped_wall() -> None:
    """Version 9: a dark head over the trunk in front of a wall of light and dark stripes (the wall's
    colours spread so widely that a distance to their median colour hides the head)."""
    from stanviewer.core.roi.motion import _extend_up

    ref = np.zeros((80, 80, 3), np.uint8)
    ref[:, :] = (230, 215, 190)
    for x in range(0, 80, 4):
        ref[:, x : x + 2] = (150, 120, 90)  # stripes 2 px wide
    body = np.zeros((80, 80), np.uint8)
    body[24:72, 32:48] = 1  # trunk and legs (shoulders 16 px wide, height 48)
    ref[body > 0] = (60, 90, 160)
    ref[14:24, 36:44] = (40, 40, 40)  # the head GrabCut lost
    out = _extend_up(ref, body, 0.3)
    ys = np.nonzero(out.any(axis=1))[0]
    assert ys[0] == 14
    assert out[14:24, 36:44].all() and not out[:14].any()


def test_extend_up_leaves_a_poster_over_the_person() -> None:
    from stanviewer.core.roi.motion import _extend_up

    ref = np.full((80, 80, 3), 200, np.uint8)
    body = np.zeros((80, 80), np.uint8)
    body[24:72, 32:48] = 1
    ref[body > 0] = (60, 90, 160)
    ref[0:24, 28:52] = (200, 40, 40)  # a poster from the picture's top down to the shoulders, wider than a head
    assert (_extend_up(ref, body, 0.5) == body).all()


def test_other_axis_skips_the_cupboard_the_refinement_kept() -> None:
    """Version 9: when the first segment joins a person to a wide cupboard, the next axis is the person's."""
    from stanviewer.core.roi.motion import _body_axis, _other_axis

    body = np.zeros((60, 100), np.uint8)
    body[5:55, 5:35] = 1  # cupboard
    body[52:55, 35:70] = 1  # floor between them
    body[:, 40:100][_figure() > 0] = 1  # figure, trunk at columns 62-77
    xc = _body_axis(body)[0]
    assert 5 <= xc < 35
    rest = body.copy()
    rest[:, :37] = 0  # static_body drops what the refinement round the first axis kept (and a margin)
    other = _other_axis(rest, [xc], 0.25)
    assert other is not None and 62 <= other < 78


def test_drop_side_blocks_removes_the_straight_strip_of_a_box_behind_the_legs() -> None:
    """Version 10: a box behind the legs, hidden by them but for a strip beside them too narrow to be a block,
    goes when the strip fills its bounding box; limbs 0.04 x the height wide (the synthetic figure's are
    0.049) stay, and with the strip rule off (``thin`` 0) so does the strip."""
    from stanviewer.core.roi.motion import _drop_side_blocks

    body = np.zeros((120, 100), np.uint8)
    body[10:20, 45:55] = 1  # head
    body[20:60, 40:60] = 1  # trunk
    body[22:60, 33:37] = body[22:60, 63:67] = 1  # arms at rest, 4 of 100 wide, apart from the trunk
    body[60:110, 45:50] = body[60:110, 50:55] = 1  # legs, side by side under the axis
    assert (_drop_side_blocks(body, 0.1, 0.08, 0.8, 0.05) == body).all()
    joined = body.copy()
    joined[75:95, 33:45] = joined[75:95, 55:66] = 1  # the box's ends stick out 6 of 100 beside the axis band
    out = _drop_side_blocks(joined, 0.1, 0.08, 0.8, 0.05)
    assert not out[75:95, 60:66].any() and not out[75:95, 33:39].any()
    np.testing.assert_array_equal(out[:70], body[:70])
    np.testing.assert_array_equal(_drop_side_blocks(joined, 0.1, 0.08, 0.8), joined)  # thin 0: strips are limbs


def test_drop_side_blocks_removes_a_level_sliver_beside_the_hips_only() -> None:
    """Version 11: the lower edge of a cabinet behind the hips, a few pixels high and too thin for a strip,
    goes when it reaches ``sliver`` x the height sideways; an upright sliver (a limb cut lengthwise by the
    axis band's edge) stays, and with ``sliver`` 0 the level one stays too."""
    from stanviewer.core.roi.motion import _drop_side_blocks

    body = np.zeros((120, 100), np.uint8)
    body[10:20, 45:55] = 1  # head
    body[20:60, 40:60] = 1  # trunk
    body[60:110, 45:50] = body[60:110, 50:55] = 1  # legs
    joined = body.copy()
    joined[58:61, 60:72] = 1  # 3 rows high, sticking out 0.12 x the height beyond the trunk
    out = _drop_side_blocks(joined, 0.1, 0.08, 0.8, 0.05, sliver=0.08)
    np.testing.assert_array_equal(out[:, 61:], body[:, 61:])
    np.testing.assert_array_equal(_drop_side_blocks(joined, 0.1, 0.08, 0.8, 0.05), joined)  # sliver 0
    upright = body.copy()
    upright[30:60, 34:37] = 1  # an arm, 3 px wide, hanging beside the trunk
    np.testing.assert_array_equal(_drop_side_blocks(upright, 0.1, 0.08, 0.8, 0.05, sliver=0.08), upright)


def test_drop_top_block_ends_a_broad_poster_where_the_shoulders_begin() -> None:
    """Version 11: a poster behind the head, wider than any head, followed by the shoulders (narrower than
    the poster, wider than a head): without ``broad`` both count as one block and the body is cut at the
    chest; with it the block ends at the shoulders and only the poster goes."""
    from stanviewer.core.roi.motion import _drop_top_block

    body = np.zeros((120, 100), np.uint8)
    body[0:14, 20:80] = 1  # poster, 60 wide (0.5 x the height)
    body[14:22, 38:62] = 1  # shoulders, 24 wide
    body[22:26, 45:55] = 1  # neck / narrow rows
    body[26:70, 38:62] = 1  # trunk
    body[70:120, 42:48] = body[70:120, 52:58] = 1  # legs
    cut = _drop_top_block(body)
    assert not cut[14:22].any()  # v10: the shoulders went with the poster
    kept = _drop_top_block(body, broad=0.25)
    assert not kept[:14].any()
    np.testing.assert_array_equal(kept[14:], body[14:])


def test_motion_on_body_keeps_a_standing_blob_over_the_head() -> None:
    """Version 11: a hand raised and lowered over the head gives a blob wholly over the body that stands
    (higher than wide); a pendulum's blob is a flat arc and is still discounted."""
    from stanviewer.core.roi.motion import _motion_on_body

    fig = _figure()  # rows 5 to 54
    hand = (25, 0, 31, 5)  # 6 wide, 5 high: not standing at 1.5
    assert _motion_on_body(fig, hand, stand=1.5) == 0.0
    raised = (25, 0, 28, 5)  # 3 wide, 5 high, wholly over the head's top
    assert _motion_on_body(fig, raised) == 0.0
    assert _motion_on_body(fig, raised, stand=1.5) == 1.0
    assert _motion_on_body(fig, (10, 0, 50, 5), stand=1.5) == 0.0  # the pendulum's arc


def test_below_motion_retries_a_body_that_starts_under_its_own_blob() -> None:
    from stanviewer.core.roi.motion import _below_motion

    leg_and_arm = np.zeros((120, 160), np.uint8)
    leg_and_arm[60:110, 60:90] = 1  # 50 rows, under half the frame
    blob = (60, 40, 90, 70)  # a hand moving over the shirt, 30 rows high
    assert _below_motion(leg_and_arm, blob, 120, 0.25)  # starts 20 rows (0.67 of the blob) under its top
    assert not _below_motion(leg_and_arm, blob, 120, 0.0)  # off
    assert not _below_motion(leg_and_arm, (60, 55, 90, 85), 120, 0.25)  # starts 5 rows under: the arm's own
    tall = np.zeros((120, 160), np.uint8)
    tall[45:120, 60:90] = 1  # 75 rows: more than 0.6 of the frame, a whole person
    assert not _below_motion(tall, (60, 20, 90, 50), 120, 0.25)


def test_extend_up_does_not_climb_a_poster_edge_as_a_head() -> None:
    """Version 11: over a body, a one-pixel line (a poster's edge) that climbs a long way and then meets the
    wall looks like a head to v10; with ``line`` it adds nothing, while a real head is still found."""
    from stanviewer.core.roi.motion import _extend_up

    ref = np.full((100, 80, 3), 200, np.uint8)
    body = np.zeros((100, 80), np.uint8)
    body[40:95, 32:48] = 1  # height 55
    ref[body > 0] = (60, 90, 160)
    ref[20:40, 40:41] = (30, 30, 30)  # a line 20 rows (0.36 x the height) up, one pixel wide
    out = _extend_up(ref, body, 0.5)
    assert out[20:40, 40].all()  # v10 takes it
    np.testing.assert_array_equal(_extend_up(ref, body, 0.5, line=0.1), body)
    head = ref.copy()
    head[20:40, 40:41] = 200
    head[31:40, 36:44] = (40, 40, 40)  # a head, 8 wide
    found = _extend_up(head, body, 0.5, line=0.1)
    assert found[31:40, 36:44].all()
