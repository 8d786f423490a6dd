"""Where stanviewer keeps caches and settings (per user, from the platform)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "stanviewer"


def cache_dir() -> Path:
    """Per-user cache folder (frame indexes, ROI boxes, analyses); ``STANVIEWER_CACHE_DIR`` overrides it."""
    env = os.environ.get("STANVIEWER_CACHE_DIR")
    path = Path(env) if env else Path(platformdirs.user_cache_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Per-user data folder (autosave, recovery); ``STANVIEWER_DATA_DIR`` overrides it."""
    env = os.environ.get("STANVIEWER_DATA_DIR")
    path = Path(env) if env else Path(platformdirs.user_data_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_dir() -> Path:
    """Per-user log folder; ``STANVIEWER_LOG_DIR`` overrides it."""
    env = os.environ.get("STANVIEWER_LOG_DIR")
    path = Path(env) if env else Path(platformdirs.user_log_dir(APP, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    """The bundled checkpoints (``models/`` at the repository root or inside a bundle)."""
    import sys

    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "models"
    return Path(__file__).resolve().parents[2] / "models"


def resources_dir() -> Path:
    """Icons and other application resources (``resources/`` at the repository root or inside a bundle)."""
    import sys

    base = getattr(sys, "_MEIPASS", None)
    if base:
        return Path(base) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"
