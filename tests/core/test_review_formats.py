"""Label formats: every export re-imports to the same labels; EAF checked with pympi-ling; clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from review_helpers import VFR_MS, bump_scores, make_vfr_video, make_video

from stanviewer.core.errors import LabelError
from stanviewer.core.review.formats import EXTENSIONS, FORMATS, export_labels, format_of, import_labels
from stanviewer.core.review.model import LabelsModel
from stanviewer.core.review.reviewfile import Review, VideoMismatchError, VideoRef
from stanviewer.core.review.timing import FrameTimes
from stanviewer.core.video import open_video


def _setup(video: Path) -> tuple[Review, FrameTimes]:
    with open_video(video) as r:
        ref, times = VideoRef.from_reader(r), FrameTimes.from_reader(r)
    review = Review(ref, LabelsModel(ref.frames, ("annotator", "therapist"), user="ann"), video.with_suffix(".json"))
    return review, times


def _label(review: Review) -> None:
    m = review.labels
    n = m.n_frames
    m.set_label("annotator", 0, 3, "lean, left")  # a comma: CSV quoting
    m.set_label("annotator", 3, 5, 'Rumpf "ü"')  # quotes and non-ASCII
    m.set_label("annotator", n - 2, n, "compensation")  # up to the last frame
    m.set_label("therapist", 1, n - 1, "compensation <&>")  # XML escaping
    m.add_tier("rater 2")
    m.set_label("rater 2", 2, 4, "x")
    m.set_proposal(bump_scores(n, ((1, 2), (5, n - 3))), 0.5, {"model": "stan-test", "method": "window"})


@pytest.fixture(scope="module")
def cfr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("fmt") / "cfr.mp4")


@pytest.fixture(scope="module")
def vfr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_vfr_video(tmp_path_factory.mktemp("fmt") / "vfr.mp4")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["cfr", "vfr"])
def test_every_export_reimports_to_the_same_labels(
    fmt: str, which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    video = request.getfixturevalue(which)
    review, times = _setup(video)
    _label(review)
    path = export_labels(review, tmp_path / f"labels{EXTENSIONS[fmt]}", fmt, times, scores_csv=tmp_path / "scores.csv")
    assert format_of(path) == fmt
    tiers = import_labels(path, times, video=video.name)
    assert {t.name: t.spans() for t in tiers} == review.labels.spans()
    assert {t.name: t.source for t in tiers} == {t.name: t.source for t in review.labels.all_tiers()}
    m = LabelsModel(review.labels.n_frames, ())
    m.replace_tiers(tiers)
    assert m.spans() == review.labels.spans()
    assert m.proposal is not None and m.proposal.read_only


def test_intervals_csv_is_the_design_format(cfr: Path, tmp_path: Path) -> None:
    review, times = _setup(cfr)
    review.labels.set_label("annotator", 5, 30, "compensation")
    path = export_labels(review, tmp_path / "x.intervals.csv", "intervals", times, tiers=["annotator"])
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source"
    assert lines[1] == "cfr.mp4,annotator,compensation,5,30,0.200000,1.200000,1.000000,annotator"


def test_binary_per_frame_file_is_the_design_label_format(cfr: Path, tmp_path: Path) -> None:
    from stanviewer.core.manifest import read_frame_labels

    review, times = _setup(cfr)
    review.labels.set_label("annotator", 5, 9, "compensation")
    path = export_labels(review, tmp_path / "y.csv", "frames", times, tiers=["annotator"], binary=True)
    np.testing.assert_array_equal(read_frame_labels(path, 30), review.labels.tier("annotator").mask(30))
    back = import_labels(path, times, "frames", tier="annotator", label="compensation")
    assert back[0].spans() == [(5, 9, "compensation")]


def _score_curve(folder: Path) -> Path:
    """A one-row ``scores.csv`` (an analysis's score curve) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "scores.csv"
    path.write_text("frame,time_s,score\n0,0.0,0.5\n", encoding="utf-8")
    return path


def test_eaf_links_a_copy_of_the_score_curve_beside_itself(vfr: Path, tmp_path: Path) -> None:
    """The analysis cache the curve comes from is "safe to delete": the EAF must not depend on it."""
    import xml.etree.ElementTree as ET

    review, times = _setup(vfr)
    _label(review)
    scores = _score_curve(tmp_path / "cache")
    path = export_labels(review, tmp_path / "out" / "labels.eaf", "eaf", times, scores_csv=scores)
    link = ET.parse(path).getroot().find("HEADER/LINKED_FILE_DESCRIPTOR")
    assert link is not None and link.get("RELATIVE_LINK_URL") == "./labels.scores.csv"
    scores.unlink()
    assert (path.parent / "labels.scores.csv").read_text(encoding="utf-8").startswith("frame,time_s,score")
    # no curve to link: no link
    bare = export_labels(review, tmp_path / "out" / "bare.eaf", "eaf", times, scores_csv=tmp_path / "none.csv")
    assert ET.parse(bare).getroot().find("HEADER/LINKED_FILE_DESCRIPTOR") is None


def test_eaf_of_a_long_or_non_utf8_video_name_is_written_and_reads_back(cfr: Path, tmp_path: Path) -> None:
    """A 248-byte EAF name still gets its curve beside it (the copy's name is cut to fit), and a video name
    that is not valid UTF-8 gives well-formed XML (its relative URL %-encodes the odd byte)."""
    import os
    import shutil

    review, times = _setup(cfr)
    _label(review)
    scores = _score_curve(tmp_path)
    long = export_labels(review, tmp_path / ("a" * 248 + ".eaf"), "eaf", times, scores_csv=scores)
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".scores.csv") and len(p.name.encode()) <= 255]
    assert {t.name: t.spans() for t in import_labels(long, times)} == review.labels.spans()
    odd = Path(os.fsdecode(os.fsencode(tmp_path) + b"/clip\xe9.mp4"))
    shutil.copy(cfr, odd)
    review_odd, times_odd = _setup(odd)
    _label(review_odd)
    path = export_labels(review_odd, tmp_path / "odd.eaf", "eaf", times_odd)
    assert "%E9" in path.read_text(encoding="utf-8")
    assert {t.name: t.spans() for t in import_labels(path, times_odd)} == review_odd.labels.spans()


