"""``stanviewer analyze``: folders in batch, skipping what was analysed with the same settings, a bad file
reported without stopping the others, and the printed segments' options."""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from stanviewer.cli import main
from stanviewer.core.explain.batch import printed_segment_options
from stanviewer.core.explain.segments import SegmentOptions


@pytest.mark.slow
def test_analyze_a_folder_in_batch_and_resume(
    tiny_checkpoint: Path, make_video: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "séance du lundi"
    folder.mkdir()
    shutil.copy(make_video("analyze_a.mp4", 24), folder / "patient 1.mp4")
    shutil.copy(make_video("analyze_b.mp4", 30), folder / "patient 2.mp4")
    (folder / "broken.mp4").write_bytes(b"not a video" * 50)
    out = tmp_path / "results"
    args = ["analyze", str(folder), "--checkpoint", str(tiny_checkpoint), "--method", "window"]
    args += ["--out", str(out), "--no-heatmaps", "--threshold", "0", "--min-seconds", "0", "--merge-seconds", "0"]
    assert main(args) == 2  # one video failed; the others were analysed
    cap = capsys.readouterr()
    assert "broken" in cap.err and "Traceback" not in cap.err
    for name, n in (("patient 1", 24), ("patient 2", 30)):
        assert (out / name / "analysis.json").exists() and (out / name / "scores.csv").exists()
        assert f"{name}: predicted" in cap.out
        assert f"frames 0-{n - 1}" in cap.out  # threshold 0 flags every frame: one segment
        rows = (out / name / "segments.csv").read_text(encoding="utf-8").splitlines()
        assert rows[0] == "segment,first_frame,last_frame,start_s,end_s,duration_s,peak,mean,threshold"
        assert rows[1].startswith(f"1,0,{n - 1},0.0,") and rows[1].endswith(",0.0") and len(rows) == 2
    assert "not a diagnosis" in cap.out
    # a second run skips what is already there with the same settings
    assert main(args) == 2
    again = capsys.readouterr().out
    assert again.count("already analysed with these settings") == 2
    # ... and its segments are cut again at a new threshold, not left as the first run wrote them
    before = (out / "patient 1" / "segments.csv").read_text(encoding="utf-8")
    higher = [*args[: args.index("--threshold")], "--threshold", "0.75", *args[args.index("--threshold") + 2 :]]
    assert main(higher) == 2
    assert "already analysed" in capsys.readouterr().out
    last = (out / "patient 1" / "segments.csv").read_text(encoding="utf-8")
    assert last != before and all(row.endswith(",0.75") for row in last.splitlines()[1:])
    # --out naming a file: said at once, before any video is analysed
    (tmp_path / "notes.csv").write_text("x", encoding="utf-8")
    bad = [*args[: args.index("--out")], "--out", str(tmp_path / "notes.csv")]
    with pytest.raises(SystemExit) as e:
        main(bad)
    cap = capsys.readouterr()
    assert e.value.code == 2 and "notes.csv is a file; give a folder" in cap.err and "predicted" not in cap.out


@pytest.mark.slow
def test_analyze_runs_again_when_the_person_boxes_would_change(
    make_video: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local-view model: a second ``analyze --out`` skips the video only while its ROI provider (version,
    parameters, detector file) is the same; otherwise the scores may differ and it runs again."""
    import torch

    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.models.stan import STAN, ModelSpec
    from stanviewer.core.roi.files import NoneProvider

    torch.manual_seed(0)
    backbone = {"depth": [1, 1, 1, 1], "embed_dim": [16, 32, 64, 64], "head_dim": 16, "name": "micro"}
    spec = ModelSpec(views="local", roi_provider="none", frames=4, size=32, backbone=backbone)
    ck = save_checkpoint(tmp_path / "local.safetensors", STAN(spec), {"name": "micro-local"})
    video = make_video("analyze_local.mp4", 16)
    args = ["analyze", str(video), "--checkpoint", str(ck), "--method", "window", "--no-heatmaps"]
    args += ["--out", str(tmp_path / "out")]
    assert main(args) == 0
    assert main(args) == 0
    assert "already analysed with these settings" in capsys.readouterr().out
    monkeypatch.setattr(NoneProvider, "version", getattr(NoneProvider, "version", 1) + 1, raising=False)
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "already analysed" not in again and "predicted" in again


def test_printed_segments_default_to_the_apps_seconds() -> None:
    fps = 25.0
    ns = argparse.Namespace(min_seconds=0.4, merge_seconds=0.4, min_frames=None, merge_gap=None)
    assert printed_segment_options(ns, fps) == SegmentOptions(10, 10)
    ns.min_frames = 3  # frames, when given, win over seconds
    assert printed_segment_options(ns, fps) == SegmentOptions(3, 10)
    ns.min_frames, ns.min_seconds, ns.merge_seconds = None, 0.0, 0.0
    assert printed_segment_options(ns, fps) == SegmentOptions(1, 0)
    one = argparse.Namespace(min_seconds=0.4, merge_seconds=0.4, min_frames=None, merge_gap=None)
    assert printed_segment_options(one, float("nan")) == SegmentOptions(1, 0)  # frame rate unknown


@pytest.mark.slow
def test_analyze_keeps_videos_of_the_same_name_apart(
    tiny_checkpoint: Path, make_video: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """p01/trial1.mp4 and p02/trial1.mp4 get an output folder each (one used to overwrite the other); a
    video given twice is analysed once."""
    for patient, n in (("p01", 24), ("p02", 30)):
        (tmp_path / patient).mkdir()
        shutil.copy(make_video(f"same_{patient}.mp4", n), tmp_path / patient / "trial1.mp4")
    out = tmp_path / "results"
    videos = [str(tmp_path / "p01" / "trial1.mp4"), str(tmp_path / "p02" / "trial1.mp4")]
    args = ["analyze", *videos, videos[0], "--checkpoint", str(tiny_checkpoint), "--method", "window"]
    assert main([*args, "--out", str(out), "--no-heatmaps"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("predicted") == 2
    for patient, n in (("p01", 24), ("p02", 30)):
        scores = (out / f"{patient}_trial1" / "scores.csv").read_text(encoding="utf-8").splitlines()
        assert len(scores) == n + 1  # header + one row per frame of that video


def test_printed_segment_ends_are_when_the_last_frame_ends() -> None:
    """As the app's table, the intervals export and the clips: the next frame's time, the duration at the end."""
    from stanviewer.core.explain.result import Analysis

    times = np.arange(10) / 25.0
    a = Analysis(
        scores=np.zeros(10, np.float32), raw=np.zeros(10, np.float32), window_prob=np.zeros(10, np.float32),
        times=times, windows=[], prediction={}, meta={"video": {"fps": 25.0, "duration_s": 0.4}},
    )  # fmt: skip
    assert a.end_time(3) == pytest.approx(0.12)  # frames 0-2 end when frame 3 starts
    assert a.end_time(10) == pytest.approx(0.4)
    a.meta["video"] = {"fps": 25.0}
    assert a.end_time(10) == pytest.approx(0.4)


def test_termination_stops_a_command_as_ctrl_c_does() -> None:
    """``kill``/``timeout``/a closed terminal raise KeyboardInterrupt, so jobs clean up their partial files."""
    import signal

    from stanviewer.cli import _stop_cleanly_on_termination

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        _stop_cleanly_on_termination()
        for s in saved:
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), s)
                signal.sigtimedwait([], 0.1) if hasattr(signal, "sigtimedwait") else None
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def test_commands_that_open_the_app_keep_the_default_termination() -> None:
    """Qt's event loop swallows an exception raised in a slot: a SIGTERM to the app must still end it."""
    from stanviewer.cli import _opens_the_app, build_parser

    p = build_parser()
    assert _opens_the_app(p.parse_args(["demo"])) and _opens_the_app(p.parse_args(["open", "x.mp4"]))
    assert not _opens_the_app(p.parse_args(["demo", "--no-gui"]))
    assert not _opens_the_app(p.parse_args(["analyze", "x.mp4"]))


def test_one_videos_output_problem_does_not_stop_the_batch(
    tiny_checkpoint: Path, make_video: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``out/a`` is a file: video a fails with a one-line message, video b is analysed; a name too long for
    the file system is cut; an output folder that cannot be written is said before any analysis."""
    folder = tmp_path / "in"
    folder.mkdir()
    long = "リハビリ" * 20  # 240 bytes: with "in_" or an extension, over the 255 a file name may have
    for stem, n in (("a", 20), ("b", 22), (long, 24)):
        shutil.copy(make_video(f"batch_{len(stem)}.mp4", n), folder / f"{stem}.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("not a folder", encoding="utf-8")
    args = ["analyze", str(folder), "--checkpoint", str(tiny_checkpoint), "--method", "window", "--no-heatmaps"]
    assert main([*args, "--out", str(out)]) == 2
    cap = capsys.readouterr()
    assert "a: error: cannot write the results" in cap.err and "Traceback" not in cap.err
    assert (out / "b" / "analysis.json").exists()
    cut = [p for p in out.iterdir() if p.name.startswith("リハビリ")]
    assert len(cut) == 1 and len(cut[0].name.encode()) <= 200 and (cut[0] / "scores.csv").exists()
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main([*args, "--out", str(locked / "results")]) == 2
        cap = capsys.readouterr()
        assert "output folder cannot be created (permission denied)" in cap.err and "predicted" not in cap.out
