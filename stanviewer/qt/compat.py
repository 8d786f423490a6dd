"""Work-arounds for bugs in the Qt bindings, applied once when the app starts (:func:`make_app`).

**PySide6 6.12.0 drops a reference to ``True`` on every ``SignalInstance.emit()``** (``emit`` returns
``Py_True`` without a new reference). On Python < 3.12, where ``True`` is not immortal, its reference
count falls by one per emitted signal (the app, pyqtgraph and Qt's own Python-side signals emit many per
second) until the interpreter aborts with "Fatal Python error: bool_dealloc: deallocating True or
False". Measured here: 20 emits -> refcount(True) - 20, for every custom signal, with or without
receivers. :func:`guard_true_refcount` detects the leak with a probe signal and, only if it is there,
raises the reference count of ``True`` by 2**40 (``True`` is a static singleton that is never freed,
so this only keeps the sanity check in ``bool_dealloc`` from firing). Python >= 3.12 needs nothing.

**The same release drops a reference to ``None`` on every call of a method that returns nothing**
(``QLabel.setText``, ``QWidget.setEnabled``, ``QCoreApplication.processEvents``: measured 1000 calls ->
refcount(None) - 1000; getters and signal emits are fine). A session that edits labels makes tens of
such calls per redraw and aborted the tests with "Fatal Python error: none_dealloc" after a few minutes.
:func:`guard_none_refcount` detects it with a probe call and compensates the same way.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from collections.abc import Callable

__all__ = ["guard_none_refcount", "guard_true_refcount", "none_refcount_guarded", "true_refcount_guarded"]

log = logging.getLogger(__name__)
HEADROOM = 1 << 40
_guarded: dict[str, bool] = {"True": False, "None": False}


def true_refcount_guarded() -> bool:
    """Whether :func:`guard_true_refcount` found the leak and compensated for it."""
    return _guarded["True"]


def none_refcount_guarded() -> bool:
    """Whether :func:`guard_none_refcount` found the leak and compensated for it."""
    return _guarded["None"]


def _guard(singleton: object, exercise: Callable[[], None], what: str) -> bool:
    """Call ``exercise`` 16 times; if ``singleton`` lost a reference each time, add :data:`HEADROOM` once."""
    name = repr(singleton)
    if _guarded[name] or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _guarded[name]
    from PySide6 import __version__ as version

    before = sys.getrefcount(singleton)
    for _ in range(16):
        exercise()
    if before - sys.getrefcount(singleton) < 16:
        return False
    ctypes.c_ssize_t.from_address(id(singleton)).value += HEADROOM
    _guarded[name] = True
    log.warning("PySide6 %s loses a reference to %s on every %s; compensated (see stanviewer.qt.compat)",
                version, name, what)  # fmt: skip
    return True


def guard_none_refcount() -> bool:
    """Detect PySide6's reference leak on ``None`` (methods returning void) and compensate once."""
    from PySide6.QtCore import QObject

    probe = QObject()
    return _guard(None, lambda: probe.setObjectName("probe"), "void call")


def guard_true_refcount() -> bool:
    """Detect PySide6's ``emit()`` reference leak on ``True`` and compensate once; returns True if it did.

    Also applies :func:`guard_none_refcount` (the same release's leak on ``None``).
    """
    from PySide6.QtCore import QObject, Signal

    guard_none_refcount()

    class _Probe(QObject):
        sig = Signal()

    probe = _Probe()
    return _guard(True, probe.sig.emit, "signal emit")
