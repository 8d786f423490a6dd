"""The ``learned`` ROI provider and its person detector: decoding, files, training, the bundled detector."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.cli import main
from stanviewer.core.errors import RoiError
from stanviewer.core.manifest import read_boxes_csv, read_manifest
from stanviewer.core.progress import run_job
from stanviewer.core.roi import box_iou, compute_roi, make_provider
from stanviewer.core.roi.cache import cache_path
from stanviewer.core.roi.detector import (
    DetectorConfig,
    DetectorTraining,
    PersonDetector,
    bundled_detector_path,
    decode,
    letterbox,
    load_detector,
    save_detector,
    train_detector,
)
from stanviewer.core.video import open_video


@pytest.fixture(scope="session")
def det_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 2 videos, one repetition each; never seen by the bundled detector (its draws: seeds 1, 41,
    71, 401, 709)."""
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("det synth ü")  # a space and a non-ASCII character in the path
    return run_job(make_dataset(out, subjects=3, videos_per_subject=2, seed=5, reps=(1, 1)), stream=None)


@pytest.fixture(scope="session")
def small_detector(tmp_path_factory: pytest.TempPathFactory, det_dataset: Path) -> Path:
    out = tmp_path_factory.mktemp("det") / "tiny det.safetensors"
    cfg = DetectorTraining(steps=4, batch=4, frames_per_video=2, seed=0)
    rec = run_job(train_detector([det_dataset], out, cfg), stream=None)
    fit = [e for e in read_manifest(det_dataset) if e.split != "test"]  # test rows are for evaluation
    assert 0 < len(fit) < 6 and rec["training"]["videos"] == len(fit) and rec["training"]["frames"] == 2 * len(fit)
    return out


def test_decode_reads_the_most_likely_cell_its_offset_and_size() -> None:
    cfg = DetectorConfig()
    out = torch.full((2, 5, cfg.grid, cfg.grid), -5.0)
    out[:, 1:3] = 0.0  # sigmoid 0.5: the cell's middle
    out[:, 3:] = 0.0  # exp(0) quarters of the side
    out[0, 0, 3, 5] = 6.0  # frame 0: centre in cell (row 3, column 5)
    out[1, 0, 10, 2] = 6.0
    out[1, 3] = np.log(2.0)  # frame 1: twice as wide
    boxes, conf = decode(out, cfg.size)
    s = cfg.size / cfg.grid
    q = cfg.size / 4
    assert boxes[0] == pytest.approx([5.5 * s - q / 2, 3.5 * s - q / 2, 5.5 * s + q / 2, 3.5 * s + q / 2], abs=1e-4)
    assert boxes[1] == pytest.approx([2.5 * s - q, 10.5 * s - q / 2, 2.5 * s + q, 10.5 * s + q / 2], abs=1e-4)
    assert conf[0] > 0.9 and conf[1] > 0.9


def test_letterbox_keeps_the_aspect_and_pads_right_and_bottom() -> None:
    frame = np.full((50, 100, 3), 200, np.uint8)
    img, s = letterbox(frame, 128)
    assert img.shape == (128, 128, 3) and s == pytest.approx(1.28)
    assert (img[:64] == 200).all() and (img[64:] == 0).all()


def test_a_detector_file_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = PersonDetector().eval()
    path = save_detector(model, tmp_path / "d.safetensors", {"description": "test"})
    again, meta = load_detector(path)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert meta["description"] == "test" and meta["config"]["size"] == 128

    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(np.random.default_rng(0).bytes(5000))
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"  # a safetensors file, not a detector
    save_file({"w": torch.zeros(3)}, str(other))
    shapes = tmp_path / "shapes.safetensors"
    wide = PersonDetector(DetectorConfig(stem=16))
    save_detector(wide, shapes)
    meta_text = '{"format": 1, "config": {}}'
    save_file(
        {k: v.contiguous() for k, v in wide.state_dict().items()}, str(shapes), {"stanviewer_detector": meta_text}
    )
    for bad, words in [
        (empty, "empty"),
        (noise, "not a readable safetensors"),
        (other, "not a stanviewer person detector"),
        (shapes, "conv1.weight"),
        (tmp_path / "missing.safetensors", "not found"),
    ]:
        with pytest.raises(RoiError, match=words) as e:
            load_detector(bad)
        assert bad.name in str(e.value)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))

    marker = ""


