"""The result of every ROI provider: one box per frame (and joints, where known) with a confidence."""

from __future__ import annotations

import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stanviewer.core.errors import RoiError, describe
from stanviewer.core.fileio import atomic_write

__all__ = ["TRACK_VERSION", "RoiTrack", "box_iou"]

TRACK_VERSION = 1

#: ``crop_square`` side = this times the larger of the median box width and height
SQUARE_SCALE = 1.15


@dataclass
class RoiTrack:
    """Per-frame person boxes of one video, in the pixels of frames as read (``VideoReader.size``).

    Attributes:
        boxes: float32 [N, 4] ``(x0, y0, x1, y1)``, one row per frame, inside ``[0, w] x [0, h]``.
        confidence: float32 [N] in [0, 1]; 0 where the box was carried or interpolated through frames
            with no detection (or is the whole frame because nothing was found).
        size: ``(w, h)`` of the frames the boxes refer to.
        joints: float32 [N, J, 2] ``(x, y)`` per joint (NaN where unknown), or None.
        provider: name of the provider that made the track.
        params: the provider's parameters (JSON-serialisable).
    """

    boxes: np.ndarray
    confidence: np.ndarray
    size: tuple[int, int]
    joints: np.ndarray | None = None
    provider: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, np.float32).reshape(-1)
        if self.confidence.shape[0] != self.boxes.shape[0]:
            raise ValueError(f"{self.boxes.shape[0]} boxes but {self.confidence.shape[0]} confidences")
        if self.joints is not None:
            self.joints = np.asarray(self.joints, np.float32)
            if self.joints.ndim != 3 or self.joints.shape[0] != self.boxes.shape[0] or self.joints.shape[2] != 2:
                raise ValueError(f"joints must be [N, J, 2] with N={self.boxes.shape[0]}, got {self.joints.shape}")
        self.size = (int(self.size[0]), int(self.size[1]))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def frame_count(self) -> int:
        return len(self)

    def xywh(self) -> np.ndarray:
        """Boxes as ``(x, y, w, h)`` (float32 [N, 4])."""
        out = self.boxes.copy()
        out[:, 2:] -= out[:, :2]
        return out

    def crop_square(self) -> tuple[float, float, float]:
        """One square ``(cx, cy, side)`` per video around the person, in frame pixels.

        Robust statistics over all frames, chosen so that the square carries no information about what
        the person does (DESIGN.md §6): the centre is the per-frame median of the box centres and the
        side is :data:`SQUARE_SCALE` times the larger of the *median* box width and height. Medians
        follow the person's resting posture, which most frames show; extremes and means (the union of
        all boxes, the widest box, a high percentile) grow with trunk lean and arm reach, i.e. with the
        label (measured with ``bench/roi.py``). The square may extend beyond the frame (the caller pads);
        its side is at most the frame's longer side.
        """
        if len(self) == 0:
            w, h = self.size
            return w / 2.0, h / 2.0, float(max(w, h))
        b = self.boxes.astype(np.float64)
        cx = float(np.median((b[:, 0] + b[:, 2]) / 2))
        cy = float(np.median((b[:, 1] + b[:, 3]) / 2))
        side = SQUARE_SCALE * max(float(np.median(b[:, 2] - b[:, 0])), float(np.median(b[:, 3] - b[:, 1])))
        side = float(min(max(side, 2.0), max(self.size)))
        return cx, cy, side

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> None:
        """Write the track to ``path`` (.npz, no pickles), atomically."""
        arrays: dict[str, np.ndarray] = {
            "version": np.int64(TRACK_VERSION),
            "boxes": self.boxes,
            "confidence": self.confidence,
            "size": np.asarray(self.size, np.int64),
            "provider": np.asarray(self.provider),
            "params": np.asarray(json.dumps(self.params, sort_keys=True, default=str)),
        }
        if self.joints is not None:
            arrays["joints"] = self.joints
        with atomic_write(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> RoiTrack:
        """Read a track written by :meth:`save`; raises :class:`RoiError` if it is not one."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                version = int(z["version"])
                if version != TRACK_VERSION:
                    raise RoiError(f"ROI track version {version}, this stanviewer reads {TRACK_VERSION}", path)
                return cls(
                    boxes=z["boxes"],
                    confidence=z["confidence"],
                    size=tuple(int(v) for v in z["size"]),  # type: ignore[arg-type]
                    joints=z["joints"] if "joints" in z.files else None,
                    provider=str(z["provider"]),
                    params=json.loads(str(z["params"])),
                )
        except RoiError:
            raise
        except (
            OSError,
            EOFError,  # an empty or cut file
            zipfile.BadZipFile,
            zlib.error,  # damaged compressed data
            NotImplementedError,  # zipfile: a damaged header asks for an unknown compression or version
            KeyError,
            IndexError,
            TypeError,
            ValueError,
        ) as e:
            raise RoiError(f"not a readable ROI track ({describe(e)})", path) from e


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of matching rows of two ``[N, 4]`` ``(x0, y0, x1, y1)`` box arrays: ``float64 [N]``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x0, y0 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x1, y1 = np.minimum(a[:, 2], b[:, 2]), np.minimum(a[:, 3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area - inter, 1e-9)
