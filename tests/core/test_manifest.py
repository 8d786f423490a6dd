"""Manifests and per-frame label files (DESIGN.md §4): malformed input -> LabelError naming file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stanviewer.core.errors import LabelError
from stanviewer.core.manifest import read_boxes_csv, read_frame_labels, read_manifest, write_frame_labels

GOOD_MANIFEST = (
    "video,subject,label,frame_labels,split,boxes\n"
    "videos/a.mp4,S01,compensation,labels/a.csv,train,boxes/a.csv\n"
    "videos/b.mp4,S02,normal,,test,\n"
)


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_good_manifest(tmp_path: Path) -> None:
    entries = read_manifest(_write(tmp_path / "manifest.csv", GOOD_MANIFEST))
    assert [e.name for e in entries] == ["a", "b"]
    a, b = entries
    assert a.video == tmp_path / "videos/a.mp4"  # relative to the manifest's folder
    assert a.frame_labels == tmp_path / "labels/a.csv" and b.frame_labels is None
    assert (a.split, b.split) == ("train", "test")
    assert a.extra_path("boxes", tmp_path) == tmp_path / "boxes/a.csv" and b.extra_path("boxes", tmp_path) is None
    assert (a.line, b.line) == (2, 3)


def test_minimal_manifest_with_bom_and_blank_lines(tmp_path: Path) -> None:
    text = "\ufeffvideo,subject,label\n\nv.mp4,S1,normal\n  \n"
    (e,) = read_manifest(_write(tmp_path / "m.csv", text))
    assert e.split is None and e.frame_labels is None and e.line == 3


BAD_MANIFESTS = {
    "missing column": ("video,label\nv.mp4,normal\n", 1, "missing column"),
    "too few fields": ("video,subject,label\nv.mp4,S1,normal\nw.mp4,S1\n", 3, "2 fields"),
    "too many fields": ("video,subject,label\nv.mp4,S1,normal,extra\n", 2, "4 fields"),
    "bad split": ("video,subject,label,split\nv.mp4,S1,normal,validation\n", 2, "split"),
    "empty subject": ("video,subject,label\nv.mp4,,normal\n", 2, "subject"),
    "non-UTF-8": (b"video,subject,label\nv.mp4,S1,normal\nw.mp4,Jos\xe9,normal\n", 3, "UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_bad_manifest(case: str, tmp_path: Path) -> None:
    text, line, words = BAD_MANIFESTS[case]
    path = _write(tmp_path / "manifest.csv", text)
    with pytest.raises(LabelError) as e:
        read_manifest(path)
    msg = str(e.value)
    assert str(path) in msg and f"line {line}:" in msg and words in msg, msg
    assert e.value.path == path


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff"])
def test_empty_manifest(text: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "manifest.csv", text)
    with pytest.raises(LabelError, match="empty") as e:
        read_manifest(path)
    assert str(path) in str(e.value)


def test_manifest_without_rows(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="no videos"):
        read_manifest(_write(tmp_path / "m.csv", "video,subject,label\n"))


def test_missing_or_folder(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="not found"):
        read_manifest(tmp_path / "absent.csv")
    with pytest.raises(LabelError, match="folder"):
        read_frame_labels(tmp_path)


def test_videos_sharing_a_file_name_get_their_paths_as_names(tmp_path: Path) -> None:
    """p01/trial1.mp4 and p02/trial1.mp4 (a common layout) must not become one name: names key every
    per-video table of training and evaluation (joints, splits, features)."""
    text = (
        "video,subject,label\n"
        "p01/trial1.mp4,p01,normal\n"
        "p02/trial1.mp4,p02,compensation\n"
        "p02/trial2.mp4,p02,normal\n"
        f"{tmp_path.parent / 'elsewhere' / 'trial2.mp4'},p03,normal\n"
    )
    entries = read_manifest(_write(tmp_path / "m.csv", text))
    names = [e.name for e in entries]
    assert names[:3] == ["p01/trial1", "p02/trial1", "p02/trial2"]
    assert names[3] == (tmp_path.parent / "elsewhere" / "trial2").as_posix()  # outside the manifest's folder
    assert len(set(names)) == 4
    # unique file names keep the short name
    (e,) = read_manifest(_write(tmp_path / "one.csv", "video,subject,label\np01/trial1.mp4,p01,normal\n"))
    assert e.name == "trial1"


def test_a_video_listed_twice_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.csv", "video,subject,label\nv/a.mp4,S1,normal\nw.mp4,S1,normal\n./v/a.mp4,S2,normal\n")
    with pytest.raises(LabelError, match=r"line 4: a\.mp4 is listed twice \(first on line 2\)") as e:
        read_manifest(path)
    assert str(path) in str(e.value)


# -------------------------------------------------------------------------------------- frame labels
def test_good_frame_labels_any_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.csv", "frame,label\n2,1\n0,0\n1,1\n3,0\n")
    assert read_frame_labels(path).tolist() == [0, 1, 1, 0]
    assert read_frame_labels(path, n_frames=4).dtype == np.uint8


def test_write_then_read_frame_labels(tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 1, 0], np.uint8)
    write_frame_labels(tmp_path / "sub" / "l.csv", labels)
    assert np.array_equal(read_frame_labels(tmp_path / "sub" / "l.csv", n_frames=6), labels)


BAD_LABELS = {
    "label 2": ("frame,label\n0,0\n1,2\n", None, "line 3:", "0 or 1"),
    "label text": ("frame,label\n0,yes\n", None, "line 2:", "0 or 1"),
    "duplicate frame": ("frame,label\n0,0\n1,1\n1,0\n", None, "line 4:", "repeated (first on line 3)"),
    "missing frame": ("frame,label\n0,0\n2,1\n", None, "frame 1", "missing"),
    "missing last frames": ("frame,label\n0,0\n1,1\n", 4, "frame 2", "missing"),
    "beyond the video": ("frame,label\n0,0\n1,1\n2,0\n", 2, "line 4:", "beyond"),
    "non-integer frame": ("frame,label\n0,0\n1.5,1\n", None, "line 3:", "not an integer"),
    "negative frame": ("frame,label\n-1,0\n", None, "line 2:", "negative"),
    "wrong field count": ("frame,label\n0,0\n1\n", None, "line 3:", "1 fields"),
    "extra field": ("frame,label\n0,0\n1,1,1\n", None, "line 3:", "3 fields"),
    "wrong header": ("label,frame\n0,0\n", None, "line 1:", "frame,label"),
    "no rows": ("frame,label\n", None, "no label rows", ""),
    "empty file": ("", None, "empty", ""),
    "non-UTF-8": (b"frame,label\n0,0\n1,1\n\xff\xfe,0\n", None, "line 4:", "UTF-8"),
    "non-UTF-8 after BOM": (b"\xef\xbb\xbfframe,label\n0,0\n\xe9,1\n", None, "line 3:", "UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD_LABELS))
def test_bad_frame_labels(case: str, tmp_path: Path) -> None:
    text, n_frames, where, words = BAD_LABELS[case]
    path = _write(tmp_path / "labels.csv", text)
    with pytest.raises(LabelError) as e:
        read_frame_labels(path, n_frames=n_frames)
    msg = str(e.value)
    assert str(path) in msg and where in msg and words in msg, msg


# --------------------------------------------------------------------------------------------- boxes
def test_boxes(tmp_path: Path) -> None:
    path = _write(tmp_path / "b.csv", "frame,x,y,w,h\n0,1,2,30,40\n2,1.5,2,30,40\n")
    assert read_boxes_csv(path) == {0: (1.0, 2.0, 30.0, 40.0), 2: (1.5, 2.0, 30.0, 40.0)}
    for body, line in (("0,1,2,x,4\n", 2), ("0,1,2,3,4\n1,1,2,-3,4\n", 3), ("0,1,2\n", 2)):
        bad = _write(tmp_path / "bad.csv", "frame,x,y,w,h\n" + body)
        with pytest.raises(LabelError, match=f"line {line}:"):
            read_boxes_csv(bad)
    with pytest.raises(LabelError, match="line 1:"):
        read_boxes_csv(_write(tmp_path / "h.csv", "frame,x,y\n0,1,2\n"))
