"""One exception family for everything a user can get wrong.

Every message names the file involved and says what is wrong, so the CLI can print it on one line and
the app can show it in a dialog.
"""

from __future__ import annotations

from pathlib import Path


class StanError(Exception):
    """Base class of every error meant for the user (printed without a traceback)."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class VideoError(StanError):
    """A video cannot be opened or read."""


class CheckpointError(StanError):
    """A model checkpoint is missing, unsafe, malformed or does not fit the model."""


class LabelError(StanError):
    """A manifest, label or review file is malformed."""


class Cancelled(StanError):
    """A long job was cancelled by the user."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class RoiError(StanError):
    """Person boxes (ROI) cannot be computed or read: a bad skeleton/CSV file, a missing optional extra."""


def describe(e: BaseException) -> str:
    """``"TypeName: first line of the message"`` (160 characters at most) for a one-line error's cause."""
    first = (str(e).splitlines() or [""])[0][:160]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
