"""``stanviewer agree`` and ``stanviewer export`` (labels and clips; the PDF report is tested in tests/gui)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from review_helpers import bump_scores, fake_analysis, make_video

from stanviewer.cli import main
from stanviewer.core.review.formats import import_labels
from stanviewer.core.review.reviewfile import open_review
from stanviewer.core.review.timing import FrameTimes
from stanviewer.core.video import open_video

RAW = ["--min-seconds", "0", "--merge-seconds", "0"]  # every run of frames at or above the threshold


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """Two videos with saved reviews and one analysis folder per video (``stanviewer analyze --out`` layout)."""
    videos = tmp_path / "videos"
    videos.mkdir()
    analyses = tmp_path / "analyses"
    for k, name in enumerate(["a.mp4", "b.mp4"]):
        v = make_video(videos / name, n=30 + k)
        with open_video(v) as r:
            times = r.times()
        fake_analysis(analyses / v.stem, v, bump_scores(30 + k), times, threshold=0.5)
        review = open_review(v, user="ann")
        review.labels.set_label("annotator", 4, 12, "compensation")
        review.labels.set_label("therapist", 6, 12, "compensation")
        review.save()
    return videos, analyses


def test_agree_prints_kappa_prf_and_spans(project: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    videos, analyses = project
    review = videos / "a.mp4.stanreview.json"
    assert main(["agree", str(review), "--a", "annotator", "--b", "therapist"]) == 0
    out = capsys.readouterr().out
    assert "kappa" in out and "precision 1.000" in out and "recall 0.750" in out
    assert "4-6" in out and "a_only" in out
    model = ["agree", str(videos / "a.mp4"), "--a", "annotator", "--b", "model", "--analysis", str(analyses)]
    assert main([*model, *RAW]) == 0
    out = capsys.readouterr().out
    assert "model tier  stan-test / smoothgrad at threshold 0.5" in out
    assert "11-12" in out and "18-24" in out and "b_only" in out  # annotator 4-12, model 5-11 and 18-24
    # by default the model tier's segments are cut as the app cuts them (>= 0.4 s, gaps <= 0.4 s joined):
    # at 25 frames/s the 6-frame gap between 5-11 and 18-24 is joined
    assert main(model) == 0
    out = capsys.readouterr().out
    assert "12-24" in out and "18-24" not in out
    assert main(["agree", str(review), "--a", "annotator", "--b", "nobody"]) == 2
    assert "no tier named 'nobody'" in capsys.readouterr().err
    # the model tier without an analysis: says so (as export does), not "no tier named 'model'"
    for target in (videos / "b.mp4", videos / "b.mp4.stanreview.json"):
        assert main(["agree", str(target), "--a", "annotator", "--b", "model"]) == 2
        err = capsys.readouterr().err
        assert "no analysis found for b.mp4" in err and "--analysis" in err and "no tier named" not in err


def test_agree_takes_force_for_a_review_of_another_video(
    project: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos, _ = project
    other = make_video(tmp_path / "c.mp4", n=30, fps=30)  # as many frames as a.mp4, another video
    (tmp_path / "c.mp4.stanreview.json").write_bytes((videos / "a.mp4.stanreview.json").read_bytes())
    args = ["agree", str(other), "--a", "annotator", "--b", "therapist"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "belongs to another video" in err and "`agree` take --force" in err
    assert main([*args, "--force"]) == 0 and "recall 0.750" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["csv", "intervals", "json", "eaf", "boris"])
def test_export_labels_reimport(
    fmt: str, project: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos, analyses = project
    out = tmp_path / "out"
    args = ["export", str(videos), "--format", fmt, "--out", str(out), "--analysis", str(analyses), *RAW]
    assert main(args) == 0
    printed = capsys.readouterr().out
    ext = {"csv": ".frames.csv", "intervals": ".intervals.csv", "json": ".labels.json"}.get(fmt, f".{fmt}")
    ext = ".boris.csv" if fmt == "boris" else ext
    for stem in ("a", "b"):
        path = out / f"{stem}{ext}"
        assert f"wrote {path}" in printed
        video = videos / f"{stem}.mp4"
        with open_video(video) as r:
            times = FrameTimes.from_reader(r)
        got = {t.name: t.spans() for t in import_labels(path, times, video=video.name)}
        want = open_review(video).labels.spans()
        assert got["annotator"] == want["annotator"] and got["therapist"] == want["therapist"]
        assert got["model"] == [(5, 11, "compensation"), (18, 24, "compensation")]


def test_export_clips_of_flagged_segments_and_a_tier(
    project: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _videos, analyses = project
    out = tmp_path / "out"
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video,subject,label\nvideos/a.mp4,s1,compensation\n", encoding="utf-8")
    args = ["export", str(manifest), "--what", "clips", "--out", str(out), "--analysis", str(analyses), *RAW]
    assert main([*args, "--padding", "2", "--threshold", "0.95"]) == 0
    assert "no segments" in capsys.readouterr().out  # nothing is flagged at 0.95
    assert main([*args, "--padding", "2", "--burn-in"]) == 0
    assert "a.mp4: clips without the heatmap: the analysis has no heatmaps" in capsys.readouterr().out
    clips = sorted((out / "clips").glob("*.mp4"))
    assert [c.name for c in clips] == ["a_model_f000005-000011.mp4", "a_model_f000018-000024.mp4"]
    with open_video(clips[0]) as r:
        assert r.frame_count == 6 + 4
    side = json.loads((out / "clips" / "a_model_f000005-000011.mp4.json").read_text(encoding="utf-8"))
    assert side["analysis"]["method"] == "smoothgrad" and side["analysis"]["threshold"] == 0.5
    assert main([*args, "--tier", "therapist", "--merged"]) == 0
    assert (out / "clips" / "a_therapist_clips.mp4").exists()


def test_export_reports_failures_per_video(
    project: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    videos, _ = project
    (videos / "broken.mp4").write_bytes(b"not a video")
    assert main(["export", str(videos), "--out", str(tmp_path / "o")]) == 2
    captured = capsys.readouterr()
    assert "broken.mp4" in captured.err and "a.intervals.csv" in captured.out
    assert "no analysis found" in captured.out
    assert main(["export", str(videos / "a.mp4"), "--what", "pictures", "--out", str(tmp_path / "o")]) == 2
    assert "--what takes labels, clips, report" in capsys.readouterr().err
    assert main(["export", str(videos / "a.mp4"), "--what", "", "--out", str(tmp_path / "o")]) == 2
    assert "--what names nothing to export" in capsys.readouterr().err
    # a mistyped --analysis folder is an error naming it, not "no tier named 'model'" or an empty export
    gone = str(tmp_path / "nonexist")
    assert main(["export", str(videos / "a.mp4"), "--analysis", gone, "--out", str(tmp_path / "p")]) == 2
    assert "no such analysis folder" in capsys.readouterr().err
    assert main(["agree", str(videos / "a.mp4"), "--a", "annotator", "--b", "model", "--analysis", gone]) == 2
    assert "no such analysis folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["agree", str(videos / "a.mp4"), "--a", "annotator", "--b", "model", "--analysis", str(empty)]) == 2
    assert "holds no analysis of a.mp4" in capsys.readouterr().err


def test_export_keeps_videos_of_the_same_name_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """p01/trial1.mp4 and p02/trial1.mp4: two label files, two sets of clips, each from its own review and
    analysis (found in `analyze --out`'s distinct folders), none overwriting the other."""
    analyses = tmp_path / "analyses"
    spans = {"p01": ((5, 11),), "p02": ((14, 20),)}
    for k, patient in enumerate(spans):
        (tmp_path / patient).mkdir()
        v = make_video(tmp_path / patient / "trial1.mp4", n=30 + k)
        with open_video(v) as r:
            times = r.times()
        fake_analysis(analyses / f"{patient}_trial1", v, bump_scores(30 + k, spans[patient]), times, threshold=0.5)
        review = open_review(v, user="ann")
        review.labels.set_label("annotator", 2 + 10 * k, 8 + 10 * k, "compensation")
        review.save()
    out = tmp_path / "out"
    videos = [str(tmp_path / p / "trial1.mp4") for p in spans]
    args = ["export", *videos, videos[0], "--what", "labels,clips", "--out", str(out), "--analysis", str(analyses)]
    assert main([*args, *RAW]) == 0
    capsys.readouterr()
    for k, patient in enumerate(spans):
        video = tmp_path / patient / "trial1.mp4"
        with open_video(video) as r:
            times = FrameTimes.from_reader(r)
        got = {t.name: t.spans() for t in import_labels(out / f"{patient}_trial1.intervals.csv", times)}
        assert got["annotator"] == [(2 + 10 * k, 8 + 10 * k, "compensation")]
        assert got["model"] == [(*spans[patient][0], "compensation")]
    clips = sorted(c.name for c in (out / "clips").glob("*.mp4"))
    assert clips == ["p01_trial1_model_f000005-000011.mp4", "p02_trial1_model_f000014-000020.mp4"]


def test_export_keeps_the_model_tier_as_it_was_reviewed(
    project: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The review was saved with a model tier (its analysis, threshold 0.7, raw segments). A newer analysis
    of another model in the cache must not replace it in `export` (the report then paired the reviewer's
    status with another model's segments); --threshold cuts it again on purpose."""
    from stanviewer.core.explain.segments import SegmentOptions
    from stanviewer.core.explain.store import cache_folder, load_analysis
    from stanviewer.core.review.batch import proposal_info

    videos, analyses = project
    video = videos / "a.mp4"
    reviewed = load_analysis(analyses / "a")
    review = open_review(video)
    review.labels.set_proposal(reviewed.scores, 0.7, proposal_info(reviewed, analyses / "a"), SegmentOptions())
    want = review.labels.spans()["model"]
    review.save()
    with open_video(video) as r:  # a newer analysis of another model, in the cache
        fp, times = r.info.fingerprint, r.times()
    other = fake_analysis(cache_folder(fp, "newer"), video, 1.0 - bump_scores(30), times, threshold=0.2)
    assert load_analysis(other).meta["video"]["fingerprint"] == fp
    out = tmp_path / "out"
    assert main(["export", str(video), "--out", str(out)]) == 0
    assert "model tier as reviewed" not in capsys.readouterr().out  # its analysis is there: nothing to say
    with open_video(video) as r:
        ft = FrameTimes.from_reader(r)
    got = {t.name: t.spans() for t in import_labels(out / "a.intervals.csv", ft, video="a.mp4")}
    assert got["model"] == want
    assert main(["export", str(video), "--out", str(tmp_path / "again"), "--threshold", "0.2"]) == 0
    again = {t.name: t.spans() for t in import_labels(tmp_path / "again" / "a.intervals.csv", ft, video="a.mp4")}
    assert again["model"] != want
