"""STAN training recipe: standardised features before the head, head-only training on cached features,
fine-tuning from a head-only model with fixed BatchNorm statistics; on a few small synthetic videos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.progress import run_job
from stanviewer.core.training.train import TrainConfig, load_backbone, train


def _spec(**kw) -> ModelSpec:
    base = dict(views="local", frames=4, size=32, sample_fps=5.0, roi_provider="truth", head_hidden=8)
    return ModelSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stanviewer.core.synth import make_dataset

    out = tmp_path_factory.mktemp("stan-synth")
    return run_job(make_dataset(out, subjects=2, videos_per_subject=2, reps=(1, 1)), stream=None)


def test_feature_norm_standardises_before_the_head(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = STAN(_spec(feature_norm=True)).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    f = model.features(x)
    mean, std = f.mean(0).detach(), torch.full_like(f[0], 0.5)
    model.set_feature_stats(mean, std)
    with torch.no_grad():
        assert torch.allclose(model(x), model.classifier((f - mean) / std), atol=1e-6)
        path = save_checkpoint(tmp_path / "m.safetensors", model)
        back = load_checkpoint(path)
        assert back.spec.feature_norm
        assert torch.allclose(back.model.feat_mean, mean) and torch.allclose(back.model(x), model(x), atol=1e-6)
    with pytest.raises(ValueError, match="no feature standardisation"):
        STAN(_spec()).set_feature_stats(mean, std)


def test_load_backbone_fills_in_missing_feature_stats() -> None:
    src = STAN(_spec(head_hidden=0))
    dst = STAN(_spec(feature_norm=True))
    load_backbone(dst, src, same_head=False)
    assert torch.equal(dst.backbone.patch_embed1.proj.weight, src.backbone.patch_embed1.proj.weight)
    assert torch.equal(dst.feat_std, torch.ones_like(dst.feat_std))


def test_head_only_then_fine_tune(dataset: Path, tmp_path: Path) -> None:
    spec = _spec(feature_norm=True)
    torch.manual_seed(0)
    init = STAN(spec)
    init_path = save_checkpoint(tmp_path / "init.safetensors", init)
    cfg = TrainConfig(epochs=2, batch_videos=2, val_fraction=0, threads=1, max_windows=4, init=str(init_path))
    cfg.freeze_stages = 4
    res = run_job(train(dataset, spec, tmp_path / "A", cfg), stream=None)
    a = load_checkpoint(res.last).model
    # the backbone did not move, the head did, the standardisation was measured on the training windows
    for (k, v), (_, w) in zip(a.backbone.state_dict().items(), init.backbone.state_dict().items()):
        assert torch.equal(v, w), k
    assert not torch.equal(a.mlp_head[0].weight, init.mlp_head[0].weight)
    assert float(a.feat_std.mean()) != 1.0 and float(a.feat_mean.abs().sum()) > 0
    # fine-tune the last stages: the stats come from the init, BatchNorm statistics stay fixed
    cfg_b = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=4, init=str(res.last))
    cfg_b.freeze_stages = 2
    res_b = run_job(train(dataset, spec, tmp_path / "B", cfg_b), stream=None)
    b = load_checkpoint(res_b.last).model
    assert torch.equal(b.feat_mean, a.feat_mean) and torch.equal(b.feat_std, a.feat_std)
    assert torch.equal(b.backbone.norm.running_mean, a.backbone.norm.running_mean)
    assert not torch.equal(b.backbone.blocks4[0].attn.qkv.weight, a.backbone.blocks4[0].attn.qkv.weight)

    # the generator's videos: the model is marked synthetic-only, and its card warns so
    from stanviewer.core.models.bundled import describe
    from stanviewer.core.models.checkpoint import read_metadata

    assert read_metadata(res_b.best)["synthetic_only"] is True
    assert "Trained on synthetic videos" in describe(res_b.best, read_metadata(res_b.best))


def test_a_model_trained_on_other_videos_is_not_called_synthetic(dataset: Path, tmp_path: Path) -> None:
    """The same videos copied out of the generator's folder (no synth.json): someone's own recordings."""
    import shutil

    from stanviewer.core.manifest import trained_on_synthetic_only

    assert trained_on_synthetic_only(dataset)
    own = tmp_path / "own"
    shutil.copytree(dataset.parent, own)
    (own / "synth.json").unlink()
    assert not trained_on_synthetic_only(own / dataset.name)


def test_position_profile_divides_out_window_position_bias(dataset: Path, tmp_path: Path) -> None:
    """Gradients depend on where a frame sits in the window; the scorer measures and divides that out."""
    import numpy as np

    from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
    from stanviewer.core.manifest import read_manifest
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.training.data import roi_for_video
    from stanviewer.core.video import open_video

    torch.manual_seed(1)
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", STAN(_spec())))
    entry = next(e for e in read_manifest(dataset) if e.split == "test")
    reader = open_video(dataset.parent / entry.video)
    roi = roi_for_video(reader, "truth", entry, dataset.parent)
    on = run_job(analyze_reader(reader, ck, AnalysisSettings(method="vanilla", heatmaps=False), roi=roi), stream=None)
    off = AnalysisSettings(method="vanilla", heatmaps=False, position_norm=False)
    plain = run_job(analyze_reader(reader, ck, off, roi=roi), stream=None)
    prof = np.asarray(on.meta["normalisation"]["position_profile"])
    assert prof.shape == (ck.spec.frames,) and abs(prof.mean() - 1) < 1e-3 and prof.std() > 0
    assert plain.meta["normalisation"]["position_profile"] is None
    assert not np.allclose(on.raw, plain.raw) and np.isfinite(on.raw).all()


def test_randomisation_check_resets_the_mlp_head(tmp_path: Path) -> None:
    """The sanity check's "head" level must change the classifier the model uses (the MLP head)."""
    from stanviewer.core.evaluate import _randomised

    torch.manual_seed(0)
    ck = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", STAN(_spec(feature_norm=True))))
    head = _randomised(ck, "head").model
    assert not torch.equal(head.mlp_head[0].weight, ck.model.mlp_head[0].weight)
    assert torch.equal(head.backbone.blocks4[0].attn.qkv.weight, ck.model.backbone.blocks4[0].attn.qkv.weight)
    deep = _randomised(ck, "blocks3").model
    assert not torch.equal(deep.backbone.blocks3[0].attn.qkv.weight, ck.model.backbone.blocks3[0].attn.qkv.weight)
    assert torch.equal(deep.backbone.blocks2[0].conv1.weight, ck.model.backbone.blocks2[0].conv1.weight)


