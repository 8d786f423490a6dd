"""Analysis results and settings (NumPy only: loading an analysis never imports torch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "CLIP_PERCENTILES",
    "SCORING_VERSION",
    "Analysis",
    "AnalysisSettings",
    "PartialScores",
    "normalise_scores",
    "window_weighted",
]

CLIP_PERCENTILES = (1.0, 99.0)
PERSON_FOUND_MIN = 0.5  # below this share of frames with a person found, an analysis says so


# Bump when the same settings give different scores (part of every analysis' cache key and metadata).
# 2: a window's probability covers its whole time span (every frame from its first sample to the next
#    sample after its last), not only its sampled frames; version 1 left a comb of single frames at the
#    start of a video, where each sampling phase had one window of its own.
SCORING_VERSION = 2

# Bump when the posture method's heatmaps change (part of the cache key of posture analyses made with maps,
# so that the app does not show an analysis made without maps, or with the old ones).
# 2: the body height and median posture are constants for the gradient (it flowed to the median frames),
#    and each frame's logit weighs by its probability (softplus).
# 3: body-part maps (a blob per joint, its contribution to the evidence) instead of the pixel gradient.
POSTURE_HEATMAPS_VERSION = 3


OCCLUSION_METHODS = ("occlusion", "occlusion-window")  # the methods that take ``occlusion_span``


def window_weighted(raw: np.ndarray, window_prob: np.ndarray) -> np.ndarray:
    """Geometric mean of a frame's (non-negative) raw score and its window probability."""
    return np.sqrt(np.clip(raw, 0.0, None) * np.clip(window_prob, 0.0, None))


