"""File ▸ Import labels, Export labels, Export clips and Report (PDF): dialogs over the review core.

Each entry asks for a file or folder (``QFileDialog``), calls :mod:`stanviewer.core.review.formats`,
:func:`~stanviewer.core.review.clips.export_clips` (in a :class:`~stanviewer.qt.workers.JobWorker` with a
progress dialog that cancels it) or :func:`~stanviewer.qt.report.write_report`, and shows errors as
dialogs naming the file and the cause.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QProgressDialog, QWidget

from stanviewer.core.errors import StanError
from stanviewer.core.progress import Progress
from stanviewer.core.review.formats import EXTENSIONS, FORMATS, export_labels, import_labels
from stanviewer.core.review.model import MODEL_TIER
from stanviewer.core.review.reviewfile import VideoMismatchError
from stanviewer.qt import clip_dialog
from stanviewer.qt.dialogs import show_error
from stanviewer.qt.review import ReviewController
from stanviewer.qt.settings import AppSettings
from stanviewer.qt.workers import JobWorker

if TYPE_CHECKING:  # the clips module imports OpenCV: load it when clips are exported
    from stanviewer.core.review.clips import ClipOptions, ClipRequest

__all__ = ["LABEL_FILTERS", "ReviewFiles"]

log = logging.getLogger(__name__)

FORMAT_NAMES = {
    "intervals": "Intervals CSV",
    "frames": "Per-frame CSV",
    "json": "stanviewer JSON",
    "eaf": "ELAN",
    "boris": "BORIS aggregated events",
}
#: file dialog filters, one per format (in :data:`FORMATS` order)
LABEL_FILTERS = {f: f"{FORMAT_NAMES[f]} (*{EXTENSIONS[f]})" for f in FORMATS}
SELECTION = "the selected range"
CSV_FORMATS = ("frames", "intervals", "boris")


def export_target(path: str, chosen: str | None, initial: str) -> tuple[Path, str]:
    """The file and format an Export labels dialog asked for: a filter the user changed (``chosen`` is not
    the ``initial`` one) decides the format, and the file name gets that format's extension; a filter left
    as it was yields to a name with a known extension; a name without one gets the filter's."""
    name = Path(path).name
    low = name.lower()
    named, ext = None, ""
    for f, e in EXTENSIONS.items():
        if low.endswith(e):
            named, ext = f, e
            break
    else:
        if low.endswith(".json"):
            named, ext = "json", ".json"
        elif low.endswith(".csv"):
            ext = ".csv"  # a CSV of some kind: the filter says which
    want = chosen or initial
    if named is not None and (chosen is None or chosen == initial or named == chosen):
        return Path(path), named
    if ext == ".csv" and want in CSV_FORMATS:
        return Path(path), want
    stem = name[: len(name) - len(ext)] if ext else name
    return Path(path).with_name(stem + EXTENSIONS[want]), want


