"""``stanviewer demo --no-gui``: a synthetic video, analysed, the result printed as model output."""

from __future__ import annotations

from pathlib import Path

import pytest

from stanviewer.cli import main
from stanviewer.core.demo import demo_video
from stanviewer.core.progress import run_job


@pytest.mark.slow
def test_demo_no_gui_prints_model_output(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--no-gui", "--checkpoint", str(tiny_checkpoint), "--method", "window", "--reps", "1-1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "demo video:" in out and "model output: predicted class" in out
    assert "flagged segment(s)" in out and "not a diagnosis" in out
    video = Path(out.split("demo video: ")[1].splitlines()[0])
    assert video.exists() and (video.parent.parent / "labels" / f"{video.stem}.csv").exists()
    # a second run reuses the video and the cached analysis: the same result
    assert main(args) == 0
    assert capsys.readouterr().out == out


def test_demo_video_is_reused(tmp_path: Path) -> None:
    first = run_job(demo_video(3, (1, 1), folder=tmp_path), stream=None)
    mtime = first.stat().st_mtime
    again = run_job(demo_video(3, (1, 1), folder=tmp_path), stream=None)
    assert again == first and again.stat().st_mtime == mtime


def test_demo_without_the_bundled_model_is_one_clear_line(tmp_path: Path, capsys, monkeypatch) -> None:
    from stanviewer.core.models import bundled

    monkeypatch.setattr(bundled, "BUNDLED_NAME", "no-such-model.safetensors")
    monkeypatch.setenv("STANVIEWER_DATA_DIR", str(tmp_path))
    assert main(["demo", "--no-gui", "--reps", "1-1", "--seed", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stanviewer: error:")  # before any video is drawn
    assert "no-such-model.safetensors" in err[0] and "missing" in err[0]
