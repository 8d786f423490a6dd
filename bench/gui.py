"""Benchmark of the desktop app: display latency, seek latency, GUI-thread stalls and memory.

Prints a Markdown table of
- **frame step** (the "next/previous frame" action, as the ← → keys) until the frame is painted, with the
  heatmap overlay on, at 640x480 and 1920x1080 (H.264, 2 s GOP, B-frames); steps are paced like a person
  tapping a key (one every ``--step-ms``), 40 forward then 20 back; goal p95 <= 25 ms;
- **timeline click** at random positions until a picture of that frame is on screen (a low-resolution
  preview, once the background preview pass has run) and until the exact frame is; goal p95 <= 50 ms;
- **GUI-thread stall** while an analysis runs (a tiny random model, vanilla gradients, every frame): a
  5 ms QTimer probe records the longest gap between its ticks beyond the interval; goal <= 50 ms. It runs
  in a fresh process, twice (``--stall-start``): once with the analysis process started by Run (its
  interpreter start, torch import and model load fall inside the probe) and once as in the app, where the
  device probe at launch has started it; the probe starts once the window has settled after the set-up
  (checkpoint and method picked), then Run is pressed;
  a control row runs the same probe as long again with nothing running (what the machine's scheduling
  alone costs the GUI thread: on a shared VM it varies by tens of ms);
- **memory**: RSS of a fresh process after opening an hour-long video (160x120, 25 fps, 90 000 frames)
  with a 90 000-frame score curve, dragging the threshold over it, and scrubbing; goal <= 2 GB.

Videos are generated once into ``--workdir`` (default ``bench/.videos``; *.mp4 is git-ignored); caches
and settings go to a temporary folder. Platform: offscreen unless ``QT_QPA_PLATFORM`` says otherwise.
Usage: ``python bench/gui.py [--workdir DIR] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FPS = 25


# --------------------------------------------------------------------------- inputs
def make_video(path: Path, size: tuple[int, int], frames: int, gop: int) -> Path:
    """A moving gradient with a bouncing square (cheap to draw, realistic enough to decode)."""
    if path.exists():
        return path
    from stanviewer.core.encode import VideoWriter

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([128 + 60 * np.sin(xx / 37), 128 + 60 * np.cos(yy / 23), 100 + 40 * np.sin((xx + yy) / 51)], -1)
    side = max(4, min(w, h) // 8)
    with VideoWriter(path, FPS, "h264", gop=gop, bframes=2, preset="veryfast") as wr:
        for i in range(frames):
            img = np.roll(base, i * 2, axis=1).astype(np.uint8)
            cx = int((w - side) * (0.5 + 0.5 * np.sin(i / 17)))
            cy = int((h - side) * (0.5 + 0.5 * np.sin(i / 11)))
            img[cy : cy + side, cx : cx + side] = (255, 255, 0)
            wr.write(img)
    return path


def fake_analysis(video: Path, n: int, heat: bool = True):
    """An analysis with a smooth random curve (and blob heatmaps) saved in the cache of ``video``."""
    from stanviewer.core.explain.heatmaps import HeatmapWriter
    from stanviewer.core.explain.scoring import Analysis
    from stanviewer.core.explain.store import cache_folder, save_analysis
    from stanviewer.core.video import open_video

    with open_video(video) as r:
        fp, times, (w, h) = r.info.fingerprint, r.times(), r.size
    rng = np.random.default_rng(0)
    s = np.convolve(rng.random(n + 40), np.ones(40) / 40, "same")[20 : n + 20]
    s = ((s - s.min()) / (s.max() - s.min() + 1e-9)).astype(np.float32)
    folder = cache_folder(fp, "bench")
    folder.mkdir(parents=True, exist_ok=True)
    hp = None
    if heat:
        hw = HeatmapWriter(folder / "heatmaps.zip", n, w, h, side=96)
        yy, xx = np.mgrid[0 : hw.h, 0 : hw.w].astype(np.float32)
        for i in range(n):
            cx = hw.w * (0.5 + 0.3 * np.sin(i / 20))
            hw.put(i, np.exp(-((xx - cx) ** 2 + (yy - hw.h / 2) ** 2) / (2 * (hw.h / 5) ** 2)) * (0.2 + s[i]))
        hp = hw.close()
    meta = {
        "video": {"path": str(video), "fingerprint": fp, "frames": n},
        "model": {"name": "bench", "sha256": "b" * 64},
        "target": "compensation",
        "prediction": {"class": "compensation", "probabilities": {"normal": 0.3, "compensation": 0.7}},
        "method": "vanilla",
        "normalisation": {"clip_percentiles": [1, 99]},
        "threshold": 0.6,
    }
    a = Analysis(s, s, s, times, [], meta["prediction"], meta, hp)
    save_analysis(a, folder)
    return a, folder


def tiny_checkpoint(path: Path) -> Path:
    if path.exists():
        return path
    from stanviewer.core.models.checkpoint import save_checkpoint
    from stanviewer.core.models.stan import STAN, ModelSpec

    return save_checkpoint(path, STAN(ModelSpec(views="global", frames=8, size=64)), {"name": "bench-tiny-random"})


# --------------------------------------------------------------------------- helpers in the app
def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) in MiB from /proc (Linux)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out.get("VmRSS", float("nan")), out.get("VmHWM", float("nan"))


class App:
    """A main window plus helpers to wait for things while processing events."""

    def __init__(self, tmp: Path, probe_devices: bool = False) -> None:
        from stanviewer.qt.app import make_app
        from stanviewer.qt.main_window import MainWindow
        from stanviewer.qt.settings import AppSettings

        self.app = make_app()
        self.w = MainWindow(settings=AppSettings(tmp / "settings.ini"), probe_devices=probe_devices)
        self.w.resize(1400, 900)
        self.w.show()
        self.displayed: list[tuple[int, float, bool]] = []
        self.w.view.sigDisplayed.connect(lambda i, dt, exact: self.displayed.append((i, dt, exact)))

    def spin(self, seconds: float, until=None) -> bool:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            self.app.processEvents()
            if until is not None and until():
                return True
            time.sleep(0.0005)
        return until is None

    def open(self, path: Path) -> None:
        done = []
        self.w.sigOpened.connect(lambda p: done.append(p))
        self.w.open_path(path)
        if not self.spin(600, lambda: bool(done) and self.w.view.showing(self.w.session.frame)):
            raise RuntimeError(f"{path} did not open")

    def close(self) -> None:
        self.w.close()
        self.app.processEvents()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def bench_steps(app: App, step_ms: float, forward: int = 40, back: int = 20) -> list[float]:
    """Latency (ms) of frame steps until the exact frame is painted."""
    a = app.w.playback_actions
    s, view = app.w.session, app.w.view
    out = []
    for k in range(forward + back):
        name = "next_frame" if k < forward else "prev_frame"
        target = s.frame + (1 if k < forward else -1)
        t0 = time.perf_counter()
        a[name].trigger()
        if not app.spin(10, lambda t=target: view.showing(t)):
            raise RuntimeError(f"frame {target} never appeared")
        out.append((time.perf_counter() - t0) * 1000)
        app.spin(step_ms / 1000)
    return out


def bench_clicks(app: App, n: int = 30) -> tuple[list[float], list[float]]:
    """(first picture ms, exact frame ms) for clicks on the timeline at random frames."""
    from PySide6.QtCore import QPoint, Qt
    from PySide6.QtTest import QTest

    w = app.w
    tl, view, s = w.timeline, w.view, w.session
    rng = np.random.default_rng(1)
    first, exact = [], []
    for _ in range(n):
        f = int(rng.integers(0, s.frame_count))
        pos = tl.glw.mapFromScene(tl.frame_to_scene(f, 0.3))
        t0 = time.perf_counter()
        QTest.mouseClick(
            tl.glw.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(pos.x(), pos.y())
        )
        target = s.frame
        if not app.spin(5, lambda t=target: view.shown == t):
            raise RuntimeError("no picture after a click")
        first.append((time.perf_counter() - t0) * 1000)
        if not app.spin(10, lambda t=target: view.showing(t)):
            raise RuntimeError("the exact frame never came")
        exact.append((time.perf_counter() - t0) * 1000)
        app.spin(0.15)
    return first, exact


# --------------------------------------------------------------------------- phases (each may run in a child)
def phase_display(work: Path, tmp: Path, quick: bool, step_ms: float) -> dict:
    v640 = make_video(work / "bench_640x480.mp4", (640, 480), 500, 50)
    v1080 = make_video(work / "bench_1920x1080.mp4", (1920, 1080), 120 if quick else 200, 50)
    res = {}
    for name, video in (("640x480", v640), ("1920x1080", v1080)):
        from stanviewer.core.video import open_video

        with open_video(video) as r:
            n = r.frame_count
        fake_analysis(video, n)
        app = App(tmp)
        app.open(video)
        assert app.w.session.analysis is not None and app.w.session.overlay.visible
        view, start = app.w.view, n // 3
        app.w.session.set_frame(start)
        app.spin(60, lambda v=view, f=start: v.showing(f) and v._heat_image is not None)
        app.spin(0.5)
        lat = bench_steps(app, step_ms, 20 if quick else 40, 10 if quick else 20)
        res[f"step {name}"] = lat
        if name == "640x480":
            thumbs = app.w.view.thumbs
            app.spin(300, lambda t=thumbs: bool(t.ready.all()))
            res["click first"], res["click exact"] = bench_clicks(app, 15 if quick else 30)
        app.close()
    return res


def phase_stall(work: Path, tmp: Path, seconds: float, start: str = "run") -> dict:
    """In a fresh process: an analysis runs while a timer ticks. ``start="run"``: the analysis process
    starts when Run is pressed (its interpreter start, torch import and model load fall inside the probe);
    ``"launch"``: as in the app, the window's device probe starts that process at launch, and the probe
    begins once it has answered."""
    from PySide6.QtCore import QTimer

    from stanviewer.qt.analysis_process import server

    video = make_video(work / "bench_640x480.mp4", (640, 480), 500, 50)
    app = App(tmp, probe_devices=start == "launch")
    app.open(video)
    ap = app.w.analysis_panel
    if start == "launch" and not app.spin(300, lambda: "checking" not in ap.device.itemText(0) and server().running):
        raise RuntimeError("the device probe did not answer")
    ap.set_checkpoint(work / "bench-tiny.safetensors")
    ap.set_method("vanilla")
    # Let the window settle first: without this the probe's first interval held the repaint that the set-up
    # above queued (picking a checkpoint and a method; 54-62 ms, sampled), which a user does long before Run.
    app.spin(1.0)
    gaps: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append((now - last[0]) * 1000)
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    t0 = time.perf_counter()
    ap.run()
    progress = []
    ap.worker.sigProgress.connect(lambda p: progress.append(p.done))
    app.spin(seconds, lambda: not ap.running)
    elapsed = time.perf_counter() - t0
    finished = not ap.running
    timer.stop()
    ap.cancel()
    app.spin(120, lambda: not ap.running)
    stalls = [g - 5 for g in gaps]
    # Control: the same probe for as long again with nothing running (the window settled after the result).
    # Its longest gap is what this machine's scheduling alone costs the GUI thread; on a shared VM it can
    # reach the goal by itself, and then the analysis' figure says little about the app.
    app.spin(1.0)
    gaps.clear()
    last[0] = time.perf_counter()
    timer.start()
    app.spin(min(elapsed, seconds))
    timer.stop()
    app.close()
    idle = [g - 5 for g in gaps] or [0.0]
    return {
        "stall_max": max(stalls),
        "stall_p99": pct(stalls, 99),
        "idle_max": max(idle),
        "idle_p99": pct(idle, 99),
        "seconds": elapsed,
        "finished": finished,
        "windows": max(progress) if progress else 0,
        "start": start,
    }


def phase_memory(work: Path, tmp: Path, hour_s: int) -> dict:
    """In a fresh process: RSS after opening an hour-long video with a full-length curve."""
    n = hour_s * FPS
    video = make_video(work / f"bench_hour_{hour_s}s.mp4", (160, 120), n, 250)
    out = {"rss_start": rss_mb()[0]}
    from stanviewer.core.video import open_video

    with open_video(video) as r:  # build the frame index (cached) before timing the app
        n = r.frame_count
    fake_analysis(video, n, heat=False)
    app = App(tmp)
    t0 = time.perf_counter()
    app.open(video)
    out["open_s"] = time.perf_counter() - t0
    s = app.w.session
    out["rss_open"] = rss_mb()[0]
    out["segments"] = len(s.segments)
    lat = []
    for t in np.linspace(0.3, 0.9, 25):  # drag the threshold over a 90 000-frame curve
        t1 = time.perf_counter()
        app.w.timeline.threshold_line.setValue(float(t))
        app.spin(0.0)
        lat.append((time.perf_counter() - t1) * 1000)
    out["threshold_p95"] = pct(lat, 95)
    out["segments_min"] = len(s.segments)
    for f in np.linspace(0, n - 1, 20).astype(int):  # scrub across the hour
        s.set_frame(int(f))
        app.spin(5, lambda ff=int(f): app.w.view.showing(ff))
    app.spin(10)  # the preview pass keeps decoding in the background
    out["rss_after"], out["rss_peak"] = rss_mb()
    out["frames"] = n
    app.close()
    return out


def child(phase: str, args: argparse.Namespace, start: str = "run") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--phase",
        phase,
        "--workdir",
        str(args.workdir),
        "--hour-seconds",
        str(args.hour_seconds),
        "--stall-seconds",
        str(args.stall_seconds),
        "--stall-start",
        start,
    ]
    # a cache of its own: a second stall run must not find the first one's analysis
    env = {**os.environ, "STANVIEWER_CACHE_DIR": tempfile.mkdtemp(prefix=f"stanviewer-bench-{phase}-")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=REPO / "bench" / ".videos")
    ap.add_argument("--quick", action="store_true", help="fewer samples, shorter videos")
    ap.add_argument("--step-ms", type=float, default=100.0, help="pause between frame steps (a key tap)")
    ap.add_argument("--hour-seconds", type=int, default=3600)
    ap.add_argument("--stall-seconds", type=float, default=60.0, help="probe at most this long")
    ap.add_argument(
        "--stall-start",
        choices=("run", "launch", "both"),
        default="both",
        help="when the analysis process starts: at Run, or at launch as in the app (device probe)",
    )
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="stanviewer-bench-"))
    for var, sub in (("STANVIEWER_CACHE_DIR", "cache"), ("STANVIEWER_DATA_DIR", "data"), ("STANVIEWER_LOG_DIR", "log")):
        os.environ.setdefault(var, str(tmp / sub))
    if args.phase:
        if args.phase == "stall" and args.stall_start == "both":
            ap.error("--phase stall needs --stall-start run or launch")
        fn = {
            "stall": lambda: phase_stall(args.workdir, tmp, args.stall_seconds, args.stall_start),
            "memory": lambda: phase_memory(args.workdir, tmp, args.hour_seconds),
        }[args.phase]
        print(json.dumps(fn()))
        return 0
    if args.quick:
        args.hour_seconds = min(args.hour_seconds, 600)
    make_video(args.workdir / "bench_640x480.mp4", (640, 480), 500, 50)
    tiny_checkpoint(args.workdir / "bench-tiny.safetensors")
    t0 = time.perf_counter()
    mem = child("memory", args)
    starts = ("run", "launch") if args.stall_start == "both" else (args.stall_start,)
    stalls = [child("stall", args, start) for start in starts]
    disp = phase_display(args.workdir, tmp, args.quick, args.step_ms)
    rows = [
        ("frame step 640x480 H.264, overlay on (ms)", disp["step 640x480"], "p95 <= 25"),
        ("frame step 1920x1080 H.264, overlay on (ms)", disp["step 1920x1080"], "p95 <= 25"),
        ("timeline click -> first picture (preview or exact) (ms)", disp["click first"], "p95 <= 50"),
        ("timeline click -> exact frame (ms)", disp["click exact"], "(follows the preview)"),
    ]
    import platform

    import PySide6

    print(
        f"stanviewer GUI benchmark ({platform.node()}, {os.cpu_count()} CPUs, Qt platform "
        f"{os.environ.get('QT_QPA_PLATFORM')}, PySide6 {PySide6.__version__}; steps every {args.step_ms:.0f} ms)\n"
    )
    print("| measurement | p50 | p95 | max | n | goal |")
    print("|---|---|---|---|---|---|")
    for name, v, goal in rows:
        print(f"| {name} | {pct(v, 50):.1f} | {pct(v, 95):.1f} | {max(v):.1f} | {len(v)} | {goal} |")
    for stall in stalls:
        when = (
            "analysis process started by Run"
            if stall["start"] == "run"
            else "analysis process started at launch, as in the app"
        )
        print(
            f"| longest GUI-thread stall while analysing, {when} (ms; p99 of 5 ms ticks {stall['stall_p99']:.1f}) "
            f"| | | {stall['stall_max']:.1f} | {stall['seconds']:.0f} s, {stall['windows']} windows"
            f"{'' if stall['finished'] else ' (stopped early)'} | <= 50 |"
        )
        print(
            f"| control: the same probe as long again, nothing running (ms; p99 {stall['idle_p99']:.1f}) | | | "
            f"{stall['idle_max']:.1f} | | (machine floor) |"
        )
    print(
        f"| RSS after opening a {mem['frames']}-frame ({mem['frames'] / FPS / 60:.0f} min) video, curve, scrub (MiB) | "
        f"{mem['rss_open']:.0f} (open) | {mem['rss_after']:.0f} (after) | {mem['rss_peak']:.0f} (peak) | | <= 2048 |"
    )
    print(
        f"| threshold drag on that {mem['frames']}-frame curve, "
        f"{mem['segments']}-{mem['segments_min']} segments (ms) | "
        f"| {mem['threshold_p95']:.1f} | | 25 | |"
    )
    print(
        f"\nopening the long video (index cached) took {mem['open_s']:.1f} s; total benchmark time "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
