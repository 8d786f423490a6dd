"""Qt-free core of stanviewer: video access, ROI, model, attribution, scoring, labels, export.

Nothing in this package may import Qt (PySide6, pyqtgraph); ``tests/core`` checks it.
"""
