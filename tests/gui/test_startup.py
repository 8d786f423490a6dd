"""The app starts from the command line, shows its window and never imports torch on the way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_window_shown_without_torch(env_with_repo: dict[str, str], tmp_path: Path) -> None:
    env = dict(env_with_repo, STANVIEWER_STARTUP_PROBE="1", STANVIEWER_DATA_DIR=str(tmp_path))
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    code = (
        "import sys\nfrom stanviewer.cli import main\nrc = main([])\n"
        "print('TORCH_LOADED', 'torch' in sys.modules)\nraise SystemExit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "STARTUP_SHOWN" in proc.stdout and "visible=1" in proc.stdout
    assert "TORCH_LOADED False" in proc.stdout
