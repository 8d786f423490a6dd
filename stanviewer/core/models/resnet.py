"""ResNet image backbone for per-frame features (He et al. 2016), written for stanviewer in timm's shape.

Parameter names and shapes follow torchvision's ``torchvision.models.resnet`` (v1.5: the stride of a
Bottleneck sits on its 3x3 conv): ``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer2.0.downsample.0`` ...
``fc``. So a user-supplied ImageNet (or Kinetics-trained 2-D) ``resnet18`` / ``resnet50`` state dict
loads with :func:`checkpoint_filter_fn` (which drops the 1000-class ``fc``). torchvision itself is not
used: it would replace stanviewer's torch build (DESIGN.md §6).

Shapes: input ``Tensor[N, 3, H, W]`` (one frame per sample); ``forward_features`` returns the last
stage's map ``Tensor[N, C, H/32, W/32]`` (``C = 512`` for ResNet-18, ``2048`` for ResNet-50, ``128`` for
the narrow CPU variant); ``forward_head(x, pre_logits=True)`` average-pools it to ``Tensor[N, C]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor, nn

from stanviewer.core.models.configs import config_kwargs, config_to_dict

__all__ = [
    "VARIANTS",
    "ResNet",
    "ResNetConfig",
    "checkpoint_filter_fn",
    "resnet18",
    "resnet50",
    "resnet_narrow",
]


@dataclass
class ResNetConfig:
    """Architecture of a ResNet.

    Attributes:
        block: ``basic`` (two 3x3 convs, expansion 1) or ``bottleneck`` (1x1, 3x3, 1x1; expansion 4).
        layers: residual blocks per stage.
        widths: planes per stage (output channels are ``widths[i] * expansion``).
        stem: channels of the 7x7 stem conv.
        num_classes: size of ``fc``; 0 for a feature extractor without ``fc``.
        name: variant name (``resnet18``, ``resnet50``, ``narrow``).
    """

    block: str = "basic"
    layers: tuple[int, int, int, int] = (2, 2, 2, 2)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem: int = 64
    in_chans: int = 3
    num_classes: int = 0
    zero_init_residual: bool = False
    name: str = "resnet18"

    def to_dict(self) -> dict:
        return config_to_dict(self, ("layers", "widths"))

    @classmethod
    def from_dict(cls, d: dict) -> ResNetConfig:
        return cls(**config_kwargs(cls, d, ("layers", "widths")))


VARIANTS: dict[str, dict] = {
    "resnet18": {"block": "basic", "layers": (2, 2, 2, 2), "widths": (64, 128, 256, 512), "stem": 64},
    "resnet50": {"block": "bottleneck", "layers": (3, 4, 6, 3), "widths": (64, 128, 256, 512), "stem": 64},
    "narrow": {"block": "basic", "layers": (2, 2, 2, 2), "widths": (16, 32, 64, 128), "stem": 16},
}


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride, v1.5), 1x1 expand x4, with a residual connection (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with timm-style ``forward_features`` / ``forward_head`` and torchvision parameter names."""

    def __init__(self, cfg: ResNetConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or ResNetConfig()
        if cfg.block not in ("basic", "bottleneck"):
            raise ValueError(f"unknown ResNet block {cfg.block!r} (basic or bottleneck)")
        self.cfg = cfg
        block: type[BasicBlock] | type[Bottleneck] = BasicBlock if cfg.block == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(cfg.in_chans, cfg.stem, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin = cfg.stem
        stages = []
        for i, (planes, n) in enumerate(zip(cfg.widths, cfg.layers)):
            stride = 1 if i == 0 else 2
            down, cout = None, planes * block.expansion
            if stride != 1 or cin != cout:
                down = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
            blocks = [block(cin, planes, stride, down)]
            cin = planes * block.expansion
            blocks += [block(cin, planes) for _ in range(1, n)]
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = cin
        self.num_classes = cfg.num_classes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if cfg.zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Replace ``fc`` (``num_classes == 0``: no classifier, ``forward`` returns pooled features)."""
        self.num_classes = self.cfg.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: Tensor) -> Tensor:
        """``Tensor[N, 3, H, W]`` -> last stage map ``Tensor[N, C, H/32, W/32]`` (sizes rounded up)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool ``Tensor[N, C, h, w]`` -> ``Tensor[N, C]``, then ``fc`` (unless ``pre_logits``)."""
        x = self.avgpool(x).flatten(1)
        return x if pre_logits else self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create(variant: str, **kwargs: object) -> ResNet:
    return ResNet(ResNetConfig(name=variant, **{**VARIANTS[variant], **kwargs}))  # type: ignore[arg-type]


def resnet18(**kwargs: object) -> ResNet:
    """ResNet-18: BasicBlock, [2, 2, 2, 2], 512 features (11.69 M parameters with the 1000-class fc)."""
    return _create("resnet18", **kwargs)


def resnet50(**kwargs: object) -> ResNet:
    """ResNet-50: Bottleneck, [3, 4, 6, 3], 2048 features (25.56 M parameters with the 1000-class fc)."""
    return _create("resnet50", **kwargs)


def resnet_narrow(**kwargs: object) -> ResNet:
    """Narrow CPU variant: ResNet-18 depths with widths 16/32/64/128 (0.7 M parameters without fc)."""
    return _create("narrow", **kwargs)


# --------------------------------------------------------------------------- foreign checkpoints
_WRAPPERS = ("state_dict", "model", "model_state", "module", "net")
_PREFIXES = ("module.", "_orig_mod.", "backbone.", "encoder.", "model.")


def _unwrap(state: dict) -> dict:
    for key in _WRAPPERS:
        inner = state.get(key) if isinstance(state, dict) else None
        if isinstance(inner, dict) and any(isinstance(v, Tensor) for v in inner.values()):
            return _unwrap(inner)
    return state


_MM_CONV = re.compile(r"^(.*?)conv(\d)\.(conv|bn)\.(.+)$")
_MM_DOWN = re.compile(r"^(.*)downsample\.(conv|bn)\.(.+)$")


def _from_mmaction(key: str) -> str:
    """mmaction2/mmcv ``ConvModule`` names -> torchvision names (``layer1.0.conv1.bn.weight`` ->
    ``layer1.0.bn1.weight``, ``downsample.conv.weight`` -> ``downsample.0.weight``); others unchanged."""
    m = _MM_DOWN.match(key)
    if m:
        return f"{m.group(1)}downsample.{0 if m.group(2) == 'conv' else 1}.{m.group(3)}"
    m = _MM_CONV.match(key)
    if m:
        pre, i, kind, rest = m.groups()
        return f"{pre}{'conv' if kind == 'conv' else 'bn'}{i}.{rest}"
    return key


def checkpoint_filter_fn(state_dict: dict, model: ResNet) -> tuple[dict[str, Tensor], list[str]]:
    """Map a foreign ResNet state dict (e.g. ImageNet or Kinetics weights) onto ``model``'s keys.

    Reads torchvision/timm names as they are and mmaction2 2-D ResNet names (TSN/TSM-style Kinetics
    checkpoints: ``backbone.layer1.0.conv1.conv.weight``, ``...conv1.bn.*``, ``downsample.conv/bn``).
    Unwraps ``state_dict`` / ``model`` / ``model_state`` containers, strips ``module.``, ``_orig_mod.``,
    ``backbone.``, ``encoder.`` and ``model.`` prefixes, drops classifiers (``fc.*`` when ``model`` has
    none or its shape differs; mmaction2's ``cls_head.*``), and fills BatchNorm ``num_batches_tracked``
    counters that older files lack. Other keys pass through unchanged, so a strict load names anything
    missing or unexpected.

    Returns:
        The mapped state dict and notes (what was dropped or filled), for the model card.
    """
    sd = _unwrap(state_dict)
    target = model.state_dict()
    out: dict[str, Tensor] = {}
    notes: list[str] = []
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            continue
        if key.startswith("cls_head."):
            notes.append("dropped the checkpoint's classifier cls_head")
            continue
        k = key
        for prefix in _PREFIXES:
            k = k.removeprefix(prefix)
        k = _from_mmaction(k)
        if k.startswith("fc.") and (k not in target or tuple(target[k].shape) != tuple(value.shape)):
            notes.append(f"dropped the checkpoint's classifier fc ({value.shape[0]} outputs)")
            continue
        out[k] = value
    filled = [k for k in target if k.endswith("num_batches_tracked") and k not in out]
    for k in filled:
        out[k] = target[k].clone()
    if filled:
        notes.append(f"filled {len(filled)} BatchNorm num_batches_tracked counters")
    return out, sorted(set(notes))


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
