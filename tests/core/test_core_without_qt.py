"""The core never needs Qt: it imports and works with PySide6, shiboken6 and pyqtgraph unavailable."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: block the Qt packages first, then import every module of stanviewer.core
# and do one real operation (write and read back a tiny video).
SCRIPT = r"""
import importlib, importlib.abc, json, pkgutil, sys, tempfile
from pathlib import Path

BLOCKED = ("PySide6", "shiboken6", "pyqtgraph")

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Blocker())
for name in list(sys.modules):
    if name.split(".")[0] in BLOCKED:
        del sys.modules[name]

import stanviewer.core

errors = {}
def onerror(name):
    errors[name] = repr(sys.exc_info()[1])

names = []
for info in pkgutil.walk_packages(stanviewer.core.__path__, "stanviewer.core.", onerror=onerror):
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as e:
        errors[info.name] = repr(e)

import numpy as np
from stanviewer.core.encode import VideoWriter
from stanviewer.core.video import open_video

with tempfile.TemporaryDirectory() as d:
    path = Path(d) / "tiny.mp4"
    with VideoWriter(path, 10, "h264", gop=5) as w:
        for i in range(8):
            w.write(np.full((32, 48, 3), i * 30, np.uint8))
    with open_video(path) as r:
        shape = list(r.frame(6).shape)
        count = r.frame_count

leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED or m.startswith("stanviewer.qt"))
print(json.dumps({"modules": names, "errors": errors, "shape": shape, "count": count, "leaked": leaked}))
"""


def test_core_imports_and_works_with_qt_blocked(env_with_repo: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env_with_repo, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["errors"], out["errors"]
    assert {"stanviewer.core.video", "stanviewer.core.synth.dataset", "stanviewer.core.manifest"} <= set(out["modules"])
    assert out["leaked"] == []
    assert out["count"] == 8 and out["shape"] == [32, 48, 3]


def test_import_linter_contract(env_with_repo: dict[str, str]) -> None:
    """``lint-imports`` keeps the contract in pyproject.toml: stanviewer.core never imports Qt."""
    exe = shutil.which("lint-imports") or shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter is not installed")
    if not (REPO / "stanviewer" / "qt" / "__init__.py").exists():
        pytest.skip("the contract names stanviewer.qt, which is not a package yet")
    proc = subprocess.run([exe], capture_output=True, text=True, env=env_with_repo, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "broken" in proc.stdout and "0 broken" in proc.stdout
