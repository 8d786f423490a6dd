"""Start-up time of the desktop app: from launching the process to the main window being shown.

    python bench/startup.py [--runs 7] [--exe dist/stanviewer/stanviewer]

Each run starts ``python -m stanviewer`` (and, with ``--exe``, the PyInstaller bundle) with no video,
in a fresh settings folder, with ``STANVIEWER_STARTUP_PROBE=1``: once the event loop runs with the window
shown the app prints the wall-clock time and quits. Prints a Markdown table (median, min, max seconds)
and the ratio of the median to the 3 s goal. Platform: offscreen unless ``QT_QPA_PLATFORM`` says otherwise.
Torch is never imported on this path (analyses run in a child process), which is what keeps it short.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 3.0


def one_run(cmd: list[str]) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, STANVIEWER_STARTUP_PROBE="1", STANVIEWER_DATA_DIR=tmp, STANVIEWER_LOG_DIR=tmp)
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("STARTUP_SHOWN")), None)
        if line is None:
            raise SystemExit(f"{cmd[0]}: no start-up line (rc {proc.returncode}): {proc.stderr[-800:]}")
        if "visible=1" not in line:
            raise SystemExit(f"{cmd[0]}: the window was not visible")
        return float(line.split()[1]) - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--exe", type=Path, help="also time this bundled executable")
    a = ap.parse_args()
    cases = [("from source (python -m stanviewer)", [sys.executable, "-m", "stanviewer"])]
    if a.exe:
        cases.append((f"bundle ({a.exe})", [str(a.exe.resolve())]))
    print(
        f"| start-up to window ({a.runs} runs, platform {os.environ.get('QT_QPA_PLATFORM', 'offscreen')}) "
        "| median s | min s | max s | median / 3 s goal |"
    )
    print("|---|---|---|---|---|")
    for name, cmd in cases:
        one_run(cmd)  # warm the file cache
        t = [one_run(cmd) for _ in range(a.runs)]
        med = statistics.median(t)
        print(f"| {name} | {med:.2f} | {min(t):.2f} | {max(t):.2f} | {med / GOAL_S:.2f} |")


if __name__ == "__main__":
    main()
