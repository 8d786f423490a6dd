"""Autosave and crash recovery for review files (Qt-free).

- :class:`Autosaver` subscribes to a :class:`~stanviewer.core.review.reviewfile.Review`'s labels and
  writes the review, atomically, to a **recovery file** in ``data_dir()/recovery/`` (one per video,
  named after the video and its fingerprint) from a background thread: ``delay`` seconds after the last
  edit, and never later than ``max_delay`` seconds after the first unsaved edit, so that a continuous
  drag is still on disk within 2 s. It never touches the review file itself; an explicit
  :meth:`Review.save() <stanviewer.core.review.reviewfile.Review.save>` writes the sidecar and removes
  the recovery file.
- After a crash (even ``kill -9``), :func:`find_recovery` tells whether a recovery file of the video is
  newer than its review file; the app offers :func:`restore` (the review with the recovered labels,
  saved to the sidecar on the next explicit save) or :func:`discard`.
- **Live recovery files.** An :class:`Autosaver` holds an exclusive OS lock (``flock``; ``msvcrt.locking``
  on Windows) on ``<recovery file>.lock`` for as long as it runs; the lock file also names its owner
  (process id, host, start time) for messages. The operating system drops the lock when the process
  dies (``kill -9`` and power loss included), so "locked" means "an editor of this video is running",
  without the pid-reuse and clock problems of a pid check. :func:`find_recovery` never offers a locked
  (live) recovery file, and nothing here deletes one: it belongs to the window still editing it
  (:func:`in_use_elsewhere` tells the app to say so). A second editor of the same video (another window
  or instance) autosaves to a slot of its own (``<name>-<fp>.2.stanreview.json``, ``.3``, ...), so the
  two never overwrite each other's recovery file; after a crash the newest unlocked slot is offered.

::

    info = find_recovery(video_path)
    review = restore(info) if info and user_says_yes(info.summary()) else open_review(video_path)
    saver = Autosaver(review)          # starts its thread
    ...                                # edits
    review.save(); saver.stop()
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from stanviewer.core.errors import LabelError
from stanviewer.core.paths import data_dir
from stanviewer.core.review.model import Change
from stanviewer.core.review.reviewfile import (
    Review,
    VideoRef,
    file_stamp,
    read_review_dict,
    review_from_dict,
    review_path,
    video_fingerprint,
)
from stanviewer.core.review.signals import Signal

__all__ = [
    "Autosaver",
    "RecoveryInfo",
    "discard",
    "drop_recovery",
    "find_recovery",
    "in_use_elsewhere",
    "recovery_path",
    "restore",
]

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

#: how many editors of one video can autosave side by side (slot 1 is the plain recovery file)
MAX_SLOTS = 16

log = logging.getLogger(__name__)


def recovery_path(video: VideoRef | str | Path, fingerprint: str | None = None) -> Path:
    """``data_dir()/recovery/<video name>-<fingerprint[:16]>.stanreview.json``."""
    if isinstance(video, VideoRef):
        name, fp = video.name, video.fingerprint
    else:
        name, fp = Path(video).name, fingerprint or video_fingerprint(video)
    safe = re.sub(r"[^\w.-]+", "_", name)[:80]
    if len(safe.encode("utf-8", "surrogateescape")) > 120:  # 80 CJK characters would pass a name's 255 bytes
        safe = safe.encode("utf-8", "surrogateescape")[:120].decode("utf-8", "ignore")
    folder = data_dir() / "recovery"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{safe}-{fp[:16]}.stanreview.json"


def _slot(first: Path, k: int) -> Path:
    """Recovery file ``k`` (1: ``first`` itself; k > 1: ``<stem>.k.stanreview.json``) of a video."""
    if k == 1:
        return first
    return first.with_name(first.name.removesuffix(".stanreview.json") + f".{k}.stanreview.json")


def _lock_path(rec: Path) -> Path:
    return rec.with_name(rec.name + ".lock")


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # pragma: no cover - Windows
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:  # pragma: no cover - Windows
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the open ``fd`` is still the file at ``path`` (not one removed after it was opened)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev)


class _OwnerLock:
    """An exclusive lock on ``<recovery file>.lock`` while an autosaver of that file runs (module doc)."""

    def __init__(self, rec: Path) -> None:
        self.path = _lock_path(rec)
        self.fd: int | None = None

    def acquire(self) -> bool:
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                log.warning("cannot lock %s (%s); the recovery file is not marked as in use", self.path, e)
                return True  # a read-only data folder must not stop autosave attempts
            if not _try_lock(fd):
                os.close(fd)
                return False
            if _same_file(fd, self.path):
                break
            # the holder removed the file between our open and our lock: we hold a lock on a deleted file,
            # which no newcomer would see; open the path again
            _unlock(fd)
            os.close(fd)
        else:
            return False
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with contextlib.suppress(OSError):  # for people looking into the folder; the lock is what counts
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(owner).encode() + b"\n")
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # while still holding it: a newcomer locks a fresh file
        _unlock(self.fd)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None


def _is_live(rec: Path) -> bool:
    """Whether a running autosaver (this process's included) holds ``rec``'s lock."""
    lock = _lock_path(rec)
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    except OSError:
        return False
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def _slots(first: Path) -> list[Path]:
    return [_slot(first, k) for k in range(1, MAX_SLOTS + 1)]


def in_use_elsewhere(video: VideoRef | str | Path, fingerprint: str | None = None) -> bool:
    """Whether another window or instance is editing ``video`` now (holds one of its recovery locks)."""
    first = recovery_path(video, fingerprint)
    return any(_lock_path(p).exists() and _is_live(p) for p in _slots(first))


class Autosaver:
    """Write a review's recovery file in the background within ``max_delay`` s of every edit.

    Args:
        review: the review to watch.
        path: where to write (default: :func:`recovery_path` of the video).
        delay: quiet time after the last edit before writing (debounce).
        max_delay: the longest an edit waits for a write, even while edits keep coming.
        start: start the thread now.

    Signals: ``sig_saved(path)`` after each write, ``sig_error(exception)`` when a write fails (the next
    edit tries again). Both are emitted from the autosaver's thread.
    """

    def __init__(
        self,
        review: Review,
        path: str | Path | None = None,
        *,
        delay: float = 0.4,
        max_delay: float = 1.0,
        start: bool = True,
    ) -> None:
        self.review = review
        self._lock: _OwnerLock | None = None
        if path is not None:
            self.path = Path(path)
            self._lock = _OwnerLock(self.path)
            if not self._lock.acquire():
                log.warning("recovery file %s is in use by another editor", self.path)
                self._lock = None
        else:  # the first slot no running editor holds (module doc: live recovery files)
            first = recovery_path(review.video)
            for candidate in _slots(first):
                lock = _OwnerLock(candidate)
                if lock.acquire():
                    self.path, self._lock = candidate, lock
                    break
            else:
                raise LabelError(f"{MAX_SLOTS} editors of this video are open already", first)
        review.recovery_files.add(self.path)
        self.delay, self.max_delay = delay, max_delay
        self.sig_saved = Signal("autosaved")
        self.sig_error = Signal("autosave failed")
        self.last_error: BaseException | None = None
        self.writes = 0
        self._cond = threading.Condition()
        self._first: float | None = None  # monotonic time of the first unsaved edit
        self._last = 0.0
        self._stop = False
        self._written_generation = review.generation
        self._thread = threading.Thread(target=self._run, name="stanviewer-autosave", daemon=True)
        review.labels.sig_changed.connect(self._on_change)
        if start:
            self.start()

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def _on_change(self, change: Change) -> None:
        now = time.monotonic()
        with self._cond:
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and self._first is None:
                    self._cond.wait()
                if self._stop:
                    return
                while not self._stop and self._first is not None:
                    due = min(self._last + self.delay, self._first + self.max_delay)
                    wait = due - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._stop:
                    return
                self._first = None
            self._write()

    def _write(self) -> None:
        review = self.review
        gen = review.generation
        if gen == self._written_generation:
            return
        if not review.dirty:  # edits undone back to the saved labels: nothing the review file lacks
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            self._written_generation = gen
            return
        try:
            review.write(self.path)
        except Exception as e:  # a full disk must not kill the thread; report and retry on the next edit
            self.last_error = e
            log.warning("autosave to %s failed: %s", self.path, e)
            self.sig_error.emit(e)
            return
        self._written_generation = gen
        self.last_error = None
        self.writes += 1
        self.sig_saved.emit(self.path)

    def flush(self) -> None:
        """Write now if there are unsaved edits (in the calling thread)."""
        with self._cond:
            self._first = None
        self._write()

    def stop(self, flush: bool = True) -> None:
        """Stop the thread (writing pending edits first when ``flush``) and unsubscribe."""
        self.review.labels.sig_changed.disconnect(self._on_change)
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if flush:
            self.flush()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Autosaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True)
class RecoveryInfo:
    """A recovery file that is newer than the video's review file."""

    path: Path  # the recovery file
    review_path: Path  # where the review is saved explicitly
    video: Path
    modified: str  # ISO time of the last recovered edit
    saved_modified: str | None  # ISO time of the review file's last change (None when there is none)
    tiers: int  # human tiers that hold intervals
    intervals: int

    def summary(self) -> str:
        """One sentence for the restore dialog."""
        when = _local(self.modified)
        saved = f"the saved review is from {_local(self.saved_modified)}" if self.saved_modified else "never saved"
        return (
            f"Unsaved labels of {self.video.name} from {when} were recovered ({_count(self.intervals, 'interval')} in "
            f"{_count(self.tiers, 'tier')}; {saved}). Restore them?"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def _local(s: str | None) -> str:
    if not s:
        return "?"
    try:
        return _parse_iso(s).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return s


def find_recovery(video: str | Path, project: str | Path | None = None) -> RecoveryInfo | None:
    """The recovery file of ``video`` if it holds edits newer than the review file, else None.

    A recovery file that is older than (or as old as) the review file, belongs to other video content
    or cannot be read is ignored (and left alone).
    """
    video = Path(video)
    fp = video_fingerprint(video)
    found = [info for p in _slots(recovery_path(video, fp)) if (info := _recovery_info(p, video, fp, project))]
    return max(found, key=lambda i: _parse_iso(i.modified), default=None)


def _recovery_info(rec: Path, video: Path, fp: str, project: str | Path | None) -> RecoveryInfo | None:
    """:func:`find_recovery` for one recovery file; None for a live one (another editor's, left alone)."""
    if not rec.exists() or _is_live(rec):
        return None
    try:
        data = read_review_dict(rec)
        if data["video"]["fingerprint"] != fp:
            return None
        modified = str(data["modified"])
        rec_time = _parse_iso(modified)
        tiers = data.get("tiers") or []
        counts = [len(t.get("intervals") or []) for t in tiers if t.get("source") != "model"]
        n_intervals, n_tiers = sum(counts), sum(1 for c in counts if c)  # the human tiers that hold labels
    except (LabelError, KeyError, TypeError, ValueError, AttributeError) as e:
        # Not a blanket catch: these are what indexing and len() raise on a record of the wrong shape.
        log.warning("ignoring unreadable recovery file %s: %s", rec, e)
        return None
    target = review_path(video, project, fp)
    saved = None
    if target.exists():
        try:
            saved = str(read_review_dict(target).get("modified") or "")
            if saved and _parse_iso(saved) >= rec_time:
                return None
        except (LabelError, ValueError):
            saved = None  # a broken review file: the recovery is the better copy
    return RecoveryInfo(
        path=rec,
        review_path=target,
        video=video,
        modified=modified,
        saved_modified=saved or None,
        tiers=n_tiers,
        intervals=n_intervals,
    )


def restore(info: RecoveryInfo, video: VideoRef | None = None, *, user: str | None = None) -> Review:
    """The review as recovered; its :attr:`~Review.path` is the review file, so ``save()`` puts it there.

    The recovery file stays until that save (or :func:`discard`), so a second crash loses nothing.
    """
    ref = video if video is not None else VideoRef.open(info.video)
    data = read_review_dict(info.path)
    review = review_from_dict(data, info.review_path, video=ref, user=user, source=info.path)
    # the user chose these labels over the review file as it is now: a later save by someone else is a conflict
    review.disk_stamp = file_stamp(info.review_path)
    review.recovery_files.add(info.path)  # removed by the next explicit save
    review.unsaved_until_saved()  # the recovered edits are not in the review file yet
    return review


def discard(info: RecoveryInfo) -> None:
    """Delete the recovery file (the user chose the saved review); a live one (another editor's) is kept."""
    if not _is_live(info.path):
        info.path.unlink(missing_ok=True)


def drop_recovery(review: Review) -> None:
    """Delete a review's recovery files (after an explicit save, or when its edits are discarded).

    Its own (:attr:`Review.recovery_files`: its autosaver's, the one it was restored from) and a leftover
    first slot that no running editor holds; never another running editor's.
    """
    for p in review.recovery_files:
        p.unlink(missing_ok=True)
    first = recovery_path(review.video)
    if first not in review.recovery_files and not _is_live(first):
        first.unlink(missing_ok=True)
