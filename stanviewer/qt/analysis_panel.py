"""The analysis panel: pick a checkpoint, method, device and window settings; run, watch, cancel.

The run is a core job (:func:`stanviewer.core.explain.store.analyze_video`) executed by the analysis
process (:mod:`stanviewer.qt.analysis_process`; torch never loads in the GUI process), driven from a
:class:`~stanviewer.qt.workers.JobWorker`. A cached result with the same video, model and settings loads
at once without it. Partial curves stream back and go to the session, so the curve and segments grow
while windows finish; Cancel stops the job at its next yield. Errors become dialogs that name the file
and the cause.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from stanviewer.core.errors import CheckpointError, StanError
from stanviewer.core.models.bundled import BUNDLED_NAME, bundled_checkpoints
from stanviewer.core.models.metadata import check_metadata, not_a_model
from stanviewer.core.models.registry import describe_arch, family
from stanviewer.core.progress import Eta, Job, Progress, format_eta
from stanviewer.qt.analysis_process import server
from stanviewer.qt.dialogs import show_error
from stanviewer.qt.session import RunInfo, Session
from stanviewer.qt.settings import AppSettings
from stanviewer.qt.workers import JobWorker

__all__ = ["METHOD_HELP", "METHOD_NAMES", "AnalysisPanel", "peek_metadata"]

#: the names of :data:`stanviewer.core.explain.methods.METHODS` and the posture model's own method (a test
#: keeps them equal); listed here so that the panel appears without importing torch on the GUI thread
METHOD_NAMES = ("vanilla", "smoothgrad", "gradcam", "ig", "occlusion", "occlusion-window", "window", "posture")
POSTURE_METHOD = "posture"  # the only method of a posture model, and only for it
METHOD_HELP = {
    "vanilla": "|gradient| of the class evidence per pixel (fast)",
    "smoothgrad": "gradients averaged over noisy copies (slower, less noisy)",
    "gradcam": "Grad-CAM on the last block (coarse maps)",
    "ig": "integrated gradients from a grey clip (slow)",
    "occlusion": "drop in evidence when each frame is hidden (no spatial detail)",
    "occlusion-window": "occlusion weighted by the window probability: frames that matter, in stretches "
    "that show the class (no spatial detail)",
    "window": "each window's class probability (no spatial detail; fastest)",
    "posture": "posture models only: each frame's evidence from its posture against the video's median; "
    "the heatmap is its gradient through the pose reader",
}
BUNDLED = "bundled"
PROGRESS_STEPS = 1000  # the progress bar's fixed range (see AnalysisPanel.__init__)


@dataclass(frozen=True)
class _ModelKey:
    """Sent by a run's job once it has hashed the checkpoint (the key of per-model settings)."""

    sha256: str


