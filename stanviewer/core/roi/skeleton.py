"""NTU RGB+D ``.skeleton`` files (Kinect v2 bodies) as an ROI provider.

The text format, line by line::

    <frame count>
    then for every frame:
        <body count>
        then for every body:
            <body info: 10 values> bodyID clippedEdges handLeftConfidence handLeftState
                                  handRightConfidence handRightState isRestricted leanX leanY trackingState
            <joint count> (25)
            then one line per joint, 12 values:
                x y z depthX depthY colorX colorY orientationW orientationX orientationY orientationZ trackingState

``colorX``/``colorY`` are pixels of the 1920x1080 colour video; they are scaled to the frames as read.
Skeleton frame i is video frame i. When several bodies are present, the person followed is the body ID
seen in the most frames (ties: the larger one); in frames without that ID the body that overlaps the
previous box most is taken (when it overlaps at all). Frames with no body are gap-filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stanviewer.core.errors import RoiError
from stanviewer.core.fileio import fingerprint
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, boxes_from_joints, register
from stanviewer.core.video import VideoReader

__all__ = ["NTU_JOINTS", "SkeletonBody", "SkeletonProvider", "read_skeleton"]

NTU_JOINTS = (
    "spine_base", "spine_mid", "neck", "head", "shoulder_left", "elbow_left", "wrist_left", "hand_left",
    "shoulder_right", "elbow_right", "wrist_right", "hand_right", "hip_left", "knee_left", "ankle_left",
    "foot_left", "hip_right", "knee_right", "ankle_right", "foot_right", "spine_shoulder", "hand_tip_left",
    "thumb_left", "hand_tip_right", "thumb_right",
)  # fmt: skip
BODY_INFO_VALUES = 10
JOINT_VALUES = 12


@dataclass
class SkeletonBody:
    """One body in one frame.

    Attributes:
        body_id: the Kinect tracking ID (text; IDs are 64-bit numbers).
        joints: float64 [J, 12], the joint lines as written.
        info: float64 [10], the body-info line (the ID is kept as text in ``body_id``).
    """

    body_id: str
    joints: np.ndarray
    info: np.ndarray = field(default_factory=lambda: np.zeros(BODY_INFO_VALUES))

    @property
    def color_xy(self) -> np.ndarray:
        """Joint pixels in the colour video, float64 [J, 2] (colorX, colorY)."""
        return self.joints[:, 5:7]

    @property
    def tracking(self) -> np.ndarray:
        """Per-joint tracking state (0 not tracked, 1 inferred, 2 tracked), int [J]."""
        return self.joints[:, 11].astype(int)


class _Lines:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.i = 0  # index of the next line

    def next(self, what: str) -> tuple[int, list[str]]:
        while self.i < len(self.lines) and not self.lines[self.i].strip():
            self.i += 1
        if self.i >= len(self.lines):
            raise RoiError(f"line {self.i + 1}: the file ends early (expected {what})", self.path)
        self.i += 1
        return self.i, self.lines[self.i - 1].split()

    def integer(self, what: str, lo: int = 0) -> int:
        line, tok = self.next(what)
        if len(tok) != 1:
            raise RoiError(f"line {line}: expected {what} (one integer), got {len(tok)} values", self.path)
        try:
            v = int(tok[0])
        except ValueError:
            raise RoiError(f"line {line}: expected {what} (an integer), got {tok[0]!r}", self.path) from None
        if v < lo:
            raise RoiError(f"line {line}: {what} must be >= {lo}, got {v}", self.path)
        return v

    def numbers(self, n: int, what: str) -> tuple[str, np.ndarray]:
        line, tok = self.next(what)
        if len(tok) != n:
            raise RoiError(f"line {line}: expected {n} values for {what}, got {len(tok)}", self.path)
        try:
            vals = np.array([float(t) for t in tok], np.float64)
        except ValueError:
            raise RoiError(f"line {line}: {what} has a value that is not a number", self.path) from None
        if not np.isfinite(vals).all():
            raise RoiError(f"line {line}: {what} has a value that is not finite", self.path)
        return tok[0], vals


def read_skeleton(path: str | Path) -> list[list[SkeletonBody]]:
    """Parse an NTU RGB+D ``.skeleton`` file into, per frame, the list of bodies in it.

    Raises:
        RoiError: the file is missing or malformed; the message names the line.
    """
    path = Path(path)
    if not path.is_file():
        raise RoiError("file not found" if not path.exists() else "is not a file", path)
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise RoiError(f"cannot be read as a text skeleton file ({e})", path) from e
    src = _Lines(path, text)
    n_frames = src.integer("the frame count")
    frames: list[list[SkeletonBody]] = []
    for f in range(n_frames):
        n_bodies = src.integer(f"the body count of frame {f}")
        bodies = []
        for b in range(n_bodies):
            body_id, info = src.numbers(BODY_INFO_VALUES, f"the body-info line of body {b} in frame {f}")
            n_joints = src.integer(f"the joint count of body {b} in frame {f}", lo=1)
            # rows are collected, not preallocated: a damaged count must not allocate for itself
            rows = [src.numbers(JOINT_VALUES, f"joint {j} of body {b} in frame {f}")[1] for j in range(n_joints)]
            bodies.append(SkeletonBody(body_id=body_id, joints=np.stack(rows), info=info))
        frames.append(bodies)
    rest = [k + 1 for k in range(src.i, len(src.lines)) if src.lines[k].strip()]
    if rest:
        raise RoiError(f"line {rest[0]}: unexpected text after the {n_frames} frames the header announces", path)
    return frames


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def follow_person(frames: list[list[SkeletonBody]]) -> list[SkeletonBody | None]:
    """Choose one body per frame: the ID seen most often, else the body overlapping the last box."""
    counts: dict[str, float] = {}
    for bodies in frames:
        for body in bodies:
            xy = body.color_xy
            area = float(np.ptp(xy[:, 0]) * np.ptp(xy[:, 1]))
            counts[body.body_id] = counts.get(body.body_id, 0.0) + 1.0 + 1e-12 * area
    if not counts:
        return [None] * len(frames)
    main = max(counts, key=lambda k: counts[k])
    out: list[SkeletonBody | None] = []
    last: np.ndarray | None = None
    for bodies in frames:
        pick = next((b for b in bodies if b.body_id == main), None)
        if pick is None and bodies and last is not None:
            scored = [(_iou(last, _box(b)), b) for b in bodies]
            best = max(scored, key=lambda t: t[0])
            pick = best[1] if best[0] > 0 else None
        if pick is not None:
            last = _box(pick)
        out.append(pick)
    return out


def _box(body: SkeletonBody) -> np.ndarray:
    xy = body.color_xy
    return np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()])


@register("skeleton")
class SkeletonProvider(RoiProvider):
    """Boxes and 25 joints from an NTU RGB+D ``.skeleton`` file (parameter ``file``, required)."""

    defaults: ClassVar[dict[str, Any]] = {"file": None, "color_size": (1920, 1080), "joint_pad": 0.05}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if not self.params["file"]:
            raise RoiError("the skeleton ROI provider needs a file (--file PATH.skeleton)")
        self.params["file"] = str(Path(self.params["file"]))
        self.params["color_size"] = [int(v) for v in self.params["color_size"]]

    def cache_key_extra(self) -> str:
        p = Path(self.params["file"])
        return fingerprint(p) if p.is_file() else ""

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        n = reader.frame_count
        yield Progress(0, n, "reading skeleton file")
        frames = read_skeleton(self.params["file"])
        chosen = follow_person(frames)
        cw, ch = self.params["color_size"]
        w, h = reader.size
        n_j = max((b.joints.shape[0] for b in chosen if b is not None), default=len(NTU_JOINTS))
        joints = np.full((n, n_j, 2), np.nan, np.float32)
        conf = np.zeros(n)
        for f, body in enumerate(chosen[:n]):
            if body is None:
                continue
            xy = body.color_xy * (w / cw, h / ch)
            tracked = body.tracking > 0
            joints[f, : xy.shape[0]] = np.where(tracked[:, None], xy, np.nan)
            conf[f] = float(np.mean(body.tracking)) / 2.0
        boxes = boxes_from_joints(joints, float(self.params["joint_pad"])).astype(np.float64)
        conf = np.where(np.isfinite(boxes).all(axis=1), conf, 0.0)
        msg = "read skeleton"
        if len(frames) != n:
            msg += f" ({len(frames)} skeleton frames, {n} video frames)"
        yield Progress(n, n, msg)
        return boxes, conf, joints
