"""The installation check (``stanviewer --self-test``) from source, with the bundled model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stanviewer.core.models.bundled import default_checkpoint_path


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stanviewer", *args], capture_output=True, text=True, env=env, timeout=600
    )


def test_self_test_with_the_bundled_model(env_with_repo: dict[str, str]) -> None:
    assert default_checkpoint_path().exists()
    proc = _run(["--self-test"], env_with_repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("self-test passed in ")
    for part in ("stan-tiny-synth.safetensors", "every frame scored", "written and read back", "H.264"):
        assert part in line


def test_self_test_names_the_failing_step(env_with_repo: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "empty model.safetensors"
    bad.write_bytes(b"")
    proc = _run(["self-test", "--checkpoint", str(bad)], env_with_repo)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()[-1]
    assert "self-test failed at 'model'" in err and "Traceback" not in proc.stderr
