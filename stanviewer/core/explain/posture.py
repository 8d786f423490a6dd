"""Whole-video analysis with the posture-MIL model (method ``posture``; :mod:`stanviewer.core.models.posture`).

Two passes instead of sliding windows, because the model compares each frame's posture with the video's
median posture:

1. **read**: the video is decoded once, sequentially; each frame's local view (the checkpoint's ROI
   provider, as for every model) goes through the pose reader in batches (models with an upper-body
   reader also read the frame's upper-body image, ``upper_square``), and only its joints are kept
   (17 x 2 numbers a frame: an hour of video is a few MB). With ``coverage="full"`` every frame is read;
   ``"sampled"`` reads the images the model was trained on (twice its sampling rate) and interpolates;
2. **score**: posture features over the whole video (median posture, context images ``cfg.context`` at
   the training density) -> the MIL head's logit per frame = the frame's raw score; the video's logit is
   their log-mean-exp minus the calibrated bias.

Scores in [0, 1]: models that say so in their metadata (``"frame_scores": "probability"``, every posture
model trained since 2026-11-27) show each frame's **probability**, the sigmoid of its logit, the same
scale in every video; older files keep the per-video normalisation of every other method (clipped to
percentiles, then min-max), with which their stored thresholds were calibrated. The posture model's
logits are learnt evidence on a common scale (the MIL loss ties them to video labels), so rescaling each
video to [0, 1] stretched the normal repetitions of a compensated video up to mid-range scores. While
the read pass runs, partial curves (the frames read so far) are reported about once a second.
The frame logits are the model's own evidence. **Heatmaps** (a third pass, when asked for) are **body-part
maps**: each read joint's contribution to the frame's evidence (:func:`joint_contributions`: gradient x
displacement from the video's median posture, the gradient of the sum of softplus(frame logit) — each
frame's logit weighted by its own probability — with the median posture and body height held fixed),
drawn as a Gaussian blob (sigma :data:`BLOB_SIGMA` of the body height) where the reader placed that joint
in the frame. The model decides from joints, so the map says which body part's displacement the evidence
rests on, at the place the model read it (a misread joint shows where it was misread). On new synthetic
subjects a shoulder carries most of a hike's evidence, and head, neck and shoulders share a lean's
(docs/posture.md). Until the twenty-third session the maps were the pixel gradient carried back through
the pose reader; it spread as faint speckle over the whole crop and cost a pass through the reader.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stanviewer.core.errors import StanError
from stanviewer.core.explain.result import (
    CLIP_PERCENTILES,
    Analysis,
    AnalysisSettings,
    PartialScores,
    probability_scores,
    shown_scores,
)
from stanviewer.core.models.checkpoint import Checkpoint
from stanviewer.core.models.posture import PostureMIL, body_height, image_step, to_video, upper_square
from stanviewer.core.progress import Job, Progress
from stanviewer.core.video import VideoReader
from stanviewer.core.views import local_geometry, local_view, normalise_images

__all__ = ["BLOB_SIGMA", "METHOD", "analyze_posture", "body_part_map", "frame_logits", "joint_contributions"]

METHOD = "posture"
_PARTIAL_EVERY_S = 1.0
BLOB_SIGMA = 0.05  # body-part map: Gaussian blob per joint, sigma as a fraction of the body height
PROBABILITY_KIND = "frame probability (sigmoid of the frame logit), not rescaled per video"


def frame_logits(model: PostureMIL, joints: np.ndarray, rows_step: int) -> np.ndarray:
    """Each row's logit from joints ``[n, J, 2]`` (any pixel scale) read every ``rows_step`` images of the
    training density (1: rows are the training images; 3: every frame of a video three frames apart)."""
    with torch.no_grad():
        f = model.posture_features(torch.from_numpy(joints.astype(np.float64)), rows_step)
        return model.frame_logits(f.to(next(model.parameters()).device)).float().cpu().numpy()


def analyze_posture(
    reader: VideoReader,
    checkpoint: Checkpoint,
    settings: AnalysisSettings | None = None,
    *,
    heatmap_path: str | Path | None = None,
    roi: tuple[np.ndarray, tuple[float, float, float]] | None = None,
    readings: dict | None = None,
) -> Job[Analysis]:
    """Score every frame of an open video with a posture-MIL checkpoint (a job returning an Analysis).

    ``heatmap_path``: write per-frame heatmaps there (with ``settings.heatmaps``); ``roi`` as for
    :func:`~stanviewer.core.explain.scoring.analyze_reader`. ``readings``: a dict that receives what was
    read, for measurements (``rows``, ``joints`` in view coordinates, ``square``, ``rows_step``; see
    :func:`joint_contributions`).
    """
    from stanviewer.core.training.train import select_device

    st = settings or AnalysisSettings(method=METHOD)
    t0 = time.monotonic()
    spec = checkpoint.spec
    model = checkpoint.model
    absolute = probability_scores(checkpoint.meta)  # files made before the key: per-video scaling
    if not isinstance(model, PostureMIL):
        raise StanError(f"the {METHOD!r} method needs a posture model; {checkpoint.name} is {spec.arch}")
    if st.method != METHOD:
        raise StanError(f"{checkpoint.name} explains with its own frame evidence: method {METHOD!r}, not {st.method!r}")
    target_name = st.target or spec.target
    if target_name != spec.target:
        raise StanError(f"the posture model gives evidence for {spec.target!r} only, not {target_name!r}")
    if st.coverage not in ("full", "sampled"):
        raise StanError("coverage must be 'full' or 'sampled'")
    device = select_device(st.device)
    model.to(device).eval()
    n = reader.frame_count
    fine = image_step(reader.fps, spec.sample_fps)
    every = 1 if st.coverage == "full" else fine
    rows = np.arange(0, n, every, dtype=np.int64)
    rw, rh = reader.size
    s = min(1.0, st.work_side / max(rw, rh))
    work = (max(2, round(rw * s)), max(2, round(rh * s)))
    roi_source = "given" if roi is not None else None
    person_found = None  # share of frames where the person finder found someone (its own boxes only)
    if roi is None:
        from stanviewer.core.explain.scoring import _prefixed
        from stanviewer.core.roi import compute_roi, inference_provider

        provider = inference_provider(spec.roi_provider)
        roi_source = provider
        track = yield from _prefixed(compute_roi(reader, provider=provider), "finding the person")
        roi = (np.asarray(track.boxes, np.float32), track.crop_square())
        person_found = round(float(np.mean(np.asarray(track.confidence) > 0)), 4)
    boxes, square = local_geometry(roi[0], roi[1], spec.local_mask, (rw, rh), work)

    qview = np.zeros((len(rows), model.cfg.joints, 2), np.float32)  # joints in view coordinates [-1, 1]
    wanted = np.zeros(n, bool)
    wanted[rows] = True
    batch_imgs: list[np.ndarray] = []
    upper_imgs: list[np.ndarray] = []  # the upper-body images of the same frames (models with that reader)
    upper = upper_square(square) if model.cfg.upper else None
    done = 0
    last_partial = time.monotonic()
    batch = max(8, st.batch * 8)
    want_heat = st.heatmaps and heatmap_path is not None
    total = len(rows) + (len(rows) // 20 if want_heat else 0)  # the body-part maps cost little

    def flush() -> None:
        nonlocal done
        x = _batch(batch_imgs, device)
        xu = _batch(upper_imgs, device) if upper else None
        with torch.no_grad():
            qview[done : done + len(batch_imgs)] = model.joints(x, xu).float().cpu().numpy()
        done += len(batch_imgs)
        batch_imgs.clear()
        upper_imgs.clear()

    def video_joints(upto: int) -> np.ndarray:
        return to_video(torch.from_numpy(qview[:upto].astype(np.float64)), square).numpy()

    for i, frame in reader.iter_frames(0, n, size=work):
        if not wanted[i]:
            continue
        batch_imgs.append(local_view(frame, boxes[i], square, spec.size, spec.local_margin))
        if upper is not None:
            upper_imgs.append(local_view(frame, boxes[i], upper, spec.size, spec.local_margin))
        if len(batch_imgs) >= batch:
            flush()
            partial = None
            if time.monotonic() - last_partial >= _PARTIAL_EVERY_S and done >= 8:
                partial = _partial(model, video_joints(done), rows[:done], n, fine // every, absolute)
                last_partial = time.monotonic()
            yield Progress(done, total, "reading posture", partial=partial)
    if batch_imgs:
        flush()
    if done < len(rows):  # not expected (iter_frames raises when a file ends early); score what was read
        rows, qview = rows[:done], qview[:done]
    if done == 0:
        raise StanError("no frame of the video could be decoded", reader.info.path)
    logits = frame_logits(model, video_joints(done), fine // every)
    if readings is not None:
        readings.update(rows=rows, joints=qview, square=square, rows_step=fine // every)
    heat_file = None
    if want_heat:
        heat_file = yield from _heatmaps(
            reader, model, st, Path(heatmap_path), (work, boxes, square), rows, qview, fine // every
        )
    raw = np.interp(np.arange(n), rows, logits) if len(rows) < n else logits.astype(np.float64)
    scores = shown_scores(raw, absolute)
    video = float(model.video_logit(torch.from_numpy(logits)))
    p_t = 1.0 / (1.0 + math.exp(-video))
    other = next(c for c in spec.classes if c != spec.target)
    probs = {spec.target: p_t, other: 1 - p_t}
    predicted = spec.target if video > 0 else other
    from stanviewer.core.explain.scoring import analysis_header

    prediction = {
        "class": predicted,
        "probabilities": probs,
        "pooled_evidence": video,
        "pooling": "log-mean-exp of the frame logits minus the calibrated video bias",
    }
    meta = {
        **analysis_header(reader, checkpoint),
        "target": spec.target,
        "prediction": prediction,
        "method": METHOD,
        "method_params": {},
        "views": spec.views,
        "roi": roi_source,
        "person_found": person_found,
        "window": {
            "frames": 1,
            "step": every,
            "stride": 1,
            "coverage": st.coverage,
            "windows": 0,
            "sample_fps": spec.sample_fps,
            "context_frames": [int(o) * fine for o in model.cfg.context],
        },
        "normalisation": {
            "kind": PROBABILITY_KIND if absolute else "per-video min-max after clipping",
            "clip_percentiles": None if absolute else list(CLIP_PERCENTILES),
            "raw_min": float(np.min(raw)),
            "raw_max": float(np.max(raw)),
            "aggregate": "frame logit",
            "position_profile": None,
        },
        "threshold": checkpoint.threshold(METHOD),
        "device": str(device),
        "precision": "float32",
        "oom_batch_splits": 0,
        "seconds": round(time.monotonic() - t0, 3),
        "settings": st.key(),
    }
    return Analysis(
        scores=scores,
        raw=raw.astype(np.float32),
        window_prob=(1.0 / (1.0 + np.exp(-raw))).astype(np.float32),
        times=reader.times(),
        windows=[],
        prediction=prediction,
        meta=meta,
        heatmap_path=heat_file,
    )


def _batch(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """View images uint8 ``[S, S, 3]`` -> a normalised batch ``[B, 3, S, S]``."""
    return normalise_images(np.stack(images)).to(device)


def _partial(
    model: PostureMIL, joints: np.ndarray, rows: np.ndarray, n: int, rows_step: int, absolute: bool = False
) -> PartialScores:
    """The curve of the frames read so far (medians over them; they settle as the read pass goes on)."""
    lg = frame_logits(model, joints, max(1, rows_step)).astype(np.float64)
    raw_sum = np.zeros(n)
    count = np.zeros(n, np.int32)
    raw_sum[rows] = lg
    count[rows] = 1
    prob = np.zeros(n)
    prob[rows] = 1.0 / (1.0 + np.exp(-lg))
    return PartialScores(raw_sum, count, prob, count.copy(), final=int(rows[-1]) + 1, absolute=absolute)


def joint_contributions(
    model: PostureMIL, qview: np.ndarray, square: tuple[float, float, float], rows_step: int
) -> np.ndarray:
    """float32 ``[rows, J]``: how much each read joint's displacement from the video's median posture adds
    to the frame evidence — gradient x displacement, ``max(0, g_tj . (q_tj - median_j))``, where ``g`` is
    the gradient of the sum of softplus(frame logit) (each frame's logit weighted by its own probability)
    with respect to the joints, the video's median posture and body height held fixed. Joints the features
    do not use get 0; the pelvis, the features' reference, gets what moving the whole upper body adds."""
    from stanviewer.core.explain.methods import frozen

    q = torch.from_numpy(qview.astype(np.float64)).requires_grad_(True)
    with frozen(model):
        f = model.posture_features(to_video(q, square), rows_step, fixed_reference=True)
        total = F.softplus(model.frame_logits(f)).sum()
        g = torch.autograd.grad(total, q)[0].numpy()
    d = qview.astype(np.float64) - np.median(qview.astype(np.float64), axis=0)
    return np.maximum((g * d).sum(-1), 0.0).astype(np.float32)


def body_part_map(points: np.ndarray, weights: np.ndarray, sigma: float, size: tuple[int, int]) -> np.ndarray:
    """float32 ``[h, w]`` map of ``size`` (w, h): a Gaussian blob (``sigma`` px) of height ``weights[j]`` at
    each ``points[j]`` (x, y in the map's pixels) whose weight is above 0."""
    w, h = size
    ys, xs = np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32)
    m = np.zeros((h, w), np.float32)
    for (x, y), a in zip(points, weights):
        if a > 0:
            m += a * np.outer(np.exp(-0.5 * ((ys - y) / sigma) ** 2), np.exp(-0.5 * ((xs - x) / sigma) ** 2))
    return m


