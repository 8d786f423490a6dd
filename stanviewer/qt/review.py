"""The review of the open video in the app: the review file, autosave, crash recovery and edit commands.

A thin Qt layer over :mod:`stanviewer.core.review`. :class:`ReviewController` owns the
:class:`~stanviewer.core.review.reviewfile.Review` of the open video and its
:class:`~stanviewer.core.review.recovery.Autosaver`, re-emits the core's Qt-free signals as Qt signals
(the autosaver's come from its own thread and arrive queued in the GUI thread), feeds the read-only
``model`` tier from the scores and threshold the timeline shows, and turns keys and menu entries into
edits of the :class:`~stanviewer.core.review.model.LabelsModel` at the playhead.

Lifecycle: :meth:`ReviewController.open_for` when a video opens (offers to restore a recovery file newer
than the review file), :meth:`ReviewController.close` before another video opens or the window closes
(asks Save / Discard / Cancel when there are unsaved edits). Edits that cannot apply (no interval under
the playhead, nothing selected) say why in the status bar instead of a dialog; file errors are dialogs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from stanviewer.core.errors import StanError
from stanviewer.core.review.model import DEFAULT_LABEL, MODEL_TIER, EditError, LabelsModel, Selection
from stanviewer.core.review.recovery import (
    Autosaver,
    discard,
    drop_recovery,
    find_recovery,
    in_use_elsewhere,
    restore,
)
from stanviewer.core.review.reviewfile import (
    Review,
    ReviewConflictError,
    VideoMismatchError,
    VideoRef,
    load_review,
    open_review,
)
from stanviewer.core.review.timing import FrameTimes
from stanviewer.qt.dialogs import show_error
from stanviewer.qt.session import Session

__all__ = ["EDGES", "ReviewController"]

log = logging.getLogger(__name__)
EDGES = ("left", "right")
SAVE_DISCARD_CANCEL = (
    QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel
)


class ReviewController(QObject):
    """The review of the open video and the edit commands of the keys and menus.

    Args:
        session: the app's session (video, scores, threshold, playhead).
        parent: the window; dialogs are parented to it.

    Signals:
        sigReviewChanged(): a review was opened or closed.
        sigLabelsChanged(): the labels, the proposal or the status changed (core ``sig_changed``).
        sigSelectionChanged(): the selected range moved (core ``sig_selection``).
        sigHistoryChanged(bool, bool): can undo, can redo.
        sigActiveChanged(): the active tier, label or edge changed.
        sigSaved(object): the review file was saved (its path).
        sigAutosaved(object): the recovery file was written (its path; queued from the autosaver thread).
        sigMessage(str): a short note for the status bar.
    """

    sigReviewChanged = Signal()
    sigLabelsChanged = Signal()
    sigSelectionChanged = Signal()
    sigHistoryChanged = Signal(bool, bool)
    sigActiveChanged = Signal()
    sigSaved = Signal(object)
    sigAutosaved = Signal(object)
    sigAutosaveFailed = Signal(object)
    sigMessage = Signal(str)

    def __init__(self, session: Session, parent: QWidget) -> None:
        super().__init__(parent)
        self.session = session
        self.parent_widget = parent
        self.review: Review | None = None
        self.autosaver: Autosaver | None = None
        self.active_tier = "annotator"
        self.label = DEFAULT_LABEL
        self.edge = "right"  # the edge that , and . nudge
        self._feeding = False
        session.sigSegmentsChanged.connect(self.sync_proposal)

    # ---------------------------------------------------------------- state
    @property
    def labels(self) -> LabelsModel | None:
        return None if self.review is None else self.review.labels

    @property
    def dirty(self) -> bool:
        return self.review is not None and self.review.dirty

    def human_tiers(self) -> list[str]:
        return [] if self.labels is None else [t.name for t in self.labels.tiers]

    def times(self) -> FrameTimes:
        """Seconds of every frame of the open video (its timestamps)."""
        r = self.session.reader
        return FrameTimes(np.asarray(self.session.times, np.float64), float(r.info.duration_s))

    # ---------------------------------------------------------------- open and close
    def open_for(self, path: Path, reader: Any) -> Review | None:
        """Open the review of a video that just opened: restore a newer recovery file or read the review file."""
        self.close(ask=False)
        ref = VideoRef.from_reader(reader)
        review = None
        try:
            # a recovery file that another window or instance is still writing is not a crash's leftover:
            # find_recovery skips it and nothing here deletes it
            elsewhere = in_use_elsewhere(ref)
            info = find_recovery(path)
        except (OSError, StanError) as e:
            log.warning("no crash recovery for %s: %s", path, e)
            elsewhere, info = False, None
        note = (
            f"{ref.name} is also open in another window or stanviewer instance; its unsaved labels stay there, "
            "and saving here asks before replacing labels saved there."
        )
        if elsewhere and info is None:
            QMessageBox.information(self.parent_widget, "Video open elsewhere", note)
        if info is not None:
            answer = QMessageBox.question(
                self.parent_widget,
                "Restore unsaved labels?",
                info.summary() + (f"\n\n{note}" if elsewhere else ""),
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.Yes,
            )
            if answer == QMessageBox.StandardButton.Yes:
                try:
                    review = restore(info, ref)
                except StanError as e:
                    show_error(self.parent_widget, "Cannot restore the labels", e)
            else:
                discard(info)
        if review is None:
            review = self._open_review(ref)
        if review is None:
            self.sigReviewChanged.emit()
            return None
        self._attach(review)
        return review

    def _open_review(self, ref: VideoRef) -> Review | None:
        try:
            return open_review(ref)
        except VideoMismatchError as e:
            answer = QMessageBox.question(
                self.parent_widget,
                "Labels of another video?",
                f"{e}\n\nAttach these labels to this video anyway?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No,
            )
            if answer == QMessageBox.StandardButton.Yes:
                try:
                    return open_review(ref, allow_other_video=True)
                except StanError as e2:
                    show_error(self.parent_widget, "Cannot open the review file", e2)
        except (StanError, OSError) as e:  # OSError: the file system refuses the review file's name or folder
            show_error(self.parent_widget, "Cannot open the review file (editing is off for this video)", e)
        return None

    def _attach(self, review: Review) -> None:
        self.review = review
        lab = review.labels
        lab.sig_changed.connect(self._on_changed)
        lab.sig_selection.connect(self._on_selection)
        lab.sig_history.connect(self._on_history)
        if self.active_tier not in self.human_tiers():
            self.active_tier = self.human_tiers()[0] if lab.tiers else "annotator"
        self.autosaver = Autosaver(review)
        self.autosaver.sig_saved.connect(self.sigAutosaved.emit)
        self.autosaver.sig_error.connect(self.sigAutosaveFailed.emit)
        self.sync_proposal()
        self.sigReviewChanged.emit()
        self.sigLabelsChanged.emit()
        self.sigSelectionChanged.emit()
        self.sigHistoryChanged.emit(lab.can_undo, lab.can_redo)
        self.sigActiveChanged.emit()

    def close(self, ask: bool = True) -> bool:
        """Stop the autosaver and let go of the review; with ``ask``, unsaved edits prompt Save/Discard/Cancel.

        Returns False when the user cancelled (the review stays open).
        """
        review = self.review
        if review is None:
            return True
        save = False
        if ask and review.dirty:
            answer = QMessageBox.question(
                self.parent_widget,
                "Unsaved labels",
                f"The labels of {review.video.name} have unsaved changes. Save them to {review.path.name}?",
                SAVE_DISCARD_CANCEL,
                QMessageBox.StandardButton.Save,
            )
            if answer == QMessageBox.StandardButton.Cancel:
                return False
            save = answer == QMessageBox.StandardButton.Save
        if save and not self.save():
            return False
        if self.autosaver is not None:
            # unsaved edits that were not discarded stay in the recovery file (closing without asking)
            self.autosaver.stop(flush=not ask and review.dirty)
            self.autosaver = None
        if ask and not save and review.dirty:
            drop_recovery(review)  # the user discarded them
        lab = review.labels
        for sig, slot in (
            (lab.sig_changed, self._on_changed),
            (lab.sig_selection, self._on_selection),
            (lab.sig_history, self._on_history),
        ):
            sig.disconnect(slot)
        self.review = None
        self.sigReviewChanged.emit()
        self.sigLabelsChanged.emit()
        self.sigSelectionChanged.emit()
        self.sigHistoryChanged.emit(False, False)
        return True

    def save(self, overwrite: bool = False) -> bool:
        """Save the review file (the sidecar ``<video>.stanreview.json``); errors are dialogs.

        When another window or program saved the file since this review read or wrote it
        (:class:`~stanviewer.core.review.reviewfile.ReviewConflictError`), asks: replace theirs, reload theirs
        (dropping the unsaved changes here) or cancel. Returns True when no unsaved change is left.
        """
        if self.review is None:
            self.sigMessage.emit("No video open: nothing to save")
            return False
        try:
            path = self.review.save(overwrite=overwrite)
        except ReviewConflictError:
            return self._resolve_conflict()
        except StanError as e:
            show_error(self.parent_widget, "Cannot save the labels", e)
            return False
        except (OSError, ValueError) as e:  # not expected (the core reports LabelError): still a message, edits kept
            log.exception("saving %s failed", self.review.path)
            show_error(self.parent_widget, "Cannot save the labels", StanError(f"cannot write ({e})", self.review.path))
            return False
        self.sigSaved.emit(path)
        self.sigLabelsChanged.emit()
        self.sigMessage.emit(f"Saved {path}")
        return True

    def _resolve_conflict(self) -> bool:
        """The review file changed on disk since this window read or wrote it: ask whose labels to keep."""
        review = self.review
        assert review is not None
        B = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self.parent_widget,
            "Labels changed on disk",
            f"{review.path.name} was saved by another window or program after this window opened or saved it. "
            "Yes replaces that file with the labels shown here, No reloads the saved file and drops the unsaved "
            "changes here, Cancel leaves both as they are.",
            B.Yes | B.No | B.Cancel,
            B.Cancel,
        )
        if answer == B.Yes:
            return self.save(overwrite=True)
        if answer == B.No:
            return self._reload_saved()
        self.sigMessage.emit(f"Not saved: {review.path.name} was changed elsewhere")
        return False

    def _reload_saved(self) -> bool:
        """Replace the open review by the review file as it is on disk (unsaved changes and their recovery dropped)."""
        old = self.review
        assert old is not None
        try:
            new = load_review(old.path, old.video)
        except StanError as e:
            show_error(self.parent_widget, "Cannot reload the labels", e)
            return False
        old.saved_generation = old.generation  # the user dropped them: closing must not autosave them again
        self.close(ask=False)
        drop_recovery(old)
        self._attach(new)
        self.sigMessage.emit(f"Reloaded the labels saved in {new.path.name}")
        return True

    # ---------------------------------------------------------------- core signals -> Qt
    def _on_changed(self, _change: object) -> None:
        names = self.human_tiers()
        if names and self.active_tier not in names:
            # its tier went away (an undone import, a removed tier): edits go to an existing tier instead
            self.active_tier = names[0]
            self.sigMessage.emit(f"The edit tier is now {self.active_tier}")
            self.sigActiveChanged.emit()
        self.sigLabelsChanged.emit()

    def _on_selection(self, sel: Selection | None) -> None:
        if sel is not None and sel.tier != MODEL_TIER and sel.tier != self.active_tier:
            self.active_tier = sel.tier
            self.sigActiveChanged.emit()
        self.sigSelectionChanged.emit()

    def _on_history(self, can_undo: bool, can_redo: bool) -> None:
        self.sigHistoryChanged.emit(can_undo, can_redo)

    # ---------------------------------------------------------------- the proposal (one source of truth)
    def sync_proposal(self) -> None:
        """Feed the ``model`` tier from the scores, threshold and segment options the timeline shows.

        The proposal is derived data: refreshing it does not make a clean review dirty.
        """
        lab, s = self.labels, self.session
        if lab is None or self._feeding or s.analysis is None or s.partial is not None:
            return
        scores = np.asarray(s.analysis.scores, np.float32)
        if scores.shape != (lab.n_frames,):
            return
        review = self.review
        assert review is not None
        clean = not review.dirty
        self._feeding = True
        try:
            same = (
                lab.scores is not None
                and lab.proposal is not None
                and getattr(self, "_fed", None) == (id(s.analysis), s.options)
            )
            if same:
                if lab.proposal.meta.get("threshold") != s.threshold:  # type: ignore[union-attr]
                    lab.set_threshold(s.threshold)
            else:
                meta = s.analysis.meta
                model = meta.get("model") or {}
                info = {
                    "model": str(model.get("name", "")),
                    "model_sha256": str(model.get("sha256", "")),
                    "method": str(meta.get("method", "")),
                    "target": str(meta.get("target") or DEFAULT_LABEL),
                    "normalisation": meta.get("normalisation") or {},
                    "analysis": str(s.analysis_folder or ""),
                }
                lab.set_proposal(scores, s.threshold, info, s.options)
                self._fed = (id(s.analysis), s.options)
        except EditError as e:
            log.warning("proposal not updated: %s", e)
        finally:
            self._feeding = False
        if clean and review.dirty:
            # feeding emitted sigLabelsChanged while the review looked edited: say again that it is not
            review.saved_generation = review.generation
            self.sigReviewChanged.emit()

    # ---------------------------------------------------------------- active tier, label, edge
    def set_active_tier(self, name: str) -> None:
        if name != self.active_tier and name in self.human_tiers():
            self.active_tier = name
            self.sigActiveChanged.emit()

    def set_label(self, label: str) -> None:
        label = label.strip()
        if label and label != self.label:
            self.label = label
            self.sigActiveChanged.emit()

    def set_edge(self, edge: str) -> None:
        if edge in EDGES and edge != self.edge:
            self.edge = edge
            self.sigActiveChanged.emit()

    def toggle_edge(self) -> None:
        self.set_edge("left" if self.edge == "right" else "right")
        self.sigMessage.emit(f"The {self.edge} edge of the selected interval moves with , and .")

    # ---------------------------------------------------------------- edits at the playhead
    def _run(self, what: str, fn: Any) -> Any:
        """Run one edit; an :class:`EditError` becomes a status-bar note."""
        if self.labels is None:
            self.sigMessage.emit(f"Cannot {what}: no video with a review is open")
            return None
        try:
            return fn(self.labels)
        except EditError as e:
            self.sigMessage.emit(f"Cannot {what}: {e.reason}")
            return None

    @property
    def frame(self) -> int:
        return int(self.session.frame)

    def undo(self) -> None:
        lab = self.labels
        if lab is not None:
            text = lab.undo_text
            if self._run("undo", lambda m: m.undo()):
                self.sigMessage.emit(f"Undone: {text}")

    def redo(self) -> None:
        lab = self.labels
        if lab is not None:
            text = lab.redo_text
            if self._run("redo", lambda m: m.redo()):
                self.sigMessage.emit(f"Redone: {text}")

    def _proposal_final(self, what: str) -> bool:
        """The flagged segments on screen are the ones an accept would take (no analysis is still running)."""
        if self.session.partial is None:
            return True
        self.sigMessage.emit(f"Cannot {what}: an analysis is running; its flagged segments are not final yet")
        return False

    def accept(self) -> None:
        """Accept the flagged segment under the playhead into the active tier (A)."""
        if not self._proposal_final("accept"):
            return
        iv = self._run("accept", lambda m: m.accept(self.active_tier, self.frame))
        if iv is not None and self.labels is not None:
            self.labels.select(self.active_tier, iv.start)
            self.sigMessage.emit(f"Accepted frames {iv.start}–{iv.end - 1} into {self.active_tier}")

    def accept_all(self) -> None:
        """Accept every flagged segment into the active tier, one undo step (Shift+A)."""
        if not self._proposal_final("accept all"):
            return
        ivs = self._run("accept all", lambda m: m.accept_all(self.active_tier))
        if ivs is not None:
            self.sigMessage.emit(f"Accepted {len(ivs)} flagged segments into {self.active_tier}")

    def mark_in(self) -> None:
        """Selection starts at the playhead (I); it keeps its end when that is after the playhead."""
        f = self.frame

        def do(m: LabelsModel) -> Selection:
            sel = m.selection
            end = sel.end if sel is not None and sel.tier == self.active_tier and sel.end > f else f + 1
            return m.select_range(self.active_tier, f, end)

        if self._run("mark the start", do) is not None:
            self.set_edge("left")

    def mark_out(self) -> None:
        """Selection ends with the playhead's frame (O); it keeps its start when that is before the playhead."""
        f = self.frame

        def do(m: LabelsModel) -> Selection:
            sel = m.selection
            start = sel.start if sel is not None and sel.tier == self.active_tier and sel.start <= f else f
            return m.select_range(self.active_tier, start, f + 1)

        if self._run("mark the end", do) is not None:
            self.set_edge("right")

    def label_selection(self) -> None:
        """Label the selected range with the current label (Enter)."""

        def do(m: LabelsModel) -> Any:
            sel = m.selection
            if sel is None or sel.tier == MODEL_TIER:
                raise EditError("select a range first (drag on a tier lane, or I and O at the playhead)")
            return m.create(sel.tier, sel.start, sel.end, self.label)

        iv = self._run("label", do)
        if iv is not None:
            self.sigMessage.emit(f"Labelled frames {iv.start}–{iv.end - 1} '{iv.label}' on {self.active_tier}")

    def delete(self) -> None:
        """Delete the interval under the playhead on the active tier, else clear the selected range (Delete)."""

        def do(m: LabelsModel) -> str:
            if m.interval_at(self.active_tier, self.frame) is not None:
                iv = m.delete(self.active_tier, self.frame)
                return f"Deleted frames {iv.start}–{iv.end - 1} from {self.active_tier}"
            sel = m.selection
            if sel is not None and sel.tier != MODEL_TIER and m.clear(sel.tier, sel.start, sel.end):
                return f"Cleared frames {sel.start}–{sel.end - 1} on {sel.tier}"
            raise EditError(f"no interval at frame {self.frame} on {self.active_tier}")

        msg = self._run("delete", do)
        if msg:
            self.sigMessage.emit(msg)

    def nudge(self, delta: int) -> None:
        """Move the active edge of the selected interval by ``delta`` frames (, and .)."""

        def do(m: LabelsModel) -> Any:
            iv = m.nudge_selection(self.edge, delta)
            if iv is None:
                raise EditError("select an interval first (click it on its lane)")
            return iv

        iv = self._run("nudge", do)
        if iv is not None:
            self.session.set_frame(iv.start if self.edge == "left" else iv.end - 1)

    def split(self) -> None:
        """Split the interval under the playhead on the active tier (S)."""
        r = self._run("split", lambda m: m.split(self.active_tier, self.frame))
        if r is not None:
            self.sigMessage.emit(f"Split at frame {self.frame}")

    def merge(self) -> None:
        """Merge the interval under the playhead with the next one on the active tier (M)."""
        iv = self._run("merge", lambda m: m.merge(self.active_tier, self.frame))
        if iv is not None:
            self.sigMessage.emit(f"Merged into frames {iv.start}–{iv.end - 1}")

    def set_status(self, status: str) -> None:
        self._run("set the status", lambda m: m.set_status(status))
