"""Review files: atomic JSON, fingerprint checks, autosave within 2 s, recovery after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from review_helpers import make_video

from stanviewer.core.errors import LabelError
from stanviewer.core.review.recovery import Autosaver, discard, find_recovery, recovery_path, restore
from stanviewer.core.review.reviewfile import (
    VideoMismatchError,
    VideoRef,
    load_review,
    open_review,
    review_path,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recovery files live in the data folder; each test gets its own (videos here share content)."""
    monkeypatch.setenv("STANVIEWER_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return make_video(tmp_path / "clip one.mp4")


def test_save_and_load_round_trip(video: Path, tmp_path: Path) -> None:
    r = open_review(video, user="ann")
    assert r.path == video.with_name("clip one.mp4.stanreview.json")
    assert [t.name for t in r.labels.tiers] == ["annotator", "therapist"]
    r.labels.set_label("annotator", 3, 9, "lean, left")
    r.labels.set_label("therapist", 10, 12, "Rumpfneigung ü")
    r.labels.set_status("done", reviewer="Dr. T")
    path = r.save()
    assert not r.dirty
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "stanviewer-review" and data["version"] == 1
    assert data["video"]["fingerprint"] == r.video.fingerprint and data["video"]["frames"] == 30
    assert data["status"] == "done" and data["reviewer"] == "Dr. T"
    assert "0-based" in data["frame_indexing"]
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    again = open_review(video)
    assert again.labels.tiers == r.labels.tiers  # provenance (who, when, origin) included
    assert again.labels.status == "done"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # an editor saved it with a byte-order mark
    assert open_review(video).labels.tiers == r.labels.tiers
    path.write_bytes(path.read_bytes()[3:])
    # a project folder instead of the sidecar
    proj = tmp_path / "project"
    r.save(review_path(video, proj))
    assert (proj / "clip one.mp4.stanreview.json").exists()
    assert open_review(video, proj).labels.spans() == r.labels.spans()


def test_labels_never_attach_to_another_video(video: Path, tmp_path: Path) -> None:
    r = open_review(video)
    r.labels.set_label("annotator", 0, 5, "x")
    r.save()
    other = make_video(tmp_path / "other.mp4", fps=30)  # same frame count, different content
    foreign = other.with_name("other.mp4.stanreview.json")
    foreign.write_bytes(r.path.read_bytes())
    with pytest.raises(VideoMismatchError) as e:
        open_review(other)
    msg = str(e.value)
    assert str(foreign) in msg and "another video" in msg and "fingerprint" in msg and "clip one.mp4" in msg
    forced = open_review(other, allow_other_video=True)
    assert forced.labels.spans()["annotator"] == [(0, 5, "x")]
    assert forced.overrides and forced.to_dict()["overrides"][0]["from"]["name"] == "clip one.mp4"
    shorter = make_video(tmp_path / "short.mp4", n=20)
    shorter.with_name("short.mp4.stanreview.json").write_bytes(r.path.read_bytes())
    with pytest.raises(VideoMismatchError, match="30 frames"):
        open_review(shorter, allow_other_video=True)


def test_malformed_review_files_name_file_and_line(tmp_path: Path, video: Path) -> None:
    bad = tmp_path / "bad.stanreview.json"
    bad.write_text('{\n "format": "stanviewer-review",\n "version": 1,\n "video": {,\n}', encoding="utf-8")
    with pytest.raises(LabelError) as e:
        load_review(bad)
    assert str(bad) in str(e.value) and "line 4" in str(e.value)
    good = open_review(video)
    good.labels.set_label("annotator", 0, 3, "x")
    data = good.to_dict()
    data["version"] = 99
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(LabelError, match="newer stanviewer"):
        load_review(bad)
    data["version"] = 1
    data["tiers"][0]["intervals"][0]["end"] = 99
    bad.write_text(json.dumps(data, indent=1), encoding="utf-8")
    with pytest.raises(LabelError, match=r"line \d+: the tiers are malformed"):
        load_review(bad)
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(LabelError, match="not a stanviewer review file"):
        load_review(bad)


def _wait_for(path: Path, predicate, timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if path.exists():
            try:
                if predicate(json.loads(path.read_text(encoding="utf-8"))):
                    return time.monotonic() - t0
            except (json.JSONDecodeError, OSError):
                pass
        time.sleep(0.02)
    raise AssertionError(f"{path} did not get the edit within {timeout} s")


def _annotator(data: dict) -> list[list]:
    tier = next(t for t in data["tiers"] if t["name"] == "annotator")
    return [[iv["start"], iv["end"], iv["label"]] for iv in tier["intervals"]]


def _label_at(data: dict, frame: int) -> str:
    return next((label for a, b, label in _annotator(data) if a <= frame < b), "")


def test_autosave_writes_within_two_seconds(video: Path) -> None:
    r = open_review(video)
    rec = recovery_path(r.video)
    rec.unlink(missing_ok=True)
    saver = Autosaver(r)
    try:
        t0 = time.monotonic()
        r.labels.set_label("annotator", 2, 4, "x")
        took = _wait_for(rec, lambda d: _annotator(d) == [[2, 4, "x"]], 2.0)
        assert took < 2.0
        # continuous edits (a long drag) must not postpone the write past 2 s
        start = time.monotonic()
        done: list[float] = []
        k = 0
        while time.monotonic() - start < 3.0:
            r.labels.set_label("annotator", 10, 11 + k % 15, f"e{k}")
            done.append(time.monotonic())
            k += 1
            time.sleep(0.05)
            if done[0] < time.monotonic() - 2.0:  # every edit older than 2 s is on disk already
                on_disk = _label_at(json.loads(rec.read_text(encoding="utf-8")), 10)
                newest_old = max(j for j, t in enumerate(done) if t <= time.monotonic() - 2.0)
                assert int(on_disk[1:]) >= newest_old
        assert saver.writes >= 2 and saver.last_error is None
        assert time.monotonic() - t0 < 10
    finally:
        saver.stop()
    assert _label_at(json.loads(rec.read_text(encoding="utf-8")), 10) == f"e{k - 1}"  # flushed on stop
    # the review file itself is only written by an explicit save, which removes the recovery file
    assert not r.path.exists()
    r.save()
    assert r.path.exists() and not rec.exists()


def test_recovery_offer_restore_discard(video: Path) -> None:
    assert find_recovery(video) is None
    r = open_review(video)
    r.labels.set_label("annotator", 1, 5, "x")
    r.save()
    assert find_recovery(video) is None
    with Autosaver(r, delay=0.05, max_delay=0.1) as saver:
        r.labels.set_label("therapist", 7, 9, "y")
        _wait_for(saver.path, lambda d: True, 2.0)
    info = find_recovery(video)
    assert info is not None and info.review_path == r.path and info.intervals == 2
    assert "Restore" in info.summary() and video.name in info.summary()
    assert "(2 intervals in 2 tiers;" in info.summary()  # the human tiers that hold them (not the model's)
    back = restore(info)
    assert back.labels.spans() == r.labels.spans() and back.dirty
    assert open_review(video).labels.spans()["therapist"] == []  # the saved file is untouched
    back.save()
    assert find_recovery(video) is None and not info.path.exists()
    # the dialog counts the human tiers that hold labels, in good English
    with Autosaver(back, delay=0.05, max_delay=0.1) as saver:
        back.labels.delete("annotator", 1)
        _wait_for(saver.path, lambda d: True, 2.0)
    info = find_recovery(video)
    assert info is not None and "(1 interval in 1 tier;" in info.summary()
    # a recovery file older than the review file is not offered
    with Autosaver(back, delay=0.05, max_delay=0.1):
        back.labels.set_label("annotator", 20, 22, "z")
    assert find_recovery(video) is not None
    time.sleep(0.01)
    back.labels.set_label("annotator", 24, 25, "w")
    data = back.to_dict()
    back.path.write_text(json.dumps(data), encoding="utf-8")  # saved later by someone else
    assert find_recovery(video) is None
    discard(find_recovery(video) or info)
    assert not info.path.exists()


CHILD = r"""
import sys, time
from stanviewer.core.review.reviewfile import open_review
from stanviewer.core.review.recovery import Autosaver
review = open_review(sys.argv[1], user="child")
review.labels.set_label("annotator", 0, 1, "saved")
review.save()
saver = Autosaver(review)
print("ready", flush=True)
for k in range(1, 200):
    review.labels.set_label("annotator", k, k + 1, f"e{k}")
    print(f"edit {k}", flush=True)
    time.sleep(0.05)
"""


def test_kill_9_mid_editing_loses_at_most_two_seconds(tmp_path: Path, env_with_repo: dict[str, str]) -> None:
    video = make_video(tmp_path / "killed.mp4", n=200)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(video)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env_with_repo, "STANVIEWER_DATA_DIR": os.environ["STANVIEWER_DATA_DIR"]},
        cwd=REPO,
    )
    seen: dict[int, float] = {}
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        while True:
            line = proc.stdout.readline()
            assert line, "the child stopped early"
            k = int(line.split()[1])
            seen[k] = time.monotonic()
            if k >= 70:
                break
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # "restart": what the app does when it opens the video again
    info = find_recovery(video)
    assert info is not None
    restored = restore(info, VideoRef.open(video))
    got = dict((a, label) for a, _, label in restored.labels.tier("annotator").spans())
    old_enough = [k for k, t in seen.items() if t <= killed - 2.0]
    assert len(old_enough) >= 20  # the test really covers edits older than 2 s
    missing = [k for k in old_enough if got.get(k) != f"e{k}"]
    assert not missing, f"edits older than 2 s lost: {missing}"
    assert got[0] == "saved"
    assert open_review(video).labels.tier("annotator").spans() == [(0, 1, "saved")]  # explicit save untouched


