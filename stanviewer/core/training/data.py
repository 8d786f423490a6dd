"""Training data: every video of a manifest decoded once into small view images, cached on disk.

For each video the frames the model sees (every ``step = round(fps / sample_fps)`` frames, at twice that
density so that training can jitter the sampling phase) are turned into the model's views at
``size x size`` and stored as one uint8 array ``[n, V, S, S, 3]`` (V views) under the cache folder,
keyed by the video fingerprint and every setting that changes the pixels. Training then never decodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from stanviewer.core.errors import StanError
from stanviewer.core.fileio import atomic_write
from stanviewer.core.manifest import ManifestEntry, read_frame_labels, read_manifest
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.paths import cache_dir
from stanviewer.core.progress import Job, Progress
from stanviewer.core.video import open_video
from stanviewer.core.views import make_views, mask_boxes, view_names

__all__ = ["VideoSample", "load_samples", "prepare_video", "roi_for_video"]

PREP_VERSION = 4


@dataclass
class VideoSample:
    """One video ready for training: view images at half the model's sampling step."""

    name: str
    subject: str
    label: int  # index of the video's class
    images: np.ndarray  # uint8 [n, V, S, S, 3]
    frame_index: np.ndarray  # int64 [n]: source frame of each image
    step: int  # model sampling step in source frames (images are every step/2 frames, see ``sub``)
    sub: int  # images per model step (2, or 1 when step == 1)
    frame_labels: np.ndarray | None  # uint8 [N] per source frame, when the manifest has them
    n_frames: int
    fps: float
    frame_size: tuple[int, int] = (0, 0)  # (w, h) of frames as read
    square: tuple[float, float, float] | None = None  # local view crop (cx, cy, side) in frame pixels


def roi_for_video(reader, provider: str, entry: ManifestEntry | None = None, root: Path | None = None):
    """ROI boxes ``float [N, 4]`` (x0, y0, x1, y1, reader pixels) and the crop square for one video.

    ``provider`` is an ROI provider name (see :mod:`stanviewer.core.roi`), or ``truth`` for the
    manifest's ``boxes`` column (synthetic data; for experiments only).
    """
    if provider == "truth":
        from stanviewer.core.manifest import read_boxes_csv

        if entry is None or root is None or not entry.extra.get("boxes"):
            raise StanError("ROI 'truth' needs a manifest with a boxes column")
        rows = read_boxes_csv(root / entry.extra["boxes"])
        n = reader.frame_count
        boxes = np.zeros((n, 4), np.float32)
        last = (0.0, 0.0, float(reader.size[0]), float(reader.size[1]))
        for i in range(n):
            if i in rows:
                x, y, w, h = rows[i]
                last = (x, y, x + w, y + h)
            boxes[i] = last
        return boxes, _square_from_boxes(boxes)
    from stanviewer.core.progress import run_job
    from stanviewer.core.roi import compute_roi

    track = run_job(compute_roi(reader, provider=provider), stream=None)
    return np.asarray(track.boxes, np.float32), track.crop_square()


def _square_from_boxes(boxes: np.ndarray) -> tuple[float, float, float]:
    cx = float(np.median((boxes[:, 0] + boxes[:, 2]) / 2))
    cy = float(np.median((boxes[:, 1] + boxes[:, 3]) / 2))
    side = float(np.median(np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]))) * 1.1
    return cx, cy, side


def _roi_version(provider: str) -> str:
    """The ROI provider's version in cache keys (its boxes set the local view's crop); "" for file boxes."""
    import stanviewer.core.roi  # noqa: F401  (registers the providers)
    from stanviewer.core.roi.base import PROVIDERS

    cls = PROVIDERS.get(provider)
    return "" if cls is None else f"r{getattr(cls, 'version', 1)}"


