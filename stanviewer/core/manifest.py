"""Data set manifests and per-frame label files (DESIGN.md §4), validated with clear errors.

``manifest.csv`` (UTF-8, header required, paths relative to the manifest's folder):
``video,subject,label[,frame_labels][,split]`` plus optional extra columns (the synthetic generator adds
``boxes``). Per-frame labels: ``frame,label`` with one row per frame 0..N-1 in any order, labels 0/1.
Every error names the file and the line.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stanviewer.core.errors import LabelError

__all__ = ["ManifestEntry", "read_boxes_csv", "read_frame_labels", "read_manifest", "write_frame_labels"]

REQUIRED = ("video", "subject", "label")


@dataclass
class ManifestEntry:
    video: Path
    subject: str
    label: str
    frame_labels: Path | None = None
    split: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    line: int = 0
    key: str = ""  # set by read_manifest where two videos share a file name

    @property
    def name(self) -> str:
        """The video's name within its manifest: the file name without extension, or, where two videos of
        the manifest share one (``p01/trial1.mp4``, ``p02/trial1.mp4``), its path without extension."""
        return self.key or self.video.stem

    def extra_path(self, column: str, root: Path) -> Path | None:
        v = self.extra.get(column)
        return (root / v) if v else None


def _open_csv(path: Path) -> tuple[list[str], Iterable[tuple[int, list[str]]]]:
    if not path.exists():
        raise LabelError("file not found", path)
    if path.is_dir():
        raise LabelError("is a folder, not a CSV file", path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LabelError(f"cannot be read ({e.strerror})", path) from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        bad = e.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[:bad].count(b"\n") + 1
        raise LabelError(f"line {line}: not UTF-8 text (byte {bad}); save the file as UTF-8", path) from e
    rows = list(csv.reader(text.splitlines()))
    if not rows or not any(c.strip() for c in rows[0]):
        raise LabelError("is empty (a header line is required)", path)
    header = [c.strip().lower() for c in rows[0]]
    body = [(k + 2, r) for k, r in enumerate(rows[1:]) if any(c.strip() for c in r)]
    return header, body


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Parse and validate a manifest; relative paths are resolved against its folder."""
    path = Path(path)
    header, body = _open_csv(path)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise LabelError(f"line 1: missing column(s) {', '.join(missing)} (need video,subject,label)", path)
    root = path.parent
    out: list[ManifestEntry] = []
    for line, row in body:
        if len(row) != len(header):
            raise LabelError(f"line {line}: {len(row)} fields, header has {len(header)}", path)
        rec = {h: v.strip() for h, v in zip(header, row)}
        for c in REQUIRED:
            if not rec[c]:
                raise LabelError(f"line {line}: empty {c!r}", path)
        split = rec.get("split") or None
        if split is not None and split not in ("train", "test"):
            raise LabelError(f"line {line}: split must be 'train' or 'test', not {split!r}", path)
        fl = rec.get("frame_labels") or None
        extra = {k: v for k, v in rec.items() if k not in (*REQUIRED, "frame_labels", "split")}
        out.append(
            ManifestEntry(
                video=root / rec["video"],
                subject=rec["subject"],
                label=rec["label"],
                frame_labels=(root / fl) if fl else None,
                split=split,
                extra=extra,
                line=line,
            )
        )
    if not out:
        raise LabelError("lists no videos", path)
    _unique_names(out, root, path)
    return out


def trained_on_synthetic_only(manifest: str | Path) -> bool:
    """Whether every training video of ``manifest`` (rows not in the test split) is one ``stanviewer synth``
    drew (its data set folder, ``videos/``' parent, holds the generator's ``synth.json``): a model trained on
    them is marked synthetic-only, and its card and the app warn that it knows nothing about real patients."""
    entries = [e for e in read_manifest(manifest) if e.split != "test"]
    return bool(entries) and all((Path(e.video).parent.parent / "synth.json").is_file() for e in entries)


