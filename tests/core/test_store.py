"""The analysis cache key: a cached analysis is reused only for the same video, model, settings and ROI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from stanviewer.core.explain.result import SCORING_VERSION, AnalysisSettings
from stanviewer.core.explain.store import analysis_key, analyze_video, roi_identity
from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.progress import Progress
from stanviewer.core.roi.files import NoneProvider


def test_roi_identity_follows_views_and_provider_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert roi_identity({"views": "global", "roi_provider": "motion"}) is None
    local = roi_identity({"views": "local", "roi_provider": "truth"})
    assert local is not None and local["provider"] == "motion"  # boxes from files -> motion on new videos
    assert roi_identity(ModelSpec(views="global+local", roi_provider="none"))["provider"] == "none"
    st = AnalysisSettings(method="vanilla")
    k1 = analysis_key("fp", "sha", st, local)
    from stanviewer.core.roi.motion import MotionProvider

    monkeypatch.setattr(MotionProvider, "version", MotionProvider.version + 1)
    k2 = analysis_key("fp", "sha", st, roi_identity({"views": "local", "roi_provider": "truth"}))
    assert k1 != k2
    assert analysis_key("fp", "sha", st) == analysis_key("fp", "sha", st, None)


def test_roi_identity_follows_the_detector_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A model reading new videos through ``checked`` (or ``learned``) boxes: replacing the detector file
    changes the boxes, so analyses cached with the old detector must not be reused."""
    import stanviewer.core.roi.learned as learned

    det = tmp_path / "det.safetensors"
    monkeypatch.setattr(learned, "bundled_detector_path", lambda: det)
    st = AnalysisSettings(method="posture")
    keys = {}
    for content in (b"detector one", b"detector two"):
        det.write_bytes(content)
        for provider in ("checked", "learned"):
            ident = roi_identity({"views": "local", "roi_provider": provider})
            keys[content, provider] = analysis_key("fp", "sha", st, ident)
    assert keys[b"detector one", "checked"] != keys[b"detector two", "checked"]
    assert keys[b"detector one", "learned"] != keys[b"detector two", "learned"]
    # motion boxes depend on no file: the key (and every analysis cached with it) stays as it was
    assert "extra" not in roi_identity({"views": "local", "roi_provider": "motion"})


