"""The posture-MIL model (``posture-narrow``): features, training, whole-video analysis, evaluation, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.core.errors import StanError
from stanviewer.core.explain.posture import METHOD, analyze_posture, frame_logits
from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
from stanviewer.core.manifest import read_manifest
from stanviewer.core.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from stanviewer.core.models.framecnn import FrameCNN
from stanviewer.core.models.posture import (
    FEATURE_JOINTS,
    JOINT_NAMES,
    MIRROR,
    TRUNK_FEATURES,
    UPPER_JOINTS,
    PostureConfig,
    PostureMIL,
    image_step,
    log_mean_exp,
    mirror_joints,
    posture_features,
    shift_image,
    to_video,
    upper_square,
    upper_to_local,
)
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import run_job
from stanviewer.core.training.posture import video_bias
from stanviewer.core.training.train import TrainConfig, train
from stanviewer.core.video import open_video

ARCH = "posture-narrow"


def _spec(views: str = "local") -> ModelSpec:
    return ModelSpec(arch=ARCH, views=views, frames=2, size=32, sample_fps=5.0, roi_provider="truth")


def _figure(n: int, lean: np.ndarray | None = None) -> np.ndarray:
    """Joints [n, 17, 2] of an upright stick figure; ``lean`` moves head/neck/shoulders sideways (px)."""
    base = np.zeros((len(JOINT_NAMES), 2))
    ys = {"head": 0, "neck": 20, "shoulder_l": 25, "shoulder_r": 25, "elbow_l": 55, "elbow_r": 55, "wrist_l": 85,
          "wrist_r": 85, "pelvis": 90, "hip_l": 92, "hip_r": 92, "knee_l": 130, "knee_r": 130, "ankle_l": 170,
          "ankle_r": 170, "toe_l": 172, "toe_r": 172}  # fmt: skip
    for k, name in enumerate(JOINT_NAMES):
        base[k] = (100 + (-10 if name.endswith("_l") else 10 if name.endswith("_r") else 0), 50 + ys[name])
    p = np.repeat(base[None], n, 0)
    if lean is not None:
        for name in ("head", "neck", "shoulder_l", "shoulder_r"):
            p[:, JOINT_NAMES.index(name), 0] += lean
    return p


def test_posture_features_ignore_where_the_figure_stands_and_its_size() -> None:
    lean = np.r_[np.zeros(20), np.linspace(0, 15, 10), np.zeros(20)]
    p = torch.from_numpy(_figure(50, lean))
    f = posture_features(p, [-2, 0, 2])
    assert f.shape == (50, 15 * 2 * 3)
    moved = posture_features(p * 1.7 + torch.tensor([40.0, -13.0]), [-2, 0, 2])
    assert torch.allclose(f, moved, atol=1e-5)
    # the median posture is subtracted: upright frames are zero, the leaning ones are not
    assert float(f[:18].abs().max()) < 1e-6 and float(f[25].abs().max()) > 0.02
    # context columns are the neighbours' features (clamped at the ends)
    k = 15 * 2
    assert torch.equal(f[25, :k], f[23, k : 2 * k]) and torch.equal(f[0, :k], f[0, k : 2 * k])


def test_the_features_keep_the_trunk_joints_of_new_models_and_every_joint_of_old_ones() -> None:
    lean = np.r_[np.zeros(20), np.linspace(0, 15, 10), np.zeros(20)]
    p = torch.from_numpy(_figure(50, lean))
    full = posture_features(p, [-2, 0, 2], 1.0)
    idx = [JOINT_NAMES.index(n) for n in TRUNK_FEATURES]
    cols = [o * 30 + 2 * j + c for o in range(3) for j in idx for c in (0, 1)]
    assert torch.equal(posture_features(p, [-2, 0, 2], 1.0, idx), full[:, cols])
    # new models: head, neck and shoulders (the compensation; the arm moves in every repetition)
    m = PostureMIL(_spec())
    assert m.cfg.features == list(TRUNK_FEATURES) == ["head", "neck", "shoulder_l", "shoulder_r"]
    assert m.mil[0][0].in_features == 4 * 2 * len(m.cfg.context)
    assert torch.equal(m.posture_features(p.double()), posture_features(p, m.cfg.context, m.cfg.smooth, idx))
    # files written before the option read every feature joint, as they were trained
    old = {k: v for k, v in m.cfg.to_dict().items() if k != "features"}
    assert PostureConfig.from_dict(old).features == list(JOINT_NAMES[:15])
    spec = _spec()
    spec.backbone = {**m.cfg.to_dict(), "features": ["head", "toe_l"]}
    with pytest.raises(ValueError, match="toe_l"):
        PostureMIL(spec)


def test_joints_map_back_to_the_crop_square() -> None:
    q = torch.tensor([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]])
    p = to_video(q, (100.0, 50.0, 40.0))
    assert p.tolist() == [[[80.0, 30.0], [120.0, 70.0], [100.0, 50.0]]]
    assert image_step(30.0, 5.0) == 3 and image_step(25.0, 5.0) == 2 and image_step(5.0, 5.0) == 1


def test_video_bias_maximises_video_f1() -> None:
    logits = np.array([-3.0, -1.0, 0.5, 1.0, 2.0, 3.0])
    labels = np.array([0, 0, 0, 0, 1, 1])
    b = video_bias(logits, labels)
    assert 1.0 < b < 2.0  # only the two positives above it
    assert video_bias(logits, np.ones(6)) == 0.0 and video_bias(np.array([]), np.array([])) == 0.0
    assert float(log_mean_exp(torch.zeros(7))) == pytest.approx(0.0, abs=1e-6)


def test_the_model_checks_its_spec_and_is_not_a_clip_model() -> None:
    with pytest.raises(ValueError, match="local view only"):
        PostureMIL(_spec("global+local"))
    m = PostureMIL(_spec())
    with pytest.raises(TypeError, match="whole videos"):
        m(torch.zeros(1, 3, 2, 32, 32))
    with pytest.raises(ValueError, match="upper-body images"):
        m.joints(torch.zeros(3, 3, 32, 32))
    assert m.joints(torch.zeros(3, 3, 32, 32), torch.zeros(3, 3, 32, 32)).shape == (3, 17, 2)


def test_mirror_reading_swaps_left_and_right_and_reads_a_mirrored_image_mirrored() -> None:
    assert JOINT_NAMES[MIRROR[JOINT_NAMES.index("shoulder_l")]] == "shoulder_r"
    assert JOINT_NAMES[MIRROR[JOINT_NAMES.index("head")]] == "head"
    q = torch.randn(4, 17, 2)
    assert torch.equal(mirror_joints(mirror_joints(q)), q)
    m = mirror_joints(q)
    assert torch.equal(m[:, JOINT_NAMES.index("wrist_r"), 0], -q[:, JOINT_NAMES.index("wrist_l"), 0])
    torch.manual_seed(0)
    spec = _spec()
    spec.backbone = {"mirror": True, "upper": 0}
    model = PostureMIL(spec).eval()
    assert model.cfg.mirror  # new models read both images
    with torch.no_grad():
        model.pose.bias.normal_()
        x = torch.randn(2, 3, 32, 32)
        # the joints of a mirrored image are the mirrored joints of the image (exactly: both are read)
        assert torch.allclose(model.joints(x.flip(-1)), mirror_joints(model.joints(x)), atol=1e-5)
        assert torch.allclose(model.joints(x), (model.raw_joints(x) + mirror_joints(model.raw_joints(x.flip(-1)))) / 2)
    # a checkpoint written before the option existed reads as it was trained: without the mirror image
    old = {k: v for k, v in model.cfg.to_dict().items() if k != "mirror"}
    assert not PostureConfig.from_dict(old).mirror and PostureConfig.from_dict({}).mirror


def test_shift_reading_moves_each_image_and_moves_its_joints_back(monkeypatch: pytest.MonkeyPatch) -> None:
    import stanviewer.core.models.posture as posture

    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 2] = 1
    y = shift_image(x, 2, -1)  # content 2 px right, 1 px up; the border filled with 0 (the mask's value)
    assert y[0, 0, 2, 4] == 1 and y.sum() == 1 and shift_image(x, 0, 0) is x
    spec = _spec()
    spec.backbone = {"mirror": True, "upper": 0, "shifts": 2}
    model = PostureMIL(spec).eval()
    assert model.cfg.shifts == 2

    def bright_spot(img: torch.Tensor, upper: bool = False) -> torch.Tensor:
        """A reader that reads exactly: every joint at the brightest pixel, in view coordinates."""
        n, s = img.shape[0], img.shape[-1]
        k = img[:, 0].reshape(n, -1).argmax(1)
        q = torch.stack([2 * (k % s + 0.5) / s - 1, 2 * (k // s + 0.5) / s - 1], -1).float()
        return q[:, None].repeat(1, model.cfg.joints, 1)

    monkeypatch.setattr(model, "raw_joints", bright_spot)
    img = torch.zeros(3, 3, 32, 32)
    for k, (r, c) in enumerate(((10, 12), (20, 5), (16, 27))):
        img[k, :, r, c] = 1
    plain = bright_spot(img)
    assert torch.allclose(model.joints(img), plain, atol=1e-6)
    for move in ((1, 0), (0, -1)):  # each shifted reading alone gives the plain joints back (the sign)
        monkeypatch.setattr(posture, "SHIFT_MOVES", (move,))
        assert torch.allclose(model.joints(img), plain, atol=1e-6)
    # training and files written before the option existed read each image once
    old = {k: v for k, v in model.cfg.to_dict().items() if k != "shifts"}
    assert PostureConfig.from_dict(old).shifts == 0 and PostureConfig().shifts == 0
    from stanviewer.core.models.bundled import _posture_reading

    assert "moved by ±2 px" in _posture_reading({"backbone": model.cfg.to_dict()})
    assert "moved" not in _posture_reading({"backbone": old})


def test_the_upper_body_reader_reads_the_top_of_the_crop_square_at_twice_the_pixels() -> None:
    square = (200.0, 150.0, 180.0)
    up = upper_square(square)
    assert up == (200.0, 105.0, 90.0)  # top half of the square, middle half of its width
    qu = torch.rand(5, 4, 2) * 2 - 1  # joints in the upper-body view
    # the same video pixels whether mapped through the upper square or through the local view's
    assert torch.allclose(to_video(upper_to_local(qu), square), to_video(qu, up), atol=1e-4)
    torch.manual_seed(0)
    model = PostureMIL(_spec()).eval()
    assert model.cfg.upper == UPPER_JOINTS == 4 and JOINT_NAMES[:4] == ("head", "neck", "shoulder_l", "shoulder_r")
    with torch.no_grad():
        model.pose.bias.normal_()
        model.upper_pose.bias.normal_()
        x, xu = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
        q = model.joints(x, xu)
        full, upper = model._read(x), upper_to_local(model._read(xu, True))
        assert torch.allclose(q[:, :4], (full[:, :4] + upper) / 2) and torch.equal(q[:, 4:], full[:, 4:])
        # the upper square is symmetric about the crop's centre: mirroring both images mirrors the joints
        assert torch.allclose(model.joints(x.flip(-1), xu.flip(-1)), mirror_joints(q), atol=1e-5)
    # files written before the reader existed have none (and read as they were trained)
    old = {k: v for k, v in model.cfg.to_dict().items() if k != "upper"}
    assert PostureConfig.from_dict(old).upper == 0
    spec = _spec()
    spec.backbone = old
    assert not hasattr(PostureMIL(spec), "upper_backbone")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("posture-synth")
    return run_job(make_dataset(out, subjects=3, videos_per_subject=2, reps=(1, 1)), stream=None)


@pytest.fixture(scope="module")
def pose_init(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = ModelSpec(arch="cnn-narrow-patch", views="local", frames=2, size=32, roi_provider="truth")
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("pose") / "pre.safetensors", FrameCNN(spec))


@pytest.fixture(scope="module")
def trained(dataset: Path, pose_init: Path, tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    cfg = TrainConfig(epochs=3, val_fraction=0, threads=1, init=str(pose_init), lr=1e-3, upper_steps=4, reader_steps=3)
    res = run_job(train(dataset, _spec(), tmp_path_factory.mktemp("posture-run"), cfg), stream=None)
    assert len(res.history) == 3 and all(np.isfinite(r["train_loss"]) for r in res.history)
    return load_checkpoint(res.best)


def _changed(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sb = b.state_dict()
    return any(not torch.equal(v, sb[k]) for k, v in a.state_dict().items() if v.is_floating_point())


def test_training_fine_tunes_the_pose_resnet_and_fits_a_read_out(trained: Checkpoint, pose_init: Path) -> None:
    assert isinstance(trained.model, PostureMIL)
    assert trained.meta["default_method"] == METHOD
    tr = trained.meta["training"]
    assert tr["pose_readout"]["error_view_px"] > 0 and tr["videos_test"] >= 1
    src = load_checkpoint(pose_init).model
    # the first reader's ResNet was fine-tuned on the local views (--reader-steps), then frozen
    assert _changed(trained.model.backbone, src.backbone)
    ft = tr["pose_readout"]["fine_tuning"]
    assert ft["steps"] == 3 and ft["train_error_view_px"] > 0 and ft["readout_error_before_view_px"] > 0
    assert float(trained.model.read_std.mean()) != 1.0  # standardisation measured on the training images
    # the upper-body reader started from the same ResNet, learnt on upper-body images, has its own read-out
    assert _changed(trained.model.upper_backbone, src.backbone)
    assert _changed(trained.model.upper_backbone, trained.model.backbone)
    assert float(trained.model.upper_std.mean()) != 1.0
    assert tr["pose_readout"]["upper_body"]["steps"] == 4
    assert (trained.path.parent / "history.csv").is_file()
    from stanviewer.core.models.bundled import describe

    card = describe(trained.path, trained.meta)
    assert "posture-narrow (posture-MIL" in card and "local view and its mirror image and its upper-body image" in card
    assert "method      posture (default)" in card
    assert "evidence    posture of head, neck, shoulder_l, shoulder_r" in card


def test_training_from_a_posture_model_without_fine_tuning(dataset: Path, trained: Checkpoint, tmp_path: Path) -> None:
    """--init may be a posture model (its first reader's ResNet); --reader-steps 0 keeps that ResNet."""
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(trained.path), upper_steps=0, reader_steps=0)
    res = run_job(train(dataset, _spec(), tmp_path / "again", cfg), stream=None)
    m = load_checkpoint(res.best)
    assert not _changed(m.model.backbone, trained.model.backbone)
    assert not _changed(m.model.upper_backbone, trained.model.upper_backbone)  # no steps: the init's upper reader
    pr = m.meta["training"]["pose_readout"]
    assert "fine_tuning" not in pr and pr["upper_body"]["train_error_view_px"] is None
    # where the readers came from is kept
    assert pr["init_pose_readout"] == trained.meta["training"]["pose_readout"]