def test_parallel_preparation_gives_the_same_samples(dataset: Path, tmp_path: Path, monkeypatch) -> None:
    from stanviewer.core.training.data import load_samples

    spec = _spec()
    monkeypatch.setenv("STANVIEWER_CACHE_DIR", str(tmp_path / "a"))
    one = run_job(load_samples(dataset, spec), stream=None)
    monkeypatch.setenv("STANVIEWER_CACHE_DIR", str(tmp_path / "b"))
    two = run_job(load_samples(dataset, spec, workers=2), stream=None)
    assert [s.name for s in one] == [s.name for s in two]
    for a, b in zip(one, two):
        assert a.images.shape == b.images.shape and (a.images == b.images).all()
        assert (a.frame_index == b.frame_index).all() and a.label == b.label
    assert len(list((tmp_path / "b" / "train").glob("*.npz"))) == len(two)


def test_pose_pretraining_on_an_explicit_device(dataset: Path, tmp_path: Path) -> None:
    from stanviewer.core.errors import StanError
    from stanviewer.core.training.pretrain import pretrain_pose

    spec = _spec(views="global+local")
    job = pretrain_pose(dataset, spec, tmp_path / "pre", steps=2, batch=2, threads=1, device="cpu")
    out = run_job(job, stream=None)
    assert load_checkpoint(out).model.spec.size == spec.size
    if not torch.cuda.is_available():
        with pytest.raises(StanError, match="CUDA"):
            run_job(pretrain_pose(dataset, spec, tmp_path / "pre2", steps=1, batch=2, device="cuda"), stream=None)


def test_folds_of_subjects() -> None:
    from stanviewer.core.errors import StanError
    from stanviewer.core.training.cv import folds

    subjects = ["S3", "S1", "S2", "S1", "S4"]
    assert folds(subjects, "loso") == [["S1"], ["S2"], ["S3"], ["S4"]]
    two = folds(subjects, "kfold:2", seed=0)
    assert len(two) == 2 and sorted(s for fold in two for s in fold) == ["S1", "S2", "S3", "S4"]  # disjoint
    assert folds(subjects, "kfold:2", seed=0) == two  # seeded
    for bad, words in (("kfold:x", "integer"), ("kfold:9", "between 2"), ("kfold:1", "between 2"), ("lopo", "unknown")):
        with pytest.raises(StanError, match=words):
            folds(subjects, bad)


