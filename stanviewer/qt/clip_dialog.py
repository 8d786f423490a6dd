"""File ▸ Export clips: what to cut, where to, and how (padding, one file, burnt-in heatmap, time, scores).

The choices are remembered in the app's settings (``clips/…``); padding is chosen in seconds, as the
segment options are, and turned into this video's frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from stanviewer.qt.settings import AppSettings

if TYPE_CHECKING:  # the clip module imports OpenCV, which the GUI process loads only when it cuts clips
    from stanviewer.core.review.clips import ClipOptions

__all__ = ["ClipChoice", "ClipDialog", "HeatStyle", "ask_clip_export"]


@dataclass(frozen=True)
class HeatStyle:
    """How the app draws the heatmap now; burnt-in clips draw it the same way."""

    opacity: float = 0.5
    colormap: str = "inferno"
    floor: float = 0.1
    scale: str = "video"  # video | frame

    def describe(self) -> str:
        hidden = f", values under {self.floor:g} not drawn" if self.floor > 0 else ""
        scale = "each frame to its own peak" if self.scale == "frame" else "whole-video scale"
        return f"{self.colormap}, opacity {self.opacity:.0%}{hidden}, {scale}"


@dataclass(frozen=True)
class ClipChoice:
    """What the dialog returns: the source (a tier name or the selection), the folder and the options."""

    source: str
    folder: Path
    options: ClipOptions


class ClipDialog(QDialog):
    """The clip export dialog (see the module docstring)."""

    def __init__(
        self,
        sources: list[str],
        folder: str,
        fps: float,
        *,
        has_heatmaps: bool,
        has_scores: bool,
        heat_style: HeatStyle | None = None,
        settings: AppSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export clips")
        self.fps = fps if fps > 0 else 25.0
        self.settings = settings
        self.heat_style = heat_style or HeatStyle()
        form = QFormLayout(self)
        self.source = QComboBox(self)
        self.source.addItems(sources)
        form.addRow("Clips of", self.source)
        row = QHBoxLayout()
        self.folder = QLineEdit(str(self._get("folder", folder) or folder), self)
        self.folder.setMinimumWidth(320)
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Into folder", row)
        self.padding = QDoubleSpinBox(self)
        self.padding.setRange(0.0, 30.0)
        self.padding.setSingleStep(0.5)
        self.padding.setDecimals(1)
        self.padding.setSuffix(" s")
        self.padding.setValue(float(self._get("padding_s", 0.0)))
        self.padding.setToolTip("Added before and after each clip (not past the video's ends)")
        form.addRow("Padding", self.padding)
        self.merged = QCheckBox("One file with every clip, one after another", self)
        self.heatmap = QCheckBox(f"Heatmap burnt into the picture, as shown ({self.heat_style.describe()})", self)
        self.timestamp = QCheckBox("Source frame number and time burnt in", self)
        self.strip = QCheckBox("Score curve strip under the picture", self)
        for box, key, ok, why in (
            (self.merged, "merged", True, ""),
            (self.heatmap, "heatmap", has_heatmaps, "This analysis has no heatmaps (its method has no pixel maps)"),
            (self.timestamp, "timestamp", True, ""),
            (self.strip, "score_strip", has_scores, "No analysis is shown: there is no score curve"),
        ):
            box.setChecked(ok and self._get(key, False) in (True, "true", "1", 1))
            box.setEnabled(ok)
            if why and not ok:
                box.setToolTip(why)
            form.addRow(box)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _get(self, key: str, default: object) -> object:
        return self.settings.get(f"clips/{key}", default) if self.settings is not None else default

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export clips into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def choice(self) -> ClipChoice | None:
        """The choices made (None without a folder); remembered for the next export."""
        from stanviewer.core.review.clips import ClipOptions

        folder = self.folder.text().strip()
        if not folder:
            return None
        opts = ClipOptions(
            padding=round(self.padding.value() * self.fps),
            merged=self.merged.isChecked(),
            heatmap=self.heatmap.isChecked(),
            timestamp=self.timestamp.isChecked(),
            score_strip=self.strip.isChecked(),
            heatmap_opacity=self.heat_style.opacity,
            heatmap_colormap=self.heat_style.colormap,
            heatmap_floor=self.heat_style.floor,
            heatmap_scale=self.heat_style.scale,
        )
        if self.settings is not None:
            for key, value in (
                ("folder", folder),
                ("padding_s", self.padding.value()),
                ("merged", opts.merged),
                ("timestamp", opts.timestamp),
                ("score_strip", opts.score_strip),
            ):
                self.settings.set(f"clips/{key}", value)
            if self.heatmap.isEnabled():
                self.settings.set("clips/heatmap", opts.heatmap)
        return ClipChoice(self.source.currentText(), Path(folder), opts)


def ask_clip_export(
    parent: QWidget | None, sources: list[str], folder: str, fps: float, **options: object
) -> ClipChoice | None:
    """Show the dialog (``options``: :class:`ClipDialog`'s keywords); None if cancelled."""
    dlg = ClipDialog(sources, folder, fps, parent=parent, **options)  # type: ignore[arg-type]
    if dlg.exec() != QDialog.DialogCode.Accepted:
        return None
    return dlg.choice()