class ReviewFiles(QObject):
    """The file menu entries of the review.

    Signals:
        sigClipsDone(object): the list of written clip paths (after an export finished).
    """

    sigClipsDone = Signal(object)

    def __init__(self, controller: ReviewController, parent: QWidget, settings: AppSettings | None = None) -> None:
        super().__init__(parent)
        self.ctl = controller
        self.settings = settings
        self.parent_widget = parent
        self.clip_worker: JobWorker | None = None
        self.progress: QProgressDialog | None = None

    def _folder(self) -> str:
        p = self.ctl.session.path
        return str(p.parent) if p is not None else ""

    def _ready(self, what: str) -> bool:
        if self.ctl.review is None or self.ctl.session.reader is None:
            QMessageBox.information(self.parent_widget, what, "Open a video first.")
            return False
        return True

    # ---------------------------------------------------------------- labels
    def import_labels(self) -> None:
        """Read tiers from a label file into the review (one undo step); the ``model`` tier is not replaced."""
        if not self._ready("Import labels"):
            return
        filters = ";;".join(["Label files (*.csv *.json *.eaf)", *LABEL_FILTERS.values(), "All files (*)"])
        path, _ = QFileDialog.getOpenFileName(self.parent_widget, "Import labels", self._folder(), filters)
        if not path:
            return
        review, video = self.ctl.review, self.ctl.session.path
        assert review is not None and video is not None
        kw: dict[str, Any] = {
            "video": video.name,
            "tier": self.ctl.active_tier,
            "label": self.ctl.label,
            "fingerprint": review.video.fingerprint,
        }
        try:
            try:
                tiers = import_labels(path, self.ctl.times(), **kw)
            except VideoMismatchError as e:
                answer = QMessageBox.question(
                    self.parent_widget,
                    "Labels of another video?",
                    f"{e}\n\nImport them into this video anyway?",
                    QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                    QMessageBox.StandardButton.No,
                )
                if answer != QMessageBox.StandardButton.Yes:
                    return
                tiers = import_labels(path, self.ctl.times(), allow_other_video=True, **kw)
            human = [t for t in tiers if t.source != "model" and t.name != MODEL_TIER]
            if not human:
                raise StanError("the file has no human label tiers (the model tier comes from the analysis)", path)
            review.labels.replace_tiers(human, text=f"import {Path(path).name}")
        except StanError as e:
            show_error(self.parent_widget, "Cannot import the labels", e)
            return
        names = ", ".join(t.name for t in human)
        self.ctl.sigMessage.emit(f"Imported {sum(len(t.intervals) for t in human)} intervals into {names}")

    def export_labels(self) -> None:
        """Write every tier in a chosen format (:func:`export_target`: the filter, when the user changed it,
        else the file name's extension)."""
        if not self._ready("Export labels"):
            return
        review, video = self.ctl.review, self.ctl.session.path
        assert review is not None and video is not None
        default = str(video.with_name(video.stem + EXTENSIONS["intervals"]))
        path, chosen = QFileDialog.getSaveFileName(
            self.parent_widget,
            "Export labels",
            default,
            ";;".join(LABEL_FILTERS.values()),
            LABEL_FILTERS["intervals"],
        )
        if not path:
            return
        fmt = next((f for f, flt in LABEL_FILTERS.items() if flt == chosen), None)
        try:
            out_path, fmt = export_target(path, fmt, "intervals")
            if out_path != Path(path) and out_path.exists():  # the dialog asked about another name
                B = QMessageBox.StandardButton
                ask = f"{out_path.name} already exists. Replace it?"
                if QMessageBox.question(self.parent_widget, "Export labels", ask, B.Yes | B.No, B.No) != B.Yes:
                    return
            folder = self.ctl.session.analysis_folder
            scores = folder / "scores.csv" if folder is not None and (folder / "scores.csv").exists() else None
            out = export_labels(review, out_path, fmt, self.ctl.times(), scores_csv=scores)
        except StanError as e:
            show_error(self.parent_widget, "Cannot export the labels", e)
            return
        self.ctl.sigMessage.emit(f"Exported labels ({fmt}) to {out}")

    # ---------------------------------------------------------------- clips
    def clip_sources(self) -> list[str]:
        """What clips can be cut from: the flagged segments, each human tier, the selection."""
        lab = self.ctl.labels
        if lab is None:
            return []
        out = [MODEL_TIER] if lab.proposal is not None and lab.proposal.intervals else []
        out += [t.name for t in lab.tiers if t.intervals]
        if lab.selection is not None:
            out.append(SELECTION)
        return out

    def export_clips(self) -> None:
        """Ask for the source and a folder, then export the clips in a worker with progress and Cancel."""
        if not self._ready("Export clips"):
            return
        if self.clip_worker is not None and self.clip_worker.isRunning():
            self.ctl.sigMessage.emit("A clip export is already running")
            return
        lab, video = self.ctl.labels, self.ctl.session.path
        assert lab is not None and video is not None
        sources = self.clip_sources()
        if not sources:
            QMessageBox.information(
                self.parent_widget, "Export clips", "Nothing to export: no flagged segments, labels or selection."
            )
            return
        s = self.ctl.session
        a, o = s.analysis, s.overlay
        choice = clip_dialog.ask_clip_export(
            self.parent_widget,
            sources,
            self._folder(),
            float(s.reader.info.fps) if s.reader is not None else 0.0,
            has_heatmaps=a is not None and a.heatmap_path is not None,
            has_scores=a is not None,
            heat_style=clip_dialog.HeatStyle(o.opacity, o.colormap, o.floor, o.relative_to),
            settings=self.settings,
        )
        if choice is None:
            return
        from stanviewer.core.review.clips import ClipRequest, requests_from_tier

        if choice.source == SELECTION:
            sel = lab.selection
            assert sel is not None
            reqs = [ClipRequest(sel.start, sel.end, sel.tier, "selection")]
        else:
            reqs = requests_from_tier(lab.tier(choice.source))
        self.start_clips(video, reqs, choice.folder, choice.options)

    def start_clips(
        self, video: Path, reqs: list[ClipRequest], folder: Path, options: ClipOptions | None = None
    ) -> None:
        """Run :func:`export_clips` in a worker with a progress dialog (Cancel stops it, removing partial files)."""
        s = self.ctl.session
        a = s.analysis
        provenance = None
        if a is not None:
            model = a.meta.get("model") or {}
            provenance = {
                "model": model.get("name"),
                "model_sha256": model.get("sha256"),
                "method": a.meta.get("method"),
                "threshold": s.threshold,
                "normalisation": a.meta.get("normalisation"),
                "target": a.meta.get("target"),
            }
        scores = None if a is None else a.scores
        heatmaps = None if a is None else a.heatmap_path
        threshold = s.threshold

        def job() -> Any:
            from stanviewer.core.review.clips import ClipOptions, export_clips

            opts = options or ClipOptions()
            return export_clips(
                video,
                reqs,
                folder,
                opts,
                scores=scores,
                threshold=threshold,
                heatmaps=heatmaps if opts.heatmap else None,
                provenance=provenance,
            )

        w = JobWorker(job, "clips")
        dlg = QProgressDialog(f"Exporting {len(reqs)} clip(s) to {folder}…", "Cancel", 0, 0, self.parent_widget)
        dlg.setWindowTitle("Export clips")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(300)
        dlg.canceled.connect(w.cancel)
        w.sigProgress.connect(self._on_clip_progress)
        w.sigReturned.connect(self._on_clips_done)
        w.sigErrored.connect(lambda e: show_error(self.parent_widget, "Cannot export the clips", e))
        w.sigAborted.connect(lambda: self.ctl.sigMessage.emit("Clip export cancelled; nothing was written"))
        w.sigDone.connect(self._on_clip_worker_done)
        self.clip_worker, self.progress = w, dlg
        w.start()

    def _on_clip_progress(self, p: Progress) -> None:
        dlg = self.progress
        if dlg is None:
            return
        # a modal QProgressDialog processes events inside setValue: the worker may finish (and the dialog be
        # released) in there, so keep a local reference and set the text first
        if p.message:
            dlg.setLabelText(p.message)
        dlg.setMaximum(max(1, int(p.total)))
        dlg.setValue(min(int(p.done), int(p.total)))

    def _on_clips_done(self, paths: list[Path]) -> None:
        self.ctl.sigMessage.emit(f"Exported {len(paths)} clip(s) to {Path(paths[0]).parent if paths else '?'}")
        self.sigClipsDone.emit(paths)

    def _on_clip_worker_done(self) -> None:
        if self.progress is not None:
            self.progress.canceled.disconnect()
            self.progress.reset()
            self.progress.deleteLater()
            self.progress = None

    def cancel_clips(self) -> None:
        if self.clip_worker is not None and self.clip_worker.isRunning():
            self.clip_worker.cancel()

    # ---------------------------------------------------------------- report
    def report(self) -> None:
        """Write the PDF report of the review (with the analysis on screen) to a chosen file."""
        if not self._ready("Report"):
            return
        review, video = self.ctl.review, self.ctl.session.path
        assert review is not None and video is not None
        default = str(video.with_name(video.stem + "_report.pdf"))
        path, _ = QFileDialog.getSaveFileName(self.parent_widget, "Write the report (PDF)", default, "PDF (*.pdf)")
        if not path:
            return
        from stanviewer.qt.report import write_report

        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            out = write_report(review, path, analysis=self.ctl.session.analysis, threshold=self.ctl.session.threshold)
        except StanError as e:
            show_error(self.parent_widget, "Cannot write the report", e)
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.ctl.sigMessage.emit(f"Report written to {out}")