def _cache_key(fingerprint: str, spec: ModelSpec, upper: bool = False) -> str:
    views = spec.views.replace("+", "-") + ("-upper" if upper else "")
    roi = f"{spec.roi_provider}{_roi_version(spec.roi_provider)}"
    mask = "" if spec.local_margin == 0.08 or "local" not in spec.views else f"_m{spec.local_margin}"
    if spec.local_mask != "frame" and "local" in spec.views:
        mask += f"_{spec.local_mask}box"
    return f"{fingerprint[:24]}_{views}_{spec.size}_{spec.sample_fps:g}_{roi}{mask}_v{PREP_VERSION}"


def prepare_video(
    entry: ManifestEntry, spec: ModelSpec, root: Path, classes: list[str], upper: bool = False
) -> VideoSample:
    """Decode one manifest video into a :class:`VideoSample` (cached).

    ``upper``: the local view's upper-body image instead (:func:`~stanviewer.core.models.posture.upper_square`
    of the crop square, masked alike; the posture model's second reader); ``square`` stays the local view's.
    """
    if upper and spec.views != "local":
        raise StanError("upper-body images are made from the local view only")
    if entry.label not in classes:
        raise StanError(f"line {entry.line}: class {entry.label!r} is not one of {classes}", root / "manifest.csv")
    with open_video(entry.video) as reader:
        fps = reader.fps
        step = spec.step_for(fps)
        sub = 2 if step >= 2 else 1
        n = reader.frame_count
        key = _cache_key(reader.info.fingerprint, spec, upper)
        path = cache_dir() / "train" / f"{key}.npz"
        labels = read_frame_labels(entry.frame_labels, n) if entry.frame_labels else None
        label = classes.index(entry.label)
        wanted_views = view_names(spec.views)
        both = cache_dir() / "train" / f"{_cache_key(reader.info.fingerprint, replace(spec, views='global+local'))}.npz"
        source = path if path.exists() else (both if spec.views != "global+local" and both.exists() else None)
        if upper and source != path:
            source = None
        if source is not None:  # the two-view cache also serves one-view models
            views = wanted_views if source == path else ["global", "local"]
            cached = _read_cache(source, views, spec.size, n)
            if cached is not None:
                images, idx, size, square = cached
                if source != path:
                    images = images[:, [views.index(v) for v in wanted_views]]
                return VideoSample(entry.name, entry.subject, label, images, idx, step, sub, labels, n, fps,
                                   size, square)  # fmt: skip
            source.unlink(missing_ok=True)  # damaged: decode again
        fine = max(1, step // sub)
        wanted = set(range(0, n, fine))
        need_roi = "local" in view_names(spec.views)
        boxes, square = roi_for_video(reader, spec.roi_provider, entry, root) if need_roi else (None, None)
        if boxes is not None:
            boxes = mask_boxes(boxes, spec.local_mask)
        view_square = square
        if upper:
            from stanviewer.core.models.posture import upper_square

            view_square = upper_square(square)
        imgs, kept = [], []
        for i, fr in reader.iter_frames(0, n):
            if i in wanted:
                v = make_views(
                    fr[None], spec.views, spec.size, None if boxes is None else boxes[i : i + 1], view_square,
                    spec.local_margin,
                )  # fmt: skip
                imgs.append(np.stack([v[name][0] for name in view_names(spec.views)]))
                kept.append(i)
        images = np.stack(imgs)
        kept_idx = np.asarray(kept, np.int64)
        size = reader.size
    geo = np.array([size[0], size[1], *(square if square is not None else (0.0, 0.0, 0.0))], np.float64)
    with atomic_write(path, "wb") as f:
        np.savez(f, images=images, frame_index=kept_idx, geometry=geo)
    return VideoSample(entry.name, entry.subject, label, images, kept_idx, step, sub, labels, n, fps, size,
                       None if square is None else tuple(float(v) for v in square))  # fmt: skip


def _read_cache(
    path: Path, views: list[str], size: int, n_frames: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[float, float, float] | None] | None:
    """(images, frame_index, frame size, square) from a cache file, or None when it is damaged or does not
    fit (``views`` at ``size`` px of a video with ``n_frames`` frames): such a cache counts as absent."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, idx, geo = z["images"], z["frame_index"], z["geometry"]
    except Exception:  # a cache: whatever np.load raises on damaged bytes means "decode again"
        return None
    n = images.shape[0] if images.ndim == 5 else -1
    if (
        images.dtype != np.uint8
        or images.shape[1:] != (len(views), size, size, 3)
        or n < 1
        or idx.shape != (n,)
        or idx.dtype.kind not in "iu"
        or not (idx.min() >= 0 and idx.max() < n_frames)
        or geo.shape != (5,)
        or not np.isfinite(geo).all()
    ):
        return None
    square = (float(geo[2]), float(geo[3]), float(geo[4])) if geo[4] > 0 else None
    return images, idx.astype(np.int64), (int(geo[0]), int(geo[1])), square


def load_samples(
    manifest: str | Path, spec: ModelSpec, split: str | None = None, workers: int = 1, upper: bool = False
) -> Job[list[VideoSample]]:
    """Prepare every video of ``manifest`` (optionally only one split); a job returning the samples.

    ``workers`` > 1 decodes the videos not yet cached in that many processes (the cache files are the
    same either way). ``upper``: upper-body images (see :func:`prepare_video`).
    """
    manifest = Path(manifest)
    entries = read_manifest(manifest)
    if split is not None:
        entries = [e for e in entries if (e.split or "train") == split]
    for e in entries:  # before any video is decoded, naming this manifest
        if e.label not in spec.classes:
            raise StanError(f"line {e.line}: class {e.label!r} is not one of {spec.classes}", manifest)
    if workers > 1 and len(entries) > 1:
        yield from _prepare_parallel(entries, spec, manifest.parent, workers, upper)
    samples: list[VideoSample] = []
    what = "upper-body images of " if upper else ""
    for k, e in enumerate(entries):
        yield Progress(k, len(entries), f"preparing {what}{e.name}")
        samples.append(prepare_video(e, spec, manifest.parent, spec.classes, upper))
    yield Progress(len(entries), len(entries), "prepared")
    return samples


def _prepare_parallel(
    entries: list[ManifestEntry], spec: ModelSpec, root: Path, workers: int, upper: bool = False
) -> Job[None]:
    """Fill the cache for ``entries`` in ``workers`` processes (the caller then reads it back)."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=min(workers, len(entries)), initializer=_worker_init) as pool:
        pending = {pool.submit(_prepare_quiet, e, spec, root, upper) for e in entries}
        done = 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    fut.result()  # a bad video raises here, naming itself
                    done += 1
                yield Progress(done, len(entries), f"preparing ({workers} processes)")
        finally:
            for fut in pending:
                fut.cancel()


def _worker_init() -> None:
    """One PyTorch thread in each forked worker: the parent's OpenMP pool does not survive a fork, and a
    worker that runs a network (the ``learned`` ROI provider) with more threads hangs for ever."""
    import torch

    torch.set_num_threads(1)


def _prepare_quiet(entry: ManifestEntry, spec: ModelSpec, root: Path, upper: bool = False) -> None:
    prepare_video(entry, spec, root, spec.classes, upper)  # the images go to the cache, not back through a pipe


def model_windows(
    sample: VideoSample, frames: int, stride: int, phase: int = 0, offset: int = 0
) -> Iterator[np.ndarray]:
    """Image indices of consecutive model windows: ``frames`` images, every ``sample.sub`` images.

    ``phase`` picks which half-step images are used; ``offset`` shifts the window grid by padding the
    start with that many copies of the first image (training augmentation).
    """
    s = sample.sub
    n = sample.images.shape[0]
    positions = np.arange(phase % s, n, s)
    if positions.size == 0:
        positions = np.array([0])
    if offset > 0:
        positions = np.concatenate([np.full(offset, positions[0]), positions])
    if positions.size < frames:
        yield np.concatenate([positions, np.full(frames - positions.size, positions[-1])])
        return
    starts = list(range(0, positions.size - frames + 1, stride))
    if starts[-1] != positions.size - frames:
        starts.append(positions.size - frames)
    for st in starts:
        yield positions[st : st + frames]
