"""The paper's per-frame CNN baselines (PAPER.md §5): a 2-D ResNet per frame, a head over the sequence.

Every frame of a clip goes through a ResNet (:mod:`~stanviewer.core.models.resnet`); its pooled feature
vectors, stacked in time order, form the clip's "patched image" ``Tensor[B, T, D]``. Three heads, as in
the paper (§ "baseline models"):

- ``fcl``: one fully connected layer over the flattened patched image (``T * D`` inputs);
- ``patch`` ("CNN"): the patched image as a one-channel ``T x D`` picture -> a 3x3 conv layer (ReLU) ->
  max-pool -> two fully connected layers;
- ``rnn``: the sequence of frame features -> three LSTM layers -> two fully connected layers (from the
  last time step's output).

:class:`FrameCNN` has STAN's interface: ``forward(*clips)`` takes one ``Tensor[B, 3, T, S, S]`` per view
(with ``global+local`` the same ResNet sees both views and the frame features are averaged over views
before the head, as STAN averages its pooled features), ``evidence``, ``last_block`` and ``spec``. Grad-CAM
hooks :attr:`FrameCNN.last_block`, whose output is the last ResNet stage arranged as a clip
``Tensor[B, C, T, h, w]``: one time step per frame (STAN's stem halves T; this model does not).

Architecture names: ``cnn-<backbone>-<head>`` with backbone ``resnet18``, ``resnet50`` or ``narrow`` (the
CPU variant, ResNet-18 depths at widths 16/32/64/128) and head ``fcl``, ``patch`` or ``rnn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from stanviewer.core.models.configs import config_kwargs, config_to_dict
from stanviewer.core.models.registry import CNN_ARCHS
from stanviewer.core.models.resnet import VARIANTS as RESNETS
from stanviewer.core.models.resnet import ResNet, ResNetConfig
from stanviewer.core.models.stan import FeatureNorm, ModelSpec
from stanviewer.core.views import view_names

__all__ = ["HEADS", "FrameCNN", "FrameCNNConfig", "arch_names", "parse_arch"]

HEADS = ("fcl", "patch", "rnn")


def arch_names() -> list[str]:
    """Every per-frame CNN architecture name, e.g. ``cnn-narrow-patch``."""
    return list(CNN_ARCHS)


def parse_arch(arch: str) -> tuple[str, str]:
    """``cnn-<backbone>-<head>`` -> ``(backbone, head)``; ValueError for anything else."""
    if arch not in CNN_ARCHS:
        raise ValueError(f"not a per-frame CNN architecture: {arch!r} (one of {', '.join(CNN_ARCHS)})")
    _, backbone, head = arch.split("-")
    return backbone, head


@dataclass
class FrameCNNConfig:
    """Architecture of a :class:`FrameCNN` (stored as ``spec.backbone`` in checkpoints).

    Attributes:
        backbone: ResNet variant; ``resnet`` holds its full :class:`ResNetConfig` as a dict.
        head: ``fcl``, ``patch`` or ``rnn``.
        frames: clip length T (the ``fcl`` and ``patch`` heads have T-dependent input sizes).
        patch_channels, patch_pool: conv channels and max-pool size (time, feature) of the ``patch`` head;
            a feature pool of 0 means ``max(2, D // 256)``.
        hidden: width of the first of the two fully connected layers (``patch`` and ``rnn``).
        lstm_hidden, lstm_layers: the ``rnn`` head's LSTM.
        drop_rate: dropout before the fully connected layers.
    """

    backbone: str = "narrow"
    head: str = "patch"
    frames: int = 8
    resnet: dict = field(default_factory=dict)
    patch_channels: int = 8
    patch_pool: tuple[int, int] = (2, 0)
    hidden: int = 128
    lstm_hidden: int = 128
    lstm_layers: int = 3
    drop_rate: float = 0.2

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose from {', '.join(HEADS)}")
        if not self.resnet:
            if self.backbone not in RESNETS:
                raise ValueError(f"unknown ResNet variant {self.backbone!r}; choose from {', '.join(RESNETS)}")
            self.resnet = ResNetConfig(name=self.backbone, **RESNETS[self.backbone]).to_dict()  # type: ignore[arg-type]
        self.patch_pool = (int(self.patch_pool[0]), int(self.patch_pool[1]))

    def to_dict(self) -> dict:
        return config_to_dict(self, ("patch_pool",))

    @classmethod
    def from_dict(cls, d: dict) -> FrameCNNConfig:
        return cls(**config_kwargs(cls, d, ("patch_pool",)))

    @classmethod
    def for_arch(cls, arch: str, frames: int) -> FrameCNNConfig:
        backbone, head = parse_arch(arch)
        return cls(backbone=backbone, head=head, frames=frames)


class FrameStack(nn.Module):
    """Per-frame maps ``Tensor[N*T, C, h, w]`` -> clip layout ``Tensor[N, C, T, h, w]`` (Grad-CAM's layer)."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: Tensor) -> Tensor:
        nt, c, h, w = x.shape
        return x.view(nt // self.frames, self.frames, c, h, w).transpose(1, 2)


class FCLHead(nn.Module):
    """One fully connected layer over the flattened patched image ``Tensor[B, T, D]`` -> ``Tensor[B, K]``."""

    def __init__(self, frames: int, dim: int, classes: int, drop: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(frames * dim, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.drop(x.flatten(1)))


class PatchHead(nn.Module):
    """The paper's "CNN": conv 3x3 (ReLU) + max-pool over the ``T x D`` patched image, then two FC layers.

    ``Tensor[B, T, D]`` -> ``Tensor[B, K]``.
    """

    def __init__(self, frames: int, dim: int, classes: int, cfg: FrameCNNConfig) -> None:
        super().__init__()
        pt = max(1, min(cfg.patch_pool[0], frames))
        pd = cfg.patch_pool[1] or max(2, dim // 256)
        self.conv = nn.Conv2d(1, cfg.patch_channels, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d((pt, pd))
        flat = cfg.patch_channels * (frames // pt) * (dim // pd)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.fc1 = nn.Linear(flat, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.act(self.conv(x.unsqueeze(1)))).flatten(1)
        x = self.drop(self.act(self.fc1(self.drop(x))))
        return self.fc2(x)


class RNNHead(nn.Module):
    """Three LSTM layers over ``Tensor[B, T, D]``, the last step's output through two FC layers -> ``[B, K]``."""

    def __init__(self, dim: int, classes: int, cfg: FrameCNNConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True, dropout=cfg.drop_rate)
        self.drop = nn.Dropout(cfg.drop_rate)
        self.fc1 = nn.Linear(cfg.lstm_hidden, cfg.hidden)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(cfg.hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return self.fc2(self.drop(self.act(self.fc1(self.drop(out[:, -1])))))


class FrameCNN(FeatureNorm):
    """Per-frame ResNet features of each view, averaged over views, then a sequence head."""

    def __init__(self, spec: ModelSpec, backbone: ResNet | None = None) -> None:
        super().__init__()
        if spec.backbone:
            cfg = FrameCNNConfig.from_dict(spec.backbone)
        else:
            cfg = FrameCNNConfig.for_arch(spec.arch, spec.frames)
        if cfg.frames != spec.frames:
            raise ValueError(f"the model was built for {cfg.frames}-frame clips, the spec says {spec.frames}")
        self.spec, self.cfg = spec, cfg
        if backbone is None:
            backbone = ResNet(ResNetConfig.from_dict({**cfg.resnet, "num_classes": 0}))
        if backbone.num_classes:
            backbone.reset_classifier(0)
        cfg.resnet = backbone.cfg.to_dict()
        spec.backbone = cfg.to_dict()
        self.backbone = backbone
        self.frame_stack = FrameStack(spec.frames)
        D, K, T = backbone.num_features, len(spec.classes), spec.frames
        if cfg.head == "fcl":
            self.head: nn.Module = FCLHead(T, D, K, cfg.drop_rate)
        elif cfg.head == "patch":
            self.head = PatchHead(T, D, K, cfg)
        else:
            self.head = RNNHead(D, K, cfg)
        self.view_names = view_names(spec.views)
        self._init_feature_norm(D)  # per frame feature, as STAN's pooled features

    @property
    def last_block(self) -> nn.Module:
        """The layer Grad-CAM hooks: output ``Tensor[B, C, T, h, w]`` (last ResNet stage, one step per frame)."""
        return self.frame_stack

    def features(self, *clips: Tensor) -> Tensor:
        """Frame features averaged over views, the patched image: ``Tensor[B, T, D]``."""
        if len(clips) != len(self.view_names):
            raise ValueError(f"expected {len(self.view_names)} view tensor(s) ({self.spec.views}), got {len(clips)}")
        b, _, t, s1, s2 = clips[0].shape
        if t != self.spec.frames:
            raise ValueError(f"this model takes clips of {self.spec.frames} frames, not {t}")
        x = clips[0] if len(clips) == 1 else torch.cat(clips, 0)  # [V*B, 3, T, S, S]
        frames = x.transpose(1, 2).reshape(-1, x.shape[1], s1, s2)  # [V*B*T, 3, S, S], a contiguous copy
        maps = self.frame_stack(self.backbone.forward_features(frames))  # [V*B, C, T, h, w]
        f = maps.mean((3, 4)).transpose(1, 2)  # [V*B, T, C]
        if len(clips) > 1:
            f = f.reshape(len(clips), b, t, -1).mean(0)
        return f

    def forward(self, *clips: Tensor) -> Tensor:
        """One ``Tensor[B, 3, T, S, S]`` per view -> logits ``Tensor[B, classes]``."""
        return self.classify(self.features(*clips))

    def classify(self, f: Tensor) -> Tensor:
        """Patched image ``Tensor[B, T, D]`` -> logits (standardised first when the spec asks for it)."""
        return self.head(self.standardise(f))

    def evidence(self, logits: Tensor) -> Tensor:
        """Log-odds of the target class against the others: ``Tensor[B]`` (the MIL instance score)."""
        t = self.spec.target_index
        others = torch.cat([logits[:, :t], logits[:, t + 1 :]], 1)
        return logits[:, t] - torch.logsumexp(others, 1)

    def randomisation_levels(self) -> dict[str, list[nn.Module]]:
        """Modules re-initialised, top down, by the model-randomisation check (names as for STAN)."""
        bb = self.backbone
        return {
            "head": [self.head],
            "blocks4": [bb.layer4],
            "blocks3": [bb.layer3],
            "blocks2": [bb.layer2],
            "blocks1": [bb.layer1, bb.conv1, bb.bn1],
        }
