"""``checked``: the motion provider's boxes, checked per video against the learned detector's.

Measured on four fresh draws (docs/posture.md, nineteenth and twentieth sessions): ``motion`` places the
crop square well in most videos and its per-frame boxes are tight, but it loses the whole figure in a
few videos per draw (legs the colour of the wall, a poster joined to the body); the learned detector
places the square right far more often but its per-frame boxes are looser. This provider computes both
(each through the ROI cache) and keeps the motion track unless its crop square is off from the
detector's (:func:`square_off`) **and** the detector is sure of itself in that video (the median confidence
of the frames it ran on is at least ``min_confidence``), in which case the detector's track is used for the
whole video. The returned track's ``params["used"]`` says which one. The gate: on four draws the detector
lost one subject (four videos) whose motion squares were right; its median confidence there was 0.52-0.74,
against 0.76 or more wherever the switch was right and 0.98 in a typical video.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from stanviewer.core.progress import Job
from stanviewer.core.roi.base import RoiProvider, register
from stanviewer.core.roi.track import RoiTrack
from stanviewer.core.video import VideoReader

__all__ = ["CheckedProvider", "square_off"]


def square_off(
    square: tuple[float, float, float],
    reference: tuple[float, float, float],
    *,
    centre: float = 0.1,
    side: float = 0.15,
) -> bool:
    """Whether a crop square ``(cx, cy, side)`` is off from ``reference``: centres further apart than
    ``centre`` x the reference's side, or sides differing by more than ``side`` (a fraction)."""
    cx, cy, s = square
    rx, ry, rs = reference
    return bool(np.hypot(cx - rx, cy - ry) > centre * rs or abs(s / rs - 1) > side)


@register("checked")
class CheckedProvider(RoiProvider):
    """``motion`` boxes, replaced for the whole video by the ``learned`` detector's where the motion crop
    square is off from the detector's and the detector is confident; ``file``: the detector (default: the
    bundled one); ``centre`` and ``side``: the tolerances of :func:`square_off`; ``min_confidence``: the
    detector's median confidence (over the frames it ran on) needed to overrule motion."""

    name = "checked"
    defaults: ClassVar[dict[str, Any]] = {"file": None, "centre": 0.1, "side": 0.15, "min_confidence": 0.75}

    def cache_key_extra(self) -> str:
        """The detector file's content and the motion provider's version: a cached choice goes stale with
        either track."""
        from stanviewer.core.roi.learned import LearnedProvider
        from stanviewer.core.roi.motion import MotionProvider

        return f"{LearnedProvider(file=self.params['file']).cache_key_extra()}|motion v{MotionProvider.version}"

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        track = yield from self.track(reader)
        return track.boxes, track.confidence, track.joints

    def track(self, reader: VideoReader) -> Job[RoiTrack]:
        from stanviewer.core.roi.cache import compute_roi

        post = {k: self.params[k] for k in self.post_defaults}
        motion = yield from compute_roi(reader, "motion", **post)
        det = {"file": self.params["file"]} if self.params["file"] else {}
        learned = yield from compute_roi(reader, "learned", **post, **det)
        off = square_off(
            motion.crop_square(),
            learned.crop_square(),
            centre=float(self.params["centre"]),
            side=float(self.params["side"]),
        )
        ran = learned.confidence[learned.confidence > 0]
        sure = ran.size > 0 and float(np.median(ran)) >= float(self.params["min_confidence"])
        use = learned if off and sure else motion
        return RoiTrack(
            boxes=use.boxes,
            confidence=use.confidence,
            size=use.size,
            joints=use.joints,
            provider=self.name,
            params={**self.params, "used": use.provider},
        )
