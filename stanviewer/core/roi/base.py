"""The provider interface, the registry and the shared steps every provider ends with."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from stanviewer.core.errors import RoiError
from stanviewer.core.progress import Job
from stanviewer.core.roi.post import finish_boxes
from stanviewer.core.roi.track import RoiTrack
from stanviewer.core.video import VideoReader

__all__ = ["PROVIDERS", "RoiProvider", "boxes_from_joints", "make_provider", "register"]

PROVIDERS: dict[str, type[RoiProvider]] = {}


def register(name: str) -> Callable[[type[RoiProvider]], type[RoiProvider]]:
    """Class decorator: make a provider available to :func:`make_provider` under ``name``."""

    def deco(cls: type[RoiProvider]) -> type[RoiProvider]:
        cls.name = name
        PROVIDERS[name] = cls
        return cls

    return deco


class RoiProvider(ABC):
    """Finds the person in every frame of a video.

    A provider is made with keyword parameters (:meth:`__init__` validates them against
    :attr:`defaults`); :meth:`track` is a job (a generator yielding
    :class:`~stanviewer.core.progress.Progress`) that returns a :class:`RoiTrack`. Subclasses implement
    :meth:`raw`, returning per-frame raw boxes (NaN rows where nothing was found), confidences and
    optional joints; the shared post-processing (:func:`~stanviewer.core.roi.post.finish_boxes`:
    gap filling, smoothing, margin, clamping) is applied with the ``smooth``, ``margin`` and
    ``margin_px`` parameters that every provider accepts.
    """

    name: ClassVar[str] = ""
    #: provider-specific parameters and their defaults
    defaults: ClassVar[dict[str, Any]] = {}
    #: parameters of the shared post-processing
    post_defaults: ClassVar[dict[str, Any]] = {"smooth": 5, "margin": 0.0, "margin_px": 0.0}

    def __init__(self, **params: Any) -> None:
        allowed = {**self.post_defaults, **self.defaults}
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise RoiError(
                f"ROI provider {self.name!r} has no parameter(s) {', '.join(unknown)}"
                f" (it takes: {', '.join(sorted(allowed)) or 'none'})"
            )
        self.params: dict[str, Any] = {**allowed, **params}

    def cache_key_extra(self) -> str:
        """Extra text for the cache key (e.g. the fingerprint of an input file); empty by default."""
        return ""

    @abstractmethod
    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """Job returning raw ``(boxes float [N, 4] with NaN rows, confidence float [N], joints or None)``."""

    def track(self, reader: VideoReader) -> Job[RoiTrack]:
        """Job returning the finished :class:`RoiTrack` of ``reader``'s video."""
        boxes, conf, joints = yield from self.raw(reader)
        n = reader.frame_count
        if boxes.shape[0] != n:
            raise RoiError(f"provider {self.name!r} returned {boxes.shape[0]} boxes for {n} frames")
        p = self.params
        out, conf = finish_boxes(
            boxes,
            conf,
            reader.size,
            smooth=int(p["smooth"]),
            margin=float(p["margin"]),
            margin_px=float(p["margin_px"]),
        )
        return RoiTrack(boxes=out, confidence=conf, size=reader.size, joints=joints, provider=self.name, params=p)


def make_provider(name: str, **params: Any) -> RoiProvider:
    """The provider registered as ``name`` (``motion``, ``pose``, ``skeleton``, ``csv``, ``none``)."""
    # importing the package registers the built-in providers
    import stanviewer.core.roi  # noqa: F401

    cls = PROVIDERS.get(name)
    if cls is None:
        raise RoiError(f"unknown ROI provider {name!r} (choose from {', '.join(sorted(PROVIDERS))})")
    return cls(**params)


def boxes_from_joints(joints: np.ndarray, pad: float = 0.05) -> np.ndarray:
    """Bounding boxes of 2-D joints, widened by ``pad`` x the joints' box height on every side.

    Joints are centres of body parts; the pad stands for the thickness of limbs and the head.

    Args:
        joints: float [N, J, 2] ``(x, y)``; NaN where a joint is unknown.
        pad: fraction of the joints' vertical extent added on each side.

    Returns:
        float32 [N, 4] ``(x0, y0, x1, y1)``; NaN rows for frames with fewer than two known joints.
    """
    j = np.asarray(joints, np.float64)
    out = np.full((j.shape[0], 4), np.nan)
    known = np.isfinite(j).all(axis=2)  # [N, J]
    ok = known.sum(axis=1) >= 2
    if ok.any():
        x = np.where(known, j[..., 0], np.nan)[ok]
        y = np.where(known, j[..., 1], np.nan)[ok]
        x0, x1 = np.nanmin(x, axis=1), np.nanmax(x, axis=1)
        y0, y1 = np.nanmin(y, axis=1), np.nanmax(y, axis=1)
        p = pad * np.maximum(y1 - y0, x1 - x0)
        out[ok] = np.stack([x0 - p, y0 - p, x1 + p, y1 + p], axis=1)
    return out.astype(np.float32)