def test_a_malicious_pickle_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _Evil.marker = str(marker)
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(RoiError):
        load_detector(evil)
    with pytest.raises(RoiError):
        make_provider("learned", file=evil).raw(None).send(None)  # type: ignore[arg-type]
    assert not marker.exists()


def test_the_provider_gives_every_frame_a_box_and_caches_per_detector_file(
    det_dataset: Path, small_detector: Path, tmp_path: Path
) -> None:
    e = read_manifest(det_dataset)[0]
    with open_video(e.video) as r:
        track = run_job(compute_roi(r, "learned", file=small_detector), stream=None)
        assert track.boxes.shape == (r.frame_count, 4) and track.provider == "learned"
        assert np.isfinite(track.boxes).all()
        w, h = r.size
        assert (track.boxes[:, 0] >= 0).all() and (track.boxes[:, 2] <= w).all() and (track.boxes[:, 3] <= h).all()
        det = tmp_path / "det.safetensors"  # a detector trained again into the same file: cached boxes go stale
        det.write_bytes(small_detector.read_bytes())
        before = cache_path(r, make_provider("learned", file=det))
        torch.manual_seed(1)
        save_detector(PersonDetector(), det)
        assert cache_path(r, make_provider("learned", file=det)) != before
    with pytest.raises(RoiError, match="every"):
        make_provider("learned", every=0)


def test_the_bundled_detector_finds_the_figure_in_videos_it_never_saw(det_dataset: Path) -> None:
    assert bundled_detector_path().is_file(), "models/roi/person-detector-synth.safetensors is missing"
    good = []
    for e in read_manifest(det_dataset):
        with open_video(e.video) as r:
            track = run_job(compute_roi(r, "learned", use_cache=False), stream=None)
            n = r.frame_count
        rows = read_boxes_csv(det_dataset.parent / e.extra["boxes"])
        truth = np.array([[x, y, x + w, y + h] for x, y, w, h in (rows[i] for i in range(n))], np.float64)
        good.append(np.mean(box_iou(track.boxes, truth) >= 0.5))
    # measured: 1.0 in each of the 6 videos (motion: 0.99-1.0); an untrained detector or a broken decode misses
    assert np.mean(good) >= 0.8, good