def _heatmaps(
    reader: VideoReader,
    model: PostureMIL,
    st: AnalysisSettings,
    path: Path,
    geometry: tuple,
    rows: np.ndarray,
    qview: np.ndarray,
    rows_step: int,
) -> Job[Path]:
    """Third pass: body-part maps (see the module docstring); frames not read (``"sampled"`` coverage) get
    no map. Nothing is decoded: the maps need only the joints. Returns the heatmap file."""
    from stanviewer.core.explain.heatmaps import HeatmapWriter, heatmap_size

    work, _boxes, square = geometry
    n = reader.frame_count
    rw, rh = reader.size
    contrib = joint_contributions(model, qview, square, rows_step)  # [rows, J]
    hw = heatmap_size(rw, rh, st.heatmap_side)
    scale = hw[0] / work[0], hw[1] / work[1]
    pts = to_video(torch.from_numpy(qview.astype(np.float64)), square).numpy()  # joints in work pixels
    pts = pts * np.array(scale)
    sigma = max(1.0, BLOB_SIGMA * float(body_height(torch.from_numpy(pts))))
    writer = HeatmapWriter(path, n, rw, rh, st.heatmap_side)
    row_of = np.full(n, -1, np.int64)
    row_of[rows] = np.arange(len(rows))
    try:
        for i in range(n):
            r = int(row_of[i])
            if r < 0:
                writer.put(i, None)
                continue
            writer.put(i, body_part_map(pts[r], contrib[r], sigma, hw))
            if (r + 1) % 256 == 0:
                yield Progress(len(rows) + (r + 1) // 20, len(rows) + len(rows) // 20, "body-part maps")
        return writer.close()
    except BaseException:
        writer.abort()
        raise
