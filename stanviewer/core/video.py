"""The one way frames are read: exact, random-access, bounded-memory video decoding.

A frame is identified by its 0-based index in presentation order. When a video is opened, a **frame
index** (the presentation timestamp of every frame and the keyframes) is built by demuxing the file once
(no decoding) and cached on disk keyed by the file's content fingerprint. ``frame(i)`` seeks to the
keyframe at or before frame i and decodes forward to exactly frame i's timestamp (re-seeking earlier if
the index lied), so B-frames, long GOPs and variable frame rates stay exact. Seconds come from
timestamps: ``time_of(i) = (pts_i - pts_0) * time_base``, so frame 0 is at 0.0 s.

Decoded frames are RGB ``uint8`` arrays ``[H, W, 3]``. Frames larger than ``max_side`` are scaled down
on read (a 4K or 8K file never needs full-resolution RGB copies in memory). Rotation stored in the file
(phones) is applied, so frames come out upright.

Short videos: :meth:`VideoReader.iter_windows` pads a video that is shorter than one window by repeating
its last frame (documented behaviour, never an error).
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stanviewer.core.errors import VideoError
from stanviewer.core.fileio import atomic_write, fingerprint
from stanviewer.core.paths import cache_dir

__all__ = ["FrameIndex", "VideoInfo", "VideoReader", "Window", "open_video", "window_starts"]

OPEN_GOP_CODECS = ("mpeg2video", "mpeg1video")  # in program streams (.mpg, .vob) they need the GOP before
INDEX_VERSION = 4  # 3: corrupt packets are left out of the index, AVI truncation noticed; 4: seek_back, shared
MAX_FPS = 10_000.0
MIN_FPS = 0.01
DEFAULT_MAX_SIDE = 1920
DEFAULT_CACHE_BYTES = 256 << 20

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of every frame (sorted) and of the keyframes, in stream ticks."""

    pts: np.ndarray  # int64 [N], strictly increasing
    keyframe_pts: np.ndarray  # int64 [K], sorted, subset of pts
    time_base: Fraction
    truncated: bool = False  # the demuxer or decoder stopped early; the index covers what decodes
    # ticks to seek before a keyframe's pts to land on it: the stream's largest pts - dts (MPEG-TS/PS put a
    # keyframe's packet before its presentation time; seeking to the pts itself lands on the next one)
    seek_back: int = 0
    shared: int = 0  # frames left out because they share their timestamp with another (cannot be addressed)

    @property
    def count(self) -> int:
        return int(self.pts.shape[0])

    def times(self) -> np.ndarray:
        """Seconds of every frame relative to frame 0 (float64 [N])."""
        return (self.pts - self.pts[0]).astype(np.float64) * float(self.time_base)

    def save(self, path: Path) -> None:
        with atomic_write(path, "wb") as f:
            np.savez(
                f,
                version=np.int64(INDEX_VERSION),
                pts=self.pts,
                keyframe_pts=self.keyframe_pts,
                time_base=np.array([self.time_base.numerator, self.time_base.denominator], np.int64),
                truncated=np.bool_(self.truncated),
                seek_back=np.int64(self.seek_back),
                shared=np.int64(self.shared),
            )

    @classmethod
    def load(cls, path: Path) -> FrameIndex | None:
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["version"]) != INDEX_VERSION:
                    return None
                tb = z["time_base"]
                return cls(
                    pts=z["pts"].astype(np.int64),
                    keyframe_pts=z["keyframe_pts"].astype(np.int64),
                    time_base=Fraction(int(tb[0]), int(tb[1])),
                    truncated=bool(z["truncated"]),
                    seek_back=int(z["seek_back"]),
                    shared=int(z["shared"]),
                )
        except Exception:
            return None


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`open_video` learnt about a file. Sizes are as frames are read (upright, capped)."""

    path: Path
    frame_count: int
    fps: float  # average over the frame index
    nominal_fps: float  # what the container header says (0 when absent)
    variable_fps: bool
    duration_s: float
    width: int
    height: int
    source_width: int
    source_height: int
    codec: str
    pixel_format: str
    rotation: int  # degrees applied on read so frames come out upright (0, 90, 180, 270)
    keyframes: int
    fingerprint: str
    truncated: bool
    shared_timestamps: int = 0  # frames left out: their timestamp is another frame's (FrameIndex.shared)

    def summary(self) -> str:
        """Several human-readable lines (``stanviewer info``)."""
        size = f"{self.width}x{self.height}"
        if (self.width, self.height) != (self.source_width, self.source_height):
            size += f" (source {self.source_width}x{self.source_height})"
        gop = self.frame_count / max(1, self.keyframes)
        lines = [
            f"file        {self.path}",
            f"codec       {self.codec} ({self.pixel_format})",
            f"size        {size}",
            f"frames      {self.frame_count} (0-based indices 0..{self.frame_count - 1})",
            f"fps         {self.fps:.3f} average"
            + (" (variable frame rate)" if self.variable_fps else " (constant)")
            + (f", header {self.nominal_fps:.3f}" if self.nominal_fps else ""),
            f"duration    {self.duration_s:.3f} s",
            f"keyframes   {self.keyframes} (mean GOP {gop:.1f} frames)",
            f"rotation    {self.rotation} deg",
            f"fingerprint {self.fingerprint[:16]}",
        ]
        if self.truncated:
            lines.append("warning     the file ends early (truncated or corrupt); frames that decode are indexed")
        if self.shared_timestamps:
            lines.append(
                f"warning     {self.shared_timestamps} frames share their timestamp with another frame (the container "
                "rounds times too coarsely for this frame rate); they are left out"
            )
        return "\n".join(lines)


@dataclass
class Window:
    """A clip window: ``indices`` (frame numbers, possibly repeated when padded) and ``frames``."""

    start: int
    indices: np.ndarray  # int64 [T]
    frames: np.ndarray  # uint8 [T, H, W, 3]


def window_starts(n_frames: int, length: int, stride: int, step: int = 1) -> list[int]:
    """Start frames of windows of ``length`` frames taken every ``step`` frames, every ``stride`` frames.

    The last window is aligned to the end of the video so that the tail is covered; a video shorter
    than one window gets a single window starting at 0 (padded by the reader).
    """
    if length < 1 or stride < 1 or step < 1:
        raise ValueError("length, stride and step must be >= 1")
    span = (length - 1) * step + 1
    if n_frames <= span:
        return [0]
    starts = list(range(0, n_frames - span + 1, stride))
    if starts[-1] != n_frames - span:
        starts.append(n_frames - span)
    return starts


def _rotation_of(frame: av.VideoFrame) -> int:
    try:
        rot = int(round(getattr(frame, "rotation", 0) or 0))
    except Exception:
        return 0
    return rot % 360 if rot % 90 == 0 else 0


class VideoReader:
    """Exact random access to the frames of one video file. Use :func:`open_video` to make one.

    Thread-safe: every decoder call holds a lock, so one decoder thread (the app's) and the caller can
    share a reader. Memory is bounded by the LRU cache (``cache_bytes``) plus one decoded frame.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_side: int | None = DEFAULT_MAX_SIDE,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        use_index_cache: bool = True,
    ) -> None:
        self.path = Path(path)
        _check_path(self.path)
        self._lock = threading.RLock()
        self._cache: OrderedDict[tuple[int, Size | None], np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self.cache_limit = int(cache_bytes)
        self._container: av.container.InputContainer | None = None
        self._next_index: int | None = None  # frame the decoder will output next, when known
        self._decode_iter: Iterator[av.VideoFrame] | None = None
        self._fingerprint = fingerprint(self.path)
        self._open_container()
        stream = self._stream
        cached = self._index_path()
        index = FrameIndex.load(cached) if use_index_cache and cached.exists() else None
        self._seek_back = 0 if index is None else index.seek_back
        if index is None:
            index = self._build_index()
            index = self._check_ends(index)
            if use_index_cache:
                with contextlib.suppress(OSError):
                    index.save(cached)
        self.index = index
        self._times = index.times()
        first = self._first_frame
        if first is None:
            first = self._decode_first(int(index.keyframe_pts[0]))
        if first is None:
            raise VideoError(f"no frame can be decoded (codec {_codec_name(stream)}; data corrupt?)", self.path)
        self._first_frame = None
        self.rotation = _rotation_of(first)
        sw, sh = first.width, first.height
        if self.rotation in (90, 270):
            sw, sh = sh, sw
        scale = 1.0
        if max_side and max(sw, sh) > max_side:
            scale = max_side / max(sw, sh)
        self._read_size: Size = (max(2, int(round(sw * scale))), max(2, int(round(sh * scale))))
        self.info = self._make_info(stream, first, (sw, sh))

    # ------------------------------------------------------------------ opening and indexing
    def _open_container(self) -> None:
        try:
            self._container = _av_open(self.path)
        except PermissionError as e:
            raise VideoError("cannot be read: permission denied", self.path) from e
        except (av.error.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
            raise VideoError(f"not a video file FFmpeg can read, or damaged/truncated ({_short(e)})", self.path) from e
        if not self._container.streams.video:
            self._container.close()
            raise VideoError("contains no video stream (audio only or not a video)", self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        formats = set(self._container.format.name.split(","))
        # MPEG transport and program streams: a keyframe's packet comes before its presentation time, and
        # seeking by time is inexact (program streams); other containers seek exactly to keyframes
        self._mpeg_stream = bool(formats & {"mpegts", "mpeg", "vob"})
        self._open_gop = int(_codec_name(self._stream) in OPEN_GOP_CODECS and bool(formats & {"mpeg", "vob"}))
        self._first_frame: av.VideoFrame | None = None

    def _index_path(self) -> Path:
        return cache_dir() / "index" / f"{self._fingerprint}.npz"

    def _build_index(self) -> FrameIndex:
        stream = self._stream
        pts_list: list[int] = []
        key_list: list[int] = []
        truncated = False
        counter = 0
        delay = 0
        discarded = 0
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.is_discard:  # before an edit list's start (a clip cut without re-encoding)
                    discarded += 1
                    continue
                if packet.is_corrupt:  # e.g. the partly written last packet of a truncated file
                    truncated = True
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if ts is None:  # no timestamps at all: fall back to packet order
                    ts = counter
                counter += 1
                if packet.pts is not None and packet.dts is not None:
                    delay = max(delay, int(packet.pts) - int(packet.dts))
                pts_list.append(int(ts))
                if packet.is_keyframe:
                    key_list.append(int(ts))
        except av.error.FFmpegError:
            truncated = True
        if not pts_list:
            raise VideoError("contains no video frames", self.path)
        tb = stream.time_base or Fraction(1, 1)
        pts = np.unique(np.asarray(pts_list, dtype=np.int64))
        shared = len(pts_list) - int(pts.size)
        declared = self._container.duration  # microseconds, when the container states it
        if declared and pts.size > 1:
            got = float((pts[-1] - pts[0]) * tb)
            frame_s = float(np.median(np.diff(pts)) * tb)
            if got + 2 * frame_s < 0.9 * declared / 1e6:
                truncated = True
        # AVI computes its duration from the data that is there; its header still counts every frame.
        if stream.frames and pts.size + discarded + 2 < 0.9 * stream.frames:
            truncated = True
        keys = np.unique(np.asarray(key_list, dtype=np.int64))
        if keys.size == 0 or keys[0] > pts[0]:
            keys = np.unique(np.concatenate([[pts[0]], keys]))
        self._seek_back = delay
        return FrameIndex(
            pts=pts, keyframe_pts=keys, time_base=Fraction(tb), truncated=truncated, seek_back=delay, shared=shared
        )

    def _check_ends(self, index: FrameIndex) -> FrameIndex:
        """Drop frames at the start or the end that do not decode (open GOPs, truncated files)."""
        pts, keys, truncated = index.pts, index.keyframe_pts, index.truncated
        # Start: the first frame the decoder outputs after seeking to the beginning.
        first = self._decode_first(int(keys[0]))
        self._first_frame = first
        first_pts = None if first is None else _frame_pts(first)
        if first_pts is None:
            raise VideoError(f"no frame can be decoded (codec {_codec_name(self._stream)}; data corrupt?)", self.path)
        if first_pts > pts[0]:
            pts = pts[pts >= first_pts]
            keys = keys[keys >= first_pts] if (keys >= first_pts).any() else np.array([first_pts])
        # End: decode the last GOP and keep what actually comes out.
        pts_set = set(pts.tolist())
        decoded: list[int] = []
        failed = False
        try:
            self._seek_pts(int(keys[-1]))
            stray = False
            for frame in self._container.decode(self._stream):
                p = _frame_pts(frame)
                # a frame inside the index's span that the index does not hold: the seek landed off it
                stray = stray or (self._mpeg_stream and p is not None and pts[0] <= p <= pts[-1] and p not in pts_set)
                if p is not None and p >= keys[-1]:
                    decoded.append(p)
            if stray:  # the seek landed off the index (MPEG program streams): read the whole file once instead
                decoded.clear()
                self._rewind()
                for frame in self._container.decode(self._stream):
                    p = _frame_pts(frame)
                    if p is not None and p >= keys[-1]:
                        decoded.append(p)
        except av.error.FFmpegError:
            failed = True
        tail = pts[pts >= keys[-1]]
        got = np.intersect1d(tail, np.asarray(decoded, dtype=np.int64))
        if failed or got.size < tail.size:
            last_ok = int(got.max()) if got.size else None
            if last_ok is None:
                keep = pts < keys[-1]
                keys = keys[:-1] if keys.size > 1 else keys
            else:
                keep = pts <= last_ok
            pts = pts[keep]
            truncated = True
            if pts.size == 0:
                raise VideoError("no frame can be decoded (file truncated or corrupt)", self.path)
        self._next_index = None
        return FrameIndex(
            pts=pts,
            keyframe_pts=keys,
            time_base=index.time_base,
            truncated=truncated,
            seek_back=index.seek_back,
            shared=index.shared,
        )

    def _decode_first(self, from_pts: int) -> av.VideoFrame | None:
        with contextlib.suppress(av.error.FFmpegError):
            self._seek_pts(from_pts)
            for frame in self._container.decode(self._stream):
                if _frame_pts(frame) is not None:
                    self._decode_iter = None
                    return frame
        return None

    def _make_info(self, stream: av.video.stream.VideoStream, first: av.VideoFrame, src: Size) -> VideoInfo:
        n = self.index.count
        times = self._times
        nominal = float(stream.average_rate) if stream.average_rate else 0.0
        if n > 1 and times[-1] > 0:
            fps = (n - 1) / times[-1]
            deltas = np.diff(self.index.pts)
            tick = 1.0
            variable = bool(deltas.max() - deltas.min() > max(tick, 0.02 * float(np.median(deltas))))
            duration = float(times[-1] + np.median(deltas) * float(self.index.time_base))
        else:
            fps = nominal
            variable = False
            duration = 1.0 / fps if fps > 0 else 0.0
        if not (MIN_FPS <= fps <= MAX_FPS) or not math.isfinite(fps):
            raise VideoError(f"frame rate is unusable ({fps:g} fps from the timestamps, header {nominal:g})", self.path)
        w, h = self._read_size
        return VideoInfo(
            path=self.path,
            frame_count=n,
            fps=float(fps),
            nominal_fps=nominal,
            variable_fps=variable,
            duration_s=duration,
            width=w,
            height=h,
            source_width=src[0],
            source_height=src[1],
            codec=_codec_name(stream),
            pixel_format=str(first.format.name),
            rotation=self.rotation,
            keyframes=int(self.index.keyframe_pts.size),
            fingerprint=self._fingerprint,
            truncated=self.index.truncated,
            shared_timestamps=self.index.shared,
        )

    # ------------------------------------------------------------------ public API
    @property
    def frame_count(self) -> int:
        return self.index.count

    @property
    def fps(self) -> float:
        return self.info.fps

    @property
    def size(self) -> Size:
        """(width, height) of frames as read."""
        return self._read_size

    def __len__(self) -> int:
        return self.index.count

    def time_of(self, i: int) -> float:
        """Seconds of frame ``i`` from frame 0, from its presentation timestamp."""
        return float(self._times[self._check_index(i)])

    def times(self) -> np.ndarray:
        """Seconds of every frame (float64 [N]); a copy."""
        return self._times.copy()

    def index_at_time(self, seconds: float) -> int:
        """The frame on screen at ``seconds``: the last frame whose time is <= seconds (clamped)."""
        i = int(np.searchsorted(self._times, seconds + 1e-9, side="right")) - 1
        return min(max(i, 0), self.index.count - 1)

    def frame(self, i: int, size: Size | None = None) -> np.ndarray:
        """Exactly frame ``i`` as RGB uint8 ``[H, W, 3]``; ``size=(w, h)`` resizes on read."""
        i = self._check_index(i)
        key = (i, size)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            return self._decode_to(i, size)

    def cached(self, i: int, size: Size | None = None) -> np.ndarray | None:
        """Frame ``i`` if it is in the cache, else None (never decodes; for instant previews)."""
        with self._lock:
            return self._cache.get((i, size))

    def frames(self, indices: Sequence[int], size: Size | None = None) -> np.ndarray:
        """Several frames ``[len, H, W, 3]`` (decoded in increasing order, duplicates allowed)."""
        idx = [self._check_index(int(i)) for i in indices]
        if not idx:
            w, h = size or self._read_size
            return np.zeros((0, h, w, 3), np.uint8)
        uniq = sorted(set(idx))
        got: dict[int, np.ndarray] = {}
        lo, hi = uniq[0], uniq[-1]
        if hi - lo < 4 * max(1, len(uniq)) or len(uniq) > 32:
            for j, fr in self.iter_frames(lo, hi + 1, size):
                if j in got or j not in set(uniq):
                    continue
                got[j] = fr
        for j in uniq:
            if j not in got:
                got[j] = self.frame(j, size)
        return np.stack([got[j] for j in idx])

    def iter_frames(
        self, start: int = 0, stop: int | None = None, size: Size | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode frames ``start..stop-1`` sequentially, yielding ``(index, frame)``; bounded memory.

        Raises :class:`VideoError` naming the frame where decoding stopped if the data ends early.
        """
        n = self.index.count
        stop = n if stop is None else min(stop, n)
        start = max(0, start)
        i = start
        while i < stop:
            with self._lock:
                hit = self._cache.get((i, size))
                if hit is None:
                    frame = self._decode_to(i, size, store=False)
                else:
                    frame = hit
            yield i, frame
            i += 1

    def iter_windows(
        self,
        length: int,
        stride: int,
        step: int = 1,
        size: Size | None = None,
        starts: Sequence[int] | None = None,
    ) -> Iterator[Window]:
        """Clip windows of ``length`` frames taken every ``step`` frames, one every ``stride`` frames.

        Decodes the video once, sequentially, holding only the frames that a coming window still needs.
        Videos shorter than one window give one window padded by repeating the last frame.
        """
        n = self.index.count
        starts = list(starts) if starts is not None else window_starts(n, length, stride, step)
        if not starts:
            return
        needed: list[np.ndarray] = [np.minimum(s + np.arange(length, dtype=np.int64) * step, n - 1) for s in starts]
        keep: dict[int, np.ndarray] = {}
        w_i = 0
        first = int(needed[0].min())
        last = int(max(int(x.max()) for x in needed))
        all_needed = set(np.concatenate(needed).tolist())
        for j, fr in self.iter_frames(first, last + 1, size):
            if j in all_needed:
                keep[j] = fr
            while w_i < len(starts) and int(needed[w_i].max()) <= j:
                idx = needed[w_i]
                yield Window(start=int(starts[w_i]), indices=idx, frames=np.stack([keep[int(k)] for k in idx]))
                w_i += 1
                if w_i < len(starts):
                    lo = int(needed[w_i].min())
                    for k in [k for k in keep if k < lo]:
                        del keep[k]

    def close(self) -> None:
        with self._lock:
            if self._container is not None:
                self._container.close()
                self._container = None
            self._cache.clear()
            self._cache_bytes = 0

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ decoding
    def _check_index(self, i: int) -> int:
        n = self.index.count
        i = int(i)
        if not 0 <= i < n:
            raise IndexError(f"frame {i} out of range 0..{n - 1}")
        return i

    def _seek_pts(self, target_pts: int) -> None:
        assert self._container is not None
        back = self._seek_back if self._mpeg_stream else 0
        self._container.seek(int(target_pts) - back, backward=True, any_frame=False, stream=self._stream)
        self._decode_iter = None
        self._next_index = None

    def _rewind(self) -> None:
        """Back to the file's start (the fallback where seeking to a keyframe does not land on it)."""
        assert self._container is not None
        self._container.seek(0, backward=True, any_frame=False)
        self._decode_iter = None
        self._next_index = None

    def _frames_from_decoder(self) -> Iterator[av.VideoFrame]:
        if self._decode_iter is None:
            self._decode_iter = iter(self._container.decode(self._stream))
        return self._decode_iter

    def _convert(self, frame: av.VideoFrame, size: Size | None) -> np.ndarray:
        w, h = size or self._read_size
        if self.rotation in (90, 270):
            w, h = h, w
        if (frame.width, frame.height) != (w, h) or frame.format.name != "rgb24":
            # AREA only when scaling: at the same size it changes the chroma upsampling of odd-sized frames,
            # and frames must equal a plain sequential decode.
            interpolation = "AREA" if (frame.width, frame.height) != (w, h) else None
            arr = frame.reformat(width=w, height=h, format="rgb24", interpolation=interpolation).to_ndarray()
        else:
            arr = frame.to_ndarray()
        if self.rotation:
            # FFmpeg's display rotation is counter-clockwise; undo it to show the picture upright.
            arr = np.ascontiguousarray(np.rot90(arr, k=self.rotation // 90))
        return arr

    def _store(self, key: tuple[int, Size | None], arr: np.ndarray) -> None:
        if arr.nbytes > self.cache_limit:
            return
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= old.nbytes
        self._cache[key] = arr
        self._cache_bytes += arr.nbytes
        while self._cache_bytes > self.cache_limit and self._cache:
            _, ev = self._cache.popitem(last=False)
            self._cache_bytes -= ev.nbytes

    def _decode_to(self, i: int, size: Size | None, store: bool = True) -> np.ndarray:
        """Decode exactly frame i. Caller holds the lock."""
        if self._container is None:
            raise VideoError("the video was closed", self.path)
        pts = self.index.pts
        target = int(pts[i])
        keys = self.index.keyframe_pts
        k = int(np.searchsorted(keys, target, side="right")) - 1
        gop_limit = 64
        forward_ok = (
            self._next_index is not None
            and self._next_index <= i
            and (i - self._next_index <= gop_limit or (k >= 0 and keys[k] <= pts[self._next_index]))
        )
        attempts = 0
        while True:
            if not forward_ok:
                # MPEG-1/2 GOPs are open: the B-frames after a keyframe lean on the GOP before it, so start there
                seek_to = int(keys[max(0, k - attempts - self._open_gop)])
                try:
                    if attempts > 3 or k - attempts < 0:
                        self._rewind()  # seeking does not land where the index says: decode from the start
                        seek_to = int(pts[0])
                    else:
                        self._seek_pts(seek_to)
                except av.error.FFmpegError as e:
                    raise VideoError(f"cannot seek to frame {i} ({_short(e)})", self.path) from e
                floor = seek_to
            else:
                floor = int(pts[self._next_index])
            overshoot = False
            try:
                for frame in self._frames_from_decoder():
                    p = _frame_pts(frame)
                    if p is None or p < floor:
                        continue
                    j = int(np.searchsorted(pts, p))
                    if j >= len(pts) or pts[j] != p:
                        continue  # a frame that is not in the index (e.g. dropped at open)
                    self._next_index = j + 1
                    if j == i:
                        arr = self._convert(frame, size)
                        if store:
                            self._store((i, size), arr)
                        return arr
                    if j > i:
                        overshoot = True
                        break
                    if store and i - j <= 8:  # keep the frames just before the target (stepping back)
                        self._store((j, size), self._convert(frame, size))
            except av.error.FFmpegError as e:
                self._next_index = None
                raise VideoError(
                    f"frame {i} cannot be decoded; the data is corrupt or truncated ({_short(e)})", self.path
                ) from e
            self._next_index = None
            self._decode_iter = None
            if not overshoot:
                raise VideoError(f"frame {i} cannot be decoded; the file ends early (truncated or corrupt)", self.path)
            # The decoder skipped the target: the index lied about a keyframe. Re-seek earlier.
            attempts += 1
            forward_ok = False
            if k - attempts < -2 or attempts > 5:
                raise VideoError(f"frame {i} cannot be reached by seeking (broken index)", self.path)


def _frame_pts(frame: av.VideoFrame) -> int | None:
    p = frame.pts if frame.pts is not None else frame.dts
    return None if p is None else int(p)


def _codec_name(stream: av.video.stream.VideoStream) -> str:
    """The stream's codec name; "unknown" when FFmpeg has no decoder context for it (a damaged header)."""
    ctx = stream.codec_context
    return ctx.name if ctx is not None else "unknown"


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", text)
    # FFmpeg messages repeat the path; keep the reason.
    return text.split(": '")[0][:160]


def _check_path(path: Path) -> None:
    if not path.exists():
        raise VideoError("file not found", path)
    if path.is_dir():
        raise VideoError("is a folder, not a video file", path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise VideoError(f"cannot be read ({e.strerror})", path) from e
    if size == 0:
        raise VideoError("file is empty (0 bytes)", path)
    try:
        with path.open("rb") as f:
            f.read(1)
    except PermissionError as e:
        raise VideoError("cannot be read: permission denied", path) from e
    except OSError as e:
        raise VideoError(f"cannot be read ({e.strerror})", path) from e


def _av_open(path: Path):
    """``av.open`` for reading; undecodable metadata is ignored where PyAV has the option (removed in 19)."""
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except TypeError:
        return av.open(str(path), mode="r")


def open_video(path: str | Path, **kwargs: object) -> VideoReader:
    """Open a video for exact frame access; raises :class:`VideoError` with a clear message."""
    try:
        return VideoReader(path, **kwargs)  # type: ignore[arg-type]
    except VideoError:
        raise
    except av.error.FFmpegError as e:
        raise VideoError(f"cannot be read ({_short(e)})", path) from e