def test_train_detector_cli_writes_a_file_the_roi_command_uses(det_dataset: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli det.safetensors"
    args = ["train-detector", str(det_dataset), "--out", str(out), "--steps", "2", "--batch", "2"]
    assert main([*args, "--frames-per-video", "1"]) == 0
    assert "wrote" in capsys.readouterr().out and load_detector(out)[1]["training"]["steps"] == 2
    video = read_manifest(det_dataset)[0].video
    assert main(["roi", str(video), "--provider", "learned", "--file", str(out), "--no-cache"]) == 0
    out_text = capsys.readouterr().out
    assert "provider    learned" in out_text
    assert "frames the detector looked at (one in 2; the rest filled in)" in out_text  # not "detected 50%"
    assert main(["model", "info", str(out)]) == 0  # a detector's card, not a classifier's
    assert "person detector" in capsys.readouterr().out
    # a manifest without person boxes: a clear message, no traceback
    plain = tmp_path / "plain.csv"
    plain.write_text(f"video,subject,label\n{video},S01,normal\n")
    assert main(["train-detector", str(plain), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "boxes" in capsys.readouterr().err


def test_preparing_training_views_in_worker_processes_with_the_detector_does_not_hang(det_dataset: Path) -> None:
    """Forked workers that run the detector hung for ever once the parent had used PyTorch's thread pool
    (found with ``train --roi learned --workers 2``); run in a child process so that a hang fails, not blocks."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(2); x = torch.randn(256, 256); (x @ x).sum()\n"
        "from stanviewer.core.training.data import load_samples\n"
        "from stanviewer.core.models.stan import ModelSpec\n"
        "from stanviewer.core.progress import run_job\n"
        "spec = ModelSpec(arch='posture-narrow', views='local', size=64, roi_provider='learned')\n"
        f"s = run_job(load_samples({str(det_dataset)!r}, spec, workers=2), stream=None)\n"
        "print('prepared', len(s))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("preparing views with the learned provider in 2 worker processes hung")
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"prepared {len(read_manifest(det_dataset))}" in out.stdout


def test_a_model_trained_on_learned_boxes_records_which_detector() -> None:
    from stanviewer.core.fileio import sha256_file
    from stanviewer.core.roi.learned import roi_record

    rec = roi_record("learned")["roi_detector"]
    assert rec == {"file": bundled_detector_path().name, "sha256": sha256_file(bundled_detector_path())}
    assert roi_record("motion") == {} and roi_record("truth") == {}


def test_model_card_says_which_detector_the_crops_came_from(monkeypatch, tmp_path) -> None:
    from stanviewer.core.models.bundled import describe
    from stanviewer.core.roi import learned
    from stanviewer.core.roi.learned import roi_record

    spec = {"arch": "posture-narrow", "roi_provider": "learned", "classes": ["normal", "compensation"]}
    meta = {"spec": spec, "training": roi_record("learned")}
    card = describe("m.safetensors", meta)
    assert "detector    person-detector-synth.safetensors" in card
    assert "the installed detector is that file" in card
    # another detector installed: the card says the crops differ from the training crops
    other = tmp_path / "other.safetensors"
    other.write_bytes(b"not the same file")
    monkeypatch.setattr(learned, "bundled_detector_path", lambda: other)
    assert "the installed detector differs" in describe("m.safetensors", meta)
    monkeypatch.setattr(learned, "bundled_detector_path", lambda: tmp_path / "missing.safetensors")
    assert "no detector is installed" in describe("m.safetensors", meta)
    # a model from before the record, and one on motion boxes (no detector line at all)
    assert "not recorded" in describe("m.safetensors", {"spec": spec, "training": {}})
    assert "detector " not in describe("m.safetensors", {"spec": {**spec, "roi_provider": "motion"}})


def test_square_off_compares_centres_and_sides_with_the_reference() -> None:
    from stanviewer.core.roi import square_off

    ref = (100.0, 100.0, 200.0)
    assert not square_off((100.0, 100.0, 200.0), ref)
    assert not square_off((119.0, 100.0, 228.0), ref)  # 0.095 of the side away, 14 % larger
    assert square_off((121.0, 100.0, 200.0), ref)  # 0.105 of the side away
    assert square_off((100.0, 100.0, 232.0), ref) and square_off((100.0, 100.0, 168.0), ref)  # 16 % off
    assert not square_off((121.0, 100.0, 200.0), ref, centre=0.2)


def test_checked_keeps_motion_boxes_unless_their_square_is_off_from_the_detectors(
    det_dataset: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from stanviewer.core.roi.motion import MotionProvider

    e = read_manifest(det_dataset)[0]
    with open_video(e.video) as r:
        motion = run_job(compute_roi(r, "motion"), stream=None)
        learned = run_job(compute_roi(r, "learned"), stream=None)
        checked = run_job(compute_roi(r, "checked", use_cache=False), stream=None)
        assert checked.provider == "checked" and checked.params["used"] == "motion"
        np.testing.assert_array_equal(checked.boxes, motion.boxes)
        # no tolerance and no confidence gate: every square is off, so the detector's boxes are used
        strict = run_job(compute_roi(r, "checked", side=-1.0, min_confidence=0.0), stream=None)
        assert strict.params["used"] == "learned"
        np.testing.assert_array_equal(strict.boxes, learned.boxes)
        # ... unless the detector is not sure of itself: then motion's boxes stay
        unsure = run_job(compute_roi(r, "checked", side=-1.0, min_confidence=1.01), stream=None)
        assert unsure.params["used"] == "motion"
        n = r.frame_count
        w, h = r.size

    # motion loses the figure (measured on fresh draws: the whole frame, a region beside the person): the
    # detector's boxes replace it, and they hold the figure
    def lost(self, reader):
        yield from ()
        return np.tile(np.array([[0.0, 0.0, w, h]]), (n, 1)), np.ones(n), None

    monkeypatch.setattr(MotionProvider, "raw", lost)
    with open_video(e.video) as r:
        assert np.allclose(run_job(compute_roi(r, "motion", use_cache=False), stream=None).boxes[0], [0, 0, w, h])
        fixed = run_job(compute_roi(r, "checked", use_cache=False, smooth=0, min_confidence=0.0), stream=None)
    rows = read_boxes_csv(det_dataset.parent / e.extra["boxes"])
    truth = np.array([[x, y, x + bw, y + bh] for x, y, bw, bh in (rows[i] for i in range(n))], np.float64)
    assert fixed.params["used"] == "learned" and np.mean(box_iou(fixed.boxes, truth) >= 0.5) >= 0.8
    assert main(["roi", str(e.video), "--provider", "checked"]) == 0
    assert "checked" in capsys.readouterr().out
