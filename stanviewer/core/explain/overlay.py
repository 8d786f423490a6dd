"""How a saliency map is drawn over a picture: one definition for the app, the clips and the report.

A map value ``v`` in [0, 1] gets the colour map's colour at ``v`` and the opacity
``opacity * sqrt((v - floor) / (1 - floor))`` above ``floor``, none at or below it. The square root makes
mid-range values visible; the floor keeps the faint, widespread part of a gradient map (about half of the
pixels of a crop square have a value under 0.1 of the video's scale) from tinting the whole crop, so what
stands out is where the map is strong. The colour maps are OpenCV's (perceptually uniform ones first),
stored as tables (``_colormaps.py``) so that the app's GUI process, which never loads OpenCV, draws the same
colours as the clips and the report.
"""

from __future__ import annotations

import numpy as np

from stanviewer.core.explain._colormaps import TABLES

__all__ = ["DEFAULT_FLOOR", "FLOORS", "HEAT_COLORMAPS", "blend_heat", "colormap_lut", "heat_alpha", "heat_rgba"]

HEAT_COLORMAPS: tuple[str, ...] = ("inferno", "viridis", "turbo", "plasma", "cividis", "jet")
DEFAULT_FLOOR = 0.1
FLOORS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)  # the choices the app offers
_LUTS: dict[str, np.ndarray] = {}


def colormap_lut(name: str) -> np.ndarray:
    """uint8 RGB lookup table ``[256, 3]`` of a colour map in :data:`HEAT_COLORMAPS`."""
    if name not in HEAT_COLORMAPS:
        raise ValueError(f"unknown colour map {name!r} (choose from {', '.join(HEAT_COLORMAPS)})")
    if name not in _LUTS:
        _LUTS[name] = np.frombuffer(bytes.fromhex(TABLES[name]), np.uint8).reshape(256, 3).copy()
    return _LUTS[name]


def heat_alpha(heat: np.ndarray, opacity: float, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """float32 opacity in [0, ``opacity``] of map values ``heat`` (0 at and under ``floor``)."""
    v = np.clip(np.nan_to_num(np.asarray(heat, np.float32), nan=0.0), 0.0, 1.0)
    f = float(np.clip(floor, 0.0, 0.99))
    return (float(opacity) * np.sqrt(np.clip((v - f) / (1.0 - f), 0.0, 1.0))).astype(np.float32)


def heat_rgba(heat: np.ndarray, colormap: str, opacity: float, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """float ``[h, w]`` in [0, 1] -> uint8 RGBA ``[h, w, 4]``; transparent at and under ``floor``."""
    v = np.clip(np.nan_to_num(np.asarray(heat, np.float32), nan=0.0), 0.0, 1.0)
    out = np.empty((*v.shape, 4), np.uint8)
    out[..., :3] = colormap_lut(colormap)[(v * 255.0 + 0.5).astype(np.uint8)]
    out[..., 3] = (heat_alpha(v, opacity, floor) * 255.0 + 0.5).astype(np.uint8)
    return out


def blend_heat(
    frame: np.ndarray,
    heat: np.ndarray,
    opacity: float = 0.5,
    colormap: str = "inferno",
    floor: float = DEFAULT_FLOOR,
) -> np.ndarray:
    """uint8 RGB ``frame`` with the map (float ``[h, w]`` in [0, 1], any size; resized) drawn over it."""
    import cv2

    h, w = frame.shape[:2]
    v = np.clip(cv2.resize(np.asarray(heat, np.float32), (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    rgba = heat_rgba(v, colormap, opacity, floor)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = frame.astype(np.float32) * (1.0 - a) + rgba[..., :3].astype(np.float32) * a
    return (out + 0.5).astype(np.uint8)
