"""Frame-exact clip export: chosen segments as H.264 MP4 with a provenance sidecar.

:func:`export_clips` is a job (a generator yielding :class:`~stanviewer.core.progress.Progress` and
returning the written paths). Each clip holds exactly the selected frames ``[start, end)`` (plus
``padding`` frames on each side, clamped to the video), decoded by
:class:`~stanviewer.core.video.VideoReader` and encoded with libx264 through
:class:`~stanviewer.core.encode.VideoWriter`; variable-frame-rate sources keep their frame times.
``merged=True`` writes all segments one after the other into a single file.

Optional burn-in: the saliency heatmap over the picture, a timestamp (source frame number and time), and
a score strip under the picture (the score curve around the clip, the threshold, the current frame).
Each clip gets ``<clip>.json``: the video (path, fingerprint), the source frames and times of every
segment and where it sits in the clip, the tier and label, the model/method/threshold/normalisation,
and the options.

All-or-nothing: files are written into a hidden staging folder inside the output folder and moved into
place only when every clip is complete. Cancelling (``cancel.set()``, or closing the generator, which
is what a GUI worker does) or any failure removes everything the job wrote. An output folder that is
not writable or a full disk raise :class:`~stanviewer.core.errors.VideoError` naming the folder/file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stanviewer import __version__
from stanviewer.core.encode import VideoWriter
from stanviewer.core.errors import Cancelled, VideoError
from stanviewer.core.explain.overlay import DEFAULT_FLOOR, blend_heat
from stanviewer.core.progress import Job, Progress
from stanviewer.core.review.model import Tier, now_iso

__all__ = [
    "ClipOptions",
    "ClipRequest",
    "check_output_folder",
    "clip_name",
    "export_clips",
    "requests_from_tier",
]


@dataclass(frozen=True)
class ClipRequest:
    """Frames ``[start, end)`` of the video to export, and where they come from."""

    start: int
    end: int
    tier: str = "model"
    label: str = ""


@dataclass(frozen=True)
class ClipOptions:
    """How clips are made.

    Attributes:
        padding: frames added before and after each segment (clamped to the video).
        merged: one file with every segment instead of one file per segment.
        heatmap: burn the saliency heatmap into the picture (needs the analysis' heatmaps).
        timestamp: burn the source frame number and time into the picture.
        score_strip: add a strip with the score curve under the picture (needs scores).
        heatmap_opacity, heatmap_colormap, heatmap_floor, heatmap_scale: how the heatmap is drawn
            (:func:`stanviewer.core.explain.overlay.blend_heat`; the app passes its own overlay settings).
        crf, preset: libx264 quality settings.
    """

    padding: int = 0
    merged: bool = False
    heatmap: bool = False
    timestamp: bool = False
    score_strip: bool = False
    heatmap_opacity: float = 0.5
    heatmap_colormap: str = "inferno"
    heatmap_floor: float = DEFAULT_FLOOR
    heatmap_scale: str = "video"
    crf: int = 18
    preset: str = "veryfast"


def requests_from_tier(tier: Tier) -> list[ClipRequest]:
    """One request per interval of a tier (flagged segments of ``model``, or labelled intervals)."""
    return [ClipRequest(iv.start, iv.end, tier.name, iv.label) for iv in tier.intervals]


def clip_name(
    video: str | Path, req: ClipRequest | None, merged_tier: str | None = None, stem: str | None = None
) -> str:
    """``<video stem>_<tier>_f<start>-<end>.mp4`` (frames 0-based, end exclusive) or ``_<tier>_clips.mp4``;
    ``stem`` replaces the video's file name (a batch's distinct name)."""
    stem = stem or Path(video).stem
    if req is None:
        return f"{stem}_{_safe(merged_tier or 'segments')}_clips.mp4"
    return f"{stem}_{_safe(req.tier)}_f{req.start:06d}-{req.end:06d}.mp4"


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in s) or "tier"


def check_output_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove it writable by creating a file; clear :class:`VideoError` if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise VideoError(f"the output folder cannot be created ({_why(e)})", folder) from e
    try:
        fd, probe = tempfile.mkstemp(prefix=".stanviewer-probe-", dir=folder)
    except OSError as e:
        raise VideoError(f"the output folder is not writable ({_why(e)})", folder) from e
    os.close(fd)
    os.unlink(probe)
    return folder


def _why(e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return "the disk is full"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.EROFS:
        return "read-only file system"
    return e.strerror or str(e)


def export_clips(
    video: str | Path,
    clips: Sequence[ClipRequest],
    out_dir: str | Path,
    options: ClipOptions | None = None,
    *,
    scores: np.ndarray | None = None,
    threshold: float | None = None,
    heatmaps: str | Path | None = None,
    provenance: dict[str, Any] | None = None,
    cancel: threading.Event | None = None,
    stem: str | None = None,
) -> Job[list[Path]]:
    """Export ``clips`` of ``video`` into ``out_dir``; returns the clip paths (sidecars beside them).

    Args:
        video: the source video.
        clips: the segments (see :func:`requests_from_tier`).
        out_dir: output folder (created if needed).
        options: padding, merged, burn-in (see :class:`ClipOptions`).
        scores: per-frame scores [N] for the score strip (and the sidecar's peak score).
        threshold: drawn in the score strip and recorded.
        heatmaps: the analysis' ``heatmaps.zip`` for the heatmap burn-in.
        provenance: model/method/threshold/normalisation/target of the analysis, for the sidecar.
        cancel: set it to stop; the job then raises :class:`~stanviewer.core.errors.Cancelled`.
        stem: the clips' name prefix instead of the video's file name (see :func:`clip_name`).
    """
    from stanviewer.core.video import open_video

    o = options or ClipOptions()
    if not clips:
        return []
    out_dir = check_output_folder(out_dir)
    hm = None
    if o.heatmap:
        if heatmaps is None or not Path(heatmaps).exists():
            raise VideoError("heatmap burn-in needs the analysis' heatmaps (analyse with heatmaps on)", video)
        from stanviewer.core.explain.heatmaps import HeatmapReader

        hm = HeatmapReader(heatmaps)
    if o.score_strip and scores is None:
        raise VideoError("the score strip needs the analysis' scores", video)
    staging = Path(tempfile.mkdtemp(prefix=".stanviewer-export-", dir=out_dir))
    moved: list[Path] = []
    writer: VideoWriter | None = None
    ok = False
    try:
        with open_video(video) as reader:
            info = reader.info
            n = info.frame_count
            times = reader.times()
            step = max(1, int(round(90000 / info.fps)))
            for c in clips:
                if not 0 <= c.start < c.end <= n:
                    raise VideoError(f"segment {c.start}-{c.end} is outside the video's frames 0..{n}", video)
            groups = [list(clips)] if o.merged else [[c] for c in clips]
            total = sum(_padded(c, o.padding, n)[1] - _padded(c, o.padding, n)[0] for c in clips)
            done = 0
            produced: list[str] = []
            for group in groups:
                name = clip_name(video, None if o.merged else group[0], _merged_tier(group) if o.merged else None, stem)
                writer = _make_writer(staging / name, info, o)
                entries = []
                k = 0  # frames written to this clip
                pts = -step  # variable frame rate: 90 kHz ticks that follow the source's frame times
                for c in group:
                    a, b = _padded(c, o.padding, n)
                    entries.append(_entry(c, a, b, k, times, info.duration_s, scores))
                    for i, frame in reader.iter_frames(a, b):
                        if cancel is not None and cancel.is_set():
                            raise Cancelled("clip export cancelled")
                        img = _decorate(frame, i, times[i], o, hm, scores, threshold, (a, b), c)
                        if info.variable_fps:
                            pts += step if i == a else max(1, int(round((times[i] - times[i - 1]) * 90000)))
                            writer.write(img, pts=pts)
                        else:
                            writer.write(img)
                        k += 1
                        done += 1
                        yield Progress(done, total, f"{name}: frame {i}")
                writer.close()
                writer = None
                side = _sidecar(video, info, name, k, entries, o, threshold, provenance)
                _write_json(staging / (name + ".json"), side)
                produced += [name, name + ".json"]
            for fname in produced:
                target = out_dir / fname
                try:
                    os.replace(staging / fname, target)
                except OSError as e:
                    raise VideoError(f"cannot move the clip into place ({_why(e)})", target) from e
                moved.append(target)
            ok = True
            return [out_dir / f for f in produced if f.endswith(".mp4")]
    except VideoError as e:
        if e.path is not None and staging in e.path.parents:  # name the file the user asked for
            raise VideoError(e.reason, out_dir / e.path.name) from e
        raise
    finally:
        if writer is not None:
            writer.abort()
        if hm is not None:
            hm.close()
        shutil.rmtree(staging, ignore_errors=True)
        if not ok:
            for p in moved:
                with contextlib.suppress(OSError):
                    p.unlink()


def _merged_tier(group: Sequence[ClipRequest]) -> str:
    tiers = sorted({c.tier for c in group})
    return tiers[0] if len(tiers) == 1 else "segments"


def _padded(c: ClipRequest, padding: int, n: int) -> tuple[int, int]:
    return max(0, c.start - padding), min(n, c.end + padding)


def _make_writer(path: Path, info: Any, o: ClipOptions) -> VideoWriter:
    if info.variable_fps:
        return VideoWriter(path, info.fps, "h264", crf=o.crf, preset=o.preset, time_base=Fraction(1, 90000))
    return VideoWriter(path, info.fps, "h264", crf=o.crf, preset=o.preset)


def _entry(
    c: ClipRequest, a: int, b: int, k: int, times: np.ndarray, end_s: float, scores: np.ndarray | None
) -> dict[str, Any]:
    def t(f: int) -> float:
        return float(times[f]) if f < len(times) else float(end_s)

    e: dict[str, Any] = {
        "tier": c.tier,
        "label": c.label,
        "start_frame": c.start,
        "end_frame_excl": c.end,
        "start_s": round(t(c.start), 6),
        "end_s": round(t(c.end), 6),
        "padded_start_frame": a,
        "padded_end_frame_excl": b,
        "clip_first_frame": k,
        "clip_frames": b - a,
        "selected_clip_frames": [k + c.start - a, k + c.end - a],
    }
    if scores is not None:
        e["peak_score"] = round(float(np.nanmax(scores[c.start : c.end])), 6)
    return e


def _sidecar(
    video: str | Path,
    info: Any,
    name: str,
    frames: int,
    entries: list[dict[str, Any]],
    o: ClipOptions,
    threshold: float | None,
    provenance: dict[str, Any] | None,
) -> dict[str, Any]:
    prov = dict(provenance or {})
    if threshold is not None:
        prov["threshold"] = threshold
    return {
        "format": "stanviewer-clip/1",
        "software": __version__,
        "created": now_iso(),
        "frame_indexing": "0-based source frames in presentation order; end exclusive",
        "video": {
            "path": str(Path(video).resolve()),
            "name": Path(video).name,
            "fingerprint": info.fingerprint,
            "frames": info.frame_count,
            "fps": info.fps,
        },
        "clip": {"file": name, "frames": frames, "codec": "h264", "fps": info.fps},
        "segments": entries,
        "analysis": prov or None,
        "options": asdict(o),
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        with path.open("w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise VideoError(f"cannot write the clip's sidecar ({_why(e)})", path) from e


# ---------------------------------------------------------------------- burn-in
def _decorate(
    frame: np.ndarray,
    i: int,
    t: float,
    o: ClipOptions,
    hm: Any,
    scores: np.ndarray | None,
    threshold: float | None,
    span: tuple[int, int],
    c: ClipRequest,
) -> np.ndarray:
    if not (o.heatmap or o.timestamp or o.score_strip):
        return frame
    img = frame.copy()
    h, w = img.shape[:2]
    if o.heatmap and hm is not None:
        img = blend_heat(img, hm.get(i, o.heatmap_scale), o.heatmap_opacity, o.heatmap_colormap, o.heatmap_floor)
    if o.timestamp:
        m, s = divmod(t, 60)
        inside = c.start <= i < c.end
        text = f"f {i}  {int(m)}:{s:06.3f}" + ("" if inside else "  (padding)")
        scale = max(0.3, h / 400)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(img, (0, 0), (min(w, tw + 6), th + base + 6), (0, 0, 0), -1)
        cv2.putText(img, text, (3, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    if o.score_strip and scores is not None:
        img = np.concatenate([img, _strip(scores, threshold, span, c, i, w, max(12, (h // 6) // 2 * 2))], axis=0)
    return img


def _strip(
    scores: np.ndarray, threshold: float | None, span: tuple[int, int], c: ClipRequest, i: int, w: int, sh: int
) -> np.ndarray:
    """The score curve of the clip's frames across the width; selected frames shaded; playhead white."""
    a, b = span
    strip = np.full((sh, w, 3), 32, np.uint8)
    n = max(1, b - a)

    def x_of(f: float) -> int:
        return int(round((f - a) / n * (w - 1)))

    cv2.rectangle(strip, (x_of(c.start), 0), (x_of(c.end), sh - 1), (70, 50, 50), -1)
    s = np.nan_to_num(np.asarray(scores[a:b], np.float64), nan=0.0)
    ys = (sh - 2 - np.clip(s, 0, 1) * (sh - 4)).astype(np.int32)
    xs = np.array([x_of(a + k + 0.5) for k in range(len(s))], np.int32)
    if len(xs) > 1:
        cv2.polylines(strip, [np.stack([xs, ys], 1)], False, (255, 200, 40), 1, cv2.LINE_AA)
    if threshold is not None:
        y = int(sh - 2 - np.clip(threshold, 0, 1) * (sh - 4))
        cv2.line(strip, (0, y), (w - 1, y), (230, 60, 60), 1)
    x = x_of(i + 0.5)
    cv2.line(strip, (x, 0), (x, sh - 1), (255, 255, 255), 1)
    return strip