def _micro_checkpoint(tmp_path: Path, seed: int, **spec: object) -> Path:
    """A tiny random STAN (one block per stage, 4 frames of 32 px, global view unless ``spec`` says
    otherwise) saved as ``tmp_path / "m.safetensors"``."""
    torch.manual_seed(seed)
    backbone = {"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 64], "head_dim": 16, "name": "micro"}
    model = STAN(ModelSpec(**{"views": "global", "frames": 4, "size": 32, "backbone": backbone, **spec}))
    return save_checkpoint(tmp_path / "m.safetensors", model, {"name": "micro"})


def _run(job) -> tuple[object, list[str]]:
    msgs = []
    try:
        while True:
            p = next(job)
            if isinstance(p, Progress):
                msgs.append(p.message)
    except StopIteration as e:
        return e.value, msgs


def test_cached_analysis_is_not_reused_after_the_roi_provider_changed(
    make_video: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ck = load_checkpoint(_micro_checkpoint(tmp_path, 0, views="local", roi_provider="none"))
    video = make_video("store_roi.mp4", 20)
    st = AnalysisSettings(method="window", heatmaps=False)
    (a1, f1), _ = _run(analyze_video(video, ck, st))
    (a2, f2), msgs = _run(analyze_video(video, ck, st))
    assert f2 == f1 and "cached" in msgs and np.allclose(a1.scores, a2.scores, atol=1e-5)
    monkeypatch.setattr(NoneProvider, "version", 2, raising=False)  # a new person finder
    (_, f3), msgs = _run(analyze_video(video, ck, st))
    assert f3 != f1 and "cached" not in msgs


def test_window_probability_covers_each_window_time_span(make_video: Callable[..., Path], tmp_path: Path) -> None:
    """Every frame's window probability is the mean over all windows (all sampling phases) whose time span
    holds it: from the first sampled frame to the frame before the sample after the last one. Scoring
    version 1 gave each window to its sampled frames only, which left a comb of single frames at the start."""
    ck = load_checkpoint(_micro_checkpoint(tmp_path, 1))  # 5 model frames/s
    video = make_video("window_span.mp4", 61)  # 25 fps -> a sample every 5 frames
    st = AnalysisSettings(method="window", heatmaps=False)
    (a, _), _ = _run(analyze_video(video, ck, st, use_cache=False))
    n, step = len(a.scores), 5
    want = np.zeros(n)
    cnt = np.zeros(n)
    for w in a.windows:
        want[w["start"] : min(n, w["end"] + step)] += w["prob"]
        cnt[w["start"] : min(n, w["end"] + step)] += 1
    assert (cnt > 0).all()
    np.testing.assert_allclose(a.window_prob, want / cnt, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.raw, want / cnt, rtol=1e-5, atol=1e-6)  # the window method's score, too
    assert (cnt[step:-step] >= step).all()  # past the first sample, every phase speaks for every frame
    assert a.meta["settings"]["scoring"] == SCORING_VERSION


def test_calibrating_some_methods_keeps_the_others(tmp_path: Path) -> None:
    from stanviewer.core.evaluate import store_thresholds
    from stanviewer.core.models.checkpoint import read_metadata, update_metadata

    path = _micro_checkpoint(tmp_path, 0)
    stored = {
        "thresholds": {"vanilla": {"threshold": 0.3, "test_f1": 0.6, "protocol": "a"}},
        "default_method": "vanilla",
    }
    update_metadata(path, stored)

    def row(method: str, th: float, f1: float, **kw: str) -> dict:
        base = {"model": "micro", "method": method, "sequence": "long", "protocol": "a"}
        return {**base, "threshold": th, "f1": f1, **kw}

    rows = [row("window", 0.5, 0.55), row("window", 0.1, 0.9, protocol="b"), row("gradcam", 0.2, 0.9, sequence="short")]
    msg = store_thresholds(path, rows)
    meta = read_metadata(path)
    assert meta["thresholds"]["vanilla"]["threshold"] == 0.3 and meta["thresholds"]["window"]["threshold"] == 0.5
    assert "gradcam" not in meta["thresholds"]  # only the long sequence, protocol a is stored
    assert meta["default_method"] == "vanilla" and "(kept)" in msg
    # a better F1 of another run does not move the default: it was measured on other videos
    msg = store_thresholds(path, [row("window", 0.45, 0.7)])
    assert read_metadata(path)["default_method"] == "vanilla" and "kept: not evaluated this time" in msg
    store_thresholds(path, [row("window", 0.45, 0.7), row("vanilla", 0.35, 0.62)])  # both on the same videos
    meta = read_metadata(path)
    assert meta["default_method"] == "window" and meta["thresholds"]["window"]["threshold"] == 0.45
    assert meta["thresholds"]["vanilla"]["threshold"] == 0.35


def test_occlusion_window_is_the_geometric_mean_of_occlusion_and_window_probability(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    from stanviewer.core.explain.result import PartialScores

    ck = load_checkpoint(_micro_checkpoint(tmp_path, 2))
    video = make_video("occlusion_window.mp4", 47)
    runs = {}
    for method in ("occlusion", "occlusion-window"):
        (runs[method], _), _ = _run(analyze_video(video, ck, AnalysisSettings(method=method), use_cache=False))
    occ, ow = runs["occlusion"], runs["occlusion-window"]
    np.testing.assert_allclose(ow.window_prob, occ.window_prob, rtol=1e-5)
    want = np.sqrt(np.clip(occ.raw.astype(np.float64), 0, None) * occ.window_prob)
    np.testing.assert_allclose(ow.raw, want, rtol=1e-4, atol=1e-7)
    assert ow.heatmap_path is None and ow.meta["settings"]["occlusion_span"] == 1
    # the growing curve of a running analysis is combined the same way
    ones = np.array([1, 1, 0])
    part = PartialScores(np.array([4.0, 1.0, 0.0]), ones, np.array([0.25, 1.0, 0]), ones, window_weighted=True)
    curve = part.curve()
    assert np.isnan(curve[2]) and curve[0] == curve[1]  # sqrt(4 * 0.25) == sqrt(1 * 1)


def test_partial_curves_show_only_settled_frames_without_gaps(
    make_video: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an analysis runs, its curve grows from the start without holes: frames at the frontier
    that only some sampling phases have reached (a dashed curve in the app) wait until they settle."""
    import itertools
    import types

    from stanviewer.core.explain import scoring

    clock = itertools.count(0.0, 1.0)  # every call a second later: a partial after every batch
    monkeypatch.setattr(scoring, "time", types.SimpleNamespace(monotonic=lambda: next(clock)))
    ck = load_checkpoint(_micro_checkpoint(tmp_path, 3))
    video = make_video("partial_curves.mp4", 61)
    job = analyze_video(video, ck, AnalysisSettings(method="vanilla", batch=2, heatmaps=False), use_cache=False)
    shown = []
    try:
        while True:
            p = next(job)
            if getattr(p, "partial", None) is not None:
                c = p.partial.curve()
                k = int(np.count_nonzero(~np.isnan(c)))
                assert np.all(~np.isnan(c[:k])) and np.all(np.isnan(c[k:])), "a partial curve with holes"
                shown.append(k)
    except StopIteration as stop:
        analysis, _ = stop.value
    assert len(shown) >= 3 and shown == sorted(shown) and shown[-1] == 61 == len(analysis.scores)
    assert 0 < shown[len(shown) // 2] < 61  # it really grew


def test_analyses_evaluate_made_come_after_the_users(make_video: Callable[..., Path], tmp_path: Path) -> None:
    """export, agree and the app take the first cached analysis: one evaluate made (sampled, no maps) must not
    push aside the one the user asked for, however new; a user's request for it makes it theirs."""
    import json
    import os

    from stanviewer.core.explain.store import EVALUATION, cached_analyses
    from stanviewer.core.video import open_video

    ck = load_checkpoint(_micro_checkpoint(tmp_path, 0))
    video = make_video("store_made_by.mp4", 20)
    with open_video(video) as r:
        fp = r.info.fingerprint
    (_, mine), _ = _run(analyze_video(video, ck, AnalysisSettings(method="window", heatmaps=False)))
    st = AnalysisSettings(method="window", heatmaps=False, coverage="sampled")
    (_, theirs), _ = _run(analyze_video(video, ck, st, made_by=EVALUATION))
    t = (mine / "analysis.json").stat().st_mtime
    os.utime(theirs / "analysis.json", (t + 60, t + 60))  # evaluate ran later
    assert json.loads((theirs / "analysis.json").read_text())["made_by"] == EVALUATION
    found = cached_analyses(fp)  # (other tests' videos of the same content may have analyses here too)
    assert found.index(mine) < found.index(theirs) and found[-1] == theirs
    (a, again), msgs = _run(analyze_video(video, ck, st))  # the user asks for the same analysis
    assert again == theirs and "cached" in msgs and "made_by" not in a.meta
    assert "made_by" not in json.loads((theirs / "analysis.json").read_text())
    assert cached_analyses(fp)[0] == theirs


def test_a_stopped_analysis_leaves_no_cache_folder(make_video: Callable[..., Path], tmp_path: Path) -> None:
    """Ctrl+C or Cancel part-way: the video's cache holds no empty or half-written folder afterwards."""
    from stanviewer.core.explain.store import cache_dir
    from stanviewer.core.video import open_video

    ck = load_checkpoint(_micro_checkpoint(tmp_path, 3))
    video = make_video("store_stopped.mp4", 40)
    with open_video(video) as r:
        base = cache_dir() / "analyses" / r.info.fingerprint[:32]
    before = set(base.iterdir()) if base.exists() else set()
    job = analyze_video(video, ck, AnalysisSettings(method="vanilla"), use_cache=False)
    next(job)  # the analysis has started: its folder exists
    assert set(base.iterdir()) != before
    job.close()  # what a cancelled worker or an interrupted command does to the generator
    after = set(base.iterdir()) if base.exists() else set()
    assert after == before


def test_stopping_one_of_two_runs_of_an_analysis_leaves_the_others_result(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """The app and a terminal analyse one video at once; one is stopped: the other's result survives, and
    the stopped run, had it finished second, would have kept the first one's folder."""
    ck = load_checkpoint(_micro_checkpoint(tmp_path, 4))
    video = make_video("store_two_runs.mp4", 40)
    st = AnalysisSettings(method="vanilla")
    stopped = analyze_video(video, ck, st, use_cache=False)
    next(stopped)
    running = analyze_video(video, ck, st, use_cache=False)
    next(running)  # both are under way
    stopped.close()
    (a, folder), _ = _run(running)
    assert (folder / "analysis.json").exists() and (folder / "heatmaps.zip").exists()
    assert a.heatmap_path == folder / "heatmaps.zip"
    late = analyze_video(video, ck, st, use_cache=False)
    next(late)
    (b, folder_b), _ = _run(late)  # finishes after the folder is there: keeps it
    assert folder_b == folder and b.heatmap_path == folder / "heatmaps.zip" and (folder / "heatmaps.zip").exists()
    assert not list(folder.parent.glob(".*.tmp"))


def test_a_cached_analysis_follows_its_video_to_where_it_is_now(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    """The video was renamed after its analysis: the analysis served from the cache names the new path."""
    import json
    import shutil

    ck = load_checkpoint(_micro_checkpoint(tmp_path, 6))
    first = tmp_path / "upload_0001.mp4"
    shutil.copy(make_video("store_moved.mp4", 20), first)
    st = AnalysisSettings(method="window", heatmaps=False)
    _run(analyze_video(first, ck, st))
    moved = tmp_path / "patient07_week2.mp4"
    first.rename(moved)
    (a, folder), msgs = _run(analyze_video(moved, ck, st))
    assert "cached" in msgs and a.meta["video"]["path"] == str(moved.resolve())
    assert json.loads((folder / "analysis.json").read_text(encoding="utf-8"))["video"]["path"] == str(moved.resolve())


def test_work_folders_of_killed_runs_are_swept(make_video: Callable[..., Path], tmp_path: Path) -> None:
    """SIGKILL or a power cut leaves a run's work folder; the next analysis of that video removes it."""
    import subprocess
    import sys

    from stanviewer.core.explain.store import cache_dir
    from stanviewer.core.video import open_video

    ck = load_checkpoint(_micro_checkpoint(tmp_path, 5))
    video = make_video("store_swept.mp4", 20)
    with open_video(video) as r:
        base = cache_dir() / "analyses" / r.info.fingerprint[:32]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from stanviewer.core.explain.store import _HOST

    stale = base / f".somekey.{int(dead.stdout)}-{_HOST}.abc123.tmp"
    live = base / f".otherkey.{os.getpid()}-{_HOST}.def456.tmp"
    elsewhere = base / f".thirdkey.{int(dead.stdout)}-0123abcd.fed987.tmp"  # another computer's run (NFS home)
    for p in (stale, live, elsewhere):
        p.mkdir(parents=True)
        (p / "heatmaps.zip").write_bytes(b"partial")
    _run(analyze_video(video, ck, AnalysisSettings(method="window", heatmaps=False), use_cache=False))
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_thresholds_go_to_their_own_file_when_two_checkpoints_share_a_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    from stanviewer.cli import main
    from stanviewer.core.evaluate import model_names, store_thresholds
    from stanviewer.core.models.checkpoint import read_metadata

    best = _micro_checkpoint(tmp_path, 0)  # both named "micro": best and last of one run
    (tmp_path / "run").mkdir()
    last = shutil.copy(best, tmp_path / "run" / "last.safetensors")
    names = model_names([best, Path(last)])
    assert names[str(best)] != names[str(last)] and all(n.startswith("micro (") for n in names.values())

    def row(model: str, th: float) -> dict:
        return {"model": model, "method": "vanilla", "sequence": "long", "protocol": "a", "threshold": th, "f1": 0.5}

    rows = [row(names[str(best)], 0.82), row(names[str(last)], 0.45)]
    store_thresholds(best, rows, names[str(best)])
    store_thresholds(last, rows, names[str(last)])
    assert read_metadata(best)["thresholds"]["vanilla"]["threshold"] == 0.82
    assert read_metadata(last)["thresholds"]["vanilla"]["threshold"] == 0.45
    # --calibrate never writes into the installed model by default
    assert main(["evaluate", str(tmp_path / "m.csv"), "--out", str(tmp_path / "e"), "--calibrate"]) == 2
    assert "name it with --checkpoint" in capsys.readouterr().err


def test_evaluate_names_labels_the_model_does_not_know(make_video: Callable[..., Path], tmp_path: Path) -> None:
    from stanviewer.core.errors import StanError
    from stanviewer.core.evaluate import EvalConfig, evaluate
    from stanviewer.core.progress import run_job

    video = make_video("store_labels.mp4", 20)
    other = make_video("store_labels_2.mp4", 20)
    (tmp_path / "fl.csv").write_text("frame,label\n" + "".join(f"{i},0\n" for i in range(20)), encoding="utf-8")
    pairs = [(video, "healthy", "train"), (other, "impaired", "test")]
    rows = [f"{v},s{k},{lab},fl.csv,{split}" for k, (v, lab, split) in enumerate(pairs)]
    (tmp_path / "m.csv").write_text(
        "video,subject,label,frame_labels,split\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    ck = _micro_checkpoint(tmp_path, 0)
    with pytest.raises(StanError, match=r"m\.csv: the manifest's label\(s\) 'healthy', 'impaired' are not classes"):
        run_job(evaluate(tmp_path / "m.csv", [ck], EvalConfig(methods=["window"]), tmp_path / "e"), stream=None)
