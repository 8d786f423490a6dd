"""Multiple-instance pooling: a video's score from the scores of its consecutive windows.

Training with video-level (weak) labels: each window of a video gets an evidence score (log-odds of the
target class); the video's score pools them, and the loss compares it with the video label. A positive
video only needs *some* window to be positive, so the per-window scores learn to localise the target
class in time (DESIGN.md §6). The same pooling decides a video's class at inference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["POOLS", "pool_scores"]

POOLS = ("max", "lse", "mean", "topk")


def pool_scores(scores: Tensor, kind: str = "lse", r: float = 4.0, k_frac: float = 0.25) -> Tensor:
    """Pool window scores ``Tensor[W]`` of one video into a scalar.

    Args:
        kind: ``max``; ``lse`` = (1/r) log mean exp(r s), a smooth maximum (r -> inf: max, r -> 0: mean);
            ``mean``; ``topk`` = mean of the top ``ceil(k_frac W)`` scores.
    """
    if scores.numel() == 0:
        raise ValueError("no windows to pool")
    if kind == "max":
        return scores.max()
    if kind == "lse":
        return (torch.logsumexp(r * scores, 0) - math.log(scores.numel())) / r
    if kind == "mean":
        return scores.mean()
    if kind == "topk":
        k = max(1, math.ceil(k_frac * scores.numel()))
        return scores.topk(k).values.mean()
    raise ValueError(f"unknown pooling {kind!r}; choose from {POOLS}")