def test_eaf_read_back_by_pympi_with_identical_intervals(vfr: Path, tmp_path: Path) -> None:
    pympi = pytest.importorskip("pympi")
    review, times = _setup(vfr)
    _label(review)
    scores = _score_curve(tmp_path / "analysis")
    path = export_labels(review, tmp_path / "out" / "labels.eaf", "eaf", times, scores_csv=scores)
    eaf = pympi.Elan.Eaf(str(path))
    assert eaf.adocument["FORMAT"] == "3.0" and eaf.header["TIME_UNITS"] == "milliseconds"
    assert eaf.media_descriptors[0]["RELATIVE_MEDIA_URL"] == os.path.relpath(vfr, path.parent)
    assert eaf.media_descriptors[0]["MEDIA_URL"] == vfr.resolve().as_uri()
    beside = path.with_name("labels.scores.csv")  # a copy beside the EAF: the analysis cache may be deleted
    assert eaf.linked_file_descriptors[0]["LINK_URL"] == beside.resolve().as_uri()
    assert eaf.linked_file_descriptors[0]["RELATIVE_LINK_URL"] == "./labels.scores.csv"
    assert beside.read_bytes() == scores.read_bytes()
    ms = [*VFR_MS, round(times.end * 1000)]
    for tier in review.labels.all_tiers():
        want = [(ms[iv.start], ms[iv.end], iv.label) for iv in tier.intervals]
        assert sorted(eaf.get_annotation_data_for_tier(tier.name)) == want
        frames = sorted(eaf.get_ref_annotation_data_for_tier(tier.name + " frames"))
        assert [f[2] for f in frames] == [f"[{iv.start},{iv.end})" for iv in tier.intervals]
    # strict element order of EAF 3.0
    import xml.etree.ElementTree as ET

    tags = [el.tag for el in ET.parse(path).getroot()]
    order = ["HEADER", "TIME_ORDER", "TIER", "LINGUISTIC_TYPE", "CONSTRAINT"]
    assert tags == sorted(tags, key=order.index)
    header = [el.tag for el in ET.parse(path).getroot().find("HEADER")]
    assert header == sorted(header, key=["MEDIA_DESCRIPTOR", "LINKED_FILE_DESCRIPTOR", "PROPERTY"].index)


