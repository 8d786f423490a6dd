"""``compute_roi``: run a provider on a video once and keep the result in the user's cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from stanviewer.core.errors import RoiError
from stanviewer.core.paths import cache_dir
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, make_provider
from stanviewer.core.roi.track import TRACK_VERSION, RoiTrack
from stanviewer.core.video import VideoReader

__all__ = ["CACHE_VERSION", "cache_path", "compute_roi"]

#: bump when any provider's output changes for the same input, so old cached boxes are not reused
CACHE_VERSION = 1


def cache_path(reader: VideoReader, provider: RoiProvider) -> Path:
    """Where the track of ``reader``'s video by ``provider`` (with its parameters) is cached."""
    key = json.dumps(
        {
            "cache": CACHE_VERSION,
            "track": TRACK_VERSION,
            "provider": provider.name,
            "provider_version": getattr(provider, "version", 1),
            "params": provider.params,
            "size": list(reader.size),
            "frames": reader.frame_count,
            "extra": provider.cache_key_extra(),
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / "roi" / f"{reader.info.fingerprint[:24]}_{provider.name}_{digest}.npz"


def compute_roi(
    reader: VideoReader, provider: str | RoiProvider = "motion", *, use_cache: bool = True, **params: Any
) -> Job[RoiTrack]:
    """Person boxes for every frame of ``reader``'s video (a job; returns a :class:`RoiTrack`).

    Args:
        reader: the open video; boxes are in the pixels of its frames as read (``reader.size``).
        provider: a provider name (``motion``, ``pose``, ``skeleton``, ``csv``, ``none``) or instance.
        use_cache: read/write ``cache_dir()/roi`` (keyed by the video's content fingerprint, the
            provider, its parameters and a version number), so a second call returns at once.
        **params: the provider's parameters (e.g. ``file=...`` for ``skeleton`` and ``csv``).

    Raises:
        RoiError: unknown provider or parameter, malformed input file, missing optional extra.
    """
    prov = make_provider(provider, **params) if isinstance(provider, str) else provider
    if not isinstance(prov, RoiProvider):
        raise RoiError(f"not an ROI provider: {provider!r}")
    path = cache_path(reader, prov)
    if use_cache and path.exists():
        with contextlib.suppress(RoiError):
            track = RoiTrack.load(path)
            if len(track) == reader.frame_count and track.size == reader.size:
                yield Progress(len(track), len(track), f"ROI boxes ({prov.name}) from the cache")
                return track
    track = yield from prov.track(reader)
    if use_cache:
        with contextlib.suppress(OSError):
            track.save(path)
    return track
