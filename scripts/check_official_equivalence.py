"""Numerical equivalence of stanviewer's UniFormer with the official implementation (same weights).

Nothing of the official code is vendored in this repository. Get it yourself:

    git clone https://github.com/Sense-X/UniFormer
    python scripts/check_official_equivalence.py \\
        --official UniFormer/video_classification/slowfast/models/uniformer.py

The official file is loaded at run time with importlib. What it imports and we do not have is replaced
by small stand-ins installed in ``sys.modules`` only while it is imported (and removed afterwards):
its relative ``.build`` (``MODEL_REGISTRY`` with a ``register()`` decorator), ``slowfast.utils.logging``
(``get_logger``) and ``timm`` (``models.vision_transformer._cfg``; ``models.layers.trunc_normal_``,
``DropPath``, ``to_2tuple``), written here. ``--timm-path DIR`` uses a real timm found in ``DIR``
(e.g. after ``pip install --target /tmp/timm_site --no-deps timm``) instead of the timm stand-ins.

For every case (variant, input shape) the script builds our model, randomises all its parameters and
BatchNorm statistics (so that norms, biases and running statistics all matter), builds the official
``Uniformer`` from a config namespace mirroring ``cfg.UNIFORMER`` / ``cfg.MODEL`` / ``cfg.DATA``, loads
our state dict into it with ``strict=True``, and compares in eval mode: logits, pooled features (after the
final BatchNorm and the mean over T*H*W) and the gradient of a fixed random projection of the logits
with respect to the input (what gradient explanations use). It prints a Markdown table.

    python scripts/check_official_equivalence.py --official PATH \\
        --cases small:2x8x224 base:2x8x160 --dtype float32
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stanviewer.core.models.uniformer import VARIANTS, UniFormer, UniFormerConfig  # noqa: E402

PKG = "_stanviewer_official_uniformer"


# --------------------------------------------------------------------------- stand-ins for its imports
class _Registry:
    """Stand-in for slowfast's ``MODEL_REGISTRY``: ``register()`` returns the class unchanged."""

    def __init__(self) -> None:
        self.items: dict[str, type] = {}

    def register(self, obj: type | None = None):
        def deco(cls: type) -> type:
            self.items[cls.__name__] = cls
            return cls

        return deco(obj) if obj is not None else deco


class _DropPath(nn.Module):
    """Stochastic depth stand-in (identity in eval mode, which is all this check runs)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


def _to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)


def _trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0) -> Tensor:
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def _module(name: str, **attrs: object) -> types.ModuleType:
    m = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def _stub_modules(with_timm: bool) -> dict[str, types.ModuleType]:
    import logging

    pkg = _module(PKG)
    pkg.__path__ = []  # a package, so that the file's relative ``from .build import`` resolves
    mods = {
        PKG: pkg,
        f"{PKG}.build": _module(f"{PKG}.build", MODEL_REGISTRY=_Registry()),
        "slowfast": _module("slowfast"),
        "slowfast.utils": _module("slowfast.utils"),
        "slowfast.utils.logging": _module("slowfast.utils.logging", get_logger=logging.getLogger),
    }
    mods["slowfast"].__path__ = []
    mods["slowfast.utils"].__path__ = []
    mods["slowfast"].utils = mods["slowfast.utils"]
    mods["slowfast.utils"].logging = mods["slowfast.utils.logging"]
    pkg.build = mods[f"{PKG}.build"]
    if with_timm:
        timm = _module("timm")
        models = _module("timm.models")
        vt = _module("timm.models.vision_transformer", _cfg=lambda url="", **kw: {"url": url, **kw})
        layers = _module("timm.models.layers", trunc_normal_=_trunc_normal_, DropPath=_DropPath, to_2tuple=_to_2tuple)
        for m in (timm, models):
            m.__path__ = []
        timm.models = models
        models.vision_transformer = vt
        models.layers = layers
        mods.update({"timm": timm, "timm.models": models, "timm.models.vision_transformer": vt})
        mods["timm.models.layers"] = layers
    return mods


@contextlib.contextmanager
def _patched_modules(mods: dict[str, types.ModuleType], extra_path: str | None) -> Iterator[None]:
    saved = {name: sys.modules.get(name) for name in mods}
    saved_path = list(sys.path)
    if extra_path:
        sys.path.insert(0, extra_path)
    sys.modules.update(mods)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        sys.path[:] = saved_path


def load_official(path: str | Path, timm_path: str | None = None) -> types.ModuleType:
    """Import the official ``uniformer.py`` from ``path`` with stand-ins for slowfast (and timm)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official uniformer.py not found: {path}")
    name = f"{PKG}.uniformer"
    with _patched_modules(_stub_modules(with_timm=timm_path is None), timm_path):
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(name, None)
    return module


