"""The PDF review report (QPdfWriter, offscreen): content, pages, rendering, ``stanviewer export --what report``."""

from __future__ import annotations

import re
import shutil
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from review_helpers import fake_analysis, make_video

from stanviewer import DISCLAIMER
from stanviewer.cli import main
from stanviewer.core.errors import StanError
from stanviewer.core.review.batch import prepare
from stanviewer.core.video import open_video
from stanviewer.qt.report import write_report


@pytest.fixture
def labelled(tmp_path: Path):
    video = make_video(tmp_path / "walk.mp4", n=90, size=(160, 120))
    with open_video(video) as r:
        times = r.times()
    s = np.full(90, 0.2, np.float32)
    s[20:40] = 0.85
    s[60:75] = 0.7
    fake_analysis(tmp_path / "an" / "walk", video, s, times, threshold=0.5, heatmaps=True, size=(160, 120))
    prep = prepare(video, analysis=tmp_path / "an")
    m = prep.review.labels
    m.accept_all("annotator")
    m.move_edge("annotator", 20, "left", 17)
    m.set_label("therapist", 25, 45, "trunk lean")
    m.set_status("done", reviewer="Dr. Example")
    return prep


def _text(pdf: Path) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    out = subprocess.run([exe, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return unicodedata.normalize("NFKC", out)  # pdftotext keeps the font's fi/fl ligatures


def test_report_has_provenance_table_and_disclaimer(qapp, labelled, tmp_path: Path) -> None:
    out = write_report(labelled.review, tmp_path / "report.pdf", analysis=labelled.analysis, threshold=0.5)
    data = out.read_bytes()
    assert data.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", data)) >= 1
    assert [p.name for p in tmp_path.glob(".report.pdf*")] == []  # the temporary file is gone
    text = " ".join(_text(out).split())
    for needle in (
        "Review report: walk.mp4",
        "done",
        "Dr. Example",
        "stan-test",
        "smoothgrad",
        "per-video min-max after clipping",
        "threshold 0.50",
        "[20, 40)",
        "[17, 40)",
        "trunk lean",
        "key frame",
        "with heatmap",
        "Model output",  # never "Prediction": the app's wording, a model output and not a diagnosis
    ):
        assert needle in text, needle
    assert "Prediction" not in text
    assert " ".join(DISCLAIMER.split()) in text


def test_report_page_renders(qapp, labelled, tmp_path: Path) -> None:
    exe = shutil.which("pdftoppm")
    if exe is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    out = write_report(labelled.review, tmp_path / "r.pdf", analysis=labelled.analysis)
    subprocess.run([exe, "-png", "-r", "50", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")], check=True)
    from PySide6.QtGui import QImage

    img = QImage(str(next(tmp_path.glob("page*.png"))))
    assert img.width() > 300 and img.height() > 400
    colours = {img.pixelColor(x, y).name() for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colours) > 50  # curve, shading, lanes and thumbnails, not a blank page


def test_report_without_analysis_and_errors(qapp, tmp_path: Path) -> None:
    video = make_video(tmp_path / "plain.mp4", n=30)
    prep = prepare(video)
    prep.review.labels.set_label("annotator", 3, 9, "x")
    out = write_report(prep.review, tmp_path / "plain.pdf")
    assert "no analysis attached" in " ".join(_text(out).split())
    with pytest.raises(StanError):
        write_report(prep.review, Path("/proc/stanviewer-report.pdf"))  # a folder nobody can write to


def test_export_command_writes_reports(qapp, labelled, tmp_path: Path, capsys) -> None:
    video = Path(labelled.review.video.path)
    labelled.review.save()
    out = tmp_path / "export"
    args = ["export", str(video), "--what", "labels,report", "--out", str(out), "--analysis", str(tmp_path / "an")]
    assert main(args) == 0
    assert (out / "walk.pdf").read_bytes().startswith(b"%PDF")
    assert f"wrote {out / 'walk.pdf'}" in capsys.readouterr().out


def test_the_normalisation_fact_names_the_scale(labelled) -> None:
    """Per-video scaling shows its clip percentiles; a posture model's probabilities have none to show."""
    import copy

    from stanviewer.core.review.report_data import _facts

    facts = dict(_facts(labelled.review, labelled.analysis, 0.5))
    assert "per-video min-max after clipping, clip percentiles" in facts["Normalisation"]
    prob = copy.deepcopy(labelled.analysis)
    prob.meta["normalisation"] = {"kind": "frame probability (sigmoid of the frame logit)", "clip_percentiles": None}
    text = dict(_facts(labelled.review, prob, 0.5))["Normalisation"]
    assert text == "frame probability (sigmoid of the frame logit)"


def test_the_threshold_fact_gives_the_segment_options_in_seconds(labelled) -> None:
    """The app sets minimum length and gap in seconds: the report says them so, with this video's frames."""
    from stanviewer.core.review.report_data import _facts

    prop = labelled.review.labels.proposal
    fps = labelled.review.video.fps
    k = round(0.4 * fps)
    prop.meta["segment_options"] = {"min_frames": k, "merge_gap": k}
    text = dict(_facts(labelled.review, labelled.analysis, 0.5))["Threshold"]
    both = f"{k / fps:.2f} s = {k} frames"
    assert text == f"0.50 (segments at least {both}; gaps up to {both} joined)"
