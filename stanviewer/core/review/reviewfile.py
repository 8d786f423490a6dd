"""The review file of one video: versioned JSON, written atomically, tied to the video by its fingerprint.

Where: next to the video as ``<video file name>.stanreview.json`` (``clip.mp4.stanreview.json``), or in
a chosen project folder under the same name (:func:`review_path`; two videos of one file name in a
project folder are told apart by fingerprint). Written with
:func:`~stanviewer.core.fileio.atomic_write` (temporary file, fsync, rename): a reader sees the old or
the new file, never half of one. Schema (``version`` 1)::

    {"format": "stanviewer-review", "version": 1, "software": "0.1.0",
     "frame_indexing": "0-based frame indices in presentation order; intervals [start, end) end-exclusive",
     "video": {"path", "name", "fingerprint", "frames", "fps", "duration_s"},
     "status": "unreviewed" | "in_progress" | "done", "reviewer": "...",
     "created": ISO time, "modified": ISO time of the last change,
     "tiers": [{"name", "source", "read_only", "annotator", "meta",
                "intervals": [{"start", "end", "label", "who", "when", "origin", "proposal"?}]}]}

The ``model`` tier (source ``model``) is the proposal as it was when saved, with its method, model and
threshold in ``meta``; the app regenerates it from the analysis.

Opening checks the video's content fingerprint (:func:`~stanviewer.core.fileio.fingerprint`): labels
never attach to a different video silently. A mismatch raises :class:`VideoMismatchError` naming both
files; ``allow_other_video=True`` (``--force`` on the command line) attaches them anyway and records
the override in the file. Autosave and crash recovery: :mod:`stanviewer.core.review.recovery`.

Two writers of one review file (two windows, two instances, a colleague on a shared drive): a
:class:`Review` remembers the SHA-256 of the review file's bytes as it last read or wrote them
(:attr:`Review.disk_stamp`; ``None`` when there was no file). :meth:`Review.save` hashes the file
again first and raises :class:`ReviewConflictError` when it changed meanwhile, instead of replacing
another writer's save silently; the caller decides (the app asks: overwrite theirs, reload theirs,
cancel; :meth:`Review.save` with ``overwrite=True`` replaces it). A content hash, not the
modification time: it cannot miss a change made within one timestamp tick, nor report one for a
file that was only touched. The check and the rename are not one atomic step (no portable file lock
works on network drives), so two saves within the same few milliseconds can still race; every
other interleaving is caught. The recovery file (autosave) is per process state and is not checked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stanviewer import __version__
from stanviewer.core.errors import LabelError
from stanviewer.core.fileio import atomic_write, fingerprint, fit_file_name
from stanviewer.core.review.model import Change, EditError, LabelsModel, now_iso

__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "SUFFIX",
    "Review",
    "ReviewConflictError",
    "VideoMismatchError",
    "VideoRef",
    "load_review",
    "open_review",
    "read_review_dict",
    "review_path",
]

FORMAT = "stanviewer-review"
SCHEMA_VERSION = 1
SUFFIX = ".stanreview.json"
FRAME_INDEXING = "0-based frame indices in presentation order; intervals [start, end) end-exclusive"
DEFAULT_TIERS = ("annotator", "therapist")


class VideoMismatchError(LabelError):
    """A review file belongs to another video (different content fingerprint or frame count)."""


class ReviewConflictError(LabelError):
    """The review file changed on disk since this review read or wrote it (another window or program saved it)."""


def file_stamp(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes (hex), or None when there is no file (see the module doc: conflicts)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


@dataclass(frozen=True)
class VideoRef:
    """The video a review belongs to."""

    path: str
    fingerprint: str
    frames: int
    fps: float
    duration_s: float

    @property
    def name(self) -> str:
        return Path(self.path).name

    @classmethod
    def from_reader(cls, reader: Any) -> VideoRef:
        """From an open :class:`~stanviewer.core.video.VideoReader`."""
        info = reader.info
        return cls(str(Path(info.path).resolve()), info.fingerprint, info.frame_count, info.fps, info.duration_s)

    @classmethod
    def open(cls, path: str | Path) -> VideoRef:
        """Open the video once (the frame index is cached) and describe it."""
        from stanviewer.core.video import open_video

        with open_video(path) as r:
            return cls.from_reader(r)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "fingerprint": self.fingerprint,
            "frames": self.frames,
            "fps": self.fps,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoRef:
        if not isinstance(d, dict):
            raise TypeError(f"an object is needed, not {type(d).__name__}")
        return cls(str(d["path"]), str(d["fingerprint"]), int(d["frames"]), float(d["fps"]), float(d["duration_s"]))


def review_path(video: str | Path, project: str | Path | None = None, video_fp: str | None = None) -> Path:
    """``<video>.stanreview.json`` beside the video, or in ``project`` when given.

    In a project folder two videos may share a file name (``p01/trial1.mp4``, ``p02/trial1.mp4``). With
    the video's fingerprint ``video_fp``, the second one's review goes to ``trial1.mp4.<video_fp[:12]>.stanreview.json``
    when ``trial1.mp4.stanreview.json`` belongs to a video at another path with other content (the same
    path with other content is a changed video: the plain name, so that opening it reports the mismatch).
    """
    v = Path(video)
    folder = Path(project) if project is not None else v.parent
    plain = folder / fit_file_name(v.name, SUFFIX)
    if project is None or not video_fp:
        return plain
    alt = folder / fit_file_name(v.name, f".{video_fp[:12]}{SUFFIX}")
    if alt.exists() or not plain.exists():
        return alt if alt.exists() else plain
    try:
        stored = read_review_dict(plain)["video"]
        other_path = Path(str(stored["path"])).resolve() != v.resolve()
        other_content = str(stored["fingerprint"]) != video_fp
    except (LabelError, KeyError, TypeError):
        return plain  # unreadable: opening it reports why
    return alt if other_path and other_content else plain


class Review:
    """The labels of one video with its review state; :meth:`save` writes the review file.

    Attributes:
        video: the video it belongs to.
        labels: the :class:`~stanviewer.core.review.model.LabelsModel` (subscribe to its signals).
        path: where :meth:`save` writes (the sidecar or the project file).
        created, modified: ISO times; ``modified`` moves with every change of the labels.
        generation: counts changes; ``saved_generation`` is its value at the last explicit save.
        overrides: notes of fingerprint overrides (kept in the file).
        disk_stamp: :func:`file_stamp` of :attr:`path` as this review last read or wrote it (None: no file
            then); :meth:`save` refuses to replace a file whose stamp moved (module doc: conflicts).
    """

    def __init__(
        self,
        video: VideoRef,
        labels: LabelsModel,
        path: str | Path,
        *,
        created: str | None = None,
        modified: str | None = None,
        overrides: list[dict[str, Any]] | None = None,
        disk_stamp: str | None = None,
    ) -> None:
        if labels.n_frames != video.frames:
            raise EditError(f"labels cover {labels.n_frames} frames but the video has {video.frames}")
        self.video = video
        self.labels = labels
        self.path = Path(path)
        self.created = created or now_iso()
        self.modified = modified or self.created
        self.overrides = list(overrides or [])
        self.disk_stamp = disk_stamp
        self.recovery_files: set[Path] = set()  # this review's recovery files (its autosaver's, restored from)
        self.generation = 0
        self._dirty_at: tuple[int, bool] = (0, False)
        self.saved_generation = 0
        labels.sig_changed.connect(self._on_change)

    def _on_change(self, change: Change) -> None:
        self.modified = now_iso()
        self.generation += 1

    def _content_key(self) -> str:
        return hashlib.sha256(json.dumps(self.labels.to_dict(), sort_keys=True, default=str).encode()).hexdigest()

    @property
    def saved_generation(self) -> int:
        """``generation`` at the last explicit save (or when the labels were last declared clean)."""
        return self._saved_generation

    @saved_generation.setter
    def saved_generation(self, value: int) -> None:
        self._saved_generation = value
        self._saved_key = self._content_key()  # what "saved" looks like: undoing back to it is clean again

    def unsaved_until_saved(self) -> None:
        """Count the labels as unsaved whatever they hold (restored from a recovery file: the review file
        holds something else)."""
        self.generation = self._saved_generation + 1
        self._saved_key = ""

    @property
    def dirty(self) -> bool:
        """Changes since the last explicit save (edits undone back to the saved labels are none)."""
        if self.generation == self._saved_generation:
            return False
        gen, dirty = self._dirty_at
        if gen != self.generation:
            dirty = self._content_key() != self._saved_key
            self._dirty_at = (self.generation, dirty)
        return dirty

    def to_dict(self) -> dict[str, Any]:
        """The review file's content (JSON-able)."""
        labels = self.labels.to_dict()
        d: dict[str, Any] = {
            "format": FORMAT,
            "version": SCHEMA_VERSION,
            "software": __version__,
            "frame_indexing": FRAME_INDEXING,
            "video": self.video.to_dict(),
            "status": labels["status"],
            "reviewer": labels["reviewer"],
            "created": self.created,
            "modified": self.modified,
            "tiers": labels["tiers"],
        }
        if self.overrides:
            d["overrides"] = self.overrides
        return d

    def write(self, path: str | Path) -> Path:
        """Write the review file atomically to ``path`` (no change of state; used by the autosaver)."""
        return write_review_dict(self.to_dict(), path)

    def changed_on_disk(self) -> bool:
        """The review file is not what this review last read or wrote (another writer saved it)."""
        now = file_stamp(self.path)
        return now is not None and now != self.disk_stamp  # a deleted file is no one else's save to keep

    def save(self, path: str | Path | None = None, *, overwrite: bool = False) -> Path:
        """Explicit save to :attr:`path` (or ``path``, which becomes the new one); drops the recovery file.

        Raises :class:`ReviewConflictError` when :attr:`path` changed on disk since this review read or
        wrote it, unless ``overwrite`` (a new ``path`` is the caller's choice and is not checked).
        """
        from stanviewer.core.review.recovery import drop_recovery

        gen = self.generation
        if path is not None and Path(path) != self.path:
            self.path = Path(path)
        elif not overwrite and self.changed_on_disk():
            raise ReviewConflictError(
                "was changed by another window or program since this one opened or saved it; "
                "saving now would replace those labels",
                self.path,
            )
        data = encode_review_dict(self.to_dict(), self.path)
        out = write_review_bytes(data, self.path)
        self.disk_stamp = hashlib.sha256(data).hexdigest()
        self.saved_generation = gen
        drop_recovery(self)
        return out


