"""Per-frame saliency heatmaps at reduced resolution, stored in chunks (an hour never sits in RAM).

File: a ZIP (deflate) holding ``meta.json`` and one ``chunk_NNNNN.npy`` per ``chunk`` frames: uint8
``[chunk, h, w]`` maps in **video frame coordinates** (longest side ``side`` px), each frame scaled by
its own maximum, plus ``frame_max.npy`` (float32 [N], the maxima) so that a viewer can show maps relative
to the whole video (``map * frame_max / video_scale``). Frames without a map are all zero with max 0.
Reading loads one chunk at a time (small LRU).
"""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from stanviewer.core.errors import StanError, describe
from stanviewer.core.fileio import make_temp

__all__ = ["HeatmapError", "HeatmapReader", "HeatmapWriter", "heatmap_size"]

CHUNK = 256


def heatmap_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(w, h) of maps for a ``width x height`` video with longest side ``side``."""
    s = side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


class HeatmapWriter:
    """Write frames in increasing order; ``close()`` moves the file into place."""

    def __init__(self, path: str | Path, n_frames: int, width: int, height: int, side: int = 96) -> None:
        self.path = Path(path)
        self.n = n_frames
        self.w, self.h = heatmap_size(width, height, side)
        self._tmp = make_temp(self.path)
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        self._buf = np.zeros((CHUNK, self.h, self.w), np.uint8)
        self._chunk = 0
        self._next = 0
        self.frame_max = np.zeros(n_frames, np.float32)

    def put(self, i: int, heat: np.ndarray | None) -> None:
        """Frame ``i``'s map (float [h, w] in frame coordinates at this writer's size) or None."""
        if i != self._next:
            raise ValueError(f"heatmaps must be written in order (expected frame {self._next}, got {i})")
        k = i % CHUNK
        if heat is None:
            self._buf[k] = 0
        else:
            m = float(heat.max())
            self.frame_max[i] = m
            self._buf[k] = 0 if m <= 0 else np.clip(heat / m * 255.0 + 0.5, 0, 255).astype(np.uint8)
        self._next += 1
        if k == CHUNK - 1 or self._next == self.n:
            self._flush(k + 1)

    def _flush(self, count: int) -> None:
        bio = io.BytesIO()
        np.save(bio, self._buf[:count].copy(), allow_pickle=False)
        self._zip.writestr(f"chunk_{self._chunk:05d}.npy", bio.getvalue())
        self._chunk += 1

    def close(self) -> Path:
        while self._next < self.n:
            self.put(self._next, None)
        bio = io.BytesIO()
        np.save(bio, self.frame_max, allow_pickle=False)
        self._zip.writestr("frame_max.npy", bio.getvalue())
        meta = {"frames": self.n, "width": self.w, "height": self.h, "chunk": CHUNK, "format": "stanviewer-heatmaps/1"}
        self._zip.writestr("meta.json", json.dumps(meta))
        self._zip.close()
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        try:
            self._zip.close()
        finally:
            self._tmp.unlink(missing_ok=True)


class HeatmapError(StanError, ValueError):
    """A heatmaps file is damaged or not one (also a ValueError, which callers of old caught)."""


#: what zipfile, zlib, json and np.load raise on damaged bytes
_DAMAGED = (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, KeyError, ValueError, TypeError)


class HeatmapReader:
    """Random access to stored heatmaps; ``get(i)`` -> float32 [h, w] in [0, 1] relative to the video.

    A damaged file raises :class:`HeatmapError` naming it, on opening or (for a damaged chunk) in ``get``.
    """

    def __init__(self, path: str | Path, cache_chunks: int = 4) -> None:
        self.path = Path(path)
        try:
            self._zip = zipfile.ZipFile(self.path, "r")
        except _DAMAGED as e:
            raise HeatmapError(f"not a heatmaps file ({describe(e)})", self.path) from e
        try:
            meta = json.loads(self._zip.read("meta.json"))
            self.n, self.w, self.h, self.chunk = (int(meta[k]) for k in ("frames", "width", "height", "chunk"))
            self.frame_max = np.load(io.BytesIO(self._zip.read("frame_max.npy")), allow_pickle=False)
            if self.frame_max.shape != (self.n,) or self.frame_max.dtype.kind != "f":
                raise ValueError(f"frame_max.npy holds {self.frame_max.dtype}{list(self.frame_max.shape)}")
            if not np.isfinite(self.frame_max).all():
                raise ValueError("frame_max.npy holds values that are not finite")
            if min(self.w, self.h, self.chunk) < 1:
                raise ValueError(f"size {self.w}x{self.h}, chunk {self.chunk}")
        except _DAMAGED as e:
            self._zip.close()
            raise HeatmapError(f"damaged heatmaps file ({describe(e)})", self.path) from e
        nz = self.frame_max[self.frame_max > 0]
        self.video_scale = float(np.percentile(nz, 99)) if nz.size else 1.0
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._limit = cache_chunks

    def _load(self, c: int) -> np.ndarray:
        hit = self._cache.get(c)
        if hit is not None:
            self._cache.move_to_end(c)
            return hit
        name = f"chunk_{c:05d}.npy"
        try:
            arr = np.load(io.BytesIO(self._zip.read(name)), allow_pickle=False)
        except _DAMAGED as e:
            raise HeatmapError(f"damaged heatmaps file: {name} ({describe(e)})", self.path) from e
        size = min(self.chunk, self.n - c * self.chunk)
        if arr.shape != (size, self.h, self.w) or arr.dtype != np.uint8:
            raise HeatmapError(f"damaged heatmaps file: {name} holds {arr.dtype}{list(arr.shape)}", self.path)
        self._cache[c] = arr
        while len(self._cache) > self._limit:
            self._cache.popitem(last=False)
        return arr

    def raw(self, i: int) -> np.ndarray:
        """uint8 [h, w], scaled by the frame's own maximum."""
        return self._load(i // self.chunk)[i % self.chunk]

    def get(self, i: int, relative_to: str = "video") -> np.ndarray:
        """float32 [h, w]: ``video`` = comparable across frames (clipped at the video's 99th percentile of
        frame maxima), ``frame`` = each frame scaled to its own maximum."""
        m = self.raw(i).astype(np.float32) / 255.0
        if relative_to == "frame":
            return m
        return np.clip(m * (self.frame_max[i] / max(self.video_scale, 1e-12)), 0.0, 1.0)

    def close(self) -> None:
        self._zip.close()
