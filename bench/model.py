"""Benchmark of the UniFormer backbone on the CPU: time per clip, FLOPs and GFLOP/s against a matmul peak.

For each configuration (variant, frames x side) and thread count it times, per clip (batch 1, fp32,
eval mode, random weights, 2 classes):

- ``fwd``: a forward pass under ``torch.no_grad``;
- ``fwd+bwd frozen``: forward, then ``logit[argmax].backward()`` to the input with every parameter
  ``requires_grad_(False)`` -- the saliency case (explanations must freeze the parameters);
- ``fwd+bwd unfrozen``: the same with trainable parameters (the weight gradients are computed too).

Times are medians of a few runs after warm-up. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``
(2 per multiply-add; the CPU attention kernel ``_scaled_dot_product_flash_attention_for_cpu``, which
torch does not count, is added with torch's own SDPA formulas, and the weight gradient of a grouped
convolution, which torch counts as dense, is counted as one forward convolution). The peak is the median GFLOP/s of a
4096 x 4096 fp32 ``torch.mm`` measured in the same run for each thread count, before and after the
model runs; fractions use the mean of the two.

"other load" is the machine's busy CPU time minus this process's own, in cores, during the timed runs
of that row (Linux ``/proc/stat``): on a shared machine, compare rows only when it is near 0.

Usage: ``python bench/model.py [--threads 1,2] [--configs tiny:8x64,tiny:16x112,small:8x160,small:16x224]
[--repeat-scale 1.0] [--budget 20] [--max-total SECONDS]``; Ctrl-C prints what was measured so far.
Runtime with the defaults: about 3-5 minutes on 2 idle cores; far longer when other processes compete
(``--budget`` caps the repeats of each measurement, and the "runs" column says how many were timed).
With 2 threads on a loaded machine each OpenMP barrier waits for a descheduled thread: wall clock and
even CPU time (spinning) can grow tenfold, so compare thread counts only in load-free rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    conv_flop_count,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from stanviewer.core.models.uniformer import VARIANTS, UniFormer, UniFormerConfig  # noqa: E402

MODES = ("fwd", "frozen", "unfrozen")
MODE_TITLES = {"fwd": "fwd", "frozen": "fwd+bwd frozen", "unfrozen": "fwd+bwd unfrozen"}
DEFAULT_CONFIGS = "tiny:8x64,tiny:16x112,small:8x160,small:16x224"


# --------------------------------------------------------------------------- measuring
def _cpu_sdpa_flop(q: torch.Size, k: torch.Size, v: torch.Size, *args: object, **kwargs: object) -> int:
    return sdpa_flop_count(q, k, v)


def _cpu_sdpa_backward_flop(
    g: torch.Size, q: torch.Size, k: torch.Size, v: torch.Size, *args: object, **kwargs: object
) -> int:
    return sdpa_backward_flop_count(g, q, k, v)


def _conv_backward_flop(
    grad_out: torch.Size,
    x: torch.Size,
    w: torch.Size,
    _bias: object,
    _stride: object,
    _padding: object,
    _dilation: object,
    transposed: bool,
    _output_padding: object,
    _groups: int,
    output_mask: list[bool],
    out_shape: list[torch.Size] | None = None,
    **kwargs: object,
) -> int:
    """Convolution backward: each gradient costs as much as the forward convolution.

    torch's own formula counts the weight gradient of a grouped convolution as if it were dense
    (``groups`` times too many; 64-512x for UniFormer's depthwise 3x3x3 and 5x5x5 convolutions).
    """
    n = 0
    if output_mask[0] and out_shape is not None:
        n += conv_flop_count(list(grad_out), list(w), list(out_shape[0]), not transposed)
    if output_mask[1]:
        n += conv_flop_count(list(x), list(w), list(grad_out), transposed)
    return n


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that counts the CPU flash-attention kernels and grouped conv backward right."""
    aten = torch.ops.aten
    mapping: dict[object, Callable[..., int]] = {aten.convolution_backward: _conv_backward_flop}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flop
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _cpu_sdpa_backward_flop
    return FlopCounterMode(display=False, custom_mapping=mapping)


def _machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat; (0, 0) where unavailable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


class LoadMeter:
    """Other processes' CPU use (in cores) while the block runs: machine busy minus own CPU time."""

    def __enter__(self) -> LoadMeter:
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.busy0, _ = _machine_busy_ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        own = time.process_time() - self.cpu0
        busy1, _ = _machine_busy_ticks()
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = (busy1 - self.busy0) / hz
        self.other = max(0.0, (busy - own) / wall) if wall > 0 and busy1 else float("nan")


@dataclass
class Timing:
    """Wall-clock and process CPU seconds of each timed run."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_s(self) -> float:
        return statistics.median(self.cpu)


def timed(fn: Callable[[], object], warmup: int, repeats: int, budget_s: float = float("inf")) -> Timing:
    """``repeats`` timed runs after ``warmup`` untimed ones; stops early (after at least one timed run)
    once the timed runs have used ``budget_s`` seconds of wall clock."""
    for _ in range(warmup):
        fn()
    t = Timing()
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        t.wall.append(time.perf_counter() - w0)
        t.cpu.append(time.process_time() - c0)
        if sum(t.wall) > budget_s:
            break
    return t


def matmul_peak(repeats: int = 5, n: int = 4096) -> tuple[float, float]:
    """(GFLOP/s by wall clock, GFLOP per CPU-second) of an n x n fp32 matmul (2 n^3 flops), medians."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    t = timed(lambda: torch.mm(a, b), warmup=1, repeats=repeats)
    return 2 * n**3 / t.wall_s / 1e9, 2 * n**3 / t.cpu_s / 1e9


# --------------------------------------------------------------------------- one configuration
@dataclass
class Config:
    variant: str
    frames: int
    side: int

    @property
    def label(self) -> str:
        return f"{self.variant} {self.frames}x{self.side}"

    def repeats(self, mode: str, scale: float) -> tuple[int, int]:
        """(warm-up, timed runs): fewer for the large clips."""
        big = self.variant != "tiny" and self.frames * self.side * self.side >= 16 * 224 * 224
        if big:
            n = 3 if mode == "fwd" else 2
            return 0, max(1, round(n * scale))  # the FLOP-counting run is the warm-up
        n = 7 if self.variant == "tiny" else 4
        return 1, max(1, round(n * scale))


@dataclass
class Row:
    config: Config
    threads: int
    times: dict[str, Timing] = field(default_factory=dict)
    other_load: float = float("nan")

    def median(self, mode: str) -> float:
        return self.times[mode].wall_s

    def cpu(self, mode: str) -> float:
        return self.times[mode].cpu_s


def build(variant: str) -> UniFormer:
    torch.manual_seed(0)
    model = UniFormer(UniFormerConfig(name=variant, **{**VARIANTS[variant], "num_classes": 2}))
    return model.eval()


def make_steps(model: UniFormer, x: torch.Tensor) -> dict[str, Callable[[], object]]:
    def fwd() -> object:
        model.requires_grad_(False)
        with torch.no_grad():
            return model(x)

    def backward(frozen: bool) -> Callable[[], object]:
        def step() -> object:
            model.requires_grad_(not frozen)
            model.zero_grad(set_to_none=True)
            xi = x.clone().requires_grad_(True)
            logits = model(xi)
            logits[0, int(logits.argmax())].backward()
            return xi.grad

        return step

    return {"fwd": fwd, "frozen": backward(True), "unfrozen": backward(False)}


def count_flops(step: Callable[[], object]) -> float:
    with flop_counter() as fc:
        step()
    return fc.get_total_flops()


# --------------------------------------------------------------------------- main
def parse_configs(text: str) -> list[Config]:
    out = []
    for item in text.split(","):
        variant, clip = item.strip().split(":")
        frames, side = (int(v) for v in clip.lower().split("x"))
        if variant not in VARIANTS:
            raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        out.append(Config(variant, frames, side))
    return out


def fmt_rate(flops: float | None, seconds: float | None, peak: float) -> str:
    if flops is None or seconds is None:
        return "–"
    rate = flops / seconds / 1e9
    return f"{rate:.0f} ({rate / peak:.2f})"


def fmt_s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.3f}"