def test_a_project_folder_keeps_two_videos_of_one_file_name_apart(tmp_path: Path) -> None:
    """p01/trial1.mp4 and p02/trial1.mp4 reviewed into one project folder: each keeps its own labels (the
    second used to be refused as "another video"); a changed video at the same path is still refused."""
    proj = tmp_path / "project"
    videos = []
    for k, patient in enumerate(("p01", "p02")):
        (tmp_path / patient).mkdir()
        videos.append(make_video(tmp_path / patient / "trial1.mp4", fps=25 + 5 * k))
    for k, v in enumerate(videos):
        r = open_review(v, proj, user="ann")
        assert not r.labels.spans()["annotator"]  # a new review, not the other video's
        r.labels.set_label("annotator", 2 + 10 * k, 6 + 10 * k, "x")
        r.save()
    names = {p.name for p in proj.iterdir()}
    assert len(names) == 2 and "trial1.mp4.stanreview.json" in names  # the second: trial1.mp4.<fp>.stanreview.json
    for k, v in enumerate(videos):
        assert open_review(v, proj).labels.spans()["annotator"] == [(2 + 10 * k, 6 + 10 * k, "x")]
    make_video(videos[0], fps=50)  # the first video changed in place
    with pytest.raises(VideoMismatchError):
        open_review(videos[0], proj)