def _unique_names(entries: list[ManifestEntry], root: Path, path: Path) -> None:
    """Give videos that share a file name their path (relative to the manifest where possible) as name,
    so that every name is unique; a video listed twice is an error (it would count twice)."""
    first: dict[Path, int] = {}
    for e in entries:
        where = Path(os.path.normpath(e.video))
        if where in first:
            raise LabelError(f"line {e.line}: {e.video.name} is listed twice (first on line {first[where]})", path)
        first[where] = e.line
    stems: dict[str, int] = {}
    for e in entries:
        stems[e.video.stem] = stems.get(e.video.stem, 0) + 1
    for e in entries:
        if stems[e.video.stem] > 1:
            p = Path(os.path.normpath(e.video))
            with contextlib.suppress(ValueError):  # outside the manifest's folder: the whole path
                p = p.relative_to(Path(os.path.normpath(root)))
            e.key = p.with_suffix("").as_posix()


def read_frame_labels(path: str | Path, n_frames: int | None = None) -> np.ndarray:
    """Read ``frame,label`` rows into a uint8 array [N]; validates completeness and values."""
    path = Path(path)
    header, body = _open_csv(path)
    if header[:2] != ["frame", "label"]:
        raise LabelError(f"line 1: header must start with frame,label (got {','.join(header)})", path)
    seen: dict[int, tuple[int, int]] = {}
    for line, row in body:
        if len(row) != len(header):
            raise LabelError(f"line {line}: {len(row)} fields, header has {len(header)} (expected frame,label)", path)
        try:
            f = int(row[0].strip())
        except ValueError:
            raise LabelError(f"line {line}: frame {row[0]!r} is not an integer", path) from None
        v = row[1].strip()
        if v not in ("0", "1"):
            raise LabelError(f"line {line}: label must be 0 or 1, not {v!r}", path)
        if f < 0:
            raise LabelError(f"line {line}: negative frame {f}", path)
        if f in seen:
            raise LabelError(f"line {line}: frame {f} repeated (first on line {seen[f][1]})", path)
        seen[f] = (int(v), line)
    if not seen:
        raise LabelError("has no label rows", path)
    n = max(seen) + 1 if n_frames is None else n_frames
    beyond = [f for f in seen if f >= n]
    if beyond:
        raise LabelError(f"line {seen[min(beyond)][1]}: frame {min(beyond)} beyond the video's {n} frames", path)
    if len(seen) != n:
        gap = next(i for i in range(n) if i not in seen)
        raise LabelError(f"frame {gap} is missing ({len(seen)} of {n} frames labelled)", path)
    out = np.zeros(n, np.uint8)
    for f, (v, _) in seen.items():
        out[f] = v
    return out


def write_frame_labels(path: str | Path, labels: np.ndarray) -> None:
    """Write ``frame,label`` rows atomically."""
    from stanviewer.core.fileio import atomic_write

    with atomic_write(path) as f:
        f.write("frame,label\n")
        f.writelines(f"{i},{int(v)}\n" for i, v in enumerate(np.asarray(labels)))


def read_boxes_csv(path: str | Path) -> dict[int, tuple[float, float, float, float]]:
    """``frame,x,y,w,h`` rows (pixels) into ``{frame: (x, y, w, h)}``; frames may be missing."""
    path = Path(path)
    header, body = _open_csv(path)
    if header[:5] != ["frame", "x", "y", "w", "h"]:
        raise LabelError(f"line 1: header must be frame,x,y,w,h (got {','.join(header)})", path)
    out: dict[int, tuple[float, float, float, float]] = {}
    for line, row in body:
        try:
            f = int(row[0])
            x, y, w, h = (float(v) for v in row[1:5])
        except (ValueError, IndexError):
            raise LabelError(f"line {line}: expected frame,x,y,w,h numbers", path) from None
        if w < 0 or h < 0 or f < 0:
            raise LabelError(f"line {line}: negative frame or size", path)
        out[f] = (x, y, w, h)
    return out
