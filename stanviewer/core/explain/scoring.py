"""Whole-video scoring: slide the model's window over every frame, attribute, and stitch the results.

The model sees ``T`` frames taken every ``step = round(fps / sample_fps)`` frames. With ``coverage="full"``
the windows run on every sampling phase (frames p, p+step, ... for p < step), so every frame of the video
is seen by the model; ``"sampled"`` runs phase 0 only and interpolates the frames in between (``step``
times faster). On each phase, windows start every ``stride`` model frames and the last one is aligned to
the end; a video shorter than one window is padded by repeating its last frame. A frame's raw score is
the mean over the windows that contain it.

The video is decoded once, sequentially; only the view images of frames that a pending window still
needs are held, and heatmaps are written frame by frame as soon as no pending window can change them,
so memory does not grow with the video's length. The job yields :class:`Progress` after every batch
with a :class:`PartialScores` (the app draws the curve as it grows) and stops when it is not resumed.

Normalisation (per video, DESIGN.md §5): raw scores are clipped to their [1st, 99th] percentiles, then
min-max scaled to [0, 1] (a constant curve becomes 0).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from stanviewer import __version__
from stanviewer.core.errors import StanError
from stanviewer.core.explain.heatmaps import HeatmapWriter, heatmap_size
from stanviewer.core.explain.methods import LogOdds, frame_scores, frozen, heatmaps, make_method
from stanviewer.core.models.checkpoint import Checkpoint
from stanviewer.core.progress import Job, Progress
from stanviewer.core.training.mil import pool_scores
from stanviewer.core.video import VideoReader
from stanviewer.core.views import global_view, local_geometry, local_view, normalise, view_names

__all__ = ["Analysis", "AnalysisSettings", "PartialScores", "analyze_reader", "normalise_scores", "plan_windows"]

# re-exported: the result types live in a torch-free module so that loading an analysis stays light
from stanviewer.core.explain.result import (
    CLIP_PERCENTILES,
    Analysis,
    AnalysisSettings,
    PartialScores,
    normalise_scores,
    window_weighted,
)


def plan_windows(n_frames: int, frames: int, step: int, stride: int, coverage: str = "full") -> list[np.ndarray]:
    """Frame indices of every window ``[W][T]`` (all phases), sorted by their first frame.

    Each phase p samples frames p, p+step, ...; windows start every ``stride`` samples, the last one
    aligned to the end; a phase with fewer than ``frames`` samples gives one window padded with its
    last frame.
    """
    if coverage not in ("full", "sampled"):
        raise ValueError("coverage must be 'full' or 'sampled'")
    phases = range(min(step, n_frames)) if coverage == "full" else range(1)
    out: list[np.ndarray] = []
    for p in phases:
        pos = np.arange(p, n_frames, step, dtype=np.int64)
        if pos.size < frames:
            out.append(np.concatenate([pos, np.full(frames - pos.size, pos[-1])]))
            continue
        starts = list(range(0, pos.size - frames + 1, stride))
        if starts[-1] != pos.size - frames:
            starts.append(pos.size - frames)
        out += [pos[s : s + frames] for s in starts]
    out.sort(key=lambda w: (int(w[0]), int(w[-1])))
    return out


class _ViewMaker:
    """Builds each frame's view images once, and maps view heatmaps back to frame coordinates."""

    def __init__(self, spec, work_size, boxes, square, views, heat_wh) -> None:
        self.spec, self.views = spec, views
        self.size = spec.size
        self.work_w, self.work_h = work_size
        self.boxes, self.square = boxes, square
        self.heat_w, self.heat_h = heat_wh

    def make(self, i: int, frame: np.ndarray) -> np.ndarray:
        out = []
        for v in self.views:
            if v == "global":
                out.append(global_view(frame, self.size))
            else:
                out.append(local_view(frame, self.boxes[i], self.square, self.size, self.spec.local_margin))
        return np.stack(out)  # [V, S, S, 3]

    def to_frame(self, v: str, heat: np.ndarray) -> np.ndarray:
        """A view's map ``[S, S]`` -> map in frame coordinates at heatmap size ``[h, w]``."""
        S = self.size
        sx, sy = self.heat_w / self.work_w, self.heat_h / self.work_h
        if v == "global":
            s = S / max(self.work_w, self.work_h)
            nw, nh = max(1, round(self.work_w * s)), max(1, round(self.work_h * s))
            y0, x0 = (S - nh) // 2, (S - nw) // 2
            return cv2.resize(
                heat[y0 : y0 + nh, x0 : x0 + nw], (self.heat_w, self.heat_h), interpolation=cv2.INTER_AREA
            )
        cx, cy, side = self.square
        scale = S / side
        # view pixel (u, v) <- frame pixel ((u / scale) + x0s, ...): build frame->view map at heat size
        M = np.array([[scale / sx, 0, -(cx - side / 2) * scale], [0, scale / sy, -(cy - side / 2) * scale]], np.float32)
        return cv2.warpAffine(
            heat,
            M,
            (self.heat_w, self.heat_h),
            flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


def _frame_uses(plan: list[np.ndarray]) -> dict[int, int]:
    """Frame -> number of windows of ``plan`` that use it (a frame's image is dropped when it reaches 0)."""
    uses: dict[int, int] = {}
    for w in plan:
        for f in set(w.tolist()):
            uses[f] = uses.get(f, 0) + 1
    return uses


def _window_clips(images: dict[int, np.ndarray], plan: list[np.ndarray], idx: list[int], device) -> tuple:
    """One normalised ``Tensor[B, 3, T, S, S]`` per view for the windows ``idx`` of ``plan``."""
    x = np.stack([np.stack([images[int(f)] for f in plan[k]]) for k in idx])  # [B, T, V, S, S, 3]
    t = normalise(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1, 3, 4, 5))))  # [B, V, 3, T, S, S]
    return tuple(t[:, v].to(device) for v in range(t.shape[1]))


