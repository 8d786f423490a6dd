"""Agreement between two tiers: frame-level Cohen's κ, precision/recall/F1 and disagreement spans.

Frame level, over every frame of the video. ``κ`` and P/R/F1 compare *presence*: a frame counts as
positive in a tier when it lies in an interval of that tier (with ``label``, when one is given). P/R/F1
take tier ``a`` as the reference and ``b`` as the prediction (e.g. ``a=annotator, b=model``: how well
the model's flagged frames match the annotator's). ``kappa_labels`` is Cohen's κ over label categories
(no label counts as one), equal to ``kappa`` when a single label is used.

Disagreement spans are maximal runs of frames where the tiers differ: ``kind`` is ``a_only``,
``b_only`` or ``labels`` (both labelled, differently). :meth:`Agreement.next_after` is what the app's
"next disagreement" key calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stanviewer.core.metrics import PRF, cohen_kappa, prf
from stanviewer.core.review.model import LabelsModel, Tier

__all__ = ["Agreement", "Span", "agreement", "compare_tiers", "next_disagreement"]


@dataclass(frozen=True)
class Span:
    """Frames ``[start, end)`` where the tiers disagree; ``a``/``b`` are the labels there (``""`` = none)."""

    start: int
    end: int
    a: str
    b: str
    kind: str  # a_only | b_only | labels

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Agreement:
    """How two tiers agree on a video (see the module doc)."""

    tier_a: str
    tier_b: str
    label: str | None
    n_frames: int
    kappa: float
    kappa_labels: float
    prf: PRF
    spans: tuple[Span, ...]

    @property
    def agreeing_frames(self) -> int:
        return self.n_frames - sum(s.frames for s in self.spans)

    def next_after(self, frame: int, wrap: bool = False) -> Span | None:
        """The first disagreement starting after ``frame`` (from the start again with ``wrap``)."""
        for s in self.spans:
            if s.start > frame:
                return s
        return self.spans[0] if wrap and self.spans else None

    def previous_before(self, frame: int, wrap: bool = False) -> Span | None:
        """The last disagreement starting before ``frame``."""
        for s in reversed(self.spans):
            if s.start < frame:
                return s
        return self.spans[-1] if wrap and self.spans else None

    def lines(self, times: np.ndarray | None = None, max_spans: int = 200) -> list[str]:
        """A human-readable report (``stanviewer agree``)."""
        what = f" (label {self.label!r})" if self.label else ""
        p = self.prf
        agree = self.agreeing_frames
        out = [
            f"tiers       a = {self.tier_a} (reference), b = {self.tier_b}{what}",
            f"frames      {self.n_frames}; agree on {agree} ({agree / self.n_frames:.1%})",
            f"kappa       {self.kappa:.3f} (frame presence)"
            + ("" if np.isclose(self.kappa, self.kappa_labels) else f"; {self.kappa_labels:.3f} over labels"),
            f"b vs a      precision {p.precision:.3f}  recall {p.recall:.3f}  F1 {p.f1:.3f}  "
            f"(tp {p.tp}, fp {p.fp}, fn {p.fn}, tn {p.tn})",
            f"disagree    {len(self.spans)} span(s), 0-based frames, end exclusive:",
        ]
        if p.tp + p.fp + p.fn == 0:  # perfect agreement on nothing says nothing
            out[2:4] = [f"kappa, F1   n/a: neither tier marks any frame{what}; nothing to compare"]
        for s in self.spans[:max_spans]:
            when = ""
            if times is not None:
                t0 = float(times[s.start])
                t1 = float(times[s.end]) if s.end < len(times) else float("nan")
                when = f"  {t0:8.3f}-{t1:.3f} s" if t1 == t1 else f"  {t0:8.3f} s-end"
            out.append(f"  {s.start:6d}-{s.end:<6d}{when}  {s.kind:7s} a={s.a or '-'} b={s.b or '-'}")
        if len(self.spans) > max_spans:
            out.append(f"  ... {len(self.spans) - max_spans} more")
        return out


def _multiclass_kappa(x: list[str], y: list[str]) -> float:
    cats = sorted(set(x) | set(y))
    if len(cats) <= 1:
        return 1.0
    idx = {c: i for i, c in enumerate(cats)}
    m = np.zeros((len(cats), len(cats)), np.float64)
    np.add.at(m, ([idx[v] for v in x], [idx[v] for v in y]), 1)
    n = m.sum()
    po = np.trace(m) / n
    pe = float((m.sum(0) * m.sum(1)).sum() / (n * n))
    if pe >= 1.0:
        return 1.0 if po == 1.0 else 0.0
    return float((po - pe) / (1 - pe))


def compare_tiers(a: Tier, b: Tier, n_frames: int, label: str | None = None) -> Agreement:
    """Agreement of two tiers over ``n_frames`` frames (``label`` restricts presence to that label)."""
    la, lb = a.labels_per_frame(n_frames), b.labels_per_frame(n_frames)
    if label is not None:
        la = [v if v == label else "" for v in la]
        lb = [v if v == label else "" for v in lb]
    ma = np.array([bool(v) for v in la])
    mb = np.array([bool(v) for v in lb])
    spans: list[Span] = []
    i = 0
    while i < n_frames:
        if la[i] == lb[i]:
            i += 1
            continue
        j = i + 1
        while j < n_frames and la[j] == la[i] and lb[j] == lb[i]:
            j += 1
        x, y = la[i], lb[i]
        spans.append(Span(i, j, x, y, "a_only" if not y else "b_only" if not x else "labels"))
        i = j
    return Agreement(
        tier_a=a.name,
        tier_b=b.name,
        label=label,
        n_frames=n_frames,
        kappa=float(cohen_kappa(ma, mb)),
        kappa_labels=_multiclass_kappa(la, lb),
        prf=prf(mb, ma),
        spans=tuple(spans),
    )


def agreement(labels: LabelsModel, a: str, b: str, label: str | None = None) -> Agreement:
    """Agreement between tiers ``a`` (reference) and ``b`` of a labels model (``model`` included)."""
    return compare_tiers(labels.tier(a), labels.tier(b), labels.n_frames, label)


def next_disagreement(
    labels: LabelsModel, a: str, b: str, frame: int, *, label: str | None = None, wrap: bool = True
) -> Span | None:
    """The next span after ``frame`` where tiers ``a`` and ``b`` disagree (the app's key)."""
    return agreement(labels, a, b, label).next_after(frame, wrap=wrap)
