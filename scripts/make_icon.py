"""Draw the application icon (resources/stanviewer.png, 256x256): a score curve over a threshold line.

python scripts/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def main() -> None:
    s, k = 256, 4  # drawn at 4x, then downsampled (anti-aliasing)
    big = s * k
    img = np.zeros((big, big, 4), np.uint8)
    cv2.rectangle(img, (0, 0), (big - 1, big - 1), (0, 0, 0, 0), -1)
    r = 48 * k
    bg = (92, 58, 30, 255)  # BGR-A dark blue
    for cx, cy in ((r, r), (big - r, r), (r, big - r), (big - r, big - r)):
        cv2.circle(img, (cx, cy), r, bg, -1)
    cv2.rectangle(img, (r, 0), (big - r, big), bg, -1)
    cv2.rectangle(img, (0, r), (big, big - r), bg, -1)
    x = np.linspace(0, 1, 200)
    y = 0.25 + 0.55 * np.exp(-((x - 0.62) ** 2) / 0.008) + 0.08 * np.sin(9 * x)
    pts = np.stack([(0.12 + 0.76 * x) * big, (0.85 - 0.6 * y) * big], 1).astype(np.int32)
    th = int(0.85 * big - 0.6 * 0.55 * big)
    cv2.line(img, (int(0.1 * big), th), (int(0.9 * big), th), (60, 60, 230, 255), 6 * k)
    cv2.polylines(img, [pts], False, (255, 255, 255, 255), 11 * k, cv2.LINE_AA)
    small = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA)
    out = Path(__file__).resolve().parents[1] / "resources" / "stanviewer.png"
    cv2.imwrite(str(out), small)
    print(out)


if __name__ == "__main__":
    main()
