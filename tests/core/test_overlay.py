"""How saliency maps are drawn: the one definition the app, the clips and the report share."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stanviewer.core.explain.overlay import (
    DEFAULT_FLOOR,
    HEAT_COLORMAPS,
    blend_heat,
    colormap_lut,
    heat_alpha,
    heat_rgba,
)


@pytest.mark.parametrize("name", HEAT_COLORMAPS)
def test_stored_colour_maps_are_opencvs(name: str) -> None:
    """The tables the GUI process uses without OpenCV are the colours OpenCV gives the clips' code."""
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    want = cv2.applyColorMap(ramp, getattr(cv2, f"COLORMAP_{name.upper()}"))[:, 0, ::-1]
    assert np.array_equal(colormap_lut(name), want)


def test_values_at_or_under_the_floor_are_not_drawn() -> None:
    v = np.array([[0.0, 0.05, DEFAULT_FLOOR, 0.2, 1.0]], np.float32)
    a = heat_alpha(v, 0.5)
    assert a[0, :3].tolist() == [0.0, 0.0, 0.0]
    assert 0 < a[0, 3] < a[0, 4] == pytest.approx(0.5)
    # without a floor every positive value shows, with the square-root ramp
    assert heat_alpha(v, 0.5, floor=0.0)[0, 1] == pytest.approx(0.5 * np.sqrt(0.05))
    rgba = heat_rgba(v, "inferno", 0.5)
    assert rgba.shape == (1, 5, 4) and rgba[0, :3, 3].tolist() == [0, 0, 0] and rgba[0, 4, 3] == 128
    assert rgba[0, 4, :3].tolist() == colormap_lut("inferno")[255].tolist()
    assert heat_rgba(np.array([[np.nan]]), "viridis", 1.0)[0, 0, 3] == 0


def test_blend_leaves_the_picture_where_the_map_is_faint() -> None:
    frame = np.full((40, 60, 3), 120, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[:2, :3] = 0.05  # faint: under the default floor
    heat[2:, 3:] = 1.0
    out = blend_heat(frame, heat, 0.5)
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (out[:15, :25] == 120).all()  # under the floor: the picture as it is
    hot = colormap_lut("inferno")[255].astype(float)
    assert np.allclose(out[30, 50], 0.5 * 120 + 0.5 * hot, atol=1)
    assert not (blend_heat(frame, heat, 0.5, floor=0.0)[:15, :25] == 120).all()


def test_an_unknown_colour_map_is_named() -> None:
    with pytest.raises(ValueError, match="unknown colour map 'rainbow'"):
        colormap_lut("rainbow")