def analyze_reader(
    reader: VideoReader,
    checkpoint: Checkpoint,
    settings: AnalysisSettings | None = None,
    *,
    heatmap_path: str | Path | None = None,
    roi: tuple[np.ndarray, tuple[float, float, float]] | None = None,
) -> Job[Analysis]:
    """Score every frame of an open video (a job returning an :class:`Analysis`).

    ``roi`` = (boxes float [N, 4] in reader pixels, crop square) for the local view; computed with the
    checkpoint's ROI provider when omitted.
    """
    from stanviewer.core.explain.posture import METHOD as POSTURE
    from stanviewer.core.models.registry import family
    from stanviewer.core.training.train import select_device

    st = settings or AnalysisSettings()
    if family(checkpoint.spec.arch) == "posture" or st.method == POSTURE:  # whole-video model: two passes
        from stanviewer.core.explain.posture import analyze_posture

        return (yield from analyze_posture(reader, checkpoint, st, heatmap_path=heatmap_path, roi=roi))
    t0 = time.monotonic()
    spec = checkpoint.spec
    model = checkpoint.model
    views = view_names(spec.views)
    target_name = st.target or spec.target
    if target_name not in spec.classes:
        raise StanError(f"class {target_name!r} is not one of the model's classes {spec.classes}")
    target = spec.classes.index(target_name)
    device = select_device(st.device)
    model.to(device)
    try:
        method = make_method(st.method, model, **st.method_params())
    except ValueError as e:
        raise StanError(str(e)) from None
    n = reader.frame_count
    fps = reader.fps
    step = spec.step_for(fps)
    stride = st.stride or max(1, spec.frames // 2)
    plan = plan_windows(n, spec.frames, step, stride, st.coverage)
    rw, rh = reader.size
    s = min(1.0, st.work_side / max(rw, rh))
    work = (max(2, round(rw * s)), max(2, round(rh * s)))
    boxes = square = None
    roi_source = None
    person_found = None  # share of frames where the person finder found someone (its own boxes only)
    if "local" in views:
        roi_source = "given" if roi is not None else None
        if roi is None:
            from stanviewer.core.roi import compute_roi, inference_provider

            provider = inference_provider(spec.roi_provider)
            roi_source = provider
            track = yield from _prefixed(compute_roi(reader, provider=provider), "finding the person")
            roi = (np.asarray(track.boxes, np.float32), track.crop_square())
            person_found = round(float(np.mean(np.asarray(track.confidence) > 0)), 4)
        boxes, square = local_geometry(roi[0], roi[1], spec.local_mask, (rw, rh), work)
    heat_wh = heatmap_size(rw, rh, st.heatmap_side)
    maker = _ViewMaker(spec, work, boxes, square, views, heat_wh)
    want_heat = st.heatmaps and method.per_pixel and heatmap_path is not None
    writer = HeatmapWriter(heatmap_path, n, rw, rh, st.heatmap_side) if want_heat else None

    if getattr(spec, "video_centre", False):  # the head judges windows against this video's own median
        centre = yield from _centre_pass(reader, spec, maker, model, device, step, work, st.batch)
        model.set_video_centre(centre)

    raw_sum = np.zeros(n, np.float64)
    count = np.zeros(n, np.int32)
    weighted = bool(getattr(method, "window_weighted", False))
    T = spec.frames
    pos_sum = np.zeros(T, np.float64)  # mean raw score per position in the window (position bias)
    pos_cnt = np.zeros(T, np.int64)
    per_window: list[tuple[np.ndarray, np.ndarray]] = []  # (frames, scores [T]) of every window
    prob_sum = np.zeros(n, np.float64)
    prob_cnt = np.zeros(n, np.int32)
    heat_acc: dict[int, np.ndarray] = {}
    needed_by = _frame_uses(plan)  # frame -> number of pending windows that use it
    images: dict[int, np.ndarray] = {}
    win_rows: list[dict] = []
    evid_all: list[float] = []
    phase0: list[float] = []
    next_heat = 0
    w_next = 0  # next window (in plan order) whose frames are not all decoded yet
    ready: list[int] = []
    total_units = len(plan)
    done_units = 0

    amp_dtype = None
    if device.type == "cuda" and st.amp:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    oom_splits: list[int] = []

    def run_batch(idx: list[int]) -> None:
        nonlocal done_units
        clips = _window_clips(images, plan, idx, device)
        try:
            # on a GPU: mixed precision (bf16 where supported); inputs and their gradients stay float32
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                attrs = method.attribute(clips, target)
                with torch.no_grad(), frozen(model):
                    ev = LogOdds(model)(*clips)[:, target].float().cpu().numpy()
        except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - needs a GPU
            del clips
            torch.cuda.empty_cache()
            if len(idx) > 1:  # retry in halves: the analysis goes on at a smaller batch
                oom_splits.append(len(idx))
                run_batch(idx[: len(idx) // 2])
                run_batch(idx[len(idx) // 2 :])
                return
            raise StanError(
                "the GPU ran out of memory even for one clip; close other GPU programs or use --device cpu"
            ) from e
        fs = frame_scores(attrs, st.aggregate).float().cpu().numpy()  # [B, T]
        maps = [h.float().cpu().numpy() for h in heatmaps(attrs)] if writer is not None else None
        for b, k in enumerate(idx):
            frames_k = plan[k]
            p = 1.0 / (1.0 + math.exp(-float(ev[b])))
            per_window.append((frames_k, fs[b].astype(np.float64)))
            if len(np.unique(frames_k)) == T:  # padded windows do not inform the position profile
                pos_sum[:] += fs[b]
                pos_cnt[:] += 1
            # a window's probability speaks for its whole time span: from its first sampled frame to the
            # frame before the sample that would follow its last one (all phases then overlap smoothly)
            a0, a1 = int(frames_k.min()), min(n, int(frames_k.max()) + step)
            prob_sum[a0:a1] += p
            prob_cnt[a0:a1] += 1
            if not method.per_pixel:  # one number per window (window probability): the same span
                raw_sum[a0:a1] += float(fs[b].mean())
                count[a0:a1] += 1
            uniq = {}
            for j, f in enumerate(frames_k.tolist()):
                uniq.setdefault(f, []).append(j)
            for f, js in uniq.items():
                if method.per_pixel:
                    raw_sum[f] += float(np.mean(fs[b, js]))
                    count[f] += 1
                if maps is not None:
                    hm = sum(maker.to_frame(views[v], maps[v][b, js].mean(0)) for v in range(len(views)))
                    if f in heat_acc:
                        heat_acc[f] += hm
                    else:
                        heat_acc[f] = hm
                needed_by[f] -= 1
                if needed_by[f] == 0:
                    images.pop(f, None)
            phase = int(frames_k[0]) % step
            win_rows.append(
                {
                    "phase": phase,
                    "start": int(frames_k[0]),
                    "end": int(frames_k[-1]),
                    "evidence": float(ev[b]),
                    "prob": p,
                }
            )
            evid_all.append(float(ev[b]))
            if phase == 0:
                phase0.append(float(ev[b]))
        done_units += len(idx)

    def flush_heat(upto: int) -> None:
        nonlocal next_heat
        if writer is None:
            return
        while next_heat < upto:
            acc = heat_acc.pop(next_heat, None)
            c = count[next_heat]
            writer.put(next_heat, None if acc is None or c == 0 else acc / c)
            next_heat += 1

    last_yield = time.monotonic()
    try:
        with frozen(model):
            for i, frame in reader.iter_frames(0, n, size=work):
                if needed_by.get(i, 0) > 0:
                    images[i] = maker.make(i, frame)
                while w_next < len(plan) and int(plan[w_next].max()) <= i:
                    ready.append(w_next)
                    w_next += 1
                if len(ready) >= st.batch or (i == n - 1 and ready):
                    while ready:
                        chunk, ready = ready[: st.batch], ready[st.batch :]
                        run_batch(chunk)
                    # frames before the first pending window's first frame are final
                    first_pending = int(plan[w_next][0]) if w_next < len(plan) else n
                    flush_heat(first_pending)
                    now = time.monotonic()
                    if now - last_yield > 0.25 or w_next == len(plan):
                        last_yield = now
                        yield Progress(
                            done_units,
                            total_units,
                            f"{st.method}: window {done_units}/{total_units}",
                            partial=PartialScores(
                                raw_sum.copy(), count.copy(), prob_sum.copy(), prob_cnt.copy(), weighted, first_pending
                            ),
                        )
            while ready:
                chunk, ready = ready[: st.batch], ready[st.batch :]
                run_batch(chunk)
            flush_heat(n)
            heat_file = writer.close() if writer is not None else None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    profile = None
    if st.position_norm and method.per_pixel and pos_cnt.min() > 0:
        # Gradients depend on where a frame sits in the window (temporal padding of the convolutions):
        # divide each position's scores by that position's mean over the whole video, then average.
        profile = pos_sum / pos_cnt
        if np.all(profile > 0):
            profile = profile / profile.mean()
            raw_sum[:] = 0.0
            for frames_k, vals in per_window:
                corrected = vals / profile
                for f in np.unique(frames_k):
                    raw_sum[f] += corrected[frames_k == f].mean()
        else:
            profile = None
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = raw_sum / count
        wprob = prob_sum / prob_cnt
    have = count > 0
    if not have.all():  # "sampled" coverage: interpolate the frames between samples
        xs = np.flatnonzero(have)
        raw = np.interp(np.arange(n), xs, raw[xs])
    have_p = prob_cnt > 0
    if not have_p.all():
        xs = np.flatnonzero(have_p)
        wprob = np.interp(np.arange(n), xs, wprob[xs])
    if weighted:  # e.g. occlusion-window: which frame matters, in the stretches that show the class
        raw = window_weighted(raw, wprob)
    scores = normalise_scores(raw)
    pool_cfg = checkpoint.meta.get("training", {}).get("config", {})
    pooled = float(
        pool_scores(torch.tensor(phase0 or evid_all), pool_cfg.get("pool", "lse"), pool_cfg.get("pool_r", 4.0))
    )
    p_t = 1.0 / (1.0 + math.exp(-pooled))
    probs = {c: (p_t if k == target else (1 - p_t) / max(1, len(spec.classes) - 1)) for k, c in enumerate(spec.classes)}
    predicted = (
        target_name if pooled > 0 else max((c for c in spec.classes if c != target_name), key=lambda c: probs[c])
    )
    meta = {
        **analysis_header(reader, checkpoint),
        "target": target_name,
        "prediction": {
            "class": predicted,
            "probabilities": probs,
            "pooled_evidence": pooled,
            "pooling": pool_cfg.get("pool", "lse"),
        },
        "method": st.method,
        "method_params": st.method_params(),
        "views": spec.views,
        "roi": roi_source,  # local views: the ROI provider used (or "given" boxes); None without a local view
        "person_found": person_found,
        "window": {
            "frames": spec.frames,
            "step": step,
            "stride": stride,
            "coverage": st.coverage,
            "windows": len(plan),
            "sample_fps": spec.sample_fps,
        },
        "normalisation": {
            "kind": "per-video min-max after clipping",
            "clip_percentiles": list(CLIP_PERCENTILES),
            "raw_min": float(np.min(raw)),
            "raw_max": float(np.max(raw)),
            "aggregate": st.aggregate,
            "position_profile": None if profile is None else [round(float(v), 4) for v in profile],
        },
        "threshold": checkpoint.threshold(st.method),
        "device": str(device),
        "precision": "float32" if amp_dtype is None else str(amp_dtype).replace("torch.", "") + " autocast",
        "oom_batch_splits": len(oom_splits),
        "seconds": round(time.monotonic() - t0, 3),
        "settings": st.key(),
    }
    return Analysis(
        scores=scores,
        raw=raw.astype(np.float32),
        window_prob=wprob.astype(np.float32),
        times=reader.times(),
        windows=win_rows,
        prediction=meta["prediction"],
        meta=meta,
        heatmap_path=heat_file,
    )


def _centre_pass(reader: VideoReader, spec, maker: _ViewMaker, model, device, step: int, work, batch: int) -> Job:
    """First pass of a ``video_centre`` model: the median pooled features of the video's windows (a job).

    The windows are the ones training centred on (phase 0, stride T/2); frames are decoded once more and
    only those of pending windows are kept, so memory does not grow with the video.
    """
    from stanviewer.core.models.stan import video_centre

    n = reader.frame_count
    plan = plan_windows(n, spec.frames, step, max(1, spec.frames // 2), "sampled")
    needed = _frame_uses(plan)
    images: dict[int, np.ndarray] = {}
    feats: list[torch.Tensor] = []
    ready: list[int] = []
    w_next, last = 0, time.monotonic()

    def run(idx: list[int]) -> None:
        with torch.no_grad():
            feats.append(model.features(*_window_clips(images, plan, idx, device)).float().cpu())
        for k in idx:
            for f in set(plan[k].tolist()):
                needed[f] -= 1
                if needed[f] == 0:
                    images.pop(f, None)

    was_training = model.training
    model.eval()
    try:
        for i, frame in reader.iter_frames(0, n, size=work):
            if needed.get(i, 0) > 0:
                images[i] = maker.make(i, frame)
            while w_next < len(plan) and int(plan[w_next].max()) <= i:
                ready.append(w_next)
                w_next += 1
            if len(ready) >= batch or (i == n - 1 and ready):
                run(ready)
                ready = []
            now = time.monotonic()
            if now - last > 0.25:
                last = now
                yield Progress(i + 1, n, f"reading the video's usual posture: frame {i + 1}/{n}")
        if ready:
            run(ready)
    finally:
        model.train(was_training)
    if not feats:
        raise StanError("no frame of the video could be read for the model's first pass")
    return video_centre(torch.cat(feats))


def analysis_header(reader: VideoReader, checkpoint: Checkpoint) -> dict:
    """The format, software, video and model parts of an analysis's metadata (every model family)."""
    info, spec = reader.info, checkpoint.spec
    return {
        "format": "stanviewer-analysis/1",
        "software": __version__,
        "video": {
            "path": str(info.path),
            "fingerprint": info.fingerprint,
            "frames": reader.frame_count,
            "fps": info.fps,
            "variable_fps": info.variable_fps,
            "width": info.width,
            "height": info.height,
            "duration_s": info.duration_s,
        },
        "model": {
            "name": checkpoint.name,
            "sha256": checkpoint.sha256,
            "classes": spec.classes,
            "arch": spec.arch,
            "trained_on": checkpoint.meta.get("training", {}).get("data_description", "see the model card"),
        },
    }


def _prefixed(job, prefix: str):
    """Re-yield a sub-job's progress with a prefix (its result is returned)."""
    try:
        while True:
            p = next(job)
            yield Progress(p.done, p.total, f"{prefix}: {p.message}")
    except StopIteration as stop:
        return stop.value