def test_cross_validation_writes_one_row_per_fold_and_the_mean(dataset: Path, tmp_path: Path) -> None:
    """``train --cv kfold:2`` on two subjects: each fold tests the subject it did not train on."""
    import csv

    from stanviewer.core.training.cv import cross_validate

    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2)
    rows = run_job(cross_validate(dataset, _spec(), tmp_path / "cv", cfg, "kfold:2"), stream=None)
    with open(tmp_path / "cv" / "cv.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["fold"] for r in table] == ["1", "2", "mean"]
    assert sorted(r["test_subjects"] for r in table[:2]) == ["S01", "S02"]
    assert [int(r["videos"]) for r in table] == [2, 2, 4]
    f1 = [r["f1"] for r in rows[:2]]
    assert float(table[2]["f1"]) == pytest.approx(sum(f1) / 2)
    assert (tmp_path / "cv" / "fold01" / "last.safetensors").exists()
    # again into the same folder: refused at once (its folds would mix with the new run's)
    from stanviewer.core.errors import StanError

    with pytest.raises(StanError, match=r"holds an earlier cross-validation \(fold01\): use a new --out"):
        run_job(cross_validate(dataset, _spec(), tmp_path / "cv", cfg, "loso"), stream=None)


def test_video_centre_subtracts_the_video_median_before_the_head(tmp_path: Path) -> None:
    from stanviewer.core.models.stan import video_centre

    f = torch.tensor([[1.0, 10.0], [3.0, 30.0], [2.0, -5.0]])
    assert torch.equal(video_centre(f), torch.tensor([2.0, 10.0]))
    with pytest.raises(ValueError, match="window features"):
        video_centre(torch.zeros(0, 2))
    torch.manual_seed(0)
    model = STAN(_spec(feature_norm=True, video_centre=True)).eval()
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        with pytest.raises(RuntimeError, match="set_video_centre"):
            model(x)
        c = video_centre(feats)
        model.set_video_centre(c)
        assert torch.allclose(model(x), model.classifier(feats - c), atol=1e-6)
        # an explicit centre per window (training scores several videos at once) overrides the stored one
        rows = torch.stack([c, c + 1, c - 1])
        assert torch.allclose(model.classify(feats, rows), model.classifier(feats - rows), atol=1e-6)
        back = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", model))
        assert back.spec.video_centre
        from stanviewer.core.models.bundled import describe

        assert "median window features" in describe(back.path, back.meta)
        model.set_video_centre(None)
        with pytest.raises(RuntimeError):
            model(x)


def test_video_centred_head_training_and_analysis(dataset: Path, tmp_path: Path) -> None:
    """--video-centre: head-only training centres every video on its median window features; fine-tuning
    centres on the step's windows; the analysis measures the video's centre in a first pass; other model
    families are refused with a clear message."""
    import numpy as np

    from stanviewer.core.errors import StanError
    from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
    from stanviewer.core.manifest import read_manifest
    from stanviewer.core.training.data import roi_for_video
    from stanviewer.core.video import open_video

    torch.manual_seed(0)
    init_path = save_checkpoint(tmp_path / "init.safetensors", STAN(_spec(feature_norm=True)))
    spec = _spec(feature_norm=True, video_centre=True)
    cfg = TrainConfig(epochs=2, batch_videos=2, val_fraction=0, threads=1, max_windows=4, init=str(init_path))
    cfg.freeze_stages = 4
    res = run_job(train(dataset, spec, tmp_path / "A", cfg), stream=None)
    ck = load_checkpoint(res.best)
    assert ck.spec.video_centre and res.test["videos"] > 0 and np.isfinite(res.test["loss"])
    # the head's standardisation was measured on centred features: their mean is ~0 by construction
    assert float(ck.model.feat_mean.abs().max()) < float(ck.model.feat_std.max())
    entry = next(e for e in read_manifest(dataset) if e.split == "test")
    reader = open_video(dataset.parent / entry.video)
    roi = roi_for_video(reader, "truth", entry, dataset.parent)
    an = run_job(analyze_reader(reader, ck, AnalysisSettings(method="window", heatmaps=False), roi=roi), stream=None)
    assert len(an.scores) == reader.frame_count and np.isfinite(an.window_prob).all()
    # fine-tuning keeps the centring: the stats come from the init, the last stage moves
    cfg_b = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=16, init=str(res.best))
    cfg_b.freeze_stages = 2
    res_b = run_job(train(dataset, spec, tmp_path / "B", cfg_b), stream=None)
    b = load_checkpoint(res_b.last).model
    assert b.spec.video_centre and torch.equal(b.feat_mean, ck.model.feat_mean.float())
    assert not torch.equal(b.backbone.blocks4[0].attn.qkv.weight, ck.model.backbone.blocks4[0].attn.qkv.weight)
    with pytest.raises(StanError, match="STAN models"):
        run_job(train(dataset, ModelSpec(arch="cnn-narrow-patch", video_centre=True), tmp_path / "C"), stream=None)