def test_eaf_written_by_pympi_imports_by_milliseconds(vfr: Path, tmp_path: Path) -> None:
    """A file made in ELAN (no frame tiers, times only) maps to frames with the video's timestamps."""
    pympi = pytest.importorskip("pympi")
    _, times = _setup(vfr)
    eaf = pympi.Elan.Eaf(author="elan user")
    eaf.add_tier("therapist")
    eaf.add_annotation("therapist", 80, 233, "lean")  # frames 2..4
    eaf.add_annotation("therapist", 541, 1100, "twist")  # frame 8 to the end (1100 ms ~ video end)
    eaf.add_tier("notes")
    eaf.add_annotation("notes", 201, 299, "n")  # not on frame boundaries: nearest ones (3..5)
    path = tmp_path / "elan.eaf"
    eaf.to_file(str(path))
    tiers = {t.name: t for t in import_labels(path, times)}
    assert tiers["therapist"].spans() == [(2, 4, "lean"), (8, 10, "twist")]
    assert tiers["therapist"].source == "therapist" and tiers["notes"].source == "annotator"
    assert tiers["notes"].spans() == [(3, 5, "n")]


def test_moved_in_elan_wins_over_stale_frame_tier(cfr: Path, tmp_path: Path) -> None:
    review, times = _setup(cfr)
    review.labels.set_label("annotator", 5, 10, "x")
    path = export_labels(review, tmp_path / "a.eaf", "eaf", times)
    text = path.read_text(encoding="utf-8").replace('TIME_VALUE="400"', 'TIME_VALUE="480"')  # end 10 -> 12
    path.write_text(text, encoding="utf-8")
    assert import_labels(path, times)[0].spans() == [(5, 12, "x")]


def test_json_export_keeps_provenance(cfr: Path, tmp_path: Path) -> None:
    review, times = _setup(cfr)
    _label(review)
    review.labels.accept("therapist", 6)
    path = export_labels(review, tmp_path / "p.labels.json", "json", times)
    tiers = {t.name: t for t in import_labels(path, times)}
    assert tiers["therapist"] == review.labels.tier("therapist")
    assert any(iv.proposal is not None for iv in tiers["therapist"].intervals)
    assert json.loads(path.read_text(encoding="utf-8"))["video"]["fingerprint"] == review.video.fingerprint


MALFORMED = [
    ("frames", "bad.frames.csv", "frame,time_s,annotator\n0,0,x\nzero,0.04,x\n", "line 3"),
    ("frames", "dup.frames.csv", "frame,annotator\n0,x\n1,x\n1,y\n", "line 4"),
    ("frames", "short.frames.csv", "frame,annotator\n0,x\n1\n", "line 3"),
    ("frames", "bin.csv", "frame,label\n0,1\n1,2\n", "line 3"),
    ("frames", "missing.frames.csv", "frame,annotator\n0,x\n", "frame 1 is missing"),
    (
        "intervals",
        "int.intervals.csv",
        "video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source\n"
        "v,annotator,x,0,5,0,0.2,0.2,annotator\nv,annotator,x,4.5,9,0,0,0,annotator\n",
        "line 3",
    ),
    (
        "intervals",
        "ov.intervals.csv",
        "video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source\n"
        "v,annotator,x,0,5,0,0.2,0.2,annotator\nv,annotator,y,3,9,0,0,0,annotator\n",
        "line 3",
    ),
    (
        "intervals",
        "src.intervals.csv",
        "video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source\n"
        "v,annotator,x,0,5,0,0.2,0.2,robot\n",
        "line 2",
    ),
    (
        "intervals",
        "range.intervals.csv",
        "video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source\n"
        "v,annotator,x,0,5,0,0.2,0.2,annotator\nv,annotator,x,20,31,0,0,0,annotator\n",
        "line 3",
    ),
    ("intervals", "head.intervals.csv", "video,tier,label\n", "line 1"),
    ("json", "j.labels.json", '{\n "format": "stanviewer-review",\n "version": 1,\n "tiers": [}\n', "line 4"),
    ("eaf", "x.eaf", '<?xml version="1.0"?>\n<ANNOTATION_DOCUMENT>\n<HEADER>\n</ANNOTATION_DOCUMENT>\n', "line 4"),
    (
        "eaf",
        "slot.eaf",
        '<?xml version="1.0"?>\n<ANNOTATION_DOCUMENT>\n<HEADER TIME_UNITS="milliseconds"/>\n'
        '<TIME_ORDER><TIME_SLOT TIME_SLOT_ID="ts1" TIME_VALUE="0"/></TIME_ORDER>\n<TIER TIER_ID="a">\n<ANNOTATION>\n'
        '<ALIGNABLE_ANNOTATION ANNOTATION_ID="a1" TIME_SLOT_REF1="ts1" TIME_SLOT_REF2="ts9">\n'
        "<ANNOTATION_VALUE>x</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION></TIER>\n</ANNOTATION_DOCUMENT>\n",
        "line 7",
    ),
    ("boris", "b.boris.csv", "Subject,Behavior,Start (s),Stop (s)\nannotator,x,0.0,0.2\nannotator,y,abc,1\n", "line 3"),
    ("boris", "b2.boris.csv", "Subject,Behavior,Start (s),Stop (s)\nannotator,x,0.5,0.2\n", "line 2"),
    ("boris", "b3.boris.csv", "Subject,Behavior\nannotator,x\n", "line 1"),
]


