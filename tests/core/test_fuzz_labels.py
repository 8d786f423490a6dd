"""Seeded fuzzing of the label loaders: manifests, per-frame labels, review files, every import format and
crash-recovery files. Random, truncated and byte-overwritten copies of files written by the project's own
writers must give a LabelError naming the file (or load cleanly), never another exception or a hang."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from fuzz_helpers import assert_no_leaks, blobs, fuzz_loader, json_mutants
from review_helpers import make_video

from stanviewer.core.errors import LabelError
from stanviewer.core.manifest import read_boxes_csv, read_frame_labels, read_manifest, write_frame_labels
from stanviewer.core.review.formats import EXTENSIONS, FORMATS, export_labels, import_labels
from stanviewer.core.review.model import LabelsModel
from stanviewer.core.review.recovery import find_recovery, recovery_path, restore
from stanviewer.core.review.reviewfile import Review, VideoRef, load_review, review_path
from stanviewer.core.review.timing import FrameTimes
from stanviewer.core.synth.dataset import _write_rows

N = 30


def _review(path: Path, frames: int = N) -> Review:
    ref = VideoRef(str(path.with_name("clip.mp4")), "ab" * 32, frames, 25.0, frames / 25.0)
    r = Review(ref, LabelsModel(frames, ("annotator", "therapist"), user="ann"), path)
    m = r.labels
    m.set_label("annotator", 0, 3, "lean, left")
    m.set_label("annotator", 3, 5, 'Rumpf "ü"')
    m.set_label("annotator", frames - 2, frames, "compensation")
    m.set_label("therapist", 1, frames - 1, "compensation <&>")
    scores = np.zeros(frames, np.float32)
    scores[5:12] = 0.9
    m.set_proposal(scores, 0.5, {"model": "stan-test", "method": "window"})
    return r


def test_manifest_fuzzed(tmp_path: Path) -> None:
    valid = tmp_path / "valid.csv"
    rows = [[f"v{i}.mp4", f"s{i % 3}", "compensation" if i % 2 else "normal", f"labels/v{i}.csv", "train"]
            for i in range(6)]  # fmt: skip
    _write_rows(valid, ["video", "subject", "label", "frame_labels", "split", "boxes"], ([*r, "b.csv"] for r in rows))
    read_manifest(valid)
    cases = blobs(valid.read_bytes(), random.Random(101))
    assert_no_leaks(fuzz_loader(read_manifest, tmp_path / "manifest.csv", cases, expected=LabelError))


def test_frame_labels_fuzzed(tmp_path: Path) -> None:
    valid = tmp_path / "valid.csv"
    write_frame_labels(valid, (np.arange(40) % 7 < 3).astype(np.uint8))
    assert read_frame_labels(valid, 40).shape == (40,)
    cases = blobs(valid.read_bytes(), random.Random(102))
    path = tmp_path / "labels.csv"
    assert_no_leaks(fuzz_loader(read_frame_labels, path, cases, expected=LabelError))
    assert_no_leaks(fuzz_loader(lambda p: read_frame_labels(p, 40), path, cases, expected=LabelError))


def test_boxes_csv_fuzzed(tmp_path: Path) -> None:
    valid = tmp_path / "valid.csv"
    _write_rows(valid, ["frame", "x", "y", "w", "h"], ([i, 10.5 + i, 4, 20.25, 30] for i in range(30)))
    assert len(read_boxes_csv(valid)) == 30
    cases = blobs(valid.read_bytes(), random.Random(103))
    assert_no_leaks(fuzz_loader(read_boxes_csv, tmp_path / "boxes.csv", cases, expected=LabelError))


def test_review_file_fuzzed(tmp_path: Path) -> None:
    """Before the fix 9 of these leaked AttributeError (a tier or interval that is not a JSON object)."""
    valid = _review(tmp_path / "valid.stanreview.json").save()
    assert load_review(valid).labels.spans()
    rng = random.Random(104)
    cases = blobs(valid.read_bytes(), rng) + json_mutants(valid.read_bytes(), rng, 200)
    path = tmp_path / "clip.mp4.stanreview.json"
    assert_no_leaks(fuzz_loader(load_review, path, cases, expected=LabelError))
    ref = VideoRef(str(tmp_path / "clip.mp4"), "ab" * 32, N, 25.0, N / 25.0)
    assert_no_leaks(fuzz_loader(lambda p: load_review(p, ref), path, cases[::3], expected=LabelError))


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_import_fuzzed(fmt: str, tmp_path: Path) -> None:
    """Before the fix json leaked 16 (AttributeError 15, TypeError 1: a "video" record or tier that is
    not an object) and eaf 1 (LookupError: an XML declaration naming an unknown encoding)."""
    review = _review(tmp_path / "r.json")
    times = FrameTimes.from_fps(N, 25.0)
    valid = export_labels(review, tmp_path / f"valid{EXTENSIONS[fmt]}", fmt, times, scores_csv=tmp_path / "s.csv")
    assert import_labels(valid, times)
    rng = random.Random(105 + FORMATS.index(fmt))
    cases = blobs(valid.read_bytes(), rng) + (json_mutants(valid.read_bytes(), rng, 200) if fmt == "json" else [])
    path = tmp_path / f"fuzz{EXTENSIONS[fmt]}"

    def load(p: Path) -> object:
        return import_labels(p, times, fingerprint="ab" * 32)

    assert_no_leaks(fuzz_loader(load, path, cases, expected=LabelError))


def test_import_binary_frames_fuzzed(tmp_path: Path) -> None:
    review = _review(tmp_path / "r.json")
    times = FrameTimes.from_fps(N, 25.0)
    valid = tmp_path / "valid.frames.csv"
    export_labels(review, valid, "frames", times, tiers=["annotator"], binary=True)
    cases = blobs(valid.read_bytes(), random.Random(111))
    assert_no_leaks(fuzz_loader(lambda p: import_labels(p, times), tmp_path / "b.frames.csv", cases))


def test_recovery_file_fuzzed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged recovery file is ignored by find_recovery; restoring one that passes gives a LabelError.

    Before the fix 12 leaked (AttributeError 10, TypeError 2: tiers that are not a list of objects)."""
    monkeypatch.setenv("STANVIEWER_DATA_DIR", str(tmp_path / "data"))
    video = make_video(tmp_path / "clip.mp4")
    ref = VideoRef.open(video)
    review = Review(ref, LabelsModel(N, ("annotator",), user="ann"), review_path(video))
    review.labels.set_label("annotator", 2, 9, "lean")
    rec = recovery_path(ref)
    review.write(rec)  # what the Autosaver writes
    assert find_recovery(video) is not None
    rng = random.Random(112)
    cases = blobs(rec.read_bytes(), rng) + json_mutants(rec.read_bytes(), rng, 150)

    def find_and_restore(p: Path) -> object:
        info = find_recovery(video)
        return restore(info, ref) if info is not None else None

    assert_no_leaks(fuzz_loader(find_and_restore, rec, cases, expected=LabelError))
    # a damaged saved review beside a good recovery file: the recovery is still offered
    review.write(rec)
    assert_no_leaks(fuzz_loader(lambda p: find_recovery(video), review_path(video), cases[::4], expected=LabelError))
