"""Per-frame CNN family (PAPER.md §5): ResNet backbones, the FCL/CNN/RNN heads, registry, weight import.

Training, whole-video explanations and the command line are in ``test_framecnn_train.py``.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from stanviewer.core.errors import CheckpointError
from stanviewer.core.explain.methods import frame_scores, make_method
from stanviewer.core.models.checkpoint import import_resnet, load_checkpoint, save_checkpoint
from stanviewer.core.models.framecnn import FrameCNN, FrameCNNConfig, parse_arch
from stanviewer.core.models.registry import CNN_ARCHS, build_model, describe_arch, family
from stanviewer.core.models.resnet import ResNet, checkpoint_filter_fn, param_count, resnet18, resnet50, resnet_narrow
from stanviewer.core.models.stan import STAN, ModelSpec

T, S = 4, 32


# --------------------------------------------------------------------------- torchvision key layout
def torchvision_keys(block: str, layers: tuple[int, ...]) -> list[str]:
    """The state-dict keys of torchvision's ``resnet18`` / ``resnet50`` (models/resnet.py), in order.

    Written from torchvision's code: stem ``conv1``/``bn1``; ``layerN.i`` blocks with ``conv1..convK`` and
    ``bn1..bnK`` (K = 2 BasicBlock, 3 Bottleneck); ``downsample.0`` (1x1 conv) / ``downsample.1`` (BN) on the
    first block of a stage whose stride or width changes (every first block for Bottleneck, stages 2-4
    for BasicBlock); ``fc``.
    """
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    keys = ["conv1.weight", *(f"bn1.{s}" for s in bn)]
    convs = 2 if block == "basic" else 3
    for stage, n in enumerate(layers, 1):
        for i in range(n):
            p = f"layer{stage}.{i}"
            for c in range(1, convs + 1):
                keys += [f"{p}.conv{c}.weight", *(f"{p}.bn{c}.{s}" for s in bn)]
            if i == 0 and (stage > 1 or block == "bottleneck"):
                keys += [f"{p}.downsample.0.weight", *(f"{p}.downsample.1.{s}" for s in bn)]
    return [*keys, "fc.weight", "fc.bias"]


@pytest.mark.parametrize(
    ("make", "block", "layers", "params", "features"),
    [
        (resnet18, "basic", (2, 2, 2, 2), 11_689_512, 512),
        (resnet50, "bottleneck", (3, 4, 6, 3), 25_557_032, 2048),
    ],
)
def test_resnet_matches_torchvision_layout(
    make: Callable[..., ResNet], block: str, layers: tuple[int, ...], params: int, features: int
) -> None:
    m = make(num_classes=1000)
    assert list(m.state_dict()) == torchvision_keys(block, layers)
    assert param_count(m) == params  # torchvision's documented parameter counts
    assert m.num_features == features
    sd = m.state_dict()
    assert tuple(sd["conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(sd["fc.weight"].shape) == (1000, features)
    if block == "bottleneck":  # v1.5: the stride sits on the 3x3 conv
        assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)


def test_narrow_backbone_shapes() -> None:
    m = resnet_narrow().eval()
    assert "fc.weight" not in m.state_dict()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        f = m.forward_features(x)
        v = m.forward_head(f, pre_logits=True)
    assert tuple(f.shape) == (3, 128, 2, 2)
    assert tuple(v.shape) == (3, 128)
    assert param_count(m) < 1_000_000


# --------------------------------------------------------------------------- heads and models
def _clips(n_views: int, b: int = 2, seed: int = 0) -> list[Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, T, S, S, generator=g) for _ in range(n_views)]


def _model(arch: str, views: str = "global+local", seed: int = 0) -> FrameCNN:
    torch.manual_seed(seed)
    m = build_model(ModelSpec(arch=arch, views=views, frames=T, size=S))
    assert isinstance(m, FrameCNN)
    return m.eval()


@pytest.mark.parametrize("arch", CNN_ARCHS)
def test_every_arch_shapes_and_last_block(arch: str) -> None:
    m = _model(arch)
    backbone, head = parse_arch(arch)
    assert m.cfg.backbone == backbone and m.cfg.head == head
    D = m.backbone.num_features
    seen: list[Tensor] = []
    h = m.last_block.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        x = _clips(2)
        with torch.no_grad():
            logits = m(*x)
            feats = m.features(*x)
    finally:
        h.remove()
    assert tuple(logits.shape) == (2, 2)
    assert tuple(feats.shape) == (2, T, D)
    assert torch.isfinite(logits).all()
    # views are concatenated along the batch; one time step per frame (no halving of T)
    assert tuple(seen[0].shape[:3]) == (4, D, T)
    assert tuple(m.evidence(logits).shape) == (2,)


@pytest.mark.parametrize("head", ["fcl", "patch", "rnn"])
def test_views_averaged_like_stan(head: str) -> None:
    both = _model(f"cnn-narrow-{head}", "global+local")
    one = _model(f"cnn-narrow-{head}", "global", seed=1)
    one.load_state_dict(both.state_dict())  # views do not change the parameters
    g, loc = _clips(2, seed=3)
    with torch.no_grad():
        mean = (one.features(g) + one.features(loc)) / 2
        assert torch.allclose(both.features(g, loc), mean, atol=1e-5)
        assert torch.allclose(both(g, loc), both.head(mean), atol=1e-5)
    with pytest.raises(ValueError, match="2 view"):
        both(g)


def test_each_frame_matters_and_clip_length_checked() -> None:
    m = _model("cnn-narrow-patch", "global")
    (x,) = _clips(1, b=1)
    with torch.no_grad():
        base = m(x)
        for t in range(T):
            y = x.clone()
            y[:, :, t] = 0
            assert not torch.allclose(m(y), base), f"frame {t} does not reach the output"
    with pytest.raises(ValueError, match="clips of 4 frames"):
        m(torch.randn(1, 3, T + 2, S, S))
    with pytest.raises(ValueError, match="built for 4-frame"):
        FrameCNN(ModelSpec(arch="cnn-narrow-patch", frames=6, size=S, backbone=m.spec.backbone))


def test_gradcam_one_value_per_frame() -> None:
    m = _model("cnn-narrow-patch", "global+local")
    x = tuple(_clips(2, b=1, seed=5))
    attr = make_method("gradcam", m).attribute(x, target=1)
    for a, c in zip(attr, x):
        assert a.shape == c.shape
    s = frame_scores(attr)[0]  # [T]
    assert (s[1:] != s[:-1]).all(), "neighbouring frames share a Grad-CAM value: T was pooled"
    for name in ("vanilla", "smoothgrad", "ig", "occlusion", "window"):
        out = make_method(name, m, **({"samples": 2} if name == "smoothgrad" else {})).attribute(x, target=1)
        assert all(o.shape == c.shape for o, c in zip(out, x)), name


def test_config_round_trip_and_unknown_arch() -> None:
    cfg = FrameCNNConfig.for_arch("cnn-resnet50-rnn", 8)
    assert FrameCNNConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resnet["block"] == "bottleneck"
    with pytest.raises(ValueError, match="not a per-frame CNN"):
        parse_arch("cnn-vgg-fcl")
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model(ModelSpec(arch="cnn-vgg-fcl"))
    assert isinstance(build_model(ModelSpec(arch="tiny", frames=4, size=32)), STAN)
    assert family("tiny") == "stan" and family("cnn-narrow-rnn") == "cnn" and family("x") == "unknown"
    assert "ResNet-50" in describe_arch("cnn-resnet50-patch") and "patched image" in describe_arch("cnn-resnet50-patch")
    assert "UniFormer" in describe_arch("tiny")


def test_registry_does_not_import_torch() -> None:
    code = (
        "import sys, stanviewer.core.models.registry as r; r.describe_arch('cnn-narrow-fcl'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("arch", ["cnn-narrow-fcl", "cnn-narrow-patch", "cnn-narrow-rnn"])
def test_checkpoint_round_trip(arch: str, tmp_path: Path) -> None:
    m = _model(arch)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    path = save_checkpoint(tmp_path / "m.safetensors", m, {"name": "cnn"})
    ck = load_checkpoint(path)
    assert type(ck.model) is FrameCNN
    assert ck.spec.arch == arch and ck.spec.backbone == m.spec.backbone
    x = _clips(2)
    with torch.no_grad():
        assert torch.equal(ck.model(*x), m(*x))


def test_unknown_arch_in_checkpoint(tmp_path: Path) -> None:
    m = _model("cnn-narrow-fcl")
    m.spec.arch = "cnn-vgg-fcl"
    path = save_checkpoint(tmp_path / "m.safetensors", m)
    with pytest.raises(CheckpointError, match="unknown architecture 'cnn-vgg-fcl'"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- ImageNet weights import
def _imagenet_like(make: Callable[..., ResNet], seed: int = 0) -> dict[str, Tensor]:
    """Weights in torchvision's layout, from our own model: 1000-class fc, non-default BN statistics."""
    torch.manual_seed(seed)
    m = make(num_classes=1000)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_import_resnet18_imagenet_layout(tmp_path: Path) -> None:
    sd = _imagenet_like(resnet18)
    src = tmp_path / "resnet18-imagenet.pth"
    torch.save({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, src)  # as older files
    out, notes = import_resnet(
        src, tmp_path / "r18.safetensors", "cnn-resnet18-patch", ["normal", "compensation"], frames=T, size=S
    )
    assert any("dropped the checkpoint's classifier fc (1000 outputs)" in n for n in notes)
    assert any("num_batches_tracked" in n for n in notes)
    ck = load_checkpoint(out)
    assert ck.spec.arch == "cnn-resnet18-patch" and ck.spec.frames == T
    assert ck.meta["imported_from"]["file"] == src.name
    own = ck.model.state_dict()
    for k, v in sd.items():
        if k.startswith("fc.") or k.endswith("num_batches_tracked"):
            continue
        assert torch.equal(own[f"backbone.{k}"], v), k
    assert not any(k.startswith("backbone.fc") for k in own)


@pytest.mark.parametrize("wrapper", ["state_dict", "model", "module-prefix", "safetensors"])
def test_import_wrapped_and_safetensors(wrapper: str, tmp_path: Path) -> None:
    sd = _imagenet_like(resnet_narrow, seed=1)
    if wrapper == "safetensors":
        src = tmp_path / "narrow.safetensors"
        save_file(sd, str(src))
    else:
        src = tmp_path / "narrow.pth"
        obj: dict = {f"module.{k}": v for k, v in sd.items()} if wrapper == "module-prefix" else {wrapper: sd}
        torch.save(obj, src)
    out, _ = import_resnet(src, tmp_path / "n.safetensors", "cnn-narrow-rnn", ["a", "b"], frames=T, size=S)
    ck = load_checkpoint(out)
    assert torch.equal(ck.model.state_dict()["backbone.layer4.1.conv2.weight"], sd["layer4.1.conv2.weight"])


def test_import_wrong_variant_and_not_a_resnet(tmp_path: Path) -> None:
    src = tmp_path / "resnet50.pth"
    torch.save(_imagenet_like(resnet50), src)
    with pytest.raises(CheckpointError) as e:
        import_resnet(src, tmp_path / "x.safetensors", "cnn-resnet18-fcl", ["a", "b"], frames=T, size=S)
    assert src.name in str(e.value) and "layer1.0" in str(e.value)
    junk = tmp_path / "junk.pth"
    torch.save({"patch_embed1.proj.weight": torch.zeros(2)}, junk)
    with pytest.raises(CheckpointError, match="does not look like a ResNet"):
        import_resnet(junk, tmp_path / "x.safetensors", "cnn-narrow-fcl", ["a", "b"], frames=T, size=S)
    with pytest.raises(CheckpointError, match="not a per-frame CNN"):
        import_resnet(junk, tmp_path / "x.safetensors", "tiny", ["a", "b"])
    assert not (tmp_path / "x.safetensors").exists()


class _RunsCommand:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def test_import_refuses_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    src = tmp_path / "resnet18-evil.pth"
    sd = dict(_imagenet_like(resnet_narrow))
    torch.save({"state_dict": {**sd, "fc.extra": _RunsCommand(marker)}}, src)
    with pytest.raises(CheckpointError) as e:
        import_resnet(src, tmp_path / "x.safetensors", "cnn-narrow-patch", ["a", "b"], frames=T, size=S)
    assert "nothing was executed" in str(e.value)
    assert not marker.exists(), "the pickled command ran"
    assert not (tmp_path / "x.safetensors").exists()


def test_filter_fn_keeps_unknown_keys_for_a_strict_load() -> None:
    m = resnet_narrow()
    sd = {**_imagenet_like(resnet_narrow), "extra.weight": torch.zeros(1)}
    mapped, _ = checkpoint_filter_fn({"model": sd}, m)
    assert "extra.weight" in mapped and "fc.weight" not in mapped


def _to_mmaction(key: str) -> str:
    """torchvision name -> mmaction2 2-D ResNet name (``ConvModule``: ``convN.conv`` / ``convN.bn``)."""
    parts = key.split(".")
    if parts[0] in ("conv1", "bn1"):
        return f"backbone.conv1.{'conv' if parts[0] == 'conv1' else 'bn'}.{'.'.join(parts[1:])}"
    stage, block, mod, rest = parts[0], parts[1], parts[2], parts[3:]
    if mod == "downsample":
        return f"backbone.{stage}.{block}.downsample.{'conv' if rest[0] == '0' else 'bn'}.{'.'.join(rest[1:])}"
    kind, i = mod[:-1], mod[-1]
    return f"backbone.{stage}.{block}.conv{i}.{'conv' if kind == 'conv' else 'bn'}.{'.'.join(rest)}"


def test_import_mmaction_kinetics_layout(tmp_path: Path) -> None:
    """A Kinetics-trained 2-D ResNet from mmaction2 (TSN): ConvModule names, ``cls_head`` classifier."""
    sd = _imagenet_like(resnet_narrow, seed=2)
    mm = {_to_mmaction(k): v for k, v in sd.items() if not k.startswith("fc.")}
    assert "backbone.layer2.0.downsample.bn.running_var" in mm and "backbone.layer1.1.conv2.bn.weight" in mm
    mm |= {"cls_head.fc_cls.weight": torch.zeros(400, 128), "cls_head.fc_cls.bias": torch.zeros(400)}
    src = tmp_path / "tsn_narrow_kinetics400.pth"
    torch.save({"meta": {"epoch": 100}, "state_dict": mm}, src)
    out, notes = import_resnet(src, tmp_path / "k.safetensors", "cnn-narrow-patch", ["a", "b"], frames=T, size=S)
    assert "dropped the checkpoint's classifier cls_head" in notes
    own = load_checkpoint(out).model.state_dict()
    for k, v in sd.items():
        if not k.startswith("fc."):
            assert torch.equal(own[f"backbone.{k}"], v), k
