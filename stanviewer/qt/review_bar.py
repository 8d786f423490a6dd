"""The review bar above the timeline: active tier, current label, review status and save state."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from stanviewer.core.review.model import STATUSES
from stanviewer.qt.review import ReviewController

__all__ = ["STATUS_TEXT", "ReviewBar"]

STATUS_TEXT = {"unreviewed": "Unreviewed", "in_progress": "In progress", "done": "Done"}


class ReviewBar(QWidget):
    """Combos for the active tier (where edits go), the label new intervals get, and the review status.

    The widgets take focus only when clicked, so the editing keys keep working; the label box is
    editable (type a new label, Enter applies it).
    """

    def __init__(self, controller: ReviewController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctl = controller
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 0, 6, 0)
        lay.addWidget(QLabel("Edit tier"))
        self.tier = QComboBox(self)
        self.tier.setToolTip("The tier that the editing keys and Shift+drag change (click a lane to choose it)")
        # tier names are people's names or roles: the box grows with the longest (it cut 'annotator' short)
        self.tier.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        lay.addWidget(self.tier)
        lay.addWidget(QLabel("Label"))
        self.label = QComboBox(self)
        self.label.setEditable(True)
        self.label.setMinimumWidth(140)
        self.label.setToolTip("The label that Enter and Shift+drag give new intervals")
        lay.addWidget(self.label)
        lay.addWidget(QLabel("Status"))
        self.status = QComboBox(self)
        for s in STATUSES:
            self.status.addItem(STATUS_TEXT[s], s)
        self.status.setToolTip("Review status of this video (kept in the review file)")
        lay.addWidget(self.status)
        self.state = QLabel("", self)
        self.state.setToolTip("Saved: in the review file beside the video. Autosaved: in the recovery file.")
        lay.addSpacing(12)
        lay.addWidget(self.state)
        lay.addStretch(1)
        for w in (self.tier, self.label, self.status):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # Tab reaches it too

        self.tier.activated.connect(lambda _k: controller.set_active_tier(self.tier.currentText()))
        self.label.activated.connect(lambda _k: controller.set_label(self.label.currentText()))
        self.status.activated.connect(lambda _k: controller.set_status(self.status.currentData()))
        controller.sigReviewChanged.connect(self.refresh)
        controller.sigLabelsChanged.connect(self.refresh)
        controller.sigActiveChanged.connect(self.refresh)
        controller.sigAutosaved.connect(lambda _p: self._show_state(autosaved=True))
        self.refresh()

    def refresh(self) -> None:
        ctl = self.ctl
        lab = ctl.labels
        names = ctl.human_tiers()
        labels = sorted({iv.label for t in (lab.tiers if lab else ()) for iv in t.intervals} | {ctl.label})
        for box, items, current in ((self.tier, names, ctl.active_tier), (self.label, labels, ctl.label)):
            box.blockSignals(True)
            if [box.itemText(k) for k in range(box.count())] != items:
                box.clear()
                box.addItems(items)
            box.setCurrentText(current)
            box.blockSignals(False)
        self.status.blockSignals(True)
        self.status.setCurrentIndex(max(0, self.status.findData(lab.status if lab else "unreviewed")))
        self.status.blockSignals(False)
        for w in (self.tier, self.label, self.status):
            w.setEnabled(lab is not None)
        self._show_state()

    def _show_state(self, autosaved: bool = False) -> None:
        review = self.ctl.review
        if review is None:
            self.state.setText("")
        elif not review.dirty:
            self.state.setText("saved" if review.path.exists() else "no labels saved yet")
        else:
            self.state.setText("unsaved changes (autosaved)" if autosaved else "unsaved changes")
