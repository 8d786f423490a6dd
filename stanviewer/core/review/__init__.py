"""Review and export (Qt-free): label tiers with undo, the review file, autosave and recovery, label
formats, clip export and agreement.

Modules (each documents its API):

- :mod:`~stanviewer.core.review.signals` — a tiny callback signal a Qt view can subscribe to;
- :mod:`~stanviewer.core.review.model` — :class:`LabelsModel`: the ``model`` proposal tier and human
  tiers of labelled frame intervals, edits, grouped undo/redo, change signals;
- :mod:`~stanviewer.core.review.reviewfile` — :class:`Review`, the versioned JSON review file of a video,
  written atomically and checked against the video's fingerprint;
- :mod:`~stanviewer.core.review.recovery` — :class:`Autosaver` (within 2 s of an edit) and crash recovery
  (:func:`find_recovery`, :func:`restore`, :func:`discard`);
- :mod:`~stanviewer.core.review.timing` — frames <-> seconds from the video's timestamps;
- :mod:`~stanviewer.core.review.formats` and :mod:`~stanviewer.core.review.eaf` — per-frame CSV, intervals
  CSV, JSON, ELAN .eaf and BORIS import/export (every export re-imports);
- :mod:`~stanviewer.core.review.clips` — frame-exact H.264 clip export with burn-in and provenance;
- :mod:`~stanviewer.core.review.agreement` — Cohen's κ, P/R/F1 and disagreement spans between tiers;
- :mod:`~stanviewer.core.review.batch` — ``stanviewer export`` / ``stanviewer agree`` over many videos.
"""

from stanviewer.core.review.model import Change, EditError, Interval, LabelsModel, ProposalRef, Selection, Tier
from stanviewer.core.review.reviewfile import Review, VideoMismatchError, VideoRef, load_review, open_review

__all__ = [
    "Change",
    "EditError",
    "Interval",
    "LabelsModel",
    "ProposalRef",
    "Review",
    "Selection",
    "Tier",
    "VideoMismatchError",
    "VideoRef",
    "load_review",
    "open_review",
]
