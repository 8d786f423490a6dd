"""Benchmark of whole-video explanation (issue 5): throughput per method, against a naive baseline.

    python bench/explain.py [--checkpoint X.safetensors] [--workdir DIR] [--skip-memory] [--skip-naive]
                            [--skip-main] [--compare cnn-narrow-patch,cnn-narrow-rnn]

Prints Markdown tables:
1. frames/s per method for a 394-frame video (synthetic, 30 fps) at full coverage (every frame seen by
   the model), for stanviewer's scorer (windows batched, SmoothGrad copies batched, parameters frozen)
   and for a naive baseline (one window at a time, SmoothGrad one noisy copy at a time, parameters left
   trainable), their ratio, and GFLOP/s (FlopCounterMode count of the model's work / time) as a
   fraction of a 4096x4096 fp32 matmul peak measured in the same run;
2. frames/s per method of random-weight models of other architectures (``--compare``, by default the
   per-frame CNN ``cnn-narrow-patch``) beside the checkpoint, same views, clip length, size and ROI
   (``ARCH:TxS``, e.g. ``small:16x224``, sets another clip length and input size);
3. the posture model (``--posture``, by default the bundled ``posture-narrow-synth``): frames/s of its
   whole-video analysis (read every frame's joints, then score; with and without heatmaps, full and
   sampled coverage) on the same video;
4. peak RSS of a process analysing a 1-minute and a 10-minute video (should be flat in video length).
The machine is shared: compare ratios measured in one run.
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stanviewer.core.explain.methods import LogOdds, make_method  # noqa: E402
from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader, plan_windows  # noqa: E402
from stanviewer.core.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from stanviewer.core.models.stan import STAN, ModelSpec  # noqa: E402
from stanviewer.core.progress import run_job  # noqa: E402
from stanviewer.core.video import open_video  # noqa: E402
from stanviewer.core.views import global_view, local_view, normalise, view_names  # noqa: E402

METHODS = ["window", "vanilla", "gradcam", "smoothgrad"]


def matmul_peak(threads: int, device: str = "cpu") -> float:
    torch.set_num_threads(threads)
    a = torch.randn(4096, 4096, device=device)
    b = torch.randn(4096, 4096, device=device)
    a @ b
    best = []
    for _ in range(5):
        if device != "cpu":
            torch.cuda.synchronize()
        t = time.perf_counter()
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()
        best.append(time.perf_counter() - t)
    return 2 * 4096**3 / float(np.median(best)) / 1e9


def make_video(path: Path, frames: int, fps: float = 30.0, long: bool = False) -> Path:
    from stanviewer.core.synth.dataset import make_video as mk
    from stanviewer.core.synth.dataset import random_subject, random_video_spec

    if path.exists():
        return path
    rng = np.random.default_rng(7)
    subj = random_subject(rng, "B1")
    subj.fps, subj.width, subj.height = fps, 320, 240
    spec = random_video_spec(rng, subj, path.stem, True, duration=frames / fps if long else None)
    spec.duration = frames / fps
    mk(spec, path.parent)
    produced = path.parent / "videos" / f"{path.stem}.mp4"
    produced.replace(path)
    return path


def flops_per_batch(ck: Checkpoint, method: str, clips: tuple[torch.Tensor, ...]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    m = make_method(method, ck.model, samples=8, batch=16)
    with FlopCounterMode(display=False) as fc:
        m.attribute(clips, ck.spec.target_index)
        if method != "window":
            with torch.no_grad():
                LogOdds(ck.model)(*clips)
    return float(fc.get_total_flops())


def naive(ck: Checkpoint, reader, method: str, roi) -> float:
    """One window at a time, SmoothGrad one copy at a time, parameters trainable; returns seconds."""
    from captum.attr import LayerGradCam, NoiseTunnel, Saliency

    spec = ck.spec
    model = ck.model
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    step = spec.step_for(reader.fps)
    plan = plan_windows(reader.frame_count, spec.frames, step, max(1, spec.frames // 2), "full")
    f = LogOdds(model)
    t0 = time.perf_counter()
    frames = {}
    boxes, square = roi
    for w in plan:
        imgs = []
        for v in view_names(spec.views):
            seq = []
            for i in w.tolist():
                if i not in frames:
                    frames[i] = reader.frame(i)
                fr = frames[i]
                seq.append(global_view(fr, spec.size) if v == "global" else local_view(fr, boxes[i], square, spec.size))
            imgs.append(normalise(torch.from_numpy(np.stack(seq)[None])).requires_grad_(True))
        x = tuple(imgs)
        if method == "vanilla":
            Saliency(f).attribute(x, target=spec.target_index)
        elif method == "smoothgrad":
            stdevs = tuple(float(0.15 * (c.max() - c.min())) for c in x)
            NoiseTunnel(Saliency(f)).attribute(
                x, nt_type="smoothgrad", nt_samples=8, nt_samples_batch_size=1, stdevs=stdevs, target=spec.target_index
            )
        elif method == "gradcam":
            LayerGradCam(f, model.last_block).attribute(x, target=spec.target_index)
        else:
            with torch.no_grad():
                f(*x)
    return time.perf_counter() - t0


def rss_child(video: Path, ckpt: Path) -> dict:
    code = f"""
