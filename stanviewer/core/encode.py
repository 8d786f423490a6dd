"""Writing videos with PyAV (H.264 through libx264, MPEG-4 part 2, MJPEG).

Used by the synthetic data generator, clip export and the tests. OpenCV's writer cannot write H.264
here; PyAV's libx264 can. Frames are RGB ``uint8 [H, W, 3]``. Writes go to a temporary name in the
target folder and are renamed into place by :meth:`VideoWriter.close`, so a failed or cancelled write
never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stanviewer.core.errors import VideoError
from stanviewer.core.fileio import make_temp

__all__ = ["CODECS", "VideoWriter"]

#: codec name -> (PyAV encoder, pixel format, default options)
CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "h264": ("libx264", "yuv420p", {"preset": "veryfast", "crf": "20"}),
    "mp4v": ("mpeg4", "yuv420p", {"qscale": "3"}),
    "mjpeg": ("mjpeg", "yuvj420p", {"q:v": "3"}),
    "ffv1-gray": ("ffv1", "gray", {}),
}


class VideoWriter:
    """Encode frames into a video file, atomically.

    Args:
        path: output file; the container follows the extension (.mp4, .avi, .mkv, .mov).
        fps: frame rate (a float or Fraction). With ``time_base`` set, frames may carry their own times.
        codec: a key of :data:`CODECS`.
        gop: keyframe interval in frames; ``bframes`` B-frames for H.264.
        rotation: display rotation written into the stream (degrees counter-clockwise), for tests.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        codec: str = "h264",
        *,
        gop: int = 60,
        bframes: int = 2,
        crf: int | None = None,
        preset: str | None = None,
        time_base: Fraction | None = None,
        rotation: int = 0,
        threads: int = 0,
    ) -> None:
        if codec not in CODECS:
            raise ValueError(f"unknown codec {codec!r}; choose from {sorted(CODECS)}")
        self.path = Path(path)
        self.codec = codec
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        self._time_base = time_base
        self._gop, self._bframes, self._rotation, self._threads = gop, bframes, rotation, threads
        self._crf, self._preset = crf, preset
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._count = 0
        folder = self.path.parent
        if not folder.exists():
            raise VideoError("the output folder does not exist", folder)
        if not os.access(folder, os.W_OK):
            raise VideoError("the output folder is not writable", folder)
        self._tmp = make_temp(self.path, suffix=self.path.suffix or ".mp4")  # normal permissions, not 0600

    def _open(self, width: int, height: int) -> None:
        enc, pix, opts = CODECS[self.codec]
        opts = dict(opts)
        if self._crf is not None and "crf" in opts:
            opts["crf"] = str(self._crf)
        if self._preset is not None and "preset" in opts:
            opts["preset"] = self._preset
        fmt = {".avi": "avi", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}.get(self.path.suffix.lower())
        try:
            self._container = av.open(str(self._tmp), mode="w", format=fmt)
            stream = self._container.add_stream(enc, rate=self.fps, options=opts)
        except av.error.FFmpegError as e:
            raise VideoError(f"cannot write video ({e})", self.path) from e
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix
        stream.codec_context.gop_size = self._gop
        if self._threads:
            stream.codec_context.thread_count = self._threads
        if enc == "libx264":
            stream.codec_context.max_b_frames = self._bframes
        if self._time_base is not None:
            stream.time_base = self._time_base
            stream.codec_context.time_base = self._time_base
        if self._rotation:
            stream.set_display_rotation(self._rotation)
        self._stream = stream

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Append one RGB frame; ``pts`` (in ``time_base`` ticks) for variable frame rates."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError("frames must be uint8 [H, W, 3]")
        h, w = frame.shape[:2]
        if self.codec != "mjpeg" and (w % 2 or h % 2):
            frame = frame[: h - h % 2, : w - w % 2]
            h, w = frame.shape[:2]
        if self._container is None:
            self._open(w, h)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if pts is not None:
            vf.pts = int(pts)
            vf.time_base = self._stream.codec_context.time_base
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise VideoError(f"cannot write video ({_disk_reason(e)})", self.path) from e
        self._count += 1

    @property
    def frames_written(self) -> int:
        return self._count

    def close(self) -> Path:
        """Flush, close and move the file into place; returns the final path."""
        if self._container is None:
            self.abort()
            raise VideoError("no frames were written", self.path)
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (av.error.FFmpegError, OSError) as e:
            self.abort()
            raise VideoError(f"cannot write video ({_disk_reason(e)})", self.path) from e
        self._container = None
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Stop writing and remove the temporary file (nothing is left behind)."""
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        with contextlib.suppress(OSError):
            self._tmp.unlink()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _disk_reason(e: BaseException) -> str:
    errno = getattr(e, "errno", None)
    if errno == 28:
        return "the disk is full"
    if errno == 13:
        return "permission denied"
    return str(e).splitlines()[0] if str(e) else type(e).__name__
