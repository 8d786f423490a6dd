"""Model inputs: the global view, the local (person) view and their normalisation.

- **global**: the whole frame, letterboxed to ``size x size`` (aspect kept; bars filled with the neutral
  value).
- **local**: the person only. The frame is cropped to one stable square per video around the person
  (:meth:`RoiTrack.crop_square`, never zoomed frame by frame, which would leak the label through the
  scale), resized to ``size x size``, and every pixel outside the frame's ROI box (plus a margin) is set
  to the neutral value.
- **global+local**: both; the model averages their pooled features (PAPER.md §2).

The **neutral value** is the normalisation mean (0.45 of full scale, grey 115 in uint8), so masked
pixels are ~0 after normalisation and contribute nothing to the first layer's response. Inputs are
RGB, ``/255``, then ``(x - 0.45) / 0.225`` per channel (the official UniFormer video normalisation).
All views have the same shape and dtype, so training, explanation and the app treat them alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = [
    "LOCAL_MASKS",
    "MEAN",
    "NEUTRAL",
    "STD",
    "VIEWS",
    "global_view",
    "local_geometry",
    "local_view",
    "make_views",
    "mask_boxes",
    "normalise",
    "normalise_images",
    "view_names",
]

MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)
NEUTRAL = int(round(MEAN[0] * 255))  # 115
VIEWS = ("global", "local", "global+local")
LOCAL_MASKS = ("frame", "video")


def mask_boxes(boxes: np.ndarray, mode: str = "frame") -> np.ndarray:
    """The boxes that mask each frame's local view: ``frame`` returns ``boxes`` (float [N, 4], x0 y0 x1 y1)
    as they are; ``video`` gives every frame one stable box, the 2nd percentile of the boxes' left and top
    edges and the 98th of their right and bottom edges (a robust union: a raised arm's extent is inside
    it, a few stray boxes are not)."""
    if mode == "frame":
        return boxes
    if mode != "video":
        raise ValueError(f"local mask must be one of {LOCAL_MASKS}, not {mode!r}")
    b = np.asarray(boxes, np.float32)
    if b.size == 0:
        return b
    stable = np.concatenate([np.percentile(b[:, :2], 2, axis=0), np.percentile(b[:, 2:], 98, axis=0)])
    return np.broadcast_to(stable.astype(np.float32), b.shape).copy()


def local_geometry(
    boxes: np.ndarray,
    square: Sequence[float],
    mode: str,
    size: tuple[int, int],
    work: tuple[int, int],
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A video's ROI ``boxes`` (float [N, 4]) and crop ``square`` (cx, cy, side), both in pixels of a frame
    of ``size`` (w, h), as the local views of frames decoded at ``work`` (w, h) use them: the mask boxes of
    ``mode`` (:func:`mask_boxes`) and the square, scaled to the working size."""
    sx, sy = work[0] / size[0], work[1] / size[1]
    cx, cy, side = (float(v) for v in square)
    return mask_boxes(boxes, mode) * np.array([sx, sy] * 2, np.float32), (cx * sx, cy * sy, side * sx)


def view_names(views: str) -> list[str]:
    """``"global+local"`` -> ``["global", "local"]``; validates the name."""
    if views not in VIEWS:
        raise ValueError(f"unknown views {views!r}; choose from {', '.join(VIEWS)}")
    return views.split("+")


def global_view(frame: np.ndarray, size: int) -> np.ndarray:
    """Letterbox ``frame`` (uint8 [H, W, 3]) into uint8 [size, size, 3]."""
    h, w = frame.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.full((size, size, 3), NEUTRAL, np.uint8)
    y0, x0 = (size - nh) // 2, (size - nw) // 2
    out[y0 : y0 + nh, x0 : x0 + nw] = small
    return out


def local_view(
    frame: np.ndarray,
    box: Sequence[float],
    square: Sequence[float],
    size: int,
    margin: float | None = 0.08,
) -> np.ndarray:
    """The person only: crop ``square`` = (cx, cy, side), resize, mask outside ``box`` (x0, y0, x1, y1).

    Coordinates are in ``frame`` pixels. ``margin`` widens the box by that fraction of its size on each
    side; ``None`` keeps the whole crop square (no mask). The crop may extend beyond the frame; those
    pixels are neutral.
    """
    cx, cy, side = (float(v) for v in square)
    side = max(side, 2.0)
    x0s, y0s = cx - side / 2, cy - side / 2
    scale = size / side
    # affine map frame -> view, pixels outside the frame become neutral
    M = np.array([[scale, 0, -x0s * scale], [0, scale, -y0s * scale]], np.float32)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(
        frame, M, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(NEUTRAL,) * 3
    )
    if margin is None:
        return out
    bx0, by0, bx1, by1 = (float(v) for v in box)
    mw, mh = (bx1 - bx0) * margin, (by1 - by0) * margin
    vx0 = int(np.floor((bx0 - mw - x0s) * scale))
    vy0 = int(np.floor((by0 - mh - y0s) * scale))
    vx1 = int(np.ceil((bx1 + mw - x0s) * scale))
    vy1 = int(np.ceil((by1 + mh - y0s) * scale))
    mask = np.ones((size, size), bool)
    mask[max(0, vy0) : max(0, min(size, vy1)), max(0, vx0) : max(0, min(size, vx1))] = False
    out[mask] = NEUTRAL
    return out


def make_views(
    frames: np.ndarray,
    views: str,
    size: int,
    boxes: np.ndarray | None = None,
    square: Sequence[float] | None = None,
    margin: float | None = 0.08,
) -> dict[str, np.ndarray]:
    """Build the requested views for frames uint8 [T, H, W, 3] -> {name: uint8 [T, size, size, 3]}.

    ``boxes`` (float [T, 4], x0 y0 x1 y1) and ``square`` (cx, cy, side) are in the frames' pixels and
    are required for the local view.
    """
    out: dict[str, np.ndarray] = {}
    for name in view_names(views):
        if name == "global":
            out[name] = np.stack([global_view(f, size) for f in frames])
        else:
            if boxes is None or square is None:
                raise ValueError("the local view needs ROI boxes and a crop square")
            out[name] = np.stack([local_view(f, b, square, size, margin) for f, b in zip(frames, boxes)])
    return out


def normalise(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [..., T, S, S, 3] -> float32 [..., 3, T, S, S], normalised with :data:`MEAN` / :data:`STD`."""
    x = torch.as_tensor(images)
    x = x.to(torch.float32).div_(255.0)
    mean = torch.tensor(MEAN, dtype=torch.float32)
    std = torch.tensor(STD, dtype=torch.float32)
    x = (x - mean) / std
    nd = x.ndim
    # [..., T, S, S, C] -> [..., C, T, S, S]
    perm = [*range(nd - 4), nd - 1, nd - 4, nd - 3, nd - 2]
    return x.permute(*perm).contiguous()


def normalise_images(images: np.ndarray) -> torch.Tensor:
    """Single images uint8 ``[N, S, S, 3]`` (any strides) -> float32 ``[N, 3, S, S]``, as :func:`normalise`."""
    return normalise(np.ascontiguousarray(images)[:, None])[:, :, 0]
