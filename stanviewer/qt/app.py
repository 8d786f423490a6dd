"""Start the desktop app: ``run_app(videos)`` (``stanviewer VIDEO``, ``stanviewer open``, ``stanviewer demo``).

Works on any Qt platform plugin, including ``offscreen`` (tests, screenshots) and Xvfb. Logs go to
``log_dir()/stanviewer.log`` (shown in the About box).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from stanviewer.core.paths import resources_dir

__all__ = ["make_app", "run_app", "setup_logging"]


def setup_logging() -> Path:
    """Log to a rotating file in the user's log folder; returns its path."""
    from stanviewer.core.paths import log_dir

    path = log_dir() / "stanviewer.log"
    root = logging.getLogger("stanviewer")
    if not any(isinstance(h, logging.handlers.RotatingFileHandler) for h in root.handlers):
        h = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(h)
        root.setLevel(logging.INFO)
    return path


def make_app(argv: Sequence[str] | None = None):
    """The QApplication (created once), with pyqtgraph configured for numpy row-major images."""
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv) if argv is not None else [sys.argv[0]])
    app.setApplicationName("stanviewer")
    app.setOrganizationName("stanviewer")
    from stanviewer import __version__

    app.setApplicationVersion(__version__)
    icon = resources_dir() / "stanviewer.png"
    if icon.exists():
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(icon)))
    app.setDesktopFileName("stanviewer")
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
    from stanviewer.qt.compat import guard_true_refcount

    guard_true_refcount()
    return app


def display_problem() -> str | None:
    """Why the app cannot open a window here (None: it can). On Linux without an X or Wayland display
    Qt aborts the process ("could not connect to display"); say so in one line instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open the app on (neither DISPLAY nor WAYLAND_DISPLAY is set). Without one, use "
        "`stanviewer demo --no-gui` or `stanviewer analyze VIDEO`, or run the app under `xvfb-run`"
    )


def run_app(
    videos: Sequence[str | Path] = (),
    analysis: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    method: str | None = None,
    auto_run: bool = False,
) -> int:
    """Open the main window (with the first video, and ``analysis`` if given) and run the event loop.

    ``checkpoint`` selects a model file and ``method`` a method in the analysis panel; ``auto_run``
    starts an analysis as soon as the video is open (``stanviewer demo``). Extra videos go to the
    recent-files menu.
    """
    problem = display_problem()
    if problem is not None:
        from stanviewer.core.errors import StanError

        raise StanError(problem)
    setup_logging()
    app = make_app()
    from stanviewer.qt.main_window import MainWindow

    win = MainWindow()
    if checkpoint is not None:
        win.analysis_panel.set_checkpoint(checkpoint)
    if method is not None:
        win.analysis_panel.set_method(method)
    win.show()
    for extra in list(videos)[1:][::-1]:
        win.settings.add_recent(extra)
    if videos:
        win.auto_run = auto_run
        win.open_path(videos[0], analysis)
    elif analysis is not None:
        win.open_analysis_folder(Path(analysis))
    app.aboutToQuit.connect(win.shutdown)
    if os.environ.get("STANVIEWER_STARTUP_PROBE"):  # bench/startup.py: report when the window is up, then quit
        import time

        from PySide6.QtCore import QTimer

        def _probe() -> None:
            print(f"STARTUP_SHOWN {time.time():.6f} visible={int(win.isVisible())}", flush=True)
            app.quit()

        QTimer.singleShot(0, _probe)
    return int(app.exec())
