"""Settings remembered between runs (an INI file in the user's data folder, via QSettings).

Window geometry and dock layout, the last folder, recent files, method, device, checkpoint, overlay
opacity and colour map, and the threshold per model and method. The file lives at
``data_dir()/settings.ini`` (``STANVIEWER_DATA_DIR`` moves it, which keeps tests isolated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from stanviewer.core.paths import data_dir

__all__ = ["MAX_RECENT", "AppSettings"]

MAX_RECENT = 10


class AppSettings:
    """Typed access to the app's QSettings."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else data_dir() / "settings.ini"
        self.q = QSettings(str(self.path), QSettings.Format.IniFormat)

    def get(self, key: str, default: Any = None, type_: type | None = None) -> Any:
        v = self.q.value(key, default)
        if v is None or type_ is None:
            return v
        try:
            if type_ is bool:
                return v if isinstance(v, bool) else str(v).lower() in ("1", "true", "yes")
            return type_(v)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value: Any) -> None:
        self.q.setValue(key, value)

    def sync(self) -> None:
        self.q.sync()

    # ---------------------------------------------------------------- window
    def window_state(self) -> tuple[QByteArray | None, QByteArray | None]:
        g, s = self.q.value("window/geometry"), self.q.value("window/state")
        return (g if isinstance(g, QByteArray) else None, s if isinstance(s, QByteArray) else None)

    def set_window_state(self, geometry: QByteArray, state: QByteArray) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)

    # ---------------------------------------------------------------- files
    def recent(self) -> list[str]:
        v = self.q.value("files/recent", [])
        if isinstance(v, str):
            v = [v] if v else []
        return [str(x) for x in (v or [])]

    def add_recent(self, path: str | Path) -> list[str]:
        p = str(Path(path).resolve())
        items = [p] + [x for x in self.recent() if x != p]
        self.q.setValue("files/recent", items[:MAX_RECENT])
        return items[:MAX_RECENT]

    def clear_recent(self) -> None:
        self.q.setValue("files/recent", [])

    def last_folder(self) -> str:
        return str(self.get("files/last_folder", str(Path.home())))

    def set_last_folder(self, folder: str | Path) -> None:
        self.q.setValue("files/last_folder", str(folder))

    # ---------------------------------------------------------------- method per model
    def method_for(self, model: str | None) -> str | None:
        """The explanation method last chosen for this model (None: never chosen)."""
        if not model:
            return None
        v = self.get(f"method/{model[:24]}", None)
        return None if v is None else str(v)

    def set_method_for(self, model: str | None, method: str) -> None:
        if model:
            self.q.setValue(f"method/{model[:24]}", method)

    # ---------------------------------------------------------------- threshold per model
    def segment_seconds(self) -> tuple[float, float]:
        """(minimum length, merge gap) of flagged segments in seconds: the user's last, else the defaults."""
        from stanviewer.core.explain.segments import DEFAULT_MERGE_SECONDS, DEFAULT_MIN_SECONDS

        out = []
        keys = ("segments/min_seconds", DEFAULT_MIN_SECONDS), ("segments/merge_seconds", DEFAULT_MERGE_SECONDS)
        for key, default in keys:
            v = self.get(key, default, float)
            out.append(float(v) if v is not None and 0.0 <= float(v) <= 60.0 else default)
        return out[0], out[1]

    def set_segment_seconds(self, min_seconds: float, merge_seconds: float) -> None:
        self.set("segments/min_seconds", float(min_seconds))
        self.set("segments/merge_seconds", float(merge_seconds))

    @staticmethod
    def _tkey(model: str, method: str) -> str:
        return f"threshold/{model[:24]}_{method}"

    def threshold(self, model: str | None, method: str | None) -> float | None:
        if not model or not method:
            return None
        v = self.get(self._tkey(model, method), None, float)
        return None if v is None else float(v)

    def set_threshold(self, model: str | None, method: str | None, value: float) -> None:
        if model and method:
            self.q.setValue(self._tkey(model, method), float(value))
