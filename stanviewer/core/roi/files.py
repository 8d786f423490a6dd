"""Providers that read the person from a file or need nothing: ``csv`` (boxes or joints) and ``none``.

CSV files (UTF-8, header required) come in two shapes, told apart by the header:

- **boxes**: ``frame,x,y,w,h`` (one row per frame; missing frames are filled by the shared
  post-processing), as written for every synthetic video in ``boxes/<name>.csv``;
- **joints**: ``frame`` followed by pairs of x, y columns (any names, e.g. ``head_x,head_y,...``), as in
  the synthetic ``joints/<name>.csv``; empty cells are unknown joints. Boxes are the joints' bounding
  boxes widened by ``joint_pad``.

Coordinates are pixels of the video at its full (source, upright) resolution and are scaled to the frames
as read (``VideoReader.size``), unless ``coords="read"``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stanviewer.core.errors import LabelError, RoiError
from stanviewer.core.fileio import fingerprint
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, boxes_from_joints, register
from stanviewer.core.video import VideoReader

__all__ = ["CsvProvider", "NoneProvider", "read_roi_csv"]


def read_roi_csv(path: str | Path) -> tuple[str, dict[int, np.ndarray]]:
    """Parse a boxes or joints CSV.

    Returns:
        ``("boxes", {frame: float [4] (x0, y0, x1, y1)})`` or ``("joints", {frame: float [J, 2]})``.

    Raises:
        RoiError: naming the file and line for anything malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise RoiError("file not found" if not path.exists() else "is not a file", path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RoiError(f"cannot be read as UTF-8 text ({e})", path) from e
    rows = [r for r in csv.reader(text.splitlines())]
    if not rows or not any(c.strip() for c in rows[0]):
        raise RoiError("is empty (a header line is required)", path)
    header = [c.strip().lower() for c in rows[0]]
    if header[:5] == ["frame", "x", "y", "w", "h"]:
        kind, ncols = "boxes", 5
    elif header and header[0] == "frame" and len(header) >= 3 and (len(header) - 1) % 2 == 0:
        kind, ncols = "joints", len(header)
    else:
        raise RoiError(
            f"line 1: header must be frame,x,y,w,h (boxes) or frame then x,y column pairs (joints),"
            f" got {','.join(header)}",
            path,
        )
    out: dict[int, np.ndarray] = {}
    for k, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < ncols:
            raise RoiError(f"line {k}: {len(row)} fields, expected {ncols}", path)
        try:
            frame = int(row[0])
            vals = [float(c) if c.strip() else math.nan for c in row[1:ncols]]
        except ValueError:
            got = ",".join(row[:ncols])
            raise RoiError(f"line {k}: expected a frame number and numbers, got {got}", path) from None
        if frame < 0:
            raise RoiError(f"line {k}: negative frame {frame}", path)
        if frame in out:
            raise RoiError(f"line {k}: frame {frame} appears twice", path)
        if kind == "boxes":
            x, y, w, h = vals
            if not all(math.isfinite(v) for v in vals) or w < 0 or h < 0:
                raise RoiError(f"line {k}: a box needs four numbers with w, h >= 0", path)
            out[frame] = np.array([x, y, x + w, y + h], np.float64)
        else:
            out[frame] = np.asarray(vals, np.float64).reshape(-1, 2)
    if not out:
        raise RoiError("has no rows after the header", path)
    return kind, out


def _source_scale(reader: VideoReader, coords: str) -> tuple[float, float]:
    if coords == "read":
        return 1.0, 1.0
    if coords != "source":
        raise RoiError(f"coords must be 'source' or 'read', not {coords!r}")
    w, h = reader.size
    return w / max(1, reader.info.source_width), h / max(1, reader.info.source_height)


@register("csv")
class CsvProvider(RoiProvider):
    """Boxes or joints from a CSV file (module docstring); parameter ``file`` is required."""

    defaults: ClassVar[dict[str, Any]] = {"file": None, "coords": "source", "joint_pad": 0.05}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self.params["file"]:
            raise RoiError("the csv ROI provider needs a file (--file PATH: frame,x,y,w,h or joints CSV)")
        self.params["file"] = str(Path(self.params["file"]))

    def cache_key_extra(self) -> str:
        p = Path(self.params["file"])
        return fingerprint(p) if p.is_file() else ""

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        n = reader.frame_count
        yield Progress(0, n, "reading CSV")
        try:
            kind, rows = read_roi_csv(self.params["file"])
        except LabelError as e:  # pragma: no cover - read_roi_csv raises RoiError itself
            raise RoiError(e.reason, e.path) from e
        last = max(rows) if rows else -1
        if last >= n + max(2, n // 100):  # a frame or two past the end: counting differences; more: another video
            raise RoiError(
                f"has rows up to frame {last}, but the video has {n} frames (0-{n - 1}): is it this video's file?",
                self.params["file"],
            )
        sx, sy = _source_scale(reader, str(self.params["coords"]))
        boxes = np.full((n, 4), np.nan)
        conf = np.zeros(n)
        joints: np.ndarray | None = None
        if kind == "boxes":
            for f, b in rows.items():
                if f < n:
                    boxes[f] = b * (sx, sy, sx, sy)
                    conf[f] = 1.0
        else:
            n_j = next(iter(rows.values())).shape[0]
            joints = np.full((n, n_j, 2), np.nan, np.float32)
            for f, j in rows.items():
                if f < n:
                    joints[f] = j * (sx, sy)
            boxes = boxes_from_joints(joints, float(self.params["joint_pad"])).astype(np.float64)
            conf = np.isfinite(boxes).all(axis=1).astype(np.float64)
        yield Progress(n, n, "read CSV")
        return boxes, conf, joints


@register("none")
class NoneProvider(RoiProvider):
    """The whole frame in every frame (confidence 1): the local view becomes the global one."""

    post_defaults: ClassVar[dict[str, Any]] = {"smooth": 0, "margin": 0.0, "margin_px": 0.0}

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        n = reader.frame_count
        w, h = reader.size
        yield Progress(n, n, "whole frame")
        return np.tile(np.array([0.0, 0.0, w, h]), (n, 1)), np.ones(n), None