def _spy_on_reader_fits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the samples every read-out fit and reader training is given, in call order."""
    import stanviewer.core.training.posture as tp

    seen: list[str] = []

    def spy(fn):
        def wrapped(model, samples, *args, **kwargs):
            seen.extend(s.name for s in samples)
            return (yield from fn(model, samples, *args, **kwargs))

        return wrapped

    monkeypatch.setattr(tp, "fit_pose_readout", spy(tp.fit_pose_readout))
    monkeypatch.setattr(tp, "train_reader", spy(tp.train_reader))
    return seen


@pytest.mark.parametrize("reader_fit", ["all", "train"])
def test_reader_fit_train_holds_the_validation_subjects_out_of_every_reader(
    dataset: Path, pose_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader_fit: str
) -> None:
    """--reader-fit train: read-outs, fine-tuning and the upper-body reader never see a validation video, so
    early stopping and the video bias are set on readings like a new subject's; "all" (default) uses them."""
    import stanviewer.core.training.posture as tp

    seen = _spy_on_reader_fits(monkeypatch)
    cfg = TrainConfig(epochs=1, val_fraction=0.34, threads=1, init=str(pose_init), upper_steps=1, reader_steps=1,
                      reader_fit=reader_fit)  # fmt: skip
    # every subject in the pool (no test subject): 3 subjects, one of them for validation
    res = run_job(tp.train_posture(dataset, _spec(), tmp_path / reader_fit, cfg, test_subjects=set()), stream=None)
    meta = load_checkpoint(res.best).meta["training"]
    val_subjects = set(meta["subjects_val"])
    assert len(val_subjects) == 1 and meta["videos_val"] == 2
    names = {e.name: e.subject for e in read_manifest(dataset)}
    fitted = {names[n] for n in seen}
    # five calls: read-out, fine-tuning, read-out again, upper reader's training and its read-out
    assert len(seen) == 5 * (meta["videos_train"] + (meta["videos_val"] if reader_fit == "all" else 0))
    if reader_fit == "train":
        assert not fitted & val_subjects and "validation subjects held out" in meta["pose_readout"]["fitted_on"]
    else:
        assert val_subjects <= fitted and "validation videos" in meta["pose_readout"]["fitted_on"]
    bad = TrainConfig(init=str(pose_init), reader_fit="val")
    with pytest.raises(StanError, match="reader_fit"):
        run_job(tp.train_posture(dataset, _spec(), tmp_path / "bad", bad))


