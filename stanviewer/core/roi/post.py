"""Post-processing shared by every ROI provider: gap filling, temporal smoothing, margin, clamping.

Providers produce *raw* boxes: float [N, 4] ``(x0, y0, x1, y1)`` with a row of NaN where nothing was
found, and a confidence per frame. :func:`finish_boxes` turns them into the boxes of a
:class:`~stanviewer.core.roi.track.RoiTrack`, in this order:

1. **gap filling**: a frame without a box gets one linearly interpolated between the nearest frames
   with boxes before and after it; frames before the first (after the last) detection carry the first
   (last) box. Filled frames get confidence 0. A video with no detection at all gets the whole frame.
2. **temporal smoothing**: a centred running median over ``smooth`` frames (removes one-frame spikes),
   then a centred running mean over the same window (removes jitter). Windows shrink symmetrically at
   the ends, so steady motion is followed to the last frame.
3. **margin**: every side moves out by ``margin`` times the box's width (left/right) or height
   (top/bottom), plus ``margin_px`` pixels.
4. **clamping** to the frame ``[0, w] x [0, h]``; every box keeps at least one pixel of width and height.
"""

from __future__ import annotations

import numpy as np

__all__ = ["clamp_boxes", "expand_boxes", "fill_gaps", "finish_boxes", "smooth_boxes"]


def fill_gaps(boxes: np.ndarray, confidence: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate (inside) and carry (at the ends) boxes through frames with no detection.

    Args:
        boxes: float [N, 4]; a row containing NaN means "no detection in this frame".
        confidence: float [N] or None (1 where a box is given).

    Returns:
        ``(boxes, confidence)``: float32 [N, 4] with no NaN (all NaN if no frame had a box) and float32
        [N], 0 on filled frames.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    n = b.shape[0]
    valid = np.isfinite(b).all(axis=1)
    conf = np.ones(n) if confidence is None else np.asarray(confidence, np.float64).reshape(-1).copy()
    conf = np.where(valid, np.nan_to_num(conf, nan=0.0), 0.0)
    out = np.full((n, 4), np.nan)
    if valid.any():
        idx = np.flatnonzero(valid)
        frames = np.arange(n)
        for c in range(4):
            out[:, c] = np.interp(frames, idx, b[idx, c])  # carries the end values outwards
    return out.astype(np.float32), np.clip(conf, 0.0, 1.0).astype(np.float32)


def _running(values: np.ndarray, window: int, reducer) -> np.ndarray:
    """Centred running ``reducer`` (np.median or np.mean) over ``window`` rows, symmetric windows shrinking
    at the ends (the first and last rows are kept as they are)."""
    n = values.shape[0]
    half = window // 2
    if half < 1 or n < 2:
        return values.copy()
    out = np.empty_like(values)
    # the interior in one vectorised call, the ends with shrinking windows
    if n > 2 * half:
        win = np.lib.stride_tricks.sliding_window_view(values, 2 * half + 1, axis=0)  # [n-2h, C, W]
        out[half : n - half] = reducer(win, axis=-1)
    for i in list(range(min(half, n))) + list(range(max(half, n - half), n)):
        r = min(half, i, n - 1 - i)  # symmetric, so that steady motion is not pulled back at the ends
        out[i] = reducer(values[i - r : i + r + 1], axis=0)
    return out


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Running median then running mean over ``window`` frames (odd; < 2 = no smoothing).

    Args:
        boxes: float [N, 4] without NaN.
        window: frames in each window; even numbers are rounded up.

    Returns:
        float32 [N, 4].
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if window < 2 or b.shape[0] < 3:
        return b.astype(np.float32)
    window = int(window) | 1
    b = _running(b, window, np.median)
    b = _running(b, window, np.mean)
    return b.astype(np.float32)


def expand_boxes(boxes: np.ndarray, margin: float = 0.0, margin_px: float = 0.0) -> np.ndarray:
    """Move every side out by ``margin`` x the box's width/height plus ``margin_px`` (float32 [N, 4])."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    dx = (b[:, 2] - b[:, 0]) * margin + margin_px
    dy = (b[:, 3] - b[:, 1]) * margin + margin_px
    b[:, 0] -= dx
    b[:, 2] += dx
    b[:, 1] -= dy
    b[:, 3] += dy
    return b.astype(np.float32)


def clamp_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Clamp boxes to the frame ``size=(w, h)``, keeping at least 1 px of width and height."""
    w, h = float(size[0]), float(size[1])
    b = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    b[:, 0] = np.clip(b[:, 0], 0.0, w - 1.0)
    b[:, 1] = np.clip(b[:, 1], 0.0, h - 1.0)
    b[:, 2] = np.clip(np.maximum(b[:, 2], b[:, 0] + 1.0), 1.0, w)
    b[:, 3] = np.clip(np.maximum(b[:, 3], b[:, 1] + 1.0), 1.0, h)
    return b.astype(np.float32)


def finish_boxes(
    boxes: np.ndarray,
    confidence: np.ndarray | None,
    size: tuple[int, int],
    *,
    smooth: int = 5,
    margin: float = 0.0,
    margin_px: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gap filling, smoothing, margin and clamping (module docstring) of a provider's raw boxes.

    Args:
        boxes: float [N, 4] ``(x0, y0, x1, y1)`` in frame pixels; NaN rows = no detection.
        confidence: float [N] in [0, 1] or None.
        size: ``(w, h)`` of the frame.
        smooth: window of the running median/mean in frames (0 or 1: none).
        margin: fraction of the box size added on each side.
        margin_px: pixels added on each side.

    Returns:
        ``(boxes float32 [N, 4], confidence float32 [N])``.
    """
    filled, conf = fill_gaps(boxes, confidence)
    if filled.shape[0] and not np.isfinite(filled).all():  # nothing found anywhere: the whole frame
        filled[:] = (0.0, 0.0, float(size[0]), float(size[1]))
        conf[:] = 0.0
    out = smooth_boxes(filled, smooth)
    out = expand_boxes(out, margin, margin_px)
    return clamp_boxes(out, size), conf