@pytest.mark.parametrize(("fmt", "name", "text", "where"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_malformed_files_raise_label_error_with_file_and_line(
    fmt: str, name: str, text: str, where: str, cfr: Path, tmp_path: Path
) -> None:
    _, times = _setup(cfr)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabelError) as e:
        import_labels(path, times, fmt)
    assert str(path) in str(e.value)
    assert where in str(e.value)


def test_non_utf8_and_missing_files(cfr: Path, tmp_path: Path) -> None:
    _, times = _setup(cfr)
    path = tmp_path / "latin.frames.csv"
    path.write_bytes(b"frame,annotator\n0,x\n1,\xe9\n")
    with pytest.raises(LabelError, match="line 3: not UTF-8"):
        import_labels(path, times)
    with pytest.raises(LabelError, match="not found"):
        import_labels(tmp_path / "nope.intervals.csv", times)
    with pytest.raises(LabelError, match="unknown label file type"):
        import_labels(tmp_path / "x.txt", times)


@pytest.mark.parametrize("fmt", ["json", "eaf"])
def test_import_checks_the_recorded_video(fmt: str, cfr: Path, vfr: Path, tmp_path: Path) -> None:
    review, times = _setup(cfr)
    review.labels.set_label("annotator", 1, 4, "x")
    path = export_labels(review, tmp_path / f"l{EXTENSIONS[fmt]}", fmt, times)
    assert import_labels(path, times, fingerprint=review.video.fingerprint)[0].spans() == [(1, 4, "x")]
    other = VideoRef.open(vfr).fingerprint
    with pytest.raises(VideoMismatchError, match="another video"):
        import_labels(path, times, fingerprint=other)
    assert import_labels(path, times, fingerprint=other, allow_other_video=True)[0].spans() == [(1, 4, "x")]


def _eaf(tiers: dict[str, str], start_ms: int = 400, end_ms: int = 800) -> str:
    """A minimal ELAN file: one annotation per tier (TIER_ID -> value)."""
    body = "".join(
        f'<TIER TIER_ID="{name}"><ANNOTATION><ALIGNABLE_ANNOTATION ANNOTATION_ID="a{k}" TIME_SLOT_REF1="t1" '
        f'TIME_SLOT_REF2="t2"><ANNOTATION_VALUE>{value}</ANNOTATION_VALUE></ALIGNABLE_ANNOTATION></ANNOTATION></TIER>'
        for k, (name, value) in enumerate(tiers.items())
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><ANNOTATION_DOCUMENT><HEADER TIME_UNITS="milliseconds"/><TIME_ORDER>'
        f'<TIME_SLOT TIME_SLOT_ID="t1" TIME_VALUE="{start_ms}"/><TIME_SLOT TIME_SLOT_ID="t2" TIME_VALUE="{end_ms}"/>'
        f"</TIME_ORDER>{body}</ANNOTATION_DOCUMENT>"
    )


def test_imported_tier_names_follow_the_review_files_rule(cfr: Path, tmp_path: Path) -> None:
    from stanviewer.core.review.model import EditError
    from stanviewer.core.review.reviewfile import load_review

    review, times = _setup(cfr)
    path = tmp_path / "spaces.eaf"
    path.write_text(_eaf({"Rater 2 ": "lean"}), encoding="utf-8")
    tiers = import_labels(path, times)
    assert [t.name for t in tiers] == ["Rater 2"]  # surrounding spaces removed
    review.labels.replace_tiers(tiers)
    saved = review.save(tmp_path / "r.stanreview.json")
    assert "Rater 2" in load_review(saved).labels.tier_names()  # the saved file opens again
    # names that become one, or nothing, are refused with the tier named
    path.write_text(_eaf({"Rater 2": "lean", "Rater 2 ": "x"}), encoding="utf-8")
    with pytest.raises(LabelError, match="'Rater 2' and 'Rater 2 ' have the same name"):
        import_labels(path, times)
    path.write_text(_eaf({"  ": "lean"}), encoding="utf-8")
    with pytest.raises(LabelError, match="empty name"):
        import_labels(path, times)
    # the model itself refuses a name its file could not hold, whoever builds the tiers
    from stanviewer.core.review.model import Tier

    with pytest.raises(EditError, match="without surrounding spaces"):
        review.labels.replace_tiers([Tier(" x", "annotator")])


BORIS_ROW = "o,d,,cfr.mp4,1.0,25,annotator,lean,,,STATE,{},{},,,\n"
IMPOSSIBLE_TIMES = [
    ("boris", "nan", "nan"),
    ("boris", "0.1", "nan"),
    ("boris", "inf", "inf"),
    ("boris", "-1", "0.2"),
    ("boris", "60", "70"),
    ("boris", "0.1", "70"),
    ("eaf", -5000, 100),
    ("eaf", 60000, 70000),
    ("eaf", 100, 70000),
]


@pytest.mark.parametrize(("fmt", "t0", "t1"), IMPOSSIBLE_TIMES, ids=[f"{f}-{a}-{b}" for f, a, b in IMPOSSIBLE_TIMES])
def test_impossible_times_are_refused_not_clamped(fmt: str, t0: object, t1: object, cfr: Path, tmp_path: Path) -> None:
    from stanviewer.core.review.formats import BORIS_COLUMNS

    _, times = _setup(cfr)
    if fmt == "boris":
        path = tmp_path / "x.boris.csv"
        path.write_text(",".join(BORIS_COLUMNS) + "\n" + BORIS_ROW.format(t0, t1), encoding="utf-8")
        where = "line 2: times"
    else:
        path = tmp_path / "x.eaf"
        path.write_text(_eaf({"annotator": "lean"}, int(t0), int(t1)), encoding="utf-8")  # type: ignore[call-overload]
        where = "annotation a0: times"
    with pytest.raises(LabelError, match=f"{where} .* not a range inside the video"):
        import_labels(path, times)


def test_times_at_the_end_of_the_video_still_import(cfr: Path, tmp_path: Path) -> None:
    from stanviewer.core.review.formats import BORIS_COLUMNS

    _, times = _setup(cfr)
    n, end = times.count, times.end
    path = tmp_path / "x.boris.csv"
    stop = end + 0.08  # another program measured the duration a little longer
    path.write_text(",".join(BORIS_COLUMNS) + "\n" + BORIS_ROW.format(f"{end:.3f}", f"{stop:.3f}"), encoding="utf-8")
    assert import_labels(path, times)[0].spans() == [(n - 1, n, "lean")]


@pytest.mark.parametrize("fmt", ["intervals", "frames", "boris"])
def test_labels_with_line_breaks_survive_the_csv_formats(fmt: str, cfr: Path, tmp_path: Path) -> None:
    review, times = _setup(cfr)
    m = review.labels
    for k, label in enumerate(["lean\nright", "a\r\nb", "x\ry", "p\u2028q", "r\u2029s\x85t"]):
        m.set_label("annotator", 2 * k, 2 * k + 1, label)
    want = m.tier("annotator").spans()
    path = export_labels(review, tmp_path / f"x{EXTENSIONS[fmt]}", fmt, times)
    got = next(t for t in import_labels(path, times, video=cfr.name) if t.name == "annotator")
    assert got.spans() == want
    # a malformed row after a multi-line one is reported on the line where it starts in the file
    text = path.read_text(encoding="utf-8")
    bad = path.with_name("bad" + EXTENSIONS[fmt])
    bad.write_text(text + '"unclosed\n', encoding="utf-8")
    with pytest.raises(LabelError, match=f"line {text.count(chr(10)) + 1}:"):
        import_labels(bad, times, video=cfr.name)
