"""The ``stanviewer`` command: help for every subcommand, ``info``, ``synth`` and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Generator
from pathlib import Path

import pytest

from stanviewer.cli import COMMANDS, main
from stanviewer.core.errors import VideoError
from stanviewer.core.manifest import read_frame_labels, read_manifest
from stanviewer.core.progress import Progress, nested, run_job

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stanviewer", *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )


def test_python_m_stanviewer_help(env_with_repo: dict[str, str]) -> None:
    proc = _run(["--help"], env_with_repo)
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert name in proc.stdout
    assert "not a medical device" in proc.stdout.replace("\n", " ")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert f"usage: stanviewer {command}" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("stanviewer ")


def test_info_prints_metadata(make_video: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = make_video("cli_info.mp4", 30, "h264", gop=10)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "frames      30" in out
    assert "25.000" in out and "fps" in out
    assert "96x64" in out and "h264" in out
    assert main(["info", "--frames", str(path)]) == 0
    rows = capsys.readouterr().out.split("frame,time_s,pts,keyframe\n")[1].splitlines()
    assert len(rows) == 30
    assert rows[0].startswith("0,0.000000,") and rows[0].endswith(",1")
    assert rows[25].startswith("25,1.000000,")


def test_info_missing_file_is_one_line_error(tmp_path: Path, env_with_repo: dict[str, str]) -> None:
    missing = tmp_path / "no such vidéo.mp4"
    proc = _run(["info", str(missing)], env_with_repo)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("stanviewer: error: ")
    assert str(missing) in lines[0] and "not found" in lines[0]
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(VideoError):
        main(["--debug", "info", str(tmp_path / "missing.mp4")])


@pytest.mark.parametrize("reps", ["three", "4-2", "0-1", "1-2-3"])
@pytest.mark.parametrize("command", ["synth", "demo"])
def test_bad_reps_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, reps: str) -> None:
    args = [command, str(tmp_path / "out")] if command == "synth" else [command, "--no-gui"]
    assert main([*args, "--reps", reps]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stanviewer: error: ") and "--reps" in err and repr(reps) in err
    assert not (tmp_path / "out").exists()


def test_synth_writes_a_valid_data_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data set"
    args = ["synth", str(out), "--subjects", "2", "--videos-per-subject", "1", "--reps", "1-1", "--seed", "2"]
    assert main(args) == 0
    manifest = out / "manifest.csv"
    assert f"wrote {manifest}" in capsys.readouterr().out
    entries = read_manifest(manifest)
    assert len(entries) == 2
    assert {e.split for e in entries} == {"train", "test"}
    for e in entries:
        assert e.video.is_file()
        read_frame_labels(e.frame_labels)  # type: ignore[arg-type]


def test_progress_bar_draws_on_the_current_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    """run_job must use sys.stderr as it is when called (it used to bind the one of import time)."""

    def job() -> Generator[Progress, None, int]:
        yield Progress(1, 4, "working")
        yield Progress(4, 4, "done")
        return 7

    assert run_job(job(), min_interval=0) == 7
    err = capsys.readouterr().err
    assert "working" in err and "25%" in err and "1/4" in err


def test_nested_job_reports_on_the_outer_scale_with_the_inner_step() -> None:
    """A batch's bar shows how far the whole batch is; the inner job's step goes into the message."""

    def inner() -> Generator[Progress, None, str]:
        yield Progress(0, 4, "finding the person")
        yield Progress(3, 4, "scoring", partial=[1, 2])
        yield Progress(0, 0, "saving")
        return "result"

    def outer() -> Generator[Progress, None, list[str]]:
        out = []
        for k in range(2):
            out.append((yield from nested(inner(), k, 2, f"video {k + 1}/2")))
        return out

    seen = list(_drain(outer()))
    assert [(p.done, p.total) for p, _ in seen[:-1]] == [(0, 2)] * 3 + [(1, 2)] * 3
    assert seen[1][0].message == "video 1/2: scoring (3/4)" and seen[1][0].partial == [1, 2]
    assert seen[2][0].message == "video 1/2: saving"  # no step when the inner total is unknown
    assert seen[-1][1] == ["result", "result"]


def _drain(job: Generator[Progress, None, object]):
    try:
        while True:
            yield next(job), None
    except StopIteration as stop:
        yield None, stop.value


@pytest.mark.parametrize(
    ("extra", "expected"),
    [([], False), (["--init", "pre.safetensors"], True), (["--init", "pre.safetensors", "--no-feature-norm"], False)],
)
def test_train_standardises_features_only_from_a_pretrained_start(extra: list[str], expected: bool) -> None:
    from stanviewer.cli import _train_parts, build_parser

    for arch in ("tiny", "cnn-narrow-patch"):
        a = build_parser().parse_args(["train", "m.csv", "--out", "o", "--arch", arch, *extra])
        spec, _ = _train_parts(a)
        assert spec.feature_norm is expected, arch


def test_a_mistyped_command_is_not_opened_as_a_video(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyse", "x.mp4"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'analyse'; did you mean 'analyze'?" in err and err.count("\n") == 1
    assert main(["frobnicate"]) == 2 and "commands: " in capsys.readouterr().err


def test_opening_a_missing_video_or_without_a_display_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main([str(tmp_path / "gone.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    video = tmp_path / "there.mp4"
    video.write_bytes(b"")
    for args in ([str(video)], ["demo"]):  # demo says so before it draws a video
        assert main(args) == 2
        out = capsys.readouterr()
        assert "no display to open the app on" in out.err and "demo --no-gui" in out.err and "demo video" not in out.out


@pytest.mark.parametrize("command", ["analyze", "evaluate", "train", "pretrain"])
def test_a_device_that_does_not_exist_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "x", "--device", "foo"])
    assert e.value.code == 2 and "'foo' is not a device" in capsys.readouterr().err
    from stanviewer.cli import _device

    assert [_device(d) for d in ("CPU", "cuda:1", " auto")] == ["cpu", "cuda:1", "auto"]


def test_output_piped_into_head_ends_quietly(make_video: Callable[..., Path], env_with_repo: dict[str, str]) -> None:
    """``stanviewer info VIDEO --frames | head``: no "[Errno 32] Broken pipe" error when the reader stops."""
    video = make_video("cli_pipe.mp4", 120)
    cmd = [sys.executable, "-m", "stanviewer", "info", str(video), "--frames"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, env=env_with_repo)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(20)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0 and "Broken pipe" not in err, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "m.csv", "--frames", "3"], "--frames: must be an even number, at least 2, not 3"),
        (["pretrain", "m.csv", "--size", "50"], "--size: must be a multiple of 32, not 50"),
        (["pretrain", "m.csv", "--steps", "0"], "--steps: must be at least 1, not 0"),
        (["train", "m.csv", "--lr", "-1"], "--lr: must be more than 0, not -1"),
        (["train", "m.csv", "--val-fraction", "1.5"], "--val-fraction: must be from 0 up to (not including) 1"),
        (["evaluate", "m.csv", "--out", "e", "--calib-videos", "0"], "--calib-videos: must be at least 1, not 0"),
        (["train-detector", "m.csv", "--out", "d", "--threads", "-1"], "--threads: must be 0 or more, not -1"),
        (["model", "import", "x.pth", "--out", "y", "--frames", "3"], "--frames: must be an even number"),
    ],
)
def test_numbers_out_of_range_are_usage_errors(args: list[str], message: str, capsys) -> None:
    """Each gave a traceback (or ran with nonsense) from deep inside the run."""
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["train", "m.csv"], ["model", "import", "x.pth", "--out", "y"]])
def test_classes_are_two_or_more_distinct_names(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    for bad, words in (("a,a", "names a more than once"), ("solo", "needs two or more class names")):
        with pytest.raises(SystemExit):
            main([*command, "--classes", bad])
        assert words in capsys.readouterr().err


def test_options_the_posture_model_does_not_use_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stanviewer.core.training.train as tr
    from stanviewer.core.errors import StanError

    def stop(*args, **kw):
        raise StanError("stopped here")
        yield

    monkeypatch.setattr(tr, "train", stop)
    base = ["train", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"), "--arch", "posture-narrow"]
    assert main([*base, "--pool", "max", "--batch", "2", "--no-augment"]) == 2
    assert "note: --batch, --pool, --no-augment do(es) not apply to the posture model" in capsys.readouterr().err
    assert main(base) == 2
    assert "note:" not in capsys.readouterr().err