@dataclass
class AnalysisSettings:
    """How a video is scored. ``stride`` is in model frames (default T/2)."""

    method: str = "window"
    target: str | None = None  # class to explain (default: the checkpoint's target class)
    stride: int | None = None
    coverage: str = "full"  # full | sampled
    batch: int = 16  # clips per forward/backward batch
    device: str = "auto"
    amp: bool = True  # mixed precision (bf16/fp16 autocast) on CUDA; no effect on the CPU
    aggregate: str = "mean"  # pixels -> frame score: mean | top10
    position_norm: bool = True  # divide out the mean score of each position in the window
    samples: int = 8  # SmoothGrad noisy copies
    sigma: float = 0.15  # SmoothGrad noise, fraction of the input range
    ig_steps: int = 16
    occlusion_span: int = 1
    heatmaps: bool = True
    heatmap_side: int = 96
    work_side: int = 320  # frames are decoded at this longest side before building views

    def method_params(self) -> dict:
        if self.method == "smoothgrad":
            return {"samples": self.samples, "sigma": self.sigma, "batch": self.batch}
        if self.method == "ig":
            return {"steps": self.ig_steps, "batch": max(1, self.batch // 2)}
        if self.method in OCCLUSION_METHODS:
            return {"span": self.occlusion_span, "batch": self.batch}
        return {}

    def key(self) -> dict:
        """The settings that change the result (for caching)."""
        d = asdict(self)
        for k in ("batch", "device", "heatmaps"):
            d.pop(k)
        if self.method != "smoothgrad":
            d.pop("samples"), d.pop("sigma")
        if self.method != "ig":
            d.pop("ig_steps")
        if self.method not in OCCLUSION_METHODS:
            d.pop("occlusion_span")
        d["scoring"] = SCORING_VERSION
        if self.method == "posture" and self.heatmaps:
            d["posture_heatmaps"] = POSTURE_HEATMAPS_VERSION
        return d


@dataclass
class PartialScores:
    """Scores so far: raw per-frame sums and counts (frames not reached yet have count 0)."""

    raw_sum: np.ndarray
    count: np.ndarray
    prob_sum: np.ndarray
    prob_count: np.ndarray | None = None  # windows whose time span covers each frame (prob_sum's divisor)
    window_weighted: bool = False  # the method weights its scores by the window probability
    final: int | None = None  # frames before this one have all their windows scored (None: not known)
    absolute: bool = False  # scores are probabilities (sigmoid of the raw score), not rescaled per video

    def curve(self) -> np.ndarray:
        """Normalised scores (probabilities where ``absolute``) of the frames reached so far; NaN elsewhere.

        With ``final`` known, only frames before it are shown: at the frontier, windows of some sampling
        phases are done and others not, and their scattered frames drew a dashed curve (and flickering
        one-frame segments) ahead of the settled part. Frames before ``final`` that no window samples
        (``"sampled"`` coverage) are interpolated, as the finished analysis does.
        """
        with np.errstate(invalid="ignore", divide="ignore"):
            raw = self.raw_sum / self.count
            if self.window_weighted and self.prob_count is not None:
                raw = window_weighted(raw, self.prob_sum / self.prob_count)
        ok = self.count > 0
        out = np.full(raw.shape, np.nan, np.float32)
        if self.final is not None:
            upto = max(0, min(int(self.final), len(ok)))
            ok[upto:] = False
            xs = np.flatnonzero(ok)
            if len(xs) and xs[-1] > xs[0] + 1:
                span = np.arange(xs[0], xs[-1] + 1)
                raw = raw.copy()
                raw[span] = np.interp(span, xs, raw[xs])
                ok[span] = True
        if ok.any():
            out[ok] = shown_scores(raw[ok], self.absolute)
        return out


@dataclass
class Analysis:
    """The result of scoring one video (see :mod:`stanviewer.core.explain.store` for the files)."""

    scores: np.ndarray  # float32 [N] in [0, 1]
    raw: np.ndarray  # float32 [N] before normalisation
    window_prob: np.ndarray  # float32 [N]: mean target probability of the windows containing each frame
    times: np.ndarray  # float64 [N] seconds (from timestamps)
    windows: list[dict]  # per window: phase, start, end (frames), evidence, prob
    prediction: dict  # predicted class, probabilities, pooled evidence
    meta: dict = field(default_factory=dict)
    heatmap_path: Path | None = None

    @property
    def fps(self) -> float:
        """The video's frame rate as its reader reported it when scored (what the app uses); NaN if unknown."""
        try:
            return float((self.meta.get("video") or {}).get("fps"))
        except (TypeError, ValueError):
            return float("nan")

    def end_time(self, end: int) -> float:
        """When a segment that ends before frame ``end`` (exclusive) ends: that frame's time, or the video's
        duration after the last frame — as the app's segment table, the label exports and the clips say."""
        t = self.times
        if end < len(t):
            return float(t[end])
        video = self.meta.get("video") or {}
        fps = float(video.get("fps") or 0)
        return float(video.get("duration_s") or (t[-1] + (1 / fps if fps > 0 else 0)))

    def cautions(self) -> list[str]:
        """What a reader of this analysis must know before trusting its segments (the app and ``analyze``
        say the same): the person was rarely found; the video-level output is another class."""
        out = []
        found = self.meta.get("person_found")
        if found is not None and found < PERSON_FOUND_MIN:
            out.append(
                f"the person finder found someone in only {100 * found:.0f}% of the frames; where it found no "
                "one, the scores are not about a person and mean nothing"
            )
        pred, target = (self.prediction or {}).get("class"), self.meta.get("target")
        if pred and target and pred != target:
            out.append(
                f"the model predicts '{pred}' for this video; the segments show where it looked for '{target}' anyway"
            )
        return out


def probability_scores(meta: dict) -> bool:
    """Whether a model's metadata asks for frame scores as probabilities (``"frame_scores": "probability"``,
    posture models) instead of the per-video scaling every other score gets."""
    return meta.get("frame_scores") == "probability"


def shown_scores(raw: np.ndarray, probability: bool) -> np.ndarray:
    """The scores a curve shows (float32 in [0, 1]): ``sigmoid(raw)`` for probabilities, else per-video
    :func:`normalise_scores`."""
    if probability:
        return (1.0 / (1.0 + np.exp(-np.asarray(raw, np.float64)))).astype(np.float32)
    return normalise_scores(raw)


FLAT_SPREAD = 1e-5  # relative spread under which a raw curve counts as flat (float32 rounding is ~1e-7 a step)


def normalise_scores(raw: np.ndarray, percentiles: tuple[float, float] = CLIP_PERCENTILES) -> np.ndarray:
    """Clip to the given percentiles, then min-max to [0, 1] (float32). A curve that is flat but for float32
    rounding (a spread under :data:`FLAT_SPREAD` of its size: a video whose frames are all the same) becomes 0,
    not rounding noise stretched to the full range."""
    r = np.asarray(raw, np.float64)
    if r.size == 0:
        return r.astype(np.float32)
    lo, hi = np.percentile(r, percentiles)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= FLAT_SPREAD * max(abs(hi), abs(lo)):
        return np.zeros(r.shape, np.float32)
    return ((np.clip(r, lo, hi) - lo) / (hi - lo)).astype(np.float32)