import json, resource, time, sys
sys.path.insert(0, {str(ROOT)!r})
from stanviewer.core.explain.scoring import AnalysisSettings, analyze_reader
from stanviewer.core.models.checkpoint import load_checkpoint
from stanviewer.core.progress import run_job
from stanviewer.core.video import open_video
ck = load_checkpoint({str(ckpt)!r})
r = open_video({str(video)!r})
t = time.time()
a = run_job(analyze_reader(r, ck, AnalysisSettings(method='vanilla', coverage='sampled'),
            heatmap_path={str(video.with_suffix(".heat.zip"))!r}), stream=None)
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]
print(json.dumps({{'frames': r.frame_count, 'seconds': time.time() - t, 'peak_rss_mb': int(hwm) / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def compare_archs(
    base: Checkpoint, archs: list[str], reader, roi, workdir: Path, methods: list[str], device: str = "cpu"
) -> None:
    """frames/s per method of random-weight models of other architectures (e.g. the per-frame CNN family,
    issue 8) beside ``base``, with the same views, clip length, input size and ROI, at full coverage."""
    from stanviewer.core.models.registry import build_model, describe_arch

    n = reader.frame_count
    cks = [base]
    for entry in archs:  # "arch" (the checkpoint's clip) or "arch:TxS" (e.g. small:16x224)
        arch, _, clip = entry.partition(":")
        over = {}
        if clip:
            t, _, side = clip.lower().partition("x")
            over = {"frames": int(t), "size": int(side)}
        spec = ModelSpec.from_dict({**base.spec.to_dict(), "arch": arch, "backbone": {}, **over})
        torch.manual_seed(0)
        name = entry.replace(":", "-")
        path = save_checkpoint(workdir / f"random-{name}.safetensors", build_model(spec), {"name": f"random {entry}"})
        cks.append(load_checkpoint(path))
    print(f"\n| model | clip T×S | params (M) | {' | '.join(f'{m} frames/s' for m in methods)} |")
    print("|---|---|---|" + "---|" * len(methods))
    for ck in cks:
        cells = []
        for method in methods:
            st = AnalysisSettings(method=method, coverage="full", batch=16, samples=8, heatmaps=False, device=device)
            t = time.perf_counter()
            run_job(analyze_reader(reader, ck, st, roi=roi), stream=None)
            cells.append(f"{n / (time.perf_counter() - t):.0f}")
        params = sum(p.numel() for p in ck.model.parameters()) / 1e6
        clip = f"{ck.spec.frames}×{ck.spec.size}"
        row = f"| {ck.spec.arch} ({describe_arch(ck.spec.arch)}) | {clip} | {params:.2f} | {' | '.join(cells)} |"
        print(row, flush=True)


def posture_table(a: argparse.Namespace, reader, roi) -> None:
    """Frames/s of the posture model's whole-video analysis (scores only / with heatmaps; full / sampled)."""
    from stanviewer.core.paths import models_dir

    path = Path(a.posture) if a.posture else models_dir() / "posture-narrow-synth.safetensors"
    if a.posture == "" or not path.exists():
        return
    ck = load_checkpoint(path)
    n = reader.frame_count
    print(f"\nposture model {ck.name}: the same {n}-frame video and boxes\n")
    print("| coverage | heatmaps | seconds | frames/s |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for coverage in ("full", "sampled"):
            for heat in (False, True):
                st = AnalysisSettings(method="posture", coverage=coverage, device=a.device, heatmaps=heat)
                t = time.perf_counter()
                job = analyze_reader(reader, ck, st, roi=roi, heatmap_path=Path(tmp) / f"{coverage}{heat}.zip")
                run_job(job, stream=None)
                dt = time.perf_counter() - t
                print(f"| {coverage} | {'yes' if heat else 'no'} | {dt:.1f} | {n / dt:.0f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, help="default: the bundled model, else a random tiny STAN")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "stanviewer-bench-explain")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the scorer runs")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--skip-main", action="store_true", help="skip the stanviewer-vs-naive table")
    ap.add_argument(
        "--compare",
        default="cnn-narrow-patch",
        help="comma-separated architectures (random weights, the checkpoint's views/frames/size) to time beside "
        "the checkpoint, e.g. cnn-narrow-patch,cnn-narrow-rnn,cnn-resnet18-patch, or ARCH:TxS for another clip "
        "(small:16x224); '' to skip",
    )
    ap.add_argument("--posture", help="posture-model checkpoint to time (default: the bundled one; '' to skip)")
    a = ap.parse_args()
    os.environ.setdefault("STANVIEWER_CACHE_DIR", str(a.workdir / "cache"))
    a.workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(a.threads)
    if a.checkpoint is None:
        from stanviewer.core.models.bundled import BUNDLED_NAME
        from stanviewer.core.paths import models_dir

        a.checkpoint = models_dir() / BUNDLED_NAME
        if not a.checkpoint.exists():
            a.checkpoint = a.workdir / "random-tiny.safetensors"
            save_checkpoint(
                a.checkpoint, STAN(ModelSpec(views="global+local", roi_provider="none")), {"name": "random"}
            )
    ck = load_checkpoint(a.checkpoint)
    video = make_video(a.workdir / "bench394.mp4", 394)
    reader = open_video(video)
    n = reader.frame_count
    from stanviewer.core.roi import compute_roi

    track = run_job(compute_roi(reader, provider=ck.spec.roi_provider), stream=None)
    roi = (np.asarray(track.boxes, np.float32), track.crop_square())
    peak = matmul_peak(a.threads, "cuda" if a.device.startswith("cuda") else "cpu")
    # one untimed pass of every method first (CUDA context, kernel selection, first allocations; without
    # it, on an H200, the tiny model's first row came out slower than UniFormer-small at 16x224)
    for method in METHODS:
        st = AnalysisSettings(method=method, coverage="sampled", batch=16, samples=8, heatmaps=False, device=a.device)
        run_job(analyze_reader(reader, ck, st, roi=roi), stream=None)
    spec = ck.spec
    x = tuple(torch.randn(16, 3, spec.frames, spec.size, spec.size) for _ in view_names(spec.views))
    print(f"model {ck.name} ({spec.arch}, {spec.views}, {spec.frames}x{spec.size}), video {n} frames at "
          f"{reader.fps:.0f} fps, {a.threads} threads, device {a.device}, "
          f"fp32 matmul peak {peak:.0f} GFLOP/s\n")  # fmt: skip
    if not a.skip_main:
        print("| method | stanviewer s | frames/s | naive s | naive frames/s | speed-up | GFLOP/s | of peak |")
        print("|---|---|---|---|---|---|---|---|")
    step = spec.step_for(reader.fps)
    plan = plan_windows(n, spec.frames, step, max(1, spec.frames // 2), "full")
    for method in [] if a.skip_main else METHODS:
        st = AnalysisSettings(method=method, coverage="full", batch=16, samples=8, heatmaps=False, device=a.device)
        t = time.perf_counter()
        run_job(analyze_reader(reader, ck, st, roi=roi), stream=None)
        ours = time.perf_counter() - t
        dev = next(ck.model.parameters()).device
        try:
            fl = flops_per_batch(ck, method, tuple(v.to(dev) for v in x)) / 16 * len(plan)
        except RuntimeError:  # FlopCounterMode cannot count autograd.grad in some torch versions (2.11)
            fl = float("nan")
        gfs = fl / ours / 1e9
        nv = float("nan") if a.skip_naive or a.device != "cpu" else naive(ck, reader, method, roi)
        print(f"| {method} | {ours:.1f} | {n / ours:.0f} | {nv:.1f} | {n / nv:.0f} | {nv / ours:.2f}x | "
              f"{gfs:.1f} | {gfs / peak:.0%} |")  # fmt: skip
    archs = [x.strip() for x in a.compare.split(",") if x.strip()]
    if archs:
        compare_archs(ck, archs, reader, roi, a.workdir, METHODS, a.device)
    posture_table(a, reader, roi)
    if not a.skip_memory:
        print("\n| video | frames | analysis s (vanilla, sampled) | peak RSS MB |")
        print("|---|---|---|---|")
        for minutes in (1, 10):
            v = make_video(a.workdir / f"long{minutes}.mp4", int(minutes * 60 * 15), fps=15.0, long=True)
            r = rss_child(v, a.checkpoint)
            print(f"| {minutes} min | {r['frames']} | {r['seconds']:.0f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