def official_cfg(cfg: UniFormerConfig, crop: int) -> types.SimpleNamespace:
    """The fields of slowfast's config that the official ``Uniformer.__init__`` reads."""
    ns = types.SimpleNamespace
    return ns(
        UNIFORMER=ns(
            DEPTH=list(cfg.depth),
            EMBED_DIM=list(cfg.embed_dim),
            HEAD_DIM=cfg.head_dim,
            MLP_RATIO=cfg.mlp_ratio,
            QKV_BIAS=cfg.qkv_bias,
            QKV_SCALE=None,
            REPRESENTATION_SIZE=None,
            DROPOUT_RATE=cfg.drop_rate,
            ATTENTION_DROPOUT_RATE=cfg.attn_drop_rate,
            DROP_DEPTH_RATE=cfg.drop_path_rate,
            SPLIT=False,
            STD=False,
            PRETRAIN_NAME="",
        ),
        MODEL=ns(NUM_CLASSES=cfg.num_classes, USE_CHECKPOINT=False, CHECKPOINT_NUM=[0, 0, 0, 0]),
        DATA=ns(TRAIN_CROP_SIZE=crop, INPUT_CHANNEL_NUM=[cfg.in_chans]),
    )


# --------------------------------------------------------------------------- the comparison
def randomise_(model: nn.Module, seed: int) -> None:
    """Give every parameter and BatchNorm statistic a non-trivial random value (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "running_var":
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif leaf == "running_mean":
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.ndim == 1 and leaf == "weight":  # norm scales
                t.copy_(1.0 + 0.1 * torch.randn(t.shape, generator=g))
            elif t.ndim == 1:  # biases
                t.copy_(0.02 * torch.randn(t.shape, generator=g))
            else:  # conv / linear weights: default fan-in scale
                fan_in = math.prod(t.shape[1:])
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(fan_in))


def key_report(ours: dict[str, Tensor], theirs: dict[str, Tensor]) -> tuple[bool, str]:
    missing = sorted(set(theirs) - set(ours))
    unexpected = sorted(set(ours) - set(theirs))
    shapes = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    ok = not (missing or unexpected or shapes)
    if ok:
        return True, f"yes ({len(ours)} keys)"
    parts = []
    if missing:
        parts.append(f"only official: {missing[:5]}")
    if unexpected:
        parts.append(f"only ours: {unexpected[:5]}")
    if shapes:
        parts.append(f"shape differs: {shapes[:5]}")
    return False, "NO: " + "; ".join(parts)


def compare(
    module: types.ModuleType,
    variant: str,
    batch: int,
    frames: int,
    size: int,
    dtype: torch.dtype = torch.float32,
    num_classes: int = 400,
    seed: int = 0,
) -> dict[str, object]:
    """Build both models with identical weights and return the measured differences for one input."""
    torch.manual_seed(seed)
    cfg = UniFormerConfig(name=variant, num_classes=num_classes, **VARIANTS[variant])
    ours = UniFormer(cfg)
    randomise_(ours, seed)
    theirs = module.Uniformer(official_cfg(cfg, size))
    keys_ok, keys_note = key_report(ours.state_dict(), theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)  # raises if the keys do not match 1:1
    ours = ours.to(dtype).eval()
    theirs = theirs.to(dtype).eval()

    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, cfg.in_chans, frames, size, size, generator=g).to(dtype)
    w = torch.randn(batch, num_classes, generator=g).to(dtype)  # fixed projection of the logits for backward

    t0 = time.perf_counter()
    with torch.no_grad():
        f_ours = ours.forward_features(x)
        p_ours = ours.forward_head(f_ours, pre_logits=True)
        l_ours = ours.forward_head(f_ours)
        f_theirs = theirs.forward_features(x)
        p_theirs = f_theirs.flatten(2).mean(-1)
        l_theirs = theirs([x])  # the official forward takes a list of pathways
    grads = []
    for model in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        out = model(xi) if model is ours else model([xi])
        (out * w).sum().backward()
        grads.append(xi.grad)
    seconds = time.perf_counter() - t0
    gmax = grads[1].abs().max().item()
    return {
        "variant": variant,
        "input": f"{batch}x{cfg.in_chans}x{frames}x{size}x{size}",
        "dtype": str(dtype).removeprefix("torch."),
        "logit_max_abs_diff": (l_ours - l_theirs).abs().max().item(),
        "logit_max_abs": l_theirs.abs().max().item(),
        "pooled_max_abs_diff": (p_ours - p_theirs).abs().max().item(),
        "grad_max_abs_diff": (grads[0] - grads[1]).abs().max().item(),
        "grad_max_abs": gmax,
        "keys_ok": keys_ok,
        "keys": keys_note,
        "seconds": seconds,
    }


def markdown(rows: list[dict[str, object]]) -> str:
    head = (
        "| variant | input (B×C×T×H×W) | dtype | max abs Δlogit (max abs logit) | max abs Δpooled "
        "| max abs Δ∂/∂input (max abs grad) | keys match 1:1 | s |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['input']} | {r['dtype']} "
            f"| {r['logit_max_abs_diff']:.3e} ({r['logit_max_abs']:.3g}) | {r['pooled_max_abs_diff']:.3e} "
            f"| {r['grad_max_abs_diff']:.3e} ({r['grad_max_abs']:.3g}) | {r['keys']} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def parse_case(text: str) -> tuple[str, int, int, int]:
    """``small:2x8x224`` -> (variant, batch, frames, size)."""
    variant, _, dims = text.partition(":")
    b, t, s = (int(v) for v in dims.lower().split("x"))
    if variant not in VARIANTS:
        raise argparse.ArgumentTypeError(f"unknown variant {variant!r} (choose from {sorted(VARIANTS)})")
    return variant, b, t, s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", required=True, help="path to the official video_classification/.../uniformer.py")
    ap.add_argument("--timm-path", default=None, help="directory holding a real timm (else built-in stand-ins)")
    ap.add_argument(
        "--cases",
        nargs="+",
        type=parse_case,
        default=[parse_case("small:2x8x224"), parse_case("base:2x8x160")],
        help="variant:BxTxS, e.g. small:2x8x224 base:2x16x160 (default: small:2x8x224 base:2x8x160)",
    )
    ap.add_argument("--dtype", nargs="+", default=["float32"], choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-4, help="float32 logit tolerance for the exit status")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    module = load_official(args.official, args.timm_path)
    rows = []
    for variant, b, t, s in args.cases:
        for dt in args.dtype:
            r = compare(module, variant, b, t, s, dtype=getattr(torch, dt), seed=args.seed)
            print(
                f"{r['variant']} {r['input']} {r['dtype']}: dlogit {r['logit_max_abs_diff']:.3e}, "
                f"dpooled {r['pooled_max_abs_diff']:.3e}, dgrad {r['grad_max_abs_diff']:.3e}, "
                f"keys {r['keys']}, {r['seconds']:.0f} s",
                flush=True,
            )
            rows.append(r)
    print()
    print(markdown(rows))
    bad = [r for r in rows if not r["keys_ok"] or float(r["logit_max_abs_diff"]) > args.tol]  # type: ignore[arg-type]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
