"""The synthetic data set: valid manifest and labels, true boxes, subject-wise split, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stanviewer.core.errors import StanError
from stanviewer.core.manifest import ManifestEntry, read_boxes_csv, read_frame_labels, read_manifest
from stanviewer.core.progress import Progress, run_job
from stanviewer.core.synth import CLASSES, make_dataset
from stanviewer.core.synth.body import Body, Camera, Pose, draw_body
from stanviewer.core.video import open_video

TINY = {"subjects": 2, "videos_per_subject": 2, "reps": (1, 1), "seed": 3}  # 4 videos, ~360 frames


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a 2 subjects x 2 videos data set with one repetition per video."""
    out = tmp_path_factory.mktemp("synth")
    return run_job(make_dataset(out, **TINY), stream=None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def entries(tiny_dataset: Path) -> list[ManifestEntry]:
    return read_manifest(tiny_dataset)


def test_manifest_validates(tiny_dataset: Path, entries: list[ManifestEntry]) -> None:
    assert tiny_dataset.name == "manifest.csv"
    assert len(entries) == 4
    for e in entries:
        assert e.video.is_file() and e.video.parent.name == "videos"
        assert e.frame_labels is not None and e.frame_labels.is_file()
        assert e.label in CLASSES
        assert e.split in ("train", "test")
        boxes = e.extra_path("boxes", tiny_dataset.parent)
        assert boxes is not None and boxes.is_file()
    assert {e.label for e in entries} == set(CLASSES)  # half of each subject's videos show compensation


def test_label_files_validate_against_the_videos(tiny_dataset: Path, entries: list[ManifestEntry]) -> None:
    meta = {v["name"]: v for v in json.loads((tiny_dataset.parent / "synth.json").read_text())["videos"]}
    for e in entries:
        with open_video(e.video) as r:
            n = r.frame_count
            assert r.fps == pytest.approx(meta[e.name]["fps"], rel=1e-3)
        assert n == meta[e.name]["frames"]
        labels = read_frame_labels(e.frame_labels, n_frames=n)  # type: ignore[arg-type]
        assert labels.shape == (n,)
        assert int(labels.sum()) == meta[e.name]["positive_frames"]


def test_compensation_videos_have_positive_frames(entries: list[ManifestEntry]) -> None:
    for e in entries:
        labels = read_frame_labels(e.frame_labels)  # type: ignore[arg-type]
        if e.label == "compensation":
            assert 0 < labels.sum() < labels.size, e.name
        else:
            assert labels.sum() == 0, e.name


def test_boxes_lie_inside_the_frame(tiny_dataset: Path, entries: list[ManifestEntry]) -> None:
    for e in entries:
        with open_video(e.video) as r:
            n, (w, h) = r.frame_count, r.size
        boxes = read_boxes_csv(e.extra_path("boxes", tiny_dataset.parent))  # type: ignore[arg-type]
        assert sorted(boxes) == list(range(n))
        b = np.array([boxes[i] for i in range(n)])
        x, y, bw, bh = b.T
        assert (x >= 0).all() and (y >= 0).all()
        assert (bw > 0).all() and (bh > 0).all()
        assert (x + bw <= w).all() and (y + bh <= h).all()
        assert (bh > 0.4 * h).all()  # the figure is a standing person, not a speck


def test_split_is_subject_wise(entries: list[ManifestEntry]) -> None:
    splits: dict[str, set[str]] = {}
    for e in entries:
        splits.setdefault(e.subject, set()).add(e.split)  # type: ignore[arg-type]
    assert all(len(s) == 1 for s in splits.values()), splits
    assert {next(iter(s)) for s in splits.values()} == {"train", "test"}


def _generate(out: Path, seed: int, seen: list[Progress] | None = None) -> Path:
    job = make_dataset(out, subjects=1, videos_per_subject=1, reps=(1, 1), seed=seed)
    return run_job(job, stream=None, on_progress=None if seen is None else seen.append)


def test_deterministic_by_seed(tmp_path: Path) -> None:
    seen: list[Progress] = []
    a, b, c = (_generate(tmp_path / name, seed, seen) for name, seed in (("a", 5), ("b", 5), ("c", 6)))
    assert seen[0].done == 0 and seen[-1].done == seen[-1].total > 0  # the job reports its progress
    ea, eb, ec = read_manifest(a)[0], read_manifest(b)[0], read_manifest(c)[0]
    for sub in ("labels", "boxes", "joints"):
        fa, fb = a.parent / sub / f"{ea.name}.csv", b.parent / sub / f"{eb.name}.csv"
        assert fa.read_bytes() == fb.read_bytes(), sub
    assert a.read_bytes() == b.read_bytes()
    assert (a.parent / "synth.json").read_bytes() == (b.parent / "synth.json").read_bytes()
    with open_video(ea.video, use_index_cache=False) as ra, open_video(eb.video, use_index_cache=False) as rb:
        assert ra.frame_count == rb.frame_count
        assert np.array_equal(ra.frame(0), rb.frame(0))
        assert np.array_equal(ra.frame(ra.frame_count - 1), rb.frame(rb.frame_count - 1))
    with open_video(ec.video, use_index_cache=False) as rc, open_video(ea.video, use_index_cache=False) as ra:
        assert rc.size != ra.size or not np.array_equal(rc.frame(0), ra.frame(0))  # another seed, another video


def test_long_video_mode(tmp_path: Path) -> None:
    manifest = run_job(make_dataset(tmp_path, subjects=1, videos_per_subject=1, long_seconds=7, seed=5), stream=None)
    entry = read_manifest(manifest)[0]
    with open_video(entry.video) as r:
        assert r.frame_count == round(7 * r.fps)
        assert r.info.duration_s == pytest.approx(7.0, abs=0.1)


def test_bad_arguments_raise_stan_error(tmp_path: Path) -> None:
    with pytest.raises(StanError):
        next(make_dataset(tmp_path, subjects=0))


def test_a_folder_with_a_data_set_is_not_overwritten_silently(tmp_path: Path) -> None:
    from stanviewer.cli import main

    out = tmp_path / "set"
    kw = {"subjects": 2, "videos_per_subject": 1, "reps": (1, 1), "seed": 3}
    manifest = run_job(make_dataset(out, **kw), stream=None)  # type: ignore[arg-type]
    before = manifest.read_bytes()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(StanError, match=r"already holds manifest\.csv, synth\.json, videos.*--force to replace"):
        run_job(make_dataset(out, subjects=1, videos_per_subject=1, reps=(1, 1), seed=9), stream=None)
    assert manifest.read_bytes() == before and len(list((out / "videos").iterdir())) == 2
    assert main(["synth", str(out), "--subjects", "1", "--videos-per-subject", "1", "--reps", "1-1"]) == 2
    # --force replaces the set: no video of the old one is left beside the new manifest; other files stay
    assert main(["synth", str(out), "--subjects", "1", "--videos-per-subject", "1", "--reps", "1-1", "--force"]) == 0
    assert [p.name for p in (out / "videos").iterdir()] == ["S01_V01.mp4"]
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    # --force deletes the set's own files only: a file of the user's beside them stays
    (out / "videos" / "patient01.mp4").write_bytes(b"mine")
    assert main(["synth", str(out), "--subjects", "1", "--videos-per-subject", "1", "--reps", "1-1", "--force"]) == 0
    assert (out / "videos" / "patient01.mp4").read_bytes() == b"mine"
    # a folder with files of the user's in videos/ is refused, with or without --force
    mine = tmp_path / "mine"
    (mine / "videos").mkdir(parents=True)
    (mine / "videos" / "patient02.mp4").write_bytes(b"x")
    for extra in ([], ["--force"]):
        assert main(["synth", str(mine), "--subjects", "1", "--videos-per-subject", "1", *extra]) == 2
    assert [p.name for p in (mine / "videos").iterdir()] == ["patient02.mp4"]
    # a folder of the user's own (a manifest, no synth.json) is refused even with --force: nothing is deleted
    own = tmp_path / "own"
    (own / "videos").mkdir(parents=True)
    (own / "videos" / "patient.mp4").write_bytes(b"x")
    (own / "manifest.csv").write_text("video,subject,label\nvideos/patient.mp4,p,normal\n", encoding="utf-8")
    assert main(["synth", str(own), "--subjects", "1", "--videos-per-subject", "1", "--force"]) == 2
    assert (own / "videos" / "patient.mp4").read_bytes() == b"x"


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


@pytest.mark.parametrize("seed", range(6))
def test_box_matches_the_drawn_figure(seed: int) -> None:
    """The box that draw_body returns is the bounding box of the pixels it changed (IoU > 0.85)."""
    rng = np.random.default_rng(seed)
    h = 240
    w = 320
    for yaw in (0.0, 40.0, 90.0, -85.0):
        body = Body.random(rng)
        pose = Pose(
            lean_lateral=float(rng.uniform(-25, 25)),
            lean_forward=float(rng.uniform(-25, 10)),
            rotation=float(rng.uniform(-30, 30)),
            hike_l=float(rng.uniform(0, 0.1)),
            arm_l=(float(rng.uniform(0, 160)), 4.0),
            arm_r=(0.0, float(4 + rng.uniform(0, 160))),
        )
        img = np.zeros((h, w, 3), np.uint8)  # plain black background
        cam = Camera(yaw=yaw, scale=h * float(rng.uniform(0.62, 0.85)) / 1.8, cx=w / 2, floor_y=0.93 * h)
        _, box = draw_body(img, body, pose, cam)
        ys, xs = np.nonzero(img.any(axis=2))
        drawn = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
        clipped = np.clip(box, 0, [w, h, w, h])
        assert _iou(clipped, drawn) > 0.85, (seed, yaw, box, drawn)


def test_workers_render_the_same_files(tmp_path: Path) -> None:
    kw = dict(subjects=1, videos_per_subject=2, reps=(1, 1), seed=3)
    one = run_job(make_dataset(tmp_path / "one", **kw), stream=None)  # type: ignore[arg-type]
    seen: list[Progress] = []
    two = run_job(make_dataset(tmp_path / "two", workers=2, **kw), stream=None, on_progress=seen.append)  # type: ignore[arg-type]
    assert one.read_bytes() == two.read_bytes()
    assert (one.parent / "synth.json").read_bytes() == (two.parent / "synth.json").read_bytes()
    for e in read_manifest(one):
        for sub in ("labels", "boxes", "joints"):
            name = f"{sub}/{e.name}.csv"
            assert (one.parent / name).read_bytes() == (two.parent / name).read_bytes()
        other = two.parent / e.video.relative_to(one.parent)
        with open_video(e.video, use_index_cache=False) as ra, open_video(other, use_index_cache=False) as rb:
            assert ra.frame_count == rb.frame_count
            assert np.array_equal(ra.frame(ra.frame_count // 2), rb.frame(rb.frame_count // 2))
    assert any("2 processes" in p.message for p in seen)


def test_recall_by_kind_counts_labelled_frames_per_kind_and_false_alarms_on_normal_reps(tmp_path: Path) -> None:
    from stanviewer.core.synth.reps import NORMAL_REP, recall_by_kind, video_reps, view_name

    rep = {"raise_s": 1.0, "hold_s": 0.0, "lower_s": 1.0, "peak": 90.0, "amp": 0.1, "comp2": None, "amp2": 0.0}
    spec = {
        "name": "S01_V01",
        "fps": 10.0,
        "yaw": 85.0,
        "reps": [{**rep, "start": 0.0, "comp": "hike"}, {**rep, "start": 3.0, "comp": None}],
    }
    (tmp_path / "videos").mkdir()
    (tmp_path / "synth.json").write_text(json.dumps({"videos": [spec]}), encoding="utf-8")
    video = tmp_path / "videos" / "S01_V01.mp4"
    reps = video_reps(video)
    assert reps is not None and [(r.kind, r.view, r.start, r.end) for r in reps] == [
        ("hike", "side", 0, 20),
        (NORMAL_REP, "side", 30, 50),
    ]
    labels = np.zeros(60, np.uint8)
    labels[5:16] = 1  # 11 labelled frames in the hike
    flags = np.zeros(60, bool)
    flags[10:40] = True  # 6 of them flagged; 10 of the normal repetition's 20 frames flagged
    other = tmp_path / "elsewhere" / "clip.mp4"  # no generator record: skipped
    rows = recall_by_kind([(video, flags, labels), (other, flags, labels)])
    by = {(r["kind"], r["view"]): r for r in rows}
    assert set(by) == {("hike", "side"), ("hike", "all"), (NORMAL_REP, "side"), (NORMAL_REP, "all")}
    assert by["hike", "side"]["frames"] == 11 and by["hike", "side"]["flagged"] == 6
    assert by["hike", "all"]["share_flagged"] == pytest.approx(6 / 11)
    assert by[NORMAL_REP, "side"]["share_flagged"] == pytest.approx(10 / 20)
    assert rows[-1]["kind"] == NORMAL_REP  # compensation kinds first
    assert video_reps(other) is None
    (tmp_path / "synth.json").write_text("{not json", encoding="utf-8")
    assert video_reps(video) is None  # a damaged record reads as none, not as an error
    assert [view_name(y) for y in (0.0, -10.0, 40.0, -90.0)] == ["front", "front", "oblique", "side"]


def test_pose_data_compensates_in_every_repetition_and_leaves_normal_sets_unchanged(tmp_path: Path) -> None:
    from stanviewer.core.synth import random_subject, random_video_spec

    def reps(every: bool, comp: bool, seed: int) -> list:
        rng = np.random.default_rng(seed)
        subject = random_subject(rng, "S01")
        return random_video_spec(rng, subject, "V", comp, reps=(4, 6), every_rep=every).reps

    for seed in range(20):
        assert all(r.comp for r in reps(True, True, seed))
        assert not any(r.comp for r in reps(True, False, seed))  # a normal video stays normal
    # the option does not change what a seed draws without it
    assert reps(False, True, 3) == reps(False, True, 3)
    manifest = run_job(
        make_dataset(tmp_path / "pose", subjects=1, videos_per_subject=2, reps=(1, 2), seed=4, pose_data=True),
        stream=None,
    )
    meta = json.loads((manifest.parent / "synth.json").read_text(encoding="utf-8"))
    assert meta["pose_data"] is True
    assert all(v["compensation"] and all(r["comp"] for r in v["reps"]) for v in meta["videos"])
    assert {e.label for e in read_manifest(manifest)} == {CLASSES[1]}


def test_free_pose_data_moves_the_trunk_on_its_own_timing_and_leaves_the_repetitions_normal(tmp_path: Path) -> None:
    from stanviewer.core.synth import random_subject, random_video_spec
    from stanviewer.core.synth.dataset import _pose_at

    hike_arm_down = lean_arm_down = arm_up_calm = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        spec = random_video_spec(rng, random_subject(rng, "S01"), "V", True, reps=(3, 4), free=True)
        assert not any(r.comp for r in spec.reps)  # the arm's repetitions stay normal
        assert len(spec.events) == len(spec.reps) + 1 and all(e.comp and e.side for e in spec.events)
        normal = random_video_spec(np.random.default_rng(seed), random_subject(rng, "S01"), "V", False, free=True)
        assert normal.events == []  # a normal video stays normal
        for t in np.arange(0.0, spec.duration, 0.1):
            pose, _ = _pose_at(
                spec, float(t), {k: (lambda _t: 0.0) for k in ("lat", "fwd", "rot", "hike", "head", "elbow")}
            )
            arm = max(r.elevation(float(t)) for r in spec.reps)
            arm_up, arm_down = arm > 0.5, arm < 0.1
            trunk = (
                max(abs(pose.hike_l), abs(pose.hike_r)) > 0.035 or abs(pose.lean_lateral) + abs(pose.lean_forward) > 7
            )
            hike_arm_down += (max(pose.hike_l, pose.hike_r) > 0.035) and arm_down
            lean_arm_down += (abs(pose.lean_lateral) + abs(pose.lean_forward) > 7) and arm_down
            arm_up_calm += arm_up and not trunk
    # hikes and leans with the arm down, and raised arms without them: the two are not tied
    assert hike_arm_down > 20 and lean_arm_down > 20 and arm_up_calm > 100
    manifest = run_job(
        make_dataset(tmp_path / "free", subjects=1, videos_per_subject=1, reps=(1, 1), seed=4, pose_data="free"),
        stream=None,
    )
    meta = json.loads((manifest.parent / "synth.json").read_text(encoding="utf-8"))
    assert meta["pose_data"] is True and meta["pose_data_mode"] == "free" and meta["videos"][0]["events"]
    assert {e.label for e in read_manifest(manifest)} == {CLASSES[1]}
    with pytest.raises(StanError, match="pose data"):
        run_job(make_dataset(tmp_path / "bad", subjects=1, pose_data="sometimes"), stream=None)
