"""Checks of a checkpoint's ``stanviewer`` metadata that need no torch (the app reads it without torch too).

Every reader goes through :func:`check_metadata`, so a hand-edited or damaged field is a one-line
:class:`~stanviewer.core.errors.CheckpointError` naming the file and the field, not a traceback later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from stanviewer.core.errors import CheckpointError

__all__ = ["check_metadata", "not_a_model"]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_metadata(meta: Any, path: str | Path) -> dict:
    """``meta`` if its fields have the types the tool relies on; else a :class:`CheckpointError`."""
    if not isinstance(meta, dict) or "spec" not in meta:
        raise CheckpointError("metadata has no model spec", path)
    for key, kind, what in (
        ("spec", dict, "an object"),
        ("training", dict, "an object"),
        ("thresholds", dict, "an object"),
        ("name", str, "text"),
        ("default_method", str, "text"),
    ):
        if key in meta and not isinstance(meta[key], kind):
            raise CheckpointError(f"metadata: {key} must be {what}, not {meta[key]!r}"[:200], path)
    for method, th in (meta.get("thresholds") or {}).items():
        value = th.get("threshold") if isinstance(th, dict) else None
        if not _number(value) or not 0 <= value <= 1:
            raise CheckpointError(
                f"metadata: thresholds.{method}.threshold must be a number from 0 to 1, not {value!r}", path
            )
    return meta


def not_a_model(file_meta: dict | None) -> str:
    """What a safetensors file without model metadata is, for the error message."""
    keys = set(file_meta or {})
    if "state" in keys:
        return "a trainer state file (what `train --resume` reads), not a model: use best.safetensors beside it"
    if "stanviewer_detector" in keys:
        return "a person detector file (for `roi --provider learned --file`), not a classifier"
    return "has no stanviewer metadata (a bare state dict?); convert it with 'stanviewer model import'"
