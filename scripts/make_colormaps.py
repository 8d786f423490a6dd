"""Write ``stanviewer/core/explain/_colormaps.py``: the heatmap colour maps as 256-entry RGB tables.

The tables are OpenCV's (``cv2.applyColorMap`` on 0…255), stored as data so that the app's GUI process,
which never imports OpenCV, draws the same colours as the clips and the report
(:mod:`stanviewer.core.explain.overlay`). Run it again only to add a colour map:

    python scripts/make_colormaps.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

NAMES = ("inferno", "viridis", "turbo", "plasma", "cividis", "jet")
OUT = Path(__file__).resolve().parents[1] / "stanviewer" / "core" / "explain" / "_colormaps.py"


def main() -> None:
    lines = [
        '"""Heatmap colour maps: 256 RGB triples each (written by ``scripts/make_colormaps.py`` from OpenCV)."""',
        "",
        "TABLES: dict[str, str] = {",
    ]
    for name in NAMES:
        ramp = np.arange(256, dtype=np.uint8)[:, None]
        rgb = cv2.applyColorMap(ramp, getattr(cv2, f"COLORMAP_{name.upper()}"))[:, 0, ::-1]
        hexa = np.ascontiguousarray(rgb).tobytes().hex()
        lines.append(f'    "{name}": (')
        lines += [f'        "{hexa[k : k + 96]}"' for k in range(0, len(hexa), 96)]
        lines.append("    ),")
    lines.append("}")
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