def peek_metadata(path: str | Path) -> dict:
    """The ``stanviewer`` metadata of a safetensors checkpoint, read from its JSON header (no torch)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            if not 0 < n < 100_000_000:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        file_meta = header.get("__metadata__") or {}
        raw = file_meta.get("stanviewer")
        meta = json.loads(raw) if raw else None
    except FileNotFoundError:
        raise CheckpointError("file not found", path) from None
    except (OSError, ValueError, struct.error, AttributeError) as e:
        raise CheckpointError(f"not a stanviewer safetensors checkpoint ({e})", path) from None
    if meta is None:
        raise CheckpointError(not_a_model(file_meta), path)
    return check_metadata(meta, path)


def _bundled_path() -> Path:
    from stanviewer.core.models.bundled import default_checkpoint_path

    return default_checkpoint_path()


class AnalysisPanel(QWidget):
    """Controls and progress of one analysis at a time.

    Signals:
        sigAnalysisReady(object, object): a finished (or cached) Analysis and its folder.
        sigStatus(str): a message for the status bar.
        sigModelText(str): what the status bar should say about the model.
        sigDeviceText(str): what the status bar should say about the device.
        sigRunning(bool): an analysis started or ended.
    """

    sigAnalysisReady = Signal(object, object)
    sigStatus = Signal(str)
    sigModelText = Signal(str)
    sigDeviceText = Signal(str)
    sigRunning = Signal(bool)

    def __init__(self, session: Session, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.settings = settings
        self.worker: JobWorker | None = None
        self._probe: JobWorker | None = None
        self._loader: JobWorker | None = None
        self._eta = Eta()
        self.meta: dict | None = None
        self.model_text = ""  # what the status bar says about the chosen model (also before anyone listens)
        self._shown: str | None = None  # the cached analysis folder on screen (selected in the list)
        self._sha: dict[tuple[str, int, int], str] = {}  # checkpoint files' SHA-256 by (path, size, mtime)
        self._run_method = ""  # the method and model metadata of the last Run (the panel may change meanwhile)
        self._run_meta: dict | None = None
        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 6, 6, 6)
        form = QFormLayout()
        outer.addLayout(form)

        row = QHBoxLayout()
        self.checkpoint = QComboBox(self)
        self.checkpoint.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        row.addWidget(self.checkpoint, 1)
        self.browse = QPushButton("File…", self)
        self.browse.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.browse.setToolTip("Use a stanviewer checkpoint file (.safetensors)")
        row.addWidget(self.browse)
        form.addRow("Model", row)
        self.card = QLabel(self)
        self.card.setWordWrap(True)
        self.card.setTextFormat(Qt.TextFormat.RichText)
        form.addRow(self.card)
        self.method = QComboBox(self)
        for m in METHOD_NAMES:
            self.method.addItem(m, m)
            self.method.setItemData(self.method.count() - 1, METHOD_HELP[m], Qt.ItemDataRole.ToolTipRole)
        self.method.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        form.addRow("Method", self.method)
        self.views = QLabel("—", self)
        self.views.setToolTip("The views a model sees are fixed when it is trained (global frame, local person crop)")
        form.addRow("Views", self.views)
        self.device = QComboBox(self)
        self.device.addItem("Auto (checking…)", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        form.addRow("Device", self.device)
        self.coverage = QComboBox(self)
        self.coverage.addItem("Every frame (full)", "full")
        self.coverage.addItem("Sampled, interpolated (faster)", "sampled")
        self.coverage.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        form.addRow("Coverage", self.coverage)
        self.stride = QSpinBox(self)
        self.stride.setRange(0, 64)
        self.stride.setSpecialValueText("default (T/2)")
        self.stride.setSuffix(" model frames")
        self.stride.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.stride.setToolTip("Windows start every this many model frames; smaller = more overlap, slower")
        form.addRow("Window stride", self.stride)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", self)
        self.run_button.setToolTip("Analyse the open video with this model and method (Ctrl+R)")
        self.run_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop the analysis (Esc); nothing is saved")
        self.cancel_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        outer.addLayout(buttons)
        # One fixed range, and its space kept while hidden: a new range or a shown/hidden bar re-lays out the
        # whole dock (~17 ms, and with the first partial curve the longest GUI stall of a run); the busy
        # animation repainted the dock ~60 times a second while the model loaded.
        self.progress = QProgressBar(self)
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.progress.setTextVisible(True)
        keep = self.progress.sizePolicy()
        keep.setRetainSizeWhenHidden(True)
        self.progress.setSizePolicy(keep)
        self.progress.setVisible(False)
        outer.addWidget(self.progress)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        outer.addWidget(self.message)
        outer.addWidget(QLabel("Earlier analyses of this video (cached):", self))
        self.cached = QComboBox(self)
        self.cached.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        outer.addWidget(self.cached)
        outer.addStretch(1)
        # long entries (model names, cached analyses) elide instead of widening the dock past a laptop screen
        for box in (self.checkpoint, self.method, self.coverage, self.cached):
            box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            box.setMinimumContentsLength(14)

        self._fill_checkpoints()
        m = str(settings.get("analysis/method", "vanilla"))
        self.method.setCurrentIndex(max(0, self.method.findData(m)))
        self.coverage.setCurrentIndex(max(0, self.coverage.findData(settings.get("analysis/coverage", "full"))))
        self.checkpoint.currentIndexChanged.connect(self._on_checkpoint)
        self.browse.clicked.connect(self.choose_file)
        self.method.currentIndexChanged.connect(lambda _k: settings.set("analysis/method", self.method.currentData()))
        self.method.activated.connect(lambda _k: self._remember_method())
        self.coverage.currentIndexChanged.connect(
            lambda _k: settings.set("analysis/coverage", self.coverage.currentData())
        )
        self.device.currentIndexChanged.connect(lambda _k: settings.set("analysis/device", self.device.currentData()))
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.cached.activated.connect(self._on_cached)
        session.sigVideoChanged.connect(self._update_enabled)
        self._on_checkpoint()
        self._update_enabled()

    # ---------------------------------------------------------------- checkpoint
    def _fill_checkpoints(self) -> None:
        self.checkpoint.blockSignals(True)
        self.checkpoint.clear()
        self.checkpoint.addItem("Bundled model (stan-tiny-synth)", BUNDLED)
        shipped = [p for p in bundled_checkpoints() if p.name != BUNDLED_NAME]
        for p in shipped:  # other bundled models, e.g. the per-frame CNN baseline
            self.checkpoint.addItem(f"Bundled model ({p.stem})", str(p))
            self.checkpoint.setItemData(self.checkpoint.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        recent = self.settings.get("analysis/checkpoints", []) or []
        if isinstance(recent, str):
            recent = [recent]
        for p in recent:
            if Path(p) in shipped:
                continue
            self.checkpoint.addItem(Path(p).name, str(p))
            self.checkpoint.setItemData(self.checkpoint.count() - 1, str(p), Qt.ItemDataRole.ToolTipRole)
        last = self.settings.get("analysis/checkpoint", BUNDLED)
        self.checkpoint.setCurrentIndex(max(0, self.checkpoint.findData(last)))
        self.checkpoint.blockSignals(False)

    def set_checkpoint(self, path: str | Path | None) -> None:
        """Use this checkpoint file (None: the bundled model) and remember it."""
        if path is None:
            self.settings.set("analysis/checkpoint", BUNDLED)
        else:
            p = str(Path(path).resolve())
            recent = [p] + [x for x in (self.settings.get("analysis/checkpoints", []) or []) if x != p]
            self.settings.set("analysis/checkpoints", recent[:8])
            self.settings.set("analysis/checkpoint", p)
        self._fill_checkpoints()
        self._on_checkpoint()

    def set_method(self, method: str) -> None:
        """Choose an explanation method by name (a :class:`StanError` for an unknown one)."""
        k = self.method.findData(method)
        if k < 0:
            raise StanError(f"unknown method {method!r}; choose from {', '.join(METHOD_NAMES)}")
        if not self.method.model().item(k).isEnabled():
            raise StanError(
                f"the posture model explains with its own method {POSTURE_METHOD!r}"
                if method != POSTURE_METHOD
                else f"the {POSTURE_METHOD!r} method needs a posture model"
            )
        self.method.setCurrentIndex(k)
        self._remember_method()

    def _remember_method(self) -> None:
        """The user chose a method: use it again whenever this model is chosen."""
        if self.meta is not None:
            name = self.meta.get("name") or self.checkpoint_path().stem
            self.settings.set_method_for(name, self.method.currentData())

    def choose_file(self) -> None:
        start = str(self.settings.get("analysis/checkpoint_folder", self.settings.last_folder()))
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose a model checkpoint", start, "stanviewer checkpoints (*.safetensors);;All files (*)"
        )
        if path:
            self.settings.set("analysis/checkpoint_folder", str(Path(path).parent))
            self.set_checkpoint(path)

    def checkpoint_path(self) -> Path:
        """The chosen checkpoint file; :class:`CheckpointError` if the bundled model is missing."""
        data = self.checkpoint.currentData()
        return _bundled_path() if data in (None, BUNDLED) else Path(data)

    def _on_checkpoint(self) -> None:
        self.settings.set("analysis/checkpoint", self.checkpoint.currentData())
        self.meta = None
        try:
            path = self.checkpoint_path()
            meta = peek_metadata(path)
        except StanError as e:
            bundled = self.checkpoint.currentData() == BUNDLED
            why = (
                f"The bundled model is missing from this installation ({e.path}). Choose a checkpoint file with File…"
                if bundled and isinstance(e, CheckpointError) and "missing" in e.reason
                else str(e)
            )
            self.card.setText(f"<span style='color:#e06c6c'>{why}</span>")
            self.views.setText("—")
            self._model_text("Model: none (bundled model missing)" if bundled else "Model: unreadable file")
            self._update_enabled()
            return
        self.meta = meta
        spec = meta.get("spec", {})
        name = meta.get("name") or path.stem
        ths = meta.get("thresholds") or {}
        default = meta.get("default_method")
        whole_video = family(spec.get("arch") or "") == "posture"
        self.stride.setEnabled(not whole_video)  # a posture model reads every frame of the video, no windows
        items = self.method.model()
        for k in range(self.method.count()):  # say which method this model's calibration recommends
            m = self.method.itemData(k)
            self.method.setItemText(k, f"{m} (recommended)" if m == default else m)
            # a posture model has one method of its own, which no other model has
            items.item(k).setEnabled((m == POSTURE_METHOD) == whole_video)
        # the method chosen for this model before, else its recommended one
        wanted = self.settings.method_for(name) or default
        if whole_video:
            wanted = POSTURE_METHOD
        elif (wanted or self.method.currentData()) == POSTURE_METHOD:
            wanted = "vanilla"
        if wanted and self.method.findData(wanted) >= 0:
            self.method.setCurrentIndex(self.method.findData(wanted))
        synthetic = meta.get("synthetic_only", True) and "imported_from" not in meta
        lines = [
            f"<b>{name}</b>: {spec.get('arch')} ({describe_arch(spec.get('arch'))}); "
            f"classes {', '.join(spec.get('classes', []))} "
            f"(explains '{spec.get('target')}'); "
            + (
                f"whole videos, {spec.get('size')} px local view"
                if whole_video
                else f"{spec.get('frames')} frames × {spec.get('size')} px at {spec.get('sample_fps')} frames/s"
            ),
        ]
        if ths:
            lines.append(
                "calibrated thresholds: "
                + ", ".join(f"{k} {v.get('threshold', 0):.2f}" for k, v in sorted(ths.items()) if isinstance(v, dict))
            )
        if synthetic:
            lines.append("<i>Trained on synthetic videos only.</i>")
        else:
            lines.append("<i>Research model: its scores explain it, they are not a diagnosis.</i>")
        self.card.setText("<br>".join(lines))
        self.views.setText(f"{spec.get('views')} (fixed by this model)")
        self._model_text(f"Model: {name}" + (" (synthetic-only)" if synthetic else ""))
        self._update_enabled()

    def _model_text(self, text: str) -> None:
        self.model_text = text
        self.sigModelText.emit(text)

    def _file_sha(self, path: Path) -> str | None:
        try:
            st = path.stat()
            key = (str(path), st.st_size, st.st_mtime_ns)
            if key not in self._sha:
                from stanviewer.core.fileio import sha256_file

                self._sha[key] = sha256_file(path)
            return self._sha[key]
        except OSError:
            return None

    def follow(self, meta: dict, folder: Path | None) -> None:
        """An analysis is on screen: select it in the list of earlier analyses, and choose its model (when the
        model list has a file with its SHA-256) and its method, so that the panel describes what is shown."""
        self._shown = str(folder) if folder is not None else None
        self._select_shown()
        if self.running:
            return
        sha = str((meta.get("model") or {}).get("sha256") or "")
        if sha:
            try:
                current = self._file_sha(self.checkpoint_path())
            except StanError:
                current = None
            if current != sha:
                name = str((meta.get("model") or {}).get("name") or "")
                for k in range(self.checkpoint.count()):
                    data = self.checkpoint.itemData(k)
                    try:
                        path = _bundled_path() if data in (None, BUNDLED) else Path(data)
                        if name and str(peek_metadata(path).get("name") or path.stem) != name:
                            continue  # read the header only; hash a file (seconds for a large one) only if it may match
                    except StanError:  # a missing bundled model or an unreadable file: not this analysis's
                        continue
                    if self._file_sha(path) == sha:
                        self.checkpoint.setCurrentIndex(k)  # -> _on_checkpoint (card, methods, status bar)
                        break
                else:
                    return  # that model is not in the list: leave the panel as it is
        k = self.method.findData(meta.get("method"))
        if k >= 0 and self.method.model().item(k).isEnabled():
            self.method.setCurrentIndex(k)

    def _select_shown(self) -> None:
        k = self.cached.findData(self._shown) if self._shown else -1
        if k >= 0:
            self.cached.setCurrentIndex(k)

    # ---------------------------------------------------------------- devices
    def probe_devices(self) -> None:
        """List CUDA devices (asked of the analysis process, which imports torch: the GUI never does)."""

        self._probe = JobWorker(lambda: server().devices(), "device-probe")
        self._probe.sigReturned.connect(self._on_devices)
        self._probe.start()

    def _on_devices(self, devices: list[tuple[str, str]]) -> None:
        want = self.settings.get("analysis/device", "auto")
        self.device.blockSignals(True)
        self.device.clear()
        best = devices[0][0]
        self.device.addItem(f"Auto ({best})", "auto")
        for text, data in devices:
            self.device.addItem(text, data)
        self.device.setCurrentIndex(max(0, self.device.findData(want)))
        self.device.blockSignals(False)
        self.sigDeviceText.emit(f"Device: {best}" + ("" if best.startswith("CUDA") else " (no GPU found)"))

    # ---------------------------------------------------------------- running
    @property
    def running(self) -> bool:
        # job_over: in sigDone's slot the thread may still be ending (the Run button stayed disabled after a
        # cancel when _on_done asked isRunning() alone)
        return self.worker is not None and self.worker.isRunning() and not self.worker.job_over

    def _update_enabled(self) -> None:
        ok = self.session.reader is not None and not self.running
        self.run_button.setEnabled(ok)
        self.cancel_button.setEnabled(self.running)
        self.checkpoint.setEnabled(not self.running)
        self.browse.setEnabled(not self.running)

    def settings_for_run(self) -> Any:
        from stanviewer.core.explain.result import AnalysisSettings  # torch-free: this runs in the GUI thread

        return AnalysisSettings(
            method=str(self.method.currentData()),
            device=str(self.device.currentData() or "auto"),
            coverage=str(self.coverage.currentData()),
            stride=(self.stride.value() or None) if self.method.currentData() != POSTURE_METHOD else None,
        )

    def run(self) -> None:
        """Start an analysis of the open video (a cached result with the same settings is instant)."""
        if self.running or self.session.path is None:
            return
        try:
            ck_path = self.checkpoint_path()
        except StanError as e:
            show_error(self, "No model", e)
            return
        video = self.session.path
        st = self.settings_for_run()
        self._run_method, self._run_meta = st.method, self.meta
        self.worker = JobWorker(lambda: self._job(video, ck_path, st), "analysis")
        self.worker.sigProgress.connect(self._on_progress)
        self.worker.sigReturned.connect(self._on_returned)
        self.worker.sigErrored.connect(self._on_error)
        self.worker.sigAborted.connect(self._on_aborted)
        self.worker.sigDone.connect(self._on_done)
        self._eta = Eta()  # a new run: its own phases
        self.progress.setValue(0)
        self.progress.setVisible(True)
        self.message.setText("Loading the model…")
        self.worker.start()
        self._update_enabled()
        self.sigRunning.emit(True)
        self.sigStatus.emit(f"Analysing {video.name} with {st.method}…")

    def run_threshold(self, model_key: str) -> float:
        """The threshold a running analysis' curve is cut at: the one the user last set for this model and
        method, else the model's calibrated one for the method, else 0.5 (as a finished analysis)."""
        remembered = self.settings.threshold(model_key, self._run_method)
        if remembered is not None:
            return float(remembered)
        th = ((self._run_meta or {}).get("thresholds") or {}).get(self._run_method)
        if isinstance(th, dict) and isinstance(th.get("threshold"), (int, float)):
            return float(th["threshold"])
        return 0.5

    def cancel(self) -> None:
        if self.running:
            self.worker.cancel()
            self.message.setText("Cancelling…")

    def _job(self, video: Path, ck_path: Path, st: Any) -> Job[tuple[Any, Path]]:
        """Runs in the worker thread: a cached result loads here (no torch); otherwise the analysis runs
        in the analysis process (:mod:`stanviewer.qt.analysis_process`), which sends partial curves."""
        from stanviewer.core.explain.store import analysis_key, cache_folder, load_analysis, roi_identity
        from stanviewer.core.fileio import fingerprint, sha256_file

        yield Progress(0, 0, "looking for a cached result")
        if not ck_path.is_file():
            raise CheckpointError("file not found", ck_path)
        fp = fingerprint(video)
        sha = sha256_file(ck_path)
        yield Progress(0, 0, "looking for a cached result", partial=_ModelKey(sha))
        roi = roi_identity(peek_metadata(ck_path)["spec"])
        folder = cache_folder(fp, analysis_key(fp, sha, st, roi))
        if (folder / "analysis.json").exists():
            try:
                return load_analysis(folder), folder
            except StanError:
                pass
        folder = yield from server().analyze(video, ck_path, st)
        return load_analysis(folder), folder

    def _on_progress(self, p: Progress) -> None:
        if isinstance(p.partial, _ModelKey):  # the run's model is known: cut its partial curves at its threshold
            self.session.begin_run(RunInfo(self._run_method, p.partial.sha256, self.run_threshold(p.partial.sha256)))
            return
        if p.total > 0:
            self.progress.setValue(round(PROGRESS_STEPS * min(1.0, p.done / p.total)))
            left = self._eta.seconds_left(p)  # this phase's own pace (core.progress.Eta, as the CLI)
            eta = "" if left is None else f" — about {format_eta(left)} left"
            self.message.setText(f"{p.message}{eta}")
        else:
            self.message.setText(p.message)
        if p.partial is not None and self.session.reader is not None:
            self.session.set_partial(p.partial)

    def _on_returned(self, result: tuple[Any, Path]) -> None:
        analysis, folder = result
        self.progress.setValue(PROGRESS_STEPS)
        secs = analysis.meta.get("seconds")
        self.message.setText(
            f"Done: {analysis.meta.get('method')} on {analysis.meta.get('device', '?')}"
            + (f" in {secs:.1f} s" if isinstance(secs, (int, float)) else "")
        )
        self.sigAnalysisReady.emit(analysis, folder)
        self.sigStatus.emit("Analysis finished")

    def _on_error(self, err: BaseException) -> None:
        self.session.set_partial(None)
        self.progress.setValue(0)
        self.message.setText("The analysis failed.")
        show_error(self, "Analysis failed", err)

    def _on_aborted(self) -> None:
        self.session.set_partial(None)
        self.progress.setValue(0)
        self.message.setText("Cancelled. Nothing was saved.")
        self.sigStatus.emit("Analysis cancelled")

    def _on_done(self) -> None:
        self.progress.setVisible(False)
        self._update_enabled()
        self.sigRunning.emit(False)

    # ---------------------------------------------------------------- cached analyses
    def set_cached(self, entries: list[tuple[Path, dict]]) -> None:
        """Earlier analyses of the open video (folder, metadata), newest first."""
        self.cached.clear()
        if not entries:
            self.cached.addItem("none yet", None)
            self.cached.setEnabled(False)
            return
        self.cached.setEnabled(True)
        for folder, meta in entries:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime((folder / "analysis.json").stat().st_mtime))
            text = f"{meta.get('method')} · {meta.get('model', {}).get('name', '?')} · {when}"
            if meta.get("made_by") == "evaluate":
                text += " (made by evaluate)"
            self.cached.addItem(text, str(folder))
        self._select_shown()

    def _on_cached(self, k: int) -> None:
        folder = self.cached.itemData(k)
        if not folder or self.running:
            return

        def job() -> Job[tuple[Any, Path]]:
            from stanviewer.core.explain.store import load_analysis

            yield Progress(0, 0, "loading")
            return load_analysis(folder), Path(folder)

        self._loader = JobWorker(job, "load-analysis")
        self._loader.sigReturned.connect(lambda r: self.sigAnalysisReady.emit(*r))
        self._loader.sigErrored.connect(lambda e: show_error(self, "Cannot load the analysis", e))
        self._loader.start()

    def shutdown(self, wait_ms: int = 60000) -> None:
        """Cancel and wait for this panel's workers (window closing)."""
        for w in (self.worker, self._probe, self._loader):
            if w is not None and w.isRunning():
                w.cancel()
                w.wait(wait_ms)
