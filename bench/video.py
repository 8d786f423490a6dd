"""Benchmark of stanviewer.core.video: decode speed, random-access latency and memory.

Prints a Markdown table of
- sequential decode speed (``VideoReader.iter_frames``, RGB out) beside plain PyAV (decode + RGB);
- random-access latency of ``frame(i)`` for random i with the cache off (median, p95, max), and the
  time to open a file (frame index built from scratch, then read from the cache);
for long-GOP H.264 files at 640x480 and 1920x1080 that it generates; and the peak memory (RSS) of a
fresh process that iterates a 10-minute 320x240 synthetic rehab video (``stanviewer.core.synth`` long
mode), frame by frame and as 16-frame clip windows at 112x112.

Generated files are kept in ``--workdir`` (default: a folder in the system temp dir) and reused.
Usage: ``python bench/video.py [--workdir DIR] [--samples 40] [--long-seconds 600]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stanviewer.core.encode import VideoWriter  # noqa: E402
from stanviewer.core.video import open_video  # noqa: E402

FPS = 30


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """Peak RSS of this process: VmHWM on Linux (reset at exec, unlike ru_maxrss, which a child started
    by fork + exec inherits from its parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def make_h264(path: Path, width: int, height: int, frames: int, gop: int) -> Path:
    """A smooth moving texture with a moving square: no scene cuts, so keyframes come every ``gop`` frames."""
    if path.exists():
        return path
    yy, xx = np.mgrid[0:height, 0 : width + frames].astype(np.float32)
    tex = np.empty((height, width + frames, 3), np.uint8)
    tex[..., 0] = 128 + 70 * np.sin(xx / 23.0) * np.cos(yy / 31.0)
    tex[..., 1] = 128 + 60 * np.cos((xx + yy) / 41.0)
    tex[..., 2] = 110 + 50 * np.sin(yy / 17.0)
    del yy, xx
    side = height // 8
    with VideoWriter(path, FPS, "h264", gop=gop, bframes=2, preset="veryfast") as w:
        for i in range(frames):
            img = np.ascontiguousarray(tex[:, i : i + width])
            x = int((width - side) * (0.5 + 0.5 * np.sin(i / 40)))
            y = int((height - side) * (0.5 + 0.5 * np.sin(i / 27)))
            img[y : y + side, x : x + side] = (250, 240, 20)
            w.write(img)
    return path


def pyav_fps(path: Path) -> float:
    """Plain PyAV: decode every frame and convert it to RGB (the floor for any reader)."""
    t = time.perf_counter()
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        n = sum(1 for f in c.decode(video=0) if f.to_ndarray(format="rgb24") is not None)
    return n / (time.perf_counter() - t)


def measure_file(path: Path, samples: int, seed: int) -> dict:
    t = time.perf_counter()
    r = open_video(path, use_index_cache=False)
    open_cold = time.perf_counter() - t
    r.close()
    open_video(path).close()  # writes the index cache
    t = time.perf_counter()
    r = open_video(path, cache_bytes=0)  # cache off: every frame(i) seeks and decodes
    open_warm = time.perf_counter() - t
    info = r.info
    t = time.perf_counter()
    n = sum(1 for _ in r.iter_frames())
    seq_fps = n / (time.perf_counter() - t)
    rng = np.random.default_rng(seed)
    lat = []
    for i in rng.integers(0, info.frame_count, samples).tolist():
        t = time.perf_counter()
        r.frame(i)
        lat.append(time.perf_counter() - t)
    r.close()
    lat_ms = np.array(lat) * 1000
    return {
        "size": f"{info.width}x{info.height}",
        "frames": info.frame_count,
        "seconds": info.duration_s,
        "keyframes": info.keyframes,
        "seq_fps": seq_fps,
        "pyav_fps": pyav_fps(path),
        "median_ms": float(np.median(lat_ms)),
        "p95_ms": float(np.percentile(lat_ms, 95)),
        "max_ms": float(lat_ms.max()),
        "open_cold_ms": open_cold * 1000,
        "open_warm_ms": open_warm * 1000,
    }


def make_long(workdir: Path, seconds: float, seed: int) -> Path:
    """A long synthetic rehab video (one subject, one video) made once in ``workdir``."""
    from stanviewer.core.manifest import read_manifest
    from stanviewer.core.progress import run_job
    from stanviewer.core.synth import make_dataset

    out = workdir / f"long_{int(seconds)}s_seed{seed}"
    manifest = out / "manifest.csv"
    if not manifest.exists():
        print(f"generating a {seconds:.0f}-second synthetic video in {out} ...", file=sys.stderr)
        t = time.perf_counter()
        job = make_dataset(out, subjects=1, videos_per_subject=1, long_seconds=seconds, seed=seed)
        run_job(job, stream=None)
        print(f"... done in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return read_manifest(manifest)[0].video


def iterate_child(path: str, mode: str) -> None:
    """Run in a fresh process: iterate the whole video, print peak memory as JSON."""
    t = time.perf_counter()
    r = open_video(path)
    opened = time.perf_counter() - t
    base = rss_bytes()
    peak_at_open = peak_rss_bytes()
    peak = base
    n = 0
    t = time.perf_counter()
    if mode == "frames":
        for i, _frame in r.iter_frames():
            n += 1
            if i % 50 == 0:
                peak = max(peak, rss_bytes())
        pixels = r.frame_count * info_bytes(r)  # what holding every decoded frame would take
    else:
        for _window in r.iter_windows(16, 8, size=(112, 112)):
            n += 1
            if n % 10 == 0:
                peak = max(peak, rss_bytes())
        pixels = r.frame_count * 112 * 112 * 3
    elapsed = time.perf_counter() - t
    peak = max(peak, rss_bytes())
    info = r.info
    print(
        json.dumps(
            {
                "mode": mode,
                "items": n,
                "frames": info.frame_count,
                "size": f"{info.width}x{info.height}",
                "fps": info.fps,
                "seconds": info.duration_s,
                "open_s": opened,
                "iterate_s": elapsed,
                "rss_base": base,
                "rss_peak": peak,
                "hwm_open": peak_at_open,
                "hwm_end": peak_rss_bytes(),
                "all_frames_bytes": pixels,
            }
        )
    )


def info_bytes(r: object) -> int:
    w, h = r.size  # type: ignore[attr-defined]
    return w * h * 3


def measure_memory(path: Path, mode: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--_iterate", str(path), "--_mode", mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def mib(b: float) -> str:
    return f"{b / 2**20:.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stanviewer-bench")
    ap.add_argument("--samples", type=int, default=40, help="random frames per file")
    ap.add_argument("--gop", type=int, default=250, help="keyframe interval of the H.264 files")
    ap.add_argument("--seconds-sd", type=float, default=20, help="length of the 640x480 file")
    ap.add_argument("--seconds-hd", type=float, default=10, help="length of the 1920x1080 file")
    ap.add_argument("--long-seconds", type=float, default=600, help="length of the long video (0: skip)")
    ap.add_argument("--long-seed", type=int, default=34, help="synth seed (34: 320x240 at 15 fps)")
    ap.add_argument("--_iterate", help=argparse.SUPPRESS)
    ap.add_argument("--_mode", default="frames", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a._iterate:
        iterate_child(a._iterate, a._mode)
        return
    a.workdir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("STANVIEWER_CACHE_DIR", str(a.workdir / "cache"))

    files = [
        make_h264(a.workdir / f"sd_640x480_{a.seconds_sd:g}s_gop{a.gop}.mp4", 640, 480, int(a.seconds_sd * FPS), a.gop),
        make_h264(
            a.workdir / f"hd_1920x1080_{a.seconds_hd:g}s_gop{a.gop}.mp4", 1920, 1080, int(a.seconds_hd * FPS), a.gop
        ),
    ]
    rows = [measure_file(p, a.samples, seed=k) for k, p in enumerate(files)]
    print(f"\n### Decoding and random access (H.264, {FPS} fps, B-frames 2, GOP {a.gop}; {a.samples} random frames)\n")
    print(
        "| file | frames (s) | keyframes | sequential fps (reader) | sequential fps (plain PyAV) "
        "| frame(i) median | p95 | max | open: index built | open: index cached |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['frames']} ({r['seconds']:.0f} s) | {r['keyframes']} | {r['seq_fps']:.0f} "
            f"| {r['pyav_fps']:.0f} | {r['median_ms']:.0f} ms | {r['p95_ms']:.0f} ms | {r['max_ms']:.0f} ms "
            f"| {r['open_cold_ms']:.0f} ms | {r['open_warm_ms']:.0f} ms |"
        )
    if a.long_seconds > 0:
        long_path = make_long(a.workdir, a.long_seconds, a.long_seed)
        mem = [measure_memory(long_path, mode) for mode in ("frames", "windows")]
        m0 = mem[0]
        print(
            f"\n### Memory while iterating a {m0['seconds'] / 60:.0f}-minute video "
            f"({m0['size']}, {m0['fps']:.0f} fps, {m0['frames']} frames; fresh process each)\n"
        )
        print(
            "| what | items | time | RSS after open | peak RSS (sampled) | peak RSS (VmHWM) | growth while iterating "
            "| all frames decoded would be |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for m in mem:
            what = "iter_frames (RGB, full size)" if m["mode"] == "frames" else "iter_windows(16, 8) at 112x112"
            print(
                f"| {what} | {m['items']} | {m['iterate_s']:.1f} s | {mib(m['rss_base'])} | {mib(m['rss_peak'])} "
                f"| {mib(m['hwm_end'])} | {mib(max(m['rss_peak'], m['hwm_end']) - m['rss_base'])} "
                f"| {mib(m['all_frames_bytes'])} |"
            )
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, PyAV {av.__version__}")


if __name__ == "__main__":
    main()
