"""The analysis child process runs below the GUI's priority (the window keeps the cores first)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from stanviewer.qt.analysis_process import AnalysisServer


def _nice_of(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc(5), counted after the command name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(("env", "expected"), [(None, 10), ("0", 0), ("3", 3), ("junk", 10)])
def test_analysis_child_is_niced(monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int) -> None:
    if env is None:
        monkeypatch.delenv("STANVIEWER_ANALYSIS_NICE", raising=False)
    else:
        monkeypatch.setenv("STANVIEWER_ANALYSIS_NICE", env)
    srv = AnalysisServer()
    try:
        conn = srv._ensure()
        # set by the parent right after the start, before the child's interpreter has even started up
        assert _nice_of(srv._proc.pid) - os.nice(0) == expected
        conn.send(("cancel",))  # answered once the child's loop runs, after it lowered its priority
        assert conn.poll(60) and conn.recv() == ("cancelled",)
        assert _nice_of(srv._proc.pid) - os.nice(0) == expected
    finally:
        srv.shutdown()


def test_shutdown_while_the_child_is_still_starting_stops_it() -> None:
    """A window closed at once: the child exists but its pipe is not yet stored (start-up in another thread)."""
    import multiprocessing as mp

    srv = AnalysisServer()
    proc = mp.get_context("spawn").Process(target=_sleep, daemon=True)
    proc.start()
    srv._proc = proc  # as _ensure leaves it between starting the child and storing the pipe
    srv.shutdown(timeout=5)
    assert not proc.is_alive() and srv._proc is None


def _sleep() -> None:
    import time

    time.sleep(60)