def write_review_dict(data: dict[str, Any], path: str | Path) -> Path:
    """JSON with indentation, atomically (temp file in the same folder, fsync, rename)."""
    return write_review_bytes(encode_review_dict(data, path), path)


def encode_review_dict(data: dict[str, Any], path: str | Path) -> bytes:
    """The review file's bytes: indented JSON in UTF-8.

    A file name that is not valid UTF-8 (``b'clip\\xe9.mp4'`` from an old Latin-1 USB stick) reaches
    Python as a string with lone surrogates (``'clip\\udce9.mp4'``, PEP 383) that UTF-8 cannot encode.
    Such characters are written as JSON ``\\uXXXX`` escapes: the file stays UTF-8 text, and reading it
    gives back the same string, so ``os.fsencode`` of the stored path is the original file name's bytes.
    Every other character is written as itself.
    """
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    try:
        return text.encode("utf-8", "backslashreplace")  # only lone surrogates are unencodable
    except (UnicodeError, ValueError) as e:  # not expected; a clear message rather than a traceback
        raise LabelError(f"cannot write the review file ({e})", path) from e


def write_review_bytes(data: bytes, path: str | Path) -> Path:
    """Write a review file's bytes atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    try:
        with atomic_write(path, "wb") as f:
            f.write(data)
    except OSError as e:
        raise LabelError(f"cannot write the review file ({e.strerror or e})", path) from e
    return path


def read_review_dict(path: str | Path) -> dict[str, Any]:
    """Parse and validate the top level of a review file; :class:`LabelError` with the line when malformed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (an editor's) is not an error
    except FileNotFoundError:
        raise LabelError("review file not found", path) from None
    except UnicodeDecodeError as e:
        line = text_line_of_byte(path, e.start)
        raise LabelError(f"line {line}: not UTF-8 text", path) from None
    except OSError as e:
        raise LabelError(f"cannot read the review file ({e.strerror or e})", path) from e
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LabelError(f"line {e.lineno}: not valid JSON ({e.msg})", path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise LabelError(f'line 1: not a stanviewer review file (no "format": "{FORMAT}")', path)
    version = data.get("version")
    if not isinstance(version, int) or version < 1:
        raise LabelError(f"line {_line_of(text, 'version')}: missing or bad schema version", path)
    if version > SCHEMA_VERSION:
        raise LabelError(
            f"written by a newer stanviewer (schema version {version}; this one reads up to {SCHEMA_VERSION})", path
        )
    return data


def text_line_of_byte(path: Path, offset: int) -> int:
    return path.read_bytes()[:offset].count(b"\n") + 1


def _line_of(text: str, key: str, nth: int = 0) -> int:
    """Line of the ``nth`` occurrence of ``"key"`` in a JSON text (best effort, for messages)."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.find(f'"{key}"', pos + 1)
        if pos < 0:
            return 1
    return text.count("\n", 0, pos) + 1


def review_from_dict(
    data: dict[str, Any],
    path: str | Path,
    *,
    video: VideoRef | None = None,
    allow_other_video: bool = False,
    user: str | None = None,
    source: str | Path | None = None,
) -> Review:
    """Build a :class:`Review` from a review file's content (``source`` names the file in errors)."""
    src = Path(source) if source is not None else Path(path)
    text = src.read_text(encoding="utf-8") if src.exists() else ""
    try:
        stored = VideoRef.from_dict(data["video"])
    except (KeyError, TypeError, ValueError) as e:
        raise LabelError(f'line {_line_of(text, "video")}: the "video" record is incomplete ({e})', src) from None
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list):
        raise LabelError(f'line {_line_of(text, "overrides")}: "overrides" must be a list', src)
    ref = stored
    if video is not None:
        problem = _mismatch(stored, video)
        if problem:
            if not allow_other_video:
                raise VideoMismatchError(
                    f"belongs to another video: {problem}. Labels are not attached to a different video "
                    f"silently; open the right video ({stored.path}) or override explicitly "
                    "(the app asks; `export` and `agree` take --force)",
                    src,
                )
            if stored.frames != video.frames:
                raise VideoMismatchError(
                    f"cannot attach: it covers {stored.frames} frames and {video.path} has {video.frames}", src
                )
            overrides.append({"when": now_iso(), "from": stored.to_dict(), "to": video.to_dict()})
        ref = video
    try:
        labels = LabelsModel.from_dict({**data, "frames": ref.frames}, user=user)
    except (KeyError, TypeError, ValueError, EditError) as e:
        raise LabelError(f"line {_line_of(text, 'tiers')}: the tiers are malformed ({_reason(e)})", src) from None
    return Review(
        ref,
        labels,
        path,
        created=str(data.get("created") or now_iso()),
        modified=str(data.get("modified") or data.get("created") or now_iso()),
        overrides=list(overrides),
    )


def _reason(e: BaseException) -> str:
    if isinstance(e, KeyError):
        return f"missing {e.args[0]!r}"
    return str(getattr(e, "reason", None) or e)


def _mismatch(stored: VideoRef, video: VideoRef) -> str:
    if stored.fingerprint != video.fingerprint:
        return (
            f"its fingerprint is {stored.fingerprint[:12]}… ({stored.name}, {stored.frames} frames) but "
            f"{video.path} has {video.fingerprint[:12]}… ({video.frames} frames)"
        )
    if stored.frames != video.frames:
        return f"it covers {stored.frames} frames but {video.path} has {video.frames}"
    return ""


def load_review(
    path: str | Path,
    video: VideoRef | None = None,
    *,
    allow_other_video: bool = False,
    user: str | None = None,
) -> Review:
    """Read a review file; with ``video``, check that it belongs to that video (see module doc)."""
    stamp = file_stamp(path)  # before reading: a save in between shows as a conflict, never as none
    data = read_review_dict(path)
    review = review_from_dict(data, path, video=video, allow_other_video=allow_other_video, user=user)
    review.disk_stamp = stamp
    return review


def open_review(
    video: str | Path | VideoRef,
    project: str | Path | None = None,
    *,
    allow_other_video: bool = False,
    user: str | None = None,
    tiers: tuple[str, ...] = DEFAULT_TIERS,
) -> Review:
    """The review of a video: its review file when there is one, else a new review with empty ``tiers``.

    This does not look at crash recovery: call :func:`~stanviewer.core.review.recovery.find_recovery`
    first and offer to restore.
    """
    ref = video if isinstance(video, VideoRef) else VideoRef.open(video)
    path = review_path(ref.path, project, ref.fingerprint)
    if path.exists():
        return load_review(path, ref, allow_other_video=allow_other_video, user=user)
    return Review(ref, LabelsModel(ref.frames, tiers, user=user), path)


def video_fingerprint(path: str | Path) -> str:
    """The content fingerprint of a video file (cheap: size and three MiB)."""
    return fingerprint(path)
