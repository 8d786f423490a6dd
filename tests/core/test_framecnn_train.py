"""Per-frame CNN in the rest of stanviewer: a tiny training run, whole-video explanations, evaluation's
randomisation check and the command line, on a few small synthetic videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.cli import build_parser
from stanviewer.core.errors import StanError
from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
from stanviewer.core.manifest import read_manifest
from stanviewer.core.models.bundled import describe
from stanviewer.core.models.checkpoint import Checkpoint, import_resnet, load_checkpoint, read_metadata
from stanviewer.core.models.framecnn import FrameCNN
from stanviewer.core.models.resnet import resnet_narrow
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import run_job
from stanviewer.core.training.train import TrainConfig, train
from stanviewer.core.video import open_video

ARCH = "cnn-narrow-patch"


def _spec(arch: str = ARCH, frames: int = 4) -> ModelSpec:
    return ModelSpec(arch=arch, views="global+local", frames=frames, size=32, sample_fps=5.0, roi_provider="truth")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("cnn-synth")
    return run_job(make_dataset(out, subjects=2, videos_per_subject=2, reps=(1, 1)), stream=None)


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    out = tmp_path_factory.mktemp("cnn-run")
    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=4)
    res = run_job(train(dataset, _spec(), out, cfg), stream=None)
    assert res.history and np.isfinite(res.history[0]["train_loss"])
    assert res.test["videos"] == 2
    return load_checkpoint(res.best)


def test_tiny_training_writes_a_cnn_checkpoint(trained: Checkpoint) -> None:
    assert isinstance(trained.model, FrameCNN)
    assert trained.spec.arch == ARCH
    tr = trained.meta["training"]
    assert tr["videos_train"] == 2 and tr["videos_test"] == 2
    assert tr["history"][0]["epoch"] == 1
    card = describe(trained.path, trained.meta)
    assert f"arch        {ARCH} (per-frame CNN: narrow ResNet" in card


def _frames_seen(a, step: int, T: int, n: int) -> np.ndarray:
    seen = np.zeros(n, bool)
    for w in a.windows:
        seen[np.arange(w["start"], w["end"] + 1, step)[:T]] = True
    return seen


@pytest.mark.parametrize("method", ["vanilla", "smoothgrad", "gradcam", "ig", "occlusion", "window"])
def test_explanations_cover_every_frame(trained: Checkpoint, dataset: Path, method: str) -> None:
    entry = next(e for e in read_manifest(dataset) if e.split == "test")
    reader = open_video(dataset.parent / entry.video)
    n = reader.frame_count
    from stanviewer.core.training.data import roi_for_video

    roi = roi_for_video(reader, "truth", entry, dataset.parent)
    st = AnalysisSettings(method=method, coverage="full", batch=8, samples=2, ig_steps=2, heatmaps=False)
    a = run_job(analyze_reader(reader, trained, st, roi=roi), stream=None)
    assert a.raw.shape == (n,) and a.scores.shape == (n,)
    assert np.isfinite(a.raw).all() and np.isfinite(a.scores).all()
    assert a.scores.min() >= 0 and a.scores.max() <= 1
    step = trained.spec.step_for(reader.fps)
    assert step > 1
    assert _frames_seen(a, step, trained.spec.frames, n).all(), "some frames were never inside a window"
    if method in ("vanilla", "gradcam"):
        # every frame gets its own value (Grad-CAM is per frame here: no pairs of frames share a time step)
        assert len(np.unique(np.round(a.raw, 9))) > 0.9 * n


def test_randomisation_check_resets_cnn_levels(trained: Checkpoint) -> None:
    from stanviewer.core.evaluate import _randomised

    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    head = _randomised(trained, "head").model.state_dict()
    deep = _randomised(trained, "blocks1").model.state_dict()
    assert not torch.equal(head["head.fc1.weight"], before["head.fc1.weight"])
    assert torch.equal(head["backbone.layer4.0.conv1.weight"], before["backbone.layer4.0.conv1.weight"])
    for k in ("backbone.layer4.0.conv1.weight", "backbone.layer1.0.conv1.weight", "backbone.conv1.weight"):
        assert not torch.equal(deep[k], before[k]), k
    assert all(torch.equal(v, before[k]) for k, v in trained.model.state_dict().items())


def test_init_from_imported_weights_needs_same_clip_length(dataset: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = tmp_path / "narrow-imagenet.pth"
    torch.save({k: v for k, v in resnet_narrow(num_classes=1000).state_dict().items()}, src)
    init, _ = import_resnet(src, tmp_path / "init.safetensors", ARCH, ["normal", "compensation"], frames=6, size=32)
    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, init=str(init))
    with pytest.raises(StanError, match="made for 6-frame clips, this run uses 4"):
        run_job(train(dataset, _spec(), tmp_path / "run", cfg), stream=None)


def test_cli_accepts_cnn_archs(tmp_path: Path) -> None:
    p = build_parser()
    a = p.parse_args(["train", "m.csv", "--out", str(tmp_path), "--arch", "cnn-resnet50-rnn"])
    assert a.arch == "cnn-resnet50-rnn"
    with pytest.raises(SystemExit):
        p.parse_args(["train", "m.csv", "--out", str(tmp_path), "--arch", "cnn-vgg-fcl"])
    b = p.parse_args(["model", "import", "w.pth", "--classes", "a,b", "--out", "x.safetensors", "--arch", ARCH])
    assert b.arch == ARCH


def test_cli_model_import_resnet_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stanviewer.cli import main

    torch.manual_seed(1)
    src = tmp_path / "resnet-narrow-imagenet.pth"
    torch.save(resnet_narrow(num_classes=1000).state_dict(), src)
    out = tmp_path / "imported.safetensors"
    args = ["model", "import", str(src), "--arch", "cnn-narrow-fcl", "--classes", "normal,compensation"]
    assert main([*args, "--out", str(out), "--frames", "8", "--size", "64", "--views", "global"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "dropped the checkpoint's classifier fc" in text
    meta = read_metadata(out)
    assert meta["spec"]["arch"] == "cnn-narrow-fcl" and meta["spec"]["frames"] == 8
    assert main(["model", "info", str(out)]) == 0
    info = capsys.readouterr().out
    assert "cnn-narrow-fcl (per-frame CNN" in info and src.name in info


def test_freeze_stages_on_a_resnet() -> None:
    from stanviewer.core.training.train import freeze_stages

    model = FrameCNN(_spec())
    frozen = freeze_stages(model, 2)
    bb = model.backbone
    assert not any(p.requires_grad for m in (bb.conv1, bb.bn1, bb.layer1, bb.layer2) for p in m.parameters())
    assert all(p.requires_grad for m in (bb.layer3, bb.layer4, model.head) for p in m.parameters())
    assert len(frozen) == 4
    model = FrameCNN(_spec())
    freeze_stages(model, 4)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


def test_pose_pretraining_then_head_only_on_standardised_frame_features(dataset: Path, tmp_path: Path) -> None:
    """The recipe that made STAN learn, for the per-frame CNN: joints per frame, then the head alone."""
    from stanviewer.core.training.pretrain import pretrain_pose

    spec = _spec()
    pre = run_job(pretrain_pose(dataset, spec, tmp_path / "pre", steps=3, batch=2, threads=1), stream=None)
    p = load_checkpoint(pre)
    assert isinstance(p.model, FrameCNN) and p.meta["pretraining"]["steps"] == 3
    # one joint prediction per frame: the pose head saw T time steps (the ResNet keeps T, UniFormer halves it)
    assert (tmp_path / "pre" / "pretrain_history.csv").is_file()
    spec_n = _spec()
    spec_n.feature_norm = True
    cfg = TrainConfig(epochs=2, batch_videos=2, val_fraction=0, threads=1, max_windows=4, init=str(pre))
    cfg.freeze_stages = 4
    res = run_job(train(dataset, spec_n, tmp_path / "A", cfg), stream=None)
    a = load_checkpoint(res.last).model
    assert isinstance(a, FrameCNN) and a.spec.feature_norm
    for (k, v), (_, w) in zip(a.backbone.state_dict().items(), p.model.backbone.state_dict().items()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.head.fc2.weight, p.model.head.fc2.weight)
    D = a.backbone.num_features
    assert a.feat_mean.shape == (D,) and float(a.feat_std.mean()) != 1.0
    x = torch.randn(1, 3, spec.frames, spec.size, spec.size)
    with torch.no_grad():
        f = a.features(x, x)
        assert torch.allclose(a(x, x), a.head((f - a.feat_mean) / a.feat_std), atol=1e-5)


def test_a_pretrained_resnet_initialises_any_sequence_head(dataset: Path, tmp_path: Path) -> None:
    """One pose-pretrained ResNet serves the fcl, patch and rnn heads; a STAN checkpoint does not fit."""
    src = FrameCNN(_spec())
    from stanviewer.core.models.checkpoint import save_checkpoint

    init = save_checkpoint(tmp_path / "patch.safetensors", src)
    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2, init=str(init))
    cfg.freeze_stages = 4
    res = run_job(train(dataset, _spec("cnn-narrow-fcl"), tmp_path / "fcl", cfg), stream=None)
    m = load_checkpoint(res.last).model
    assert m.spec.arch == "cnn-narrow-fcl"
    for (k, v), (_, w) in zip(m.backbone.state_dict().items(), src.backbone.state_dict().items()):
        assert torch.equal(v, w), k
    from stanviewer.core.models.stan import STAN

    stan = save_checkpoint(tmp_path / "stan.safetensors", STAN(ModelSpec(views="global+local", frames=4, size=32)))
    cfg.init = str(stan)
    with pytest.raises(StanError, match="--init checkpoint is tiny"):
        run_job(train(dataset, _spec("cnn-narrow-fcl"), tmp_path / "bad", cfg), stream=None)


def test_a_backbone_with_other_class_names_initialises_your_own_classes(dataset: Path, tmp_path: Path) -> None:
    """pretrain saves normal/compensation; a user's manifest says healthy/impaired: the backbone is used, the
    head is not (it stays as built), and the run says so."""
    import csv

    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.progress import Progress

    src = FrameCNN(_spec())
    init = save_checkpoint(tmp_path / "pretrained.safetensors", src)
    rows = list(csv.DictReader(dataset.open(encoding="utf-8")))
    for r in rows:
        r["label"] = {"normal": "healthy", "compensation": "impaired"}[r["label"]]
        for c in ("video", "frame_labels", "boxes", "joints"):
            if r.get(c):
                r[c] = str((dataset.parent / r[c]).resolve())
    own = tmp_path / "own.csv"
    with own.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    spec = _spec()
    spec.classes, spec.target = ["healthy", "impaired"], "impaired"
    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2, init=str(init))
    cfg.freeze_stages = 4
    seen: list[Progress] = []
    res = run_job(train(own, spec, tmp_path / "own", cfg), stream=None, on_progress=seen.append)
    m = load_checkpoint(res.last).model
    assert m.spec.classes == ["healthy", "impaired"]
    for (k, v), (_, w) in zip(m.backbone.state_dict().items(), src.backbone.state_dict().items()):
        assert torch.equal(v, w), k
    assert any("its head is not used" in p.message for p in seen)