@dataclass
class Results:
    configs: list[Config]
    flops: dict[tuple[str, str], float] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    peaks: dict[int, list[tuple[float, float]]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def measure(res: Results, threads: list[int], a: argparse.Namespace, start: float) -> None:
    """Fill ``res``; measurements that would start after ``--max-total`` seconds are skipped."""

    def over() -> bool:
        return a.max_total is not None and time.perf_counter() - start > a.max_total

    for nt in threads:
        if over():
            res.skipped.append(f"everything on {nt} thread(s)")
            continue
        torch.set_num_threads(nt)
        res.peaks[nt] = [matmul_peak()]
        for cfg in res.configs:
            if over():
                res.skipped.append(f"{cfg.label} threads {nt}")
                continue
            model = build(cfg.variant)
            res.params[cfg.variant] = sum(q.numel() for q in model.parameters())
            x = torch.randn(1, 3, cfg.frames, cfg.side, cfg.side, generator=torch.Generator().manual_seed(1))
            steps = make_steps(model, x)
            row = Row(cfg, nt)
            res.rows.append(row)
            loads = []
            for mode in MODES:
                if over():
                    res.skipped.append(f"{cfg.label} threads {nt} {MODE_TITLES[mode]}")
                    continue
                warmup, repeats = cfg.repeats(mode, a.repeat_scale)
                if (cfg.label, mode) not in res.flops:
                    res.flops[(cfg.label, mode)] = count_flops(steps[mode])  # doubles as a warm-up run
                else:
                    warmup = max(warmup, 1)
                with LoadMeter() as lm:
                    row.times[mode] = timed(steps[mode], warmup, repeats, a.budget)
                loads.append(lm.other)
                row.other_load = statistics.fmean(loads)
                print(
                    f"# {cfg.label:<14} threads {nt}  {MODE_TITLES[mode]:<17} "
                    f"median {row.median(mode):.3f} s of {[round(t, 3) for t in row.times[mode].wall]} "
                    f"(CPU {row.cpu(mode):.3f} s)  other load {lm.other:.2f} cores",
                    file=sys.stderr,
                    flush=True,
                )
        if not over():
            res.peaks[nt].append(matmul_peak())


def report(res: Results, elapsed: float, interrupted: bool) -> None:
    peak = {nt: statistics.fmean(w for w, _ in v) for nt, v in res.peaks.items()}
    cpu_peak = {nt: statistics.fmean(c for _, c in v) for nt, v in res.peaks.items()}
    print(f"## UniFormer on the CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)\n")
    print(
        f"torch {torch.__version__}, fp32, batch 1, eval mode, random weights, 2 classes; "
        f"total runtime {elapsed:.0f} s{' (interrupted)' if interrupted else ''}.\n"
    )
    print("Matmul peak (4096² fp32 `torch.mm`, median of 5, before / after the model runs):\n")
    for nt, v in res.peaks.items():
        walls = " / ".join(f"{w:.1f}" for w, _ in v)
        cpus = " / ".join(f"{c:.1f}" for _, c in v)
        print(
            f"- {nt} thread(s): {walls} GFLOP/s wall clock (fractions below use {peak[nt]:.1f}); "
            f"{cpus} GFLOP per CPU-second (fractions use {cpu_peak[nt]:.1f})"
        )
    print("\n| model | clip T×S | params | GFLOP fwd | GFLOP fwd+bwd frozen | GFLOP fwd+bwd unfrozen |")
    print("|---|---|---|---|---|---|")
    for cfg in res.configs:
        if cfg.variant not in res.params:
            continue
        f = [res.flops.get((cfg.label, m)) for m in MODES]
        cells = " | ".join("–" if v is None else f"{v / 1e9:.2f}" for v in f)
        print(f"| {cfg.variant} | {cfg.frames}×{cfg.side} | {res.params[cfg.variant] / 1e6:.2f} M | {cells} |")

    def t(r: Row, mode: str, cpu: bool = False) -> float | None:
        if mode not in r.times:
            return None
        return r.cpu(mode) if cpu else r.median(mode)

    print(
        "\nWall-clock time per clip (median s) and GFLOP/s (fraction of the wall-clock matmul peak); "
        "unfrozen/frozen = ratio of the fwd+bwd times:\n"
    )
    print(
        "| model | clip | threads | fwd s | fwd GFLOP/s | fwd+bwd frozen s | GFLOP/s | "
        "fwd+bwd unfrozen s | GFLOP/s | unfrozen/frozen | runs | other load (cores) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res.rows:
        cells = []
        for mode in MODES:
            cells += [fmt_s(t(r, mode)), fmt_rate(res.flops.get((r.config.label, mode)), t(r, mode), peak[r.threads])]
        runs = "/".join(str(len(r.times[m].wall)) if m in r.times else "0" for m in MODES)
        fr, un = t(r, "frozen"), t(r, "unfrozen")
        ratio = f"{un / fr:.2f}" if fr and un else "–"
        print(
            f"| {r.config.variant} | {r.config.frames}×{r.config.side} | {r.threads} | {' | '.join(cells)} | "
            f"{ratio} | {runs} | {r.other_load:.2f} |"
        )
    print(
        "\nProcess CPU time per clip (median s; all threads summed) and GFLOP per CPU-second (fraction of the "
        "matmul's): less sensitive to other load than wall clock (with 1 thread it estimates the load-free "
        "time):\n"
    )
    print(
        "| model | clip | threads | fwd CPU s | GFLOP/CPU-s | frozen CPU s | GFLOP/CPU-s | "
        "unfrozen CPU s | GFLOP/CPU-s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in res.rows:
        cells = []
        for mode in MODES:
            c = t(r, mode, cpu=True)
            cells += [fmt_s(c), fmt_rate(res.flops.get((r.config.label, mode)), c, cpu_peak[r.threads])]
        print(f"| {r.config.variant} | {r.config.frames}×{r.config.side} | {r.threads} | {' | '.join(cells)} |")
    by = {(r.config.label, r.threads): r for r in res.rows}
    parts = []
    for cfg in res.configs:
        r1, r2 = by.get((cfg.label, 1)), by.get((cfg.label, 2))
        if r1 and r2 and all(m in r1.times and m in r2.times for m in ("fwd", "frozen")):
            parts.append(
                f"{cfg.label} {r1.median('fwd') / r2.median('fwd'):.2f} / "
                f"{r1.median('frozen') / r2.median('frozen'):.2f}"
            )
    if parts:
        print("\nSpeed-up of 2 threads over 1 (wall clock, fwd / fwd+bwd frozen): " + "; ".join(parts) + ".")
    if res.skipped:
        print(f"\nSkipped (over --max-total or interrupted): {', '.join(res.skipped)}.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"variant:TxS list (default {DEFAULT_CONFIGS})")
    p.add_argument("--repeat-scale", type=float, default=1.0, help="multiply the number of timed runs")
    p.add_argument(
        "--budget",
        type=float,
        default=20.0,
        help="stop repeating a measurement once its timed runs took this many seconds (default 20)",
    )
    p.add_argument(
        "--max-total",
        type=float,
        default=None,
        help="start no new measurement after this many seconds; print what was measured (default: no limit)",
    )
    a = p.parse_args(argv)
    res = Results(parse_configs(a.configs))
    start = time.perf_counter()
    interrupted = False
    try:
        measure(res, [int(t) for t in a.threads.split(",")], a, start)
    except KeyboardInterrupt:
        interrupted = True
    report(res, time.perf_counter() - start, interrupted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