def test_an_unknown_class_names_the_manifest_it_is_in(dataset: Path, tmp_path: Path) -> None:
    from stanviewer.core.errors import StanError
    from stanviewer.core.training.data import load_samples

    text = dataset.read_text(encoding="utf-8").replace(",compensation,", ",Compensation,", 1)
    other = dataset.parent / "m_lcase.csv"  # beside the manifest: the same relative paths
    other.write_text(text, encoding="utf-8")
    try:
        with pytest.raises(StanError, match=r"m_lcase\.csv: line \d+: class 'Compensation' is not one of"):
            run_job(load_samples(other, _spec()), stream=None)
    finally:
        other.unlink()


def test_a_fold_with_test_videos_of_one_class_is_left_out_of_the_means(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its F1 would read 1.0 with nothing flagged and raise the mean; it gets no F1 and the mean says so."""
    import stanviewer.core.training.cv as cv
    from stanviewer.core.training.train import TrainResult

    def fake_train(manifest, spec, out, cfg, train_subjects, test_subjects):
        yield from ()
        f1 = 1.0 if "S01" in test_subjects else 0.5
        return TrainResult(
            best=out, last=out, history=[], val={}, test={"videos": 2, "f1": f1, "auroc": 0.7, "accuracy": 1.0}
        )

    monkeypatch.setattr(cv, "train", fake_train)
    lines = dataset.read_text(encoding="utf-8").splitlines()
    lines = [ln.replace(",compensation,", ",normal,") if ln.split(",")[1] == "S01" else ln for ln in lines]
    one = dataset.parent / "one_class_s01.csv"
    one.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2)
        rows = run_job(cv.cross_validate(one, _spec(), tmp_path / "cv", cfg, "loso"), stream=None)
    finally:
        one.unlink()
    by = {r["test_subjects"]: r for r in rows}
    assert by["S01"]["f1"] != by["S01"]["f1"] and "one class" in by["S01"]["note"]
    assert rows[-1]["f1"] == pytest.approx(0.5) and rows[-1]["note"] == "F1 and AUROC over 1 of 2 folds"


def test_resume_refuses_a_model_other_than_the_one_trained(dataset: Path, tmp_path: Path) -> None:
    """--resume with other --frames (or --arch) must not go on training another model (or end in a traceback)."""
    from dataclasses import replace

    from stanviewer.core.errors import StanError

    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2)
    run_job(train(dataset, _spec(), tmp_path / "r", cfg), stream=None)
    more = replace(cfg, epochs=2)
    with pytest.raises(StanError, match=r"--resume: this run was started with frames 4, this command asks for 8"):
        run_job(train(dataset, replace(_spec(), frames=8), tmp_path / "r", more, resume=True), stream=None)
    res = run_job(train(dataset, _spec(), tmp_path / "r", more, resume=True), stream=None)
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_a_new_run_does_not_overwrite_an_earlier_one(dataset: Path, tmp_path: Path) -> None:
    """Training again into a folder with a trained model would overwrite it and leave its other files
    (test_videos.csv, fold folders) beside the new run's: refused, with the way out."""
    from stanviewer.core.errors import StanError

    cfg = TrainConfig(epochs=1, batch_videos=2, val_fraction=0, threads=1, max_windows=2)
    first = run_job(train(dataset, _spec(), tmp_path / "r", cfg), stream=None)
    before = first.best.read_bytes()
    with pytest.raises(StanError, match=r"holds an earlier training run \(best\.safetensors\).*--resume"):
        run_job(train(dataset, _spec(), tmp_path / "r", cfg), stream=None)
    assert first.best.read_bytes() == before


def test_train_says_when_there_is_no_validation(dataset: Path, tmp_path: Path, capsys) -> None:
    from stanviewer.cli import main

    args = ["train", str(dataset), "--out", str(tmp_path / "nv"), "--views", "global", "--frames", "4"]
    args += ["--size", "32", "--epochs", "1", "--val-fraction", "0", "--threads", "1"]
    assert main(args) == 0
    assert "validation: none (--val-fraction gave no validation subject)" in capsys.readouterr().out
