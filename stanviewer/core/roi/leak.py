"""Does an ROI carry the video label? A classifier on ROI statistics alone must stay at chance.

DESIGN.md §6: a crop box computed from each video's own motion extent was bigger in compensation videos
(leaning adds motion) and box size alone separated the classes (AUROC 0.81). :func:`leak_auroc` fits a
small L2-regularised logistic regression (numpy, Newton steps) on per-video features, cross-validated
leave-one-subject-out (or leave-one-out), and returns the AUROC of the held-out scores. Near 0.5 = no
leak. Cross-validated AUROC is biased low on small sets (a feature without information scores 0.46 on
average with 48 videos, anywhere from 0.0 to 0.7), so :func:`leak_null` gives the range the same check
reaches with shuffled labels: a leak is an AUROC above that range, not merely away from 0.5.
:func:`square_features` are the statistics of :meth:`RoiTrack.crop_square` that a model cropping with it
can see; :func:`box_features` are per-frame box statistics (extremes included) for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stanviewer.core.roi.track import RoiTrack

__all__ = ["auroc", "box_features", "leak_auroc", "leak_null", "square_features"]

SQUARE_FEATURES = ("side", "cx", "cy")
BOX_FEATURES = ("med_w", "med_h", "med_aspect", "p90_w", "p90_h", "max_w", "union_w", "std_cx", "std_w")


def square_features(track: RoiTrack) -> np.ndarray:
    """``crop_square`` relative to the frame: side / frame height, cx / width, cy / height (float [3])."""
    w, h = track.size
    cx, cy, side = track.crop_square()
    return np.array([side / h, cx / w, cy / h], np.float64)


def box_features(track: RoiTrack) -> np.ndarray:
    """Per-frame box statistics relative to the frame height (float [9], :data:`BOX_FEATURES`)."""
    h = float(track.size[1])
    b = track.boxes.astype(np.float64)
    bw, bh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx = (b[:, 0] + b[:, 2]) / 2
    return np.array(
        [
            np.median(bw) / h,
            np.median(bh) / h,
            np.median(bw / np.maximum(bh, 1e-6)),
            np.percentile(bw, 90) / h,
            np.percentile(bh, 90) / h,
            bw.max() / h,
            (b[:, 2].max() - b[:, 0].min()) / h,
            cx.std() / h,
            bw.std() / h,
        ]
    )


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve (ties count half); NaN if a class is missing."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + 0.5 * ties)


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 25) -> np.ndarray:
    """Weights [D+1] (bias last) of an L2-regularised logistic regression, by Newton's method."""
    xb = np.hstack([x, np.ones((x.shape[0], 1))])
    w = np.zeros(xb.shape[1])
    reg = np.full(xb.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -30, 30)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg) + 1e-9 * np.eye(xb.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def leak_auroc(
    features: np.ndarray, labels: Sequence[int], groups: Sequence[str] | None = None, l2: float = 1.0
) -> tuple[float, np.ndarray]:
    """Cross-validated AUROC of a logistic regression predicting the label from ROI features.

    Args:
        features: float [V, D], one row per video.
        labels: [V] 0/1 (1 = the target class, e.g. compensation).
        groups: [V] subject of each video: leave-one-subject-out; None: leave-one-video-out.
        l2: ridge penalty on the standardised features.

    Returns:
        ``(auroc, held-out scores float [V])``.
    """
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.float64)
    g = np.arange(len(y)).astype(str) if groups is None else np.asarray(groups).astype(str)
    scores = np.zeros(len(y))
    for grp in np.unique(g):
        test = g == grp
        train = ~test
        if len(np.unique(y[train])) < 2:
            scores[test] = 0.5
            continue
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-9
        w = _fit_logistic((x[train] - mu) / sd, y[train], l2)
        # the fitted intercept is left out: held-out scores of different folds are ranked together, and the
        # intercept follows the training folds' class balance, which is lower exactly when the held-out video
        # is positive; with it, features without any information scored AUROC 0.36 on average (0.00 at
        # worst) under leave-one-out, which read as "no leak" or even as a strong inverse signal
        scores[test] = ((x[test] - mu) / sd) @ w[:-1]
    return auroc(scores, y.astype(int)), scores


def leak_null(
    features: np.ndarray,
    labels: Sequence[int],
    groups: Sequence[str] | None = None,
    n: int = 100,
    seed: int = 0,
    l2: float = 1.0,
) -> np.ndarray:
    """AUROCs of :func:`leak_auroc` with the labels shuffled ``n`` times (seeded): the chance range.

    Returns float [n]; e.g. its 95th percentile is the AUROC a feature set without any information exceeds
    one time in twenty on this set and cross-validation scheme.
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(labels, int)
    return np.array([leak_auroc(features, rng.permutation(y), groups, l2)[0] for _ in range(n)])
