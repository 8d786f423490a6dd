"""A tiny Qt-free signal: ``sig.connect(fn)``, ``sig.emit(*args)``, ``with sig.blocked(): ...``.

Models in :mod:`stanviewer.core.review` announce changes through these so that a Qt view (or the
autosaver, or a test) can subscribe without the core importing Qt. Callbacks run synchronously in the
thread that emits, in the order they were connected; a callback that raises does not stop the others
(the error is logged). A Qt widget that needs the GUI thread re-emits through its own Qt signal.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Signal"]

log = logging.getLogger(__name__)


class Signal:
    """A list of callbacks called by :meth:`emit`.

    Args:
        name: for messages and ``repr`` only.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._slots: list[Callable[..., Any]] = []
        self._blocked = 0
        self._lock = threading.Lock()

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback(*args)`` on every emit; returns it (usable as a decorator)."""
        with self._lock:
            if callback not in self._slots:
                self._slots.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Remove one callback (no error if it is not connected), or all of them."""
        with self._lock:
            if callback is None:
                self._slots.clear()
            elif callback in self._slots:
                self._slots.remove(callback)

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Emit nothing inside the block (e.g. while a view pushes a value back into the model)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def emit(self, *args: Any) -> None:
        """Call every connected callback with ``args``."""
        if self._blocked:
            return
        with self._lock:
            slots = list(self._slots)
        for slot in slots:
            try:
                slot(*args)
            except Exception:  # a broken view must not break the model
                log.exception("callback %r of signal %s failed", slot, self.name)

    def __len__(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self._slots)} callbacks)>"
