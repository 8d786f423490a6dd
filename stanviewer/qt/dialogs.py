"""Message boxes: errors (naming the file and the cause), the About box and the keyboard shortcuts."""

from __future__ import annotations

import html
import platform
from importlib import metadata

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import QSize, Qt, qVersion
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from stanviewer import DISCLAIMER, __version__
from stanviewer.core.errors import StanError
from stanviewer.core.models.bundled import SYNTHETIC_WARNING
from stanviewer.core.paths import cache_dir, log_dir

__all__ = ["ShortcutsDialog", "about_text", "error_text", "show_about", "show_error"]


def error_text(err: BaseException | str) -> str:
    """What a dialog says: the file and the reason for a :class:`StanError`, else the exception."""
    if isinstance(err, str):
        return err
    if isinstance(err, StanError):
        if err.path is not None:
            return f"File: {err.path}\n\n{err.reason}"
        return err.reason
    if isinstance(err, OSError) and err.filename:
        return f"File: {err.filename}\n\n{err.strerror or err}"
    return f"{type(err).__name__}: {err}\n\nDetails are in the log folder: {log_dir()}"


def show_error(parent: QWidget | None, title: str, err: BaseException | str) -> None:
    """A modal error box (tests patch ``QMessageBox.critical``)."""
    QMessageBox.critical(parent, title, error_text(err))


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def about_text(settings_path: str = "") -> str:
    """HTML for the About box: versions, the research-use disclaimer, where logs and caches go."""
    rows = [
        ("stanviewer", __version__),
        ("Python", platform.python_version()),
        ("Qt / PySide6", f"{qVersion()} / {pyside_version}"),
        ("pyqtgraph", _version("pyqtgraph")),
        ("PyTorch", _version("torch")),
        ("PyAV", _version("av")),
        ("NumPy", _version("numpy")),
        ("OpenCV", _version("opencv-python-headless")),
    ]
    table = "".join(f"<tr><td>{k}</td><td>&nbsp;{html.escape(v)}</td></tr>" for k, v in rows)
    places = f"Logs: {html.escape(str(log_dir()))}<br>Cache (frame indexes, analyses): {html.escape(str(cache_dir()))}"
    if settings_path:
        places += f"<br>Settings: {html.escape(settings_path)}"
    return (
        f"<h3>stanviewer {__version__}</h3>"
        "<p>Review rehabilitation videos with per-frame explanations of a video classifier.</p>"
        f"<p><b>{html.escape(DISCLAIMER)}</b></p>"
        f"<p>Bundled model: {html.escape(SYNTHETIC_WARNING)}</p>"
        f"<table>{table}</table><p>{places}</p>"
    )


def show_about(parent: QWidget | None, settings_path: str = "") -> None:
    QMessageBox.about(parent, "About stanviewer", about_text(settings_path))


class ShortcutsDialog(QDialog):
    """Every action that has a shortcut, read from the actions themselves (so the list cannot go stale)."""

    def __init__(self, actions: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        lay = QVBoxLayout(self)
        rows = [
            (a.text().replace("&", ""), ", ".join(k.toString() for k in a.shortcuts()))
            for a in actions
            if a.shortcuts()
        ]
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setHorizontalHeaderLabels(["Action", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, (text, keys) in enumerate(rows):
            self.table.setItem(r, 0, QTableWidgetItem(text))
            item = QTableWidgetItem(keys)
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(r, 1, item)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.rows = rows

    def sizeHint(self) -> QSize:
        return QSize(420, 560)
