"""`export --analysis DIR` finds what `analyze --out DIR` wrote, whatever name the batch gave it (the
extension kept beside another container, a long name cut to fit)."""

from __future__ import annotations

import shutil

from stanviewer.cli import main


def _run(tiny_checkpoint, make_video, tmp_path, stems, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    vids = []
    for k, name in enumerate(stems):
        dst = folder / name
        shutil.copy(make_video(f"names_{k}.mp4", 20 + 2 * k), dst)  # different content per video
        vids.append(dst)
    out = tmp_path / "res"
    assert (
        main(
            [
                "analyze",
                *map(str, vids),
                "--checkpoint",
                str(tiny_checkpoint),
                "--method",
                "window",
                "--no-heatmaps",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    capsys.readouterr()
    rc = main(
        [
            "export",
            str(vids[0]),
            "--analysis",
            str(out),
            "--out",
            str(tmp_path / "exp"),
            "--format",
            "csv",
            "--project",
            str(tmp_path / "proj"),
        ]
    )
    cap = capsys.readouterr()
    return rc, cap


def test_same_stem_two_containers(tiny_checkpoint, make_video, tmp_path, capsys):
    rc, cap = _run(tiny_checkpoint, make_video, tmp_path, ["trial.mp4", "trial.mkv"], capsys)
    assert rc == 0, cap.err


def test_long_stem(tiny_checkpoint, make_video, tmp_path, capsys):
    rc, cap = _run(tiny_checkpoint, make_video, tmp_path, ["リ" * 70 + ".mp4"], capsys)  # 210-byte stem: fit before
    assert rc == 0, cap.err