def test_a_save_never_replaces_another_writers_save_silently(video: Path) -> None:
    from stanviewer.core.review.reviewfile import ReviewConflictError

    a, b = open_review(video), open_review(video)  # two windows (or instances) on one video, no file yet
    a.labels.set_label("annotator", 1, 5, "from A")
    a.save()
    b.labels.set_label("therapist", 7, 9, "from B")
    with Autosaver(b, delay=0.05, max_delay=0.1) as saver:  # autosave is not blocked by the conflict
        b.labels.set_label("therapist", 10, 12, "more B")
        _wait_for(saver.path, lambda d: True, 2.0)
    with pytest.raises(ReviewConflictError, match="changed by another window or program"):
        b.save()
    assert open_review(video).labels.spans()["annotator"] == [(1, 5, "from A")]  # A's save is intact
    assert b.dirty and recovery_path(b.video).exists()  # B's edits are kept too
    b.save(overwrite=True)  # the user chose to replace A's save
    assert open_review(video).labels.spans()["therapist"] == [(7, 9, "from B"), (10, 12, "more B")]
    with pytest.raises(ReviewConflictError):  # now A is the one whose view is stale
        a.save()
    b.labels.set_label("annotator", 20, 22, "B again")
    b.save()  # B's own earlier save is no conflict
    c = open_review(video)
    b.labels.set_label("annotator", 24, 25, "B once more")
    b.save()
    with pytest.raises(ReviewConflictError):  # a loaded review is checked against what it read
        c.save()
    b.path.unlink()  # deleted meanwhile: nobody's save is lost by writing it again
    c.save()


