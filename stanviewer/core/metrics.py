"""Classification metrics used by training, evaluation and the app (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PRF", "auroc", "cohen_kappa", "prf"]


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int

    def as_dict(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "tn": self.tn,
        }


def prf(pred: np.ndarray, truth: np.ndarray) -> PRF:
    """Precision, recall and F1 of binary predictions (0/1 arrays of equal length).

    Conventions: with no predicted positives precision is 0 (1 if there are no true positives either);
    with no true positives recall is 1 when nothing was predicted, else 0; F1 follows.
    """
    p = np.asarray(pred).astype(bool).ravel()
    t = np.asarray(truth).astype(bool).ravel()
    if p.shape != t.shape:
        raise ValueError(f"prediction has {p.size} values, truth {t.size}")
    tp = int(np.sum(p & t))
    fp = int(np.sum(p & ~t))
    fn = int(np.sum(~p & t))
    tn = int(np.sum(~p & ~t))
    if tp + fp + fn == 0:
        return PRF(1.0, 1.0, 1.0, tp, fp, fn, tn)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    return PRF(precision, recall, f1, tp, fp, fn, tn)


def auroc(scores: np.ndarray, truth: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN if only one class is present."""
    s = np.asarray(scores, np.float64).ravel()
    t = np.asarray(truth).astype(bool).ravel()
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty_like(s)
    sorted_s = s[order]
    # average ranks for ties
    i = 0
    r = np.arange(1, s.size + 1, dtype=np.float64)
    while i < s.size:
        j = i
        while j + 1 < s.size and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        r[i : j + 1] = (i + j + 2) / 2.0
        i = j + 1
    ranks[order] = r
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary label sequences (1.0 when both are constant and equal)."""
    x = np.asarray(a).astype(bool).ravel()
    y = np.asarray(b).astype(bool).ravel()
    if x.size == 0:
        return float("nan")
    po = float(np.mean(x == y))
    px, py = float(x.mean()), float(y.mean())
    pe = px * py + (1 - px) * (1 - py)
    if pe >= 1.0:
        return 1.0 if po == 1.0 else 0.0
    return (po - pe) / (1 - pe)
