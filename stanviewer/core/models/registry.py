"""Architecture registry: arch name (``ModelSpec.arch``) -> model builder and a one-line description.

Importing this module does not import torch (the app's GUI process uses :func:`describe_arch`); the
model modules are imported when a model is built.

- STAN (UniFormer backbone): ``tiny``, ``small``, ``base`` (and legacy names starting with ``uniformer``);
- per-frame CNNs (PAPER.md §5): ``cnn-<resnet18|resnet50|narrow>-<fcl|patch|rnn>``;
- posture-MIL (``posture-narrow``): a pose reader and a per-frame MIL head over whole videos
  (:mod:`stanviewer.core.models.posture`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from stanviewer.core.models.stan import ModelSpec

__all__ = [
    "CNN_ARCHS",
    "POSTURE_ARCHS",
    "STAN_ARCHS",
    "arch_names",
    "build_model",
    "describe_arch",
    "family",
    "is_known",
]

STAN_ARCHS = ("tiny", "small", "base")
_CNN_BACKBONES = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "narrow": "narrow ResNet (16-128 wide)"}
_CNN_HEADS = {
    "fcl": "fully connected head",
    "patch": "conv + max-pool + 2 FC over the patched image",
    "rnn": "3 LSTM layers + 2 FC",
}
CNN_ARCHS = tuple(f"cnn-{b}-{h}" for b in _CNN_BACKBONES for h in _CNN_HEADS)
POSTURE_ARCHS = ("posture-narrow",)


def arch_names() -> list[str]:
    """Every architecture ``stanviewer train --arch`` accepts."""
    return [*STAN_ARCHS, *CNN_ARCHS, *POSTURE_ARCHS]


def family(arch: str) -> str:
    """``stan``, ``cnn``, ``posture`` or ``unknown``."""
    if arch in STAN_ARCHS or arch.startswith("uniformer"):
        return "stan"
    if arch in CNN_ARCHS:
        return "cnn"
    if arch in POSTURE_ARCHS:
        return "posture"
    return "unknown"


def is_known(arch: str) -> bool:
    return family(arch) != "unknown"


def describe_arch(arch: str | None) -> str:
    """A short human description, e.g. ``STAN, UniFormer backbone`` or ``per-frame CNN: ResNet-50 ...``."""
    arch = arch or "?"
    kind = family(arch)
    if kind == "stan":
        return "STAN, UniFormer backbone"
    if kind == "cnn":
        _, bb, head = arch.split("-")
        return f"per-frame CNN: {_CNN_BACKBONES[bb]} frame features, {_CNN_HEADS[head]}"
    if kind == "posture":
        return "posture-MIL: joints read by narrow ResNets, per-frame evidence over the whole video"
    return f"unknown architecture {arch}"


def build_model(spec: ModelSpec) -> nn.Module:
    """A fresh (randomly initialised) model for ``spec``; ValueError for an unknown architecture."""
    kind = family(spec.arch)
    if kind == "stan":
        from stanviewer.core.models.stan import STAN

        return STAN(spec)
    if kind == "cnn":
        from stanviewer.core.models.framecnn import FrameCNN

        return FrameCNN(spec)
    if kind == "posture":
        from stanviewer.core.models.posture import PostureMIL

        return PostureMIL(spec)
    raise ValueError(f"unknown architecture {spec.arch!r}; choose from {', '.join(arch_names())}")