def test_a_file_name_that_is_not_utf8_round_trips(video: Path, tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/clip\xe9.mp4"  # Latin-1 name from an old USB stick
    os.rename(video, raw)
    name = Path(os.fsdecode(raw))  # 'clip\udce9.mp4'
    r = open_review(name)
    with Autosaver(r, delay=0.05, max_delay=0.1) as saver:  # autosave works
        r.labels.set_label("annotator", 1, 5, "lean")
        _wait_for(saver.path, lambda d: True, 2.0)
    assert saver.last_error is None
    path = r.save()
    text = path.read_bytes().decode("utf-8")  # still UTF-8 text, the odd byte as an escape
    assert "clip\\udce9.mp4" in text
    assert os.fsencode(load_review(path).video.path) == os.fsencode(name.resolve())  # the stored path
    back = open_review(name)
    assert back.path == path
    assert back.labels.spans()["annotator"] == [(1, 5, "lean")]


def test_a_video_name_near_the_file_name_limit_gets_a_review_file_that_fits(video: Path, tmp_path: Path) -> None:
    """80 Japanese characters are 240 bytes: with ``.stanreview.json`` the review file's name would pass the
    255 bytes a file name may have. It is cut, marked with a hash of the whole name, and found again."""
    long = video.with_name("リハビリ" * 20 + ".mp4")
    os.rename(video, long)
    r = open_review(long)
    r.labels.set_label("annotator", 1, 5, "lean")
    path = r.save()
    assert len(path.name.encode()) <= 255 and path.name.endswith(".stanreview.json") and "~" in path.name
    assert open_review(long).labels.spans()["annotator"] == [(1, 5, "lean")]
    other = long.with_name("リハビリ" * 20 + "2.mp4")  # shares the first 220 bytes: its own file
    assert review_path(other) != review_path(long)
    assert review_path(video).name == "clip one.mp4.stanreview.json"  # short names as before


def test_a_live_recovery_file_is_not_offered_nor_deleted(video: Path) -> None:
    from stanviewer.core.review.recovery import in_use_elsewhere

    a = open_review(video)
    saver = Autosaver(a, delay=0.05, max_delay=0.1)  # a window editing the video, still running
    try:
        a.labels.set_label("annotator", 1, 5, "unsaved A")
        _wait_for(saver.path, lambda d: True, 2.0)
        assert in_use_elsewhere(video)
        assert find_recovery(video) is None  # not a crash's leftover
        b = open_review(video)  # a second editor autosaves beside it, not over it
        with Autosaver(b, delay=0.05, max_delay=0.1) as other:
            assert other.path != saver.path
            b.labels.set_label("therapist", 7, 9, "B")
            _wait_for(other.path, lambda d: True, 2.0)
            b.save()  # drops its own recovery file only
        assert saver.path.exists() and not other.path.exists()
        assert _label_at(json.loads(saver.path.read_text(encoding="utf-8")), 1) == "unsaved A"
        time.sleep(0.01)
        a.labels.set_label("annotator", 10, 12, "later A")
        _wait_for(saver.path, lambda d: _label_at(d, 10) == "later A", 2.0)
    finally:
        saver.stop(flush=False)  # the first editor dies without a save
    assert not in_use_elsewhere(video)
    info = find_recovery(video)  # now it is a crash's leftover (newer than B's save)
    assert info is not None and info.path == saver.path
    discard(info)
    assert not saver.path.exists()


def test_an_owner_lock_taken_while_its_file_is_removed_is_taken_again() -> None:
    """A closes its video between B's open and B's lock of the lock file: B must not hold a lock on the
    removed file (a third editor would then take the same recovery file)."""
    from stanviewer.core.review import recovery as R

    rec = R.recovery_path("race.mp4", "f" * 64)
    a = R._OwnerLock(rec)
    assert a.acquire()
    b = R._OwnerLock(rec)
    real = R._try_lock

    def interleaved(fd: int) -> bool:
        R._try_lock = real
        a.release()
        return real(fd)

    R._try_lock = interleaved
    try:
        assert b.acquire()
    finally:
        R._try_lock = real
    assert b.fd is not None and os.fstat(b.fd).st_nlink == 1  # the lock file on disk, not a removed one
    assert not R._OwnerLock(rec).acquire()  # a third editor finds slot 1 taken
    b.release()


def test_undoing_back_to_the_saved_labels_is_clean_again(video: Path) -> None:
    """Edit, then undo to what was saved: no "unsaved changes" (the title's dot, the close question), and no
    recovery file left to offer after a crash."""
    r = open_review(video)
    r.labels.set_label("annotator", 1, 5, "lean")
    r.save()
    assert not r.dirty
    with Autosaver(r, delay=0.05, max_delay=0.1) as saver:
        r.labels.set_label("annotator", 10, 12, "hike")
        assert r.dirty
        _wait_for(saver.path, lambda d: True, 2.0)
        r.labels.undo()
        assert not r.dirty
        saver.flush()
        assert not saver.path.exists()
        r.labels.redo()
        assert r.dirty
        r.labels.undo()
        assert not r.dirty