def test_training_needs_a_pose_resnet_and_the_local_view(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(StanError, match="pose-pretrained"):
        run_job(train(dataset, _spec(), tmp_path / "a", TrainConfig(epochs=1, val_fraction=0)), stream=None)
    with pytest.raises(StanError, match="--views local"):
        cfg = TrainConfig(epochs=1, val_fraction=0, init="x")
        run_job(train(dataset, ModelSpec(arch=ARCH, views="global", frames=2, size=32), tmp_path / "b", cfg))
    with pytest.raises(StanError, match="resume"):
        run_job(train(dataset, _spec(), tmp_path / "c", TrainConfig(init="x"), resume=True), stream=None)


def test_whole_video_analysis_scores_every_frame(trained: Checkpoint, dataset: Path) -> None:
    e = read_manifest(dataset)[0]
    with open_video(e.video) as r:
        a = run_job(analyze_reader(r, trained, AnalysisSettings(method=METHOD, heatmaps=False)), stream=None)
        n = r.frame_count
        s = run_job(analyze_reader(r, trained, AnalysisSettings(method=METHOD, coverage="sampled")), stream=None)
    assert a.scores.shape == (n,) and np.isfinite(a.scores).all()
    assert a.scores.min() >= 0.0 and a.scores.max() <= 1.0 and a.scores.max() > 0
    assert a.meta["method"] == METHOD and a.heatmap_path is None and a.windows == []
    assert a.prediction["class"] in trained.spec.classes
    probs = a.prediction["probabilities"]
    assert sum(probs.values()) == pytest.approx(1.0)
    # the video logit is the log-mean-exp of the frame logits (every frame) minus the calibrated bias
    assert a.prediction["pooled_evidence"] == pytest.approx(
        float(log_mean_exp(torch.from_numpy(a.raw.astype(np.float64)))) - float(trained.model.video_bias), abs=1e-4
    )
    assert s.scores.shape == (n,) and s.meta["window"]["step"] == image_step(a.meta["video"]["fps"], 5.0)


def test_new_models_score_frames_by_probability_and_old_files_keep_per_video_scaling(
    trained: Checkpoint, dataset: Path, tmp_path: Path
) -> None:
    """A frame's score is its probability, sigmoid(logit), the same scale in every video; files written
    before ``frame_scores`` existed keep the per-video 0-1 scaling their stored thresholds were calibrated on."""
    from stanviewer.core.explain.result import normalise_scores
    from stanviewer.core.models.bundled import describe

    assert trained.meta["frame_scores"] == "probability"
    old_meta = {k: v for k, v in trained.meta.items() if k != "frame_scores"}
    old = load_checkpoint(save_checkpoint(tmp_path / "old.safetensors", trained.model, old_meta))
    e = read_manifest(dataset)[0]
    st = AnalysisSettings(method=METHOD, heatmaps=False)
    with open_video(e.video) as r:
        new_a = run_job(analyze_reader(r, trained, st), stream=None)
        old_a = run_job(analyze_reader(r, old, st), stream=None)
    np.testing.assert_allclose(new_a.raw, old_a.raw, atol=1e-6)  # the same evidence, two scales
    np.testing.assert_allclose(new_a.scores, 1 / (1 + np.exp(-new_a.raw.astype(np.float64))), atol=1e-6)
    np.testing.assert_allclose(old_a.scores, normalise_scores(old_a.raw), atol=1e-6)
    assert old_a.scores.min() == 0.0 and old_a.scores.max() == 1.0
    assert new_a.meta["normalisation"]["clip_percentiles"] is None
    assert "probability" in new_a.meta["normalisation"]["kind"]
    assert old_a.meta["normalisation"]["clip_percentiles"] is not None
    assert "scores      per-frame probability" in describe(trained.path, trained.meta)
    assert "scores      frame logits scaled 0-1 per video" in describe(old.path, old.meta)


def test_partial_curves_while_reading(trained: Checkpoint, dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stanviewer.core.explain.posture as post

    monkeypatch.setattr(post, "_PARTIAL_EVERY_S", 0.0)
    e = read_manifest(dataset)[0]
    partials = []
    with open_video(e.video) as r:
        job = analyze_posture(r, trained, AnalysisSettings(method=METHOD, batch=1))
        try:
            while True:
                p = next(job)
                if p.partial is not None:
                    partials.append(p.partial.curve())
        except StopIteration:
            pass
    assert len(partials) >= 2
    reached = [int(np.isfinite(c).sum()) for c in partials]
    assert reached == sorted(reached) and reached[0] > 0
    # the growing curve is on the finished analysis' scale: probabilities, not rescaled per video
    last = partials[-1]
    ok = np.isfinite(last)
    assert ok.any() and last[ok].min() > 0.0 and last[ok].max() < 1.0


def test_methods_and_models_must_match(trained: Checkpoint, dataset: Path, tiny_checkpoint: Path) -> None:
    e = read_manifest(dataset)[0]
    with open_video(e.video) as r:
        with pytest.raises(StanError, match="explains with its own frame evidence"):
            run_job(analyze_reader(r, trained, AnalysisSettings(method="vanilla")), stream=None)
        with pytest.raises(StanError, match="needs a posture model"):
            run_job(analyze_reader(r, load_checkpoint(tiny_checkpoint), AnalysisSettings(method=METHOD)))
        with pytest.raises(StanError, match="evidence for"):
            run_job(analyze_reader(r, trained, AnalysisSettings(method=METHOD, target="normal")), stream=None)


def test_frame_logits_follow_the_context_spacing(trained: Checkpoint) -> None:
    """Frames read every frame use the context offsets times the image step: the same logits as images."""
    import copy

    model = copy.deepcopy(trained.model)
    model.cfg.smooth = 0.0  # smoothing a repeated frame differs slightly from smoothing the images
    lean = np.r_[np.zeros(30), np.linspace(0, 20, 15), np.zeros(30)]
    every_image = _figure(75, lean)
    every_frame = np.repeat(every_image, 3, 0)  # each image seen on 3 consecutive frames
    a = frame_logits(model, every_image, 1)
    b = frame_logits(model, every_frame, 3)
    assert np.allclose(a[5:-5], b[::3][5:-5], atol=1e-5)


def test_evaluate_uses_the_posture_method_and_skips_the_short_sequence(trained: Checkpoint, dataset: Path,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    from stanviewer.core.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(methods=["vanilla"], calib_videos=2, test_videos=2)
    rep = run_job(evaluate(dataset, [trained.path], cfg, tmp_path / "ev"), stream=None)
    assert {r["method"] for r in rep.frame_rows} == {METHOD}
    assert {r["sequence"] for r in rep.frame_rows} == {"long"}
    assert rep.video_rows[0]["videos"] == 2
    # generated videos: protocol a broken down by compensation kind, in the CSV and the report
    assert rep.kind_rows and {r["method"] for r in rep.kind_rows} == {METHOD}
    assert any(r["view"] == "all" for r in rep.kind_rows)
    assert all(0.0 <= r["share_flagged"] <= 1.0 for r in rep.kind_rows if r["frames"])
    assert (tmp_path / "ev" / "by_kind.csv").is_file() and "By compensation kind" in rep.markdown


def test_evaluate_can_calibrate_on_the_validation_subjects_alone(
    trained: Checkpoint, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--calib-from val: only the videos of the subjects the checkpoint held out for validation are scored for
    calibration; the rows, the report and the stored thresholds say so; a checkpoint that names none, or
    whose validation subjects have no video of the target class in the manifest, gets a clear error."""
    import shutil

    import stanviewer.core.evaluate as ev
    from stanviewer.core.models.checkpoint import update_metadata

    train_e = [e for e in read_manifest(dataset) if (e.split or "train") == "train"]
    pos = next(e for e in train_e if e.label == trained.spec.target)
    neg_only = sorted({e.subject for e in train_e} - {e.subject for e in train_e if e.label == trained.spec.target})
    cfg = ev.EvalConfig(methods=["vanilla"], calib_videos=4, test_videos=2, calib_from="val")
    with pytest.raises(StanError, match="names no validation subjects"):
        run_job(ev.evaluate(dataset, [trained.path], cfg, tmp_path / "none"), stream=None)
    ck = tmp_path / "val.safetensors"
    shutil.copy(trained.path, ck)
    update_metadata(ck, {"training": {**trained.meta["training"], "subjects_val": [pos.subject]}})
    scored: list[tuple[str, set[str]]] = []
    real = ev._score_videos

    def spy(c, entries, st, label):
        scored.append((label, {e.subject for e in entries}))
        return (yield from real(c, entries, st, label))

    monkeypatch.setattr(ev, "_score_videos", spy)
    rep = run_job(ev.evaluate(dataset, [ck], cfg, tmp_path / "val"), stream=None)
    calib = [subjects for label, subjects in scored if "calibration" in label]
    assert calib and all(subjects == {pos.subject} for subjects in calib)
    assert {r["calibrated_on"] for r in rep.frame_rows} == {"val"}
    assert "validation subjects" in rep.markdown
    ev.store_thresholds(ck, rep.frame_rows)
    assert load_checkpoint(ck).meta["thresholds"][METHOD]["calibrated_on"] == "val"
    # validation subjects without a target-class video in the manifest: nothing to calibrate protocol a on
    for subjects in ([*neg_only, "S99"], ["S99"]):
        update_metadata(ck, {"training": {**trained.meta["training"], "subjects_val": subjects}})
        with pytest.raises(StanError, match=r"validation subjects .* training split"):
            run_job(ev.evaluate(dataset, [ck], cfg, tmp_path / "neg"), stream=None)
    with pytest.raises(StanError, match="calibration videos come from"):
        run_job(ev.evaluate(dataset, [ck], ev.EvalConfig(calib_from="test"), tmp_path / "bad"), stream=None)


def test_a_fixed_reference_keeps_each_frames_gradient_with_its_own_frames() -> None:
    """The heatmaps' gradient must not flow through the video's median posture and body height to whichever
    frames are the medians (it made a few still frames take the whole colour scale); the values stay."""
    torch.manual_seed(0)
    n = 40
    p = torch.randn(n, FEATURE_JOINTS, 2, dtype=torch.float64) * 3 + 50
    p[:, 0, 1] -= 40  # the head above the ankles: a body height
    offsets = (-1, 0, 1)
    f0 = posture_features(p, offsets, 1.5)
    q = p.clone().requires_grad_(True)
    f = posture_features(q, offsets, 1.5, fixed_reference=True)
    assert torch.allclose(f, f0)
    (g,) = torch.autograd.grad(f[:5].sum(), q)  # the first five frames' features
    far = g[15:].abs().sum(dim=(1, 2))  # beyond the smoothing (3 sigma) and the context
    assert far.max() == 0
    q2 = p.clone().requires_grad_(True)
    (g2,) = torch.autograd.grad(posture_features(q2, offsets, 1.5)[:5].sum(), q2)
    assert g2[15:].abs().sum() > 0  # without it, the medians' frames get a share


def test_posture_analyses_with_maps_have_their_own_cache_key() -> None:
    from stanviewer.core.explain.result import POSTURE_HEATMAPS_VERSION

    assert AnalysisSettings(method=METHOD).key()["posture_heatmaps"] == POSTURE_HEATMAPS_VERSION
    assert "posture_heatmaps" not in AnalysisSettings(method=METHOD, heatmaps=False).key()
    assert "posture_heatmaps" not in AnalysisSettings(method="vanilla").key()


def test_body_part_maps_cover_the_read_frames(trained: Checkpoint, dataset: Path, tmp_path: Path) -> None:
    from stanviewer.core.explain.heatmaps import HeatmapReader

    e = read_manifest(dataset)[0]
    with open_video(e.video) as r:
        n = r.frame_count
        full = AnalysisSettings(method=METHOD, heatmap_side=48)
        a = run_job(analyze_reader(r, trained, full, heatmap_path=tmp_path / "h.zip"), stream=None)
        st = AnalysisSettings(method=METHOD, coverage="sampled", heatmap_side=48)
        s = run_job(analyze_reader(r, trained, st, heatmap_path=tmp_path / "s.zip"), stream=None)
    assert a.heatmap_path is not None and s.heatmap_path is not None
    h = HeatmapReader(a.heatmap_path)
    assert h.n == n and (h.frame_max > 0).mean() > 0.5
    hs = HeatmapReader(s.heatmap_path)
    read = np.arange(0, n, s.meta["window"]["step"])
    assert (hs.frame_max[read] > 0).any() and (np.delete(hs.frame_max, read) == 0).all()
    h.close()
    hs.close()


def test_a_body_part_map_puts_each_joints_blob_where_it_was_read() -> None:
    from stanviewer.core.explain.posture import body_part_map

    pts = np.array([[10.0, 5.0], [30.0, 20.0], [0.0, 0.0]])
    m = body_part_map(pts, np.array([2.0, 0.5, 0.0]), 2.0, (40, 30))
    assert m.shape == (30, 40) and np.unravel_index(np.argmax(m), m.shape) == (5, 10)
    assert m[5, 10] == pytest.approx(2.0, rel=1e-3) and m[20, 30] == pytest.approx(0.5, rel=1e-2)
    assert m[0, 0] < 1e-3  # a joint that adds nothing gets no blob
    assert not body_part_map(pts, np.zeros(3), 2.0, (40, 30)).any()


def test_joint_contributions_credit_the_displaced_joints_the_model_uses(trained: Checkpoint) -> None:
    """Gradient x displacement from the median posture: joints the features do not use get nothing; a video
    whose posture never moves gets nothing anywhere; a displaced feature joint may."""
    from stanviewer.core.explain.posture import joint_contributions
    from stanviewer.core.models.posture import JOINT_NAMES

    model = trained.model
    rng = np.random.default_rng(0)
    base = rng.uniform(-0.5, 0.5, (model.cfg.joints, 2)).astype(np.float32)
    base[JOINT_NAMES.index("head"), 1] = -0.8
    base[[JOINT_NAMES.index("ankle_l"), JOINT_NAMES.index("ankle_r")], 1] = 0.8
    still = np.repeat(base[None], 60, axis=0)
    square = (50.0, 50.0, 100.0)
    assert not joint_contributions(model, still, square, 1).any()
    moving = still + rng.normal(0, 0.02, still.shape).astype(np.float32)
    c = joint_contributions(model, moving, square, 1)
    assert c.shape == (60, model.cfg.joints) and (c >= 0).all()
    credited = {JOINT_NAMES[j] for j in np.flatnonzero(c.max(0) > 0)}
    assert credited and credited <= {*model.cfg.features, "pelvis"}


def test_an_unmasked_local_view_keeps_the_crop_square_and_its_own_cache() -> None:
    from dataclasses import replace

    from stanviewer.core.training.data import _cache_key
    from stanviewer.core.views import NEUTRAL, local_view

    frame = np.full((100, 100, 3), 200, np.uint8)
    box, square = (40.0, 20.0, 60.0, 80.0), (50.0, 50.0, 80.0)
    masked = local_view(frame, box, square, 32)
    whole = local_view(frame, box, square, 32, None)
    assert (masked[0, 0] == NEUTRAL).all() and (whole[0, 0] == 200).all()
    assert (masked[16, 16] == whole[16, 16]).all()
    spec = _spec()
    assert _cache_key("f" * 40, spec) != _cache_key("f" * 40, replace(spec, local_margin=None))
    assert _cache_key("f" * 40, ModelSpec(views="global")) == _cache_key(
        "f" * 40, replace(ModelSpec(views="global"), local_margin=None)
    )


def test_a_video_mask_box_stays_put_in_training_and_analysis(
    trained: Checkpoint, dataset: Path, pose_init: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``local_mask="video"``: one stable box per video masks every local view (a raised arm widening the
    frame's box must not move the mask's edge beside the trunk), in the training images and the analysis."""
    from dataclasses import replace

    import stanviewer.core.explain.posture as ep
    import stanviewer.core.training.data as td
    from stanviewer.core.views import mask_boxes

    boxes = np.array([[10, 20, 50, 100]] * 96 + [[0, 5, 90, 100]] * 4, np.float32)
    assert mask_boxes(boxes, "frame") is boxes
    stable = mask_boxes(boxes, "video")
    assert stable.shape == boxes.shape and (stable == stable[0]).all()
    assert stable[0, 0] < 10 and stable[0, 2] > 50 and stable[0, 1] < 20  # the arm's 4 % is inside it
    with pytest.raises(ValueError, match="local mask"):
        mask_boxes(boxes, "person")
    with pytest.raises(ValueError, match="local mask"):
        replace(_spec(), local_mask="person")
    assert ModelSpec.from_dict({k: v for k, v in _spec().to_dict().items() if k != "local_mask"}).local_mask == "frame"
    assert td._cache_key("f" * 40, _spec()) != td._cache_key("f" * 40, replace(_spec(), local_mask="video"))

    seen: list[np.ndarray] = []
    real_views, real_local = td.make_views, ep.local_view

    def spy_views(frames, views, size, boxes=None, square=None, margin=0.08):
        seen.append(np.asarray(boxes)[0].copy())
        return real_views(frames, views, size, boxes, square, margin)

    def spy_local(frame, box, square, size, margin=0.08):
        seen.append(np.asarray(box, np.float32).copy())
        return real_local(frame, box, square, size, margin)

    monkeypatch.setattr(td, "make_views", spy_views)
    monkeypatch.setattr(td, "cache_dir", lambda: tmp_path)  # decode the training images afresh
    monkeypatch.setattr(ep, "local_view", spy_local)
    e = read_manifest(dataset)[0]
    for mode in ("frame", "video"):
        ck = Checkpoint(trained.model, {**trained.meta, "spec": {**trained.meta["spec"], "local_mask": mode}},
                        trained.path, trained.sha256)  # fmt: skip
        seen.clear()
        td.prepare_video(e, ck.spec, dataset.parent, ck.spec.classes)
        n_train = len(seen)
        with open_video(e.video) as r:
            run_job(analyze_reader(r, ck, AnalysisSettings(method=METHOD, heatmaps=False)), stream=None)
        for part in (np.array(seen[:n_train]), np.array(seen[n_train:])):  # training images, then analysis
            moves = np.ptp(part, axis=0).max()
            if mode == "frame":
                assert moves > 1  # the arm moves the frame's box...
            else:
                assert moves < 1e-3  # ...and no longer the mask
    # a model trained under the stable mask keeps it, and records that its readers' start was not
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=2, reader_steps=0)
    res = run_job(train(dataset, replace(_spec(), local_mask="video"), tmp_path / "run", cfg), stream=None)
    m = load_checkpoint(res.best)
    assert m.spec.local_mask == "video" and m.meta["training"]["pose_readout"]["init_mask_box"] == "frame"
    from stanviewer.core.models.bundled import describe

    assert "masked by one stable box per video" in describe(m.path, m.meta)
    assert "stable box" not in describe(trained.path, trained.meta)


def test_smoothing_keeps_slow_posture_and_damps_a_one_frame_glitch() -> None:
    from stanviewer.core.models.posture import smooth_rows

    x = torch.zeros(41, 2, dtype=torch.float64)
    x[20] = 10.0
    y = smooth_rows(x, 1.5)
    assert float(y[20, 0]) < 3.0 and float(y.sum()) == pytest.approx(20.0)
    ramp = torch.linspace(0, 1, 41, dtype=torch.float64)[:, None]
    assert torch.allclose(smooth_rows(ramp, 1.5)[5:-5], ramp[5:-5])
    assert torch.equal(smooth_rows(ramp, 0.0), ramp)


def test_training_needs_the_training_videos_joints(dataset: Path, pose_init: Path, tmp_path: Path) -> None:
    import csv

    rows = list(csv.DictReader(dataset.read_text(encoding="utf-8").splitlines()))
    train_row = next(r for r in rows if r.get("split", "train") == "train")
    train_row["joints"] = ""
    bad = dataset.parent / "no_joints.csv"
    with bad.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init))
    with pytest.raises(StanError, match="no joints column"):
        run_job(train(bad, _spec(), tmp_path / "nj", cfg), stream=None)


def test_single_images_normalise_like_one_frame_clips_whatever_their_strides() -> None:
    from stanviewer.core.views import normalise, normalise_images

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    flipped = imgs[:, :, ::-1]  # a mirror image: negative strides
    x = normalise_images(flipped)
    assert x.shape == (3, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(x, normalise(np.ascontiguousarray(flipped)[:, None])[:, :, 0])
    assert torch.equal(normalise_images(imgs).flip(-1), x)


def test_readout_weights_grow_with_the_shoulders_distance_from_their_usual_height() -> None:
    from stanviewer.core.training.data import VideoSample
    from stanviewer.core.training.posture import READOUT_WEIGHT_SCALE, readout_weights

    j = _figure(40)
    height = 170.0  # head to ankles of the stick figure
    j[10:20, JOINT_NAMES.index("shoulder_l"), 1] -= READOUT_WEIGHT_SCALE * height  # a hike of 0.03 heights
    s = VideoSample("v", "S", 1, np.zeros((20, 1, 4, 4, 3), np.uint8), np.arange(0, 40, 2), 4, 2, None, 40, 10.0)
    assert np.array_equal(readout_weights(s, j, 0.0), np.ones(20))
    w = readout_weights(s, j, 4.0)
    assert np.allclose(w[5:10], 5.0) and np.allclose(np.delete(w, np.arange(5, 10)), 1.0)


def test_a_weighted_readout_is_the_weighted_ridge_solution(dataset: Path) -> None:
    """The read-out fit with weights solves the weighted ridge problem on standardised maps (checked against
    a direct solution), and weight 0 is the plain fit."""
    from stanviewer.core.training.data import load_samples
    from stanviewer.core.training.posture import _maps, _read_joints, _targets, fit_pose_readout, readout_weights

    spec = _spec()
    torch.manual_seed(0)
    model = PostureMIL(spec).eval()
    model.cfg.mirror = False
    samples = run_job(load_samples(dataset, spec), stream=None)[:2]
    entries = {e.name: e for e in read_manifest(dataset)}
    joints = {s.name: _read_joints(dataset.parent / entries[s.name].extra["joints"], 17) for s in samples}
    run_job(fit_pose_readout(model, samples, joints, ridge=3.0, weight=0.0), stream=None)
    plain = (model.pose.weight.detach().clone(), model.pose.bias.detach().clone())
    run_job(fit_pose_readout(model, samples, joints, ridge=3.0, weight=4.0), stream=None)

    m = torch.cat([_maps(model, s) for s in samples])
    y = torch.cat(
        [_targets(s, joints[s.name], spec.size, False).reshape(len(s.frame_index), -1) for s in samples]
    ).double()
    w = torch.from_numpy(np.concatenate([readout_weights(s, joints[s.name], 4.0) for s in samples]))[:, None]
    assert w.max() > 1.0  # the generated videos' shoulders do move
    mu, sd = m.mean(0), m.std(0, unbiased=False) + 1e-6
    z = (m - mu) / sd
    zc, yc = z - (w * z).sum(0) / w.sum(), y - (w * y).sum(0) / w.sum()
    a = zc.T @ (w * zc) + 3.0 * float(w.mean()) * torch.eye(z.shape[1], dtype=torch.float64)
    coef = torch.linalg.solve(a, zc.T @ (w * yc))
    pred = z @ coef + ((w * y).sum(0) / w.sum() - ((w * z).sum(0) / w.sum()) @ coef)
    got = z.float() @ model.pose.weight.detach().T + model.pose.bias.detach()
    assert torch.allclose(got.double(), pred, atol=2e-3)
    assert not torch.allclose(model.pose.weight, plain[0])  # the weighting changed the fit
    assert model.pose.weight.shape == plain[0].shape and model.pose.bias.shape == plain[1].shape


@pytest.mark.parametrize("weight", [-1.0, float("nan")])
def test_a_negative_or_missing_readout_weight_is_refused(dataset: Path, pose_init: Path, tmp_path: Path,
                                                          weight: float) -> None:  # fmt: skip
    from stanviewer.core.training.posture import train_posture

    cfg = TrainConfig(init=str(pose_init), readout_weight=weight)
    with pytest.raises(StanError, match="read-out weight"):
        run_job(train_posture(dataset, _spec(), tmp_path / "bad", cfg), stream=None)


def test_reader_data_feeds_the_readers_only(
    dataset: Path, pose_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--reader-data: its videos (joints, any label) join every reader fit under names of their own; the
    heads never see them."""
    import stanviewer.core.training.posture as tp

    seen = _spy_on_reader_fits(monkeypatch)
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=1, reader_data=str(dataset))
    res = run_job(tp.train_posture(dataset, _spec(), tmp_path / "rd", cfg), stream=None)
    meta = load_checkpoint(res.best).meta["training"]
    n_extra = len(read_manifest(dataset))
    assert meta["pose_readout"]["reader_data"] == {"manifest": dataset.name, "videos": n_extra}
    extra = [n for n in seen if n.startswith(tp.READER_DATA_PREFIX)]
    # read-out, upper reader's training and its read-out: each sees the training videos and every extra one
    assert len(extra) == 3 * n_extra and len(seen) == 3 * (meta["videos_train"] + n_extra)
    # a reader data set without joints is refused before anything is fitted
    bad = tmp_path / "nojoints.csv"
    rows = dataset.read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    keep = [i for i, c in enumerate(header) if c != "joints"]
    base = dataset.parent
    lines = [",".join(header[i] for i in keep)]
    for r in rows[1:]:
        cells = r.split(",")
        cells[0] = str(base / cells[0])
        lines.append(",".join(cells[i] for i in keep))
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg_bad = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=1, reader_data=str(bad))
    with pytest.raises(StanError, match="joints column"):
        run_job(tp.train_posture(dataset, _spec(), tmp_path / "rd-bad", cfg_bad), stream=None)


def test_reader_data_from_folders_with_the_same_file_names_keeps_each_videos_joints(
    dataset: Path, tmp_path: Path
) -> None:
    """Two draws both holding S01_V01.mp4 (the usual case when data sets are combined): every video must
    be read with its own joints, not the other folder's (the names once collided and mixed them up)."""
    import shutil

    import stanviewer.core.training.posture as tp

    rows = dataset.read_text(encoding="utf-8").splitlines()
    header = rows[0].split(",")
    lines = [rows[0]]
    for tag in ("a", "b"):
        shutil.copytree(dataset.parent, tmp_path / tag, ignore=shutil.ignore_patterns("*.csv"), dirs_exist_ok=True)
        for sub in ("labels", "joints", "boxes"):
            shutil.copytree(dataset.parent / sub, tmp_path / tag / sub, dirs_exist_ok=True)
        for r in rows[1:]:
            cells = r.split(",")
            lines.append(",".join(f"{tag}/{c}" if header[i] in ("video", "frame_labels", "boxes", "joints") and c
                                  else c for i, c in enumerate(cells)))  # fmt: skip
    # folder b's joints differ from folder a's
    for p in (tmp_path / "b" / "joints").glob("*.csv"):
        body = p.read_text(encoding="utf-8").splitlines()
        moved = [",".join([r.split(",")[0]] + [str(float(v) + 7.0) for v in r.split(",")[1:]]) for r in body[1:]]
        p.write_text("\n".join([body[0], *moved]) + "\n", encoding="utf-8")
    both = tmp_path / "both.csv"
    both.write_text("\n".join(lines) + "\n", encoding="utf-8")
    joints: dict[str, np.ndarray] = {}
    samples = run_job(tp._reader_data(both, _spec(), 1, joints, 17), stream=None)
    names = [s.name for s in samples]
    assert len(samples) == 2 * (len(rows) - 1) and len(set(names)) == len(names) == len(joints)
    for e in read_manifest(both):
        want = tp._read_joints(e.extra_path("joints", both.parent), 17)
        np.testing.assert_array_equal(joints[tp.READER_DATA_PREFIX + e.name], want)


def test_lift_shoulder_moves_the_image_and_the_shoulder_target_together() -> None:
    """The shoulder-lift augmentation: the shoulder's target moves by the drawn displacement and the image
    moves with it (a dot drawn at each joint is found at the joint's new target); the head, far away, stays."""
    import cv2

    from stanviewer.core.training.posture import lift_shoulder

    y = torch.tensor([[0.0, -0.6], [0.0, -0.3], [0.3, -0.25], [-0.3, -0.25]])
    px = (y.numpy() + 1) / 2 * 64 - 0.5
    img = np.zeros((64, 64, 3), np.float32)
    for x0, y0 in np.round(px).astype(int):
        img[y0, x0] = 255
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    rng = np.random.default_rng(3)
    moved = 0
    for _ in range(6):
        out, y2 = lift_shoulder(img, y, rng, 0.12)
        p2 = (y2.numpy() + 1) / 2 * 64 - 0.5
        for j in range(4):
            x0, y0 = np.round(p2[j]).astype(int)
            win = out[y0 - 3 : y0 + 4, x0 - 3 : x0 + 4, 0]
            iy, ix = np.unravel_index(win.argmax(), win.shape)
            assert abs(ix - 3) <= 1 and abs(iy - 3) <= 1, (j, p2[j])
        shift = np.abs(p2[2:, 1] - px[2:, 1])
        assert abs(p2[0, 1] - px[0, 1]) <= 0.1 * shift.max() + 1e-6  # the head hardly moves
        assert np.allclose(p2[:, 0], px[:, 0])  # vertical only
        assert shift.max() <= 0.12 * 64 + 1e-6
        moved += shift.max() > 1
    assert moved >= 4
    same, y3 = lift_shoulder(img, y, rng, 0.0)
    assert np.allclose(same, img, atol=1e-3) and torch.allclose(y3, y, atol=1e-6)


_UPPER_OPTIONS = [  # (TrainConfig field, train_reader keyword, value, refusal, what the record holds)
    ("upper_lift", "lift", 0.12, None, ("shoulder_lift", 0.12)),
    ("upper_lift", "lift", -0.1, "shoulder lift", None),
    ("upper_lift", "lift", 0.5, "shoulder lift", None),
    ("upper_lift", "lift", float("nan"), "shoulder lift", None),
    ("upper_weight", "weight", 4.0, None, ("draw_weighting", "1 + 4 * (shoulder deviation / 0.03 body heights)^2")),
    ("upper_weight", "weight", -1.0, "draw weight", None),
    ("upper_weight", "weight", float("nan"), "draw weight", None),
]


@pytest.mark.parametrize(("field", "keyword", "value", "refusal", "record"), _UPPER_OPTIONS)
def test_upper_reader_options_reach_its_training_and_the_record(
    dataset: Path, pose_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    field: str, keyword: str, value: float, refusal: str | None, record: tuple[str, object] | None,
) -> None:  # fmt: skip
    """--upper-lift and --upper-weight: the upper-body reader trains with them (the first reader without);
    they are written into the file's training record; values out of range are refused before any training."""
    import stanviewer.core.training.posture as tp

    calls: list[tuple[bool, float]] = []
    real = tp.train_reader

    def spy(model, samples, joints, **kw):
        calls.append((kw.get("upper", False), kw.get(keyword, 0.0)))
        return (yield from real(model, samples, joints, **kw))

    monkeypatch.setattr(tp, "train_reader", spy)
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=2, reader_steps=1,
                      **{field: value})  # fmt: skip
    if refusal:
        with pytest.raises(StanError, match=refusal):
            run_job(tp.train_posture(dataset, _spec(), tmp_path / "bad", cfg), stream=None)
        assert not calls
        return
    res = run_job(tp.train_posture(dataset, _spec(), tmp_path / "ok", cfg), stream=None)
    assert calls == [(False, 0.0), (True, value)]
    meta = load_checkpoint(res.best).meta["training"]
    assert record is not None and meta["pose_readout"]["upper_body"][record[0]] == record[1]
    assert meta["config"][field] == value


def test_a_heatmap_readout_reads_the_peak_cell_and_old_configs_stay_linear() -> None:
    """HeatmapReadout: a sharp heatmap on one cell reads that cell's centre (view coordinates); a config
    without ``upper_readout`` (files written before it) reads with the linear read-out; unknown ones fail."""
    from stanviewer.core.models.posture import HeatmapReadout

    head = HeatmapReadout(channels=2, joints=1, grid=4)
    with torch.no_grad():
        for p in head.parameters():
            p.zero_()
        head.conv[2].weight[0, 0, 0, 0] = 1.0  # the heatmap is the first hidden channel
        head.conv[0].weight[0, 0, 1, 1] = 100.0  # which copies input channel 0
    m = torch.zeros(1, 2, 4, 4)
    m[0, 0, 2, 1] = 1.0  # row 2, column 1
    q = head([m])
    assert torch.allclose(q, torch.tensor([[[(1.5 / 4) * 2 - 1, (2.5 / 4) * 2 - 1]]]), atol=1e-3)
    old = {k: v for k, v in PostureConfig().to_dict().items() if k != "upper_readout"}
    assert PostureConfig.from_dict(old).upper_readout == "linear"
    spec = _spec()
    spec.classes = ["normal", "compensation"]
    spec.backbone = {**PostureConfig().to_dict(), "upper_readout": "argmax"}
    with pytest.raises(ValueError, match="upper-body read-out"):
        PostureMIL(spec)


def test_training_a_softargmax_upper_reader_keeps_its_heatmaps(
    dataset: Path, pose_init: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--upper-readout softargmax: the heatmap read-out trains with the upper-body reader and is saved with
    it (no ridge fit for that reader); the file reads with it; a later --init keeps it with --upper-steps 0."""
    import stanviewer.core.training.posture as tp

    fits: list[bool] = []
    real_fit = tp.fit_pose_readout

    def spy(model, samples, joints, *a, **kw):
        fits.append(kw.get("upper", False))
        return (yield from real_fit(model, samples, joints, *a, **kw))

    monkeypatch.setattr(tp, "fit_pose_readout", spy)
    sam = {"upper_readout": "softargmax"}
    cfg = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=3, **sam)
    res = run_job(tp.train_posture(dataset, _spec(), tmp_path / "sam", cfg), stream=None)
    assert fits == [False]  # the first reader's ridge read-out only
    ck = load_checkpoint(res.best)
    m = ck.model
    assert isinstance(m, PostureMIL) and m.cfg.upper_readout == "softargmax"
    assert ck.meta["training"]["pose_readout"]["upper_body"]["readout"] == "softargmax"
    from stanviewer.core.models.bundled import describe

    assert "its upper-body image (heatmap read-out)" in describe(ck.path, ck.meta)
    fresh = PostureMIL(ck.spec)
    assert _changed(m.upper_heat, fresh.upper_heat)  # trained, and loaded back from the file
    x = torch.rand(2, 3, 32, 32)
    q = m.joints(x, x)
    assert q.shape == (2, len(JOINT_NAMES), 2) and torch.isfinite(q).all()
    # the upper joints come from the heatmaps (the linear read-out is unused)
    with torch.no_grad():
        m.upper_pose.weight.normal_()
    assert torch.allclose(m.joints(x, x), q)
    again = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(res.best), upper_steps=0,
                        upper_readout="softargmax")  # fmt: skip
    m2 = load_checkpoint(run_job(tp.train_posture(dataset, _spec(), tmp_path / "again", again), stream=None).best)
    assert not _changed(m2.model.upper_heat, m.upper_heat)
    none = TrainConfig(epochs=1, val_fraction=0, threads=1, init=str(pose_init), upper_steps=0, **sam)
    with pytest.raises(StanError, match="soft-argmax"):
        run_job(tp.train_posture(dataset, _spec(), tmp_path / "none", none), stream=None)
    bad = TrainConfig(init=str(pose_init), upper_readout="argmax")
    with pytest.raises(StanError, match="upper-body read-out"):
        run_job(tp.train_posture(dataset, _spec(), tmp_path / "bad", bad), stream=None)


def test_image_draws_follow_the_readout_weights() -> None:
    """--upper-weight: images are drawn in proportion to their read-out weights (a hike of 0.06 body heights
    weighs 1 + 4·2² = 17 with W = 4), and each draw names a real image of its sample."""
    from stanviewer.core.training.data import VideoSample
    from stanviewer.core.training.posture import READOUT_WEIGHT_SCALE, image_draws

    j = _figure(40)
    j[10:20, JOINT_NAMES.index("shoulder_l"), 1] -= 2 * READOUT_WEIGHT_SCALE * 170.0
    imgs = np.zeros((20, 1, 4, 4, 3), np.uint8)
    a = VideoSample("a", "S", 1, imgs, np.arange(0, 40, 2), 4, 2, None, 40, 10.0)
    b = VideoSample("b", "S", 0, imgs[:12], np.arange(0, 24, 2), 4, 2, None, 24, 10.0)
    draws = image_draws([a, b], {"a": j, "b": _figure(24)}, 4.0)
    ks, within = draws.sample(np.random.default_rng(0), 40000)
    assert set(np.unique(ks)) == {0, 1}
    assert within.min() >= 0 and within[ks == 0].max() == 19 and within[ks == 1].max() == 11
    hike = (ks == 0) & (within >= 5) & (within < 10)
    expected = 5 * 17 / (5 * 17 + 15 + 12)  # five hike images of weight 17 among 27 of weight 1
    assert abs(hike.mean() - expected) < 0.01
    plain = image_draws([a, b], {"a": j, "b": _figure(24)}, 0.0)
    ks0, _ = plain.sample(np.random.default_rng(1), 32000)
    assert abs((ks0 == 0).mean() - 20 / 32) < 0.01
