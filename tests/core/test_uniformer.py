"""The UniFormer video backbone: official key/shape compatibility, 2D->3D inflation, shapes, gradients.

``tests/data/uniformer_{small,base}_video_keys.json`` are copies of the reference dumps of the official
models (GitHub Sense-X/UniFormer, ``video_classification``, 400 classes; see ``../shared/reference``),
kept here so the tests do not depend on that folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.models.uniformer import (
    UniFormer,
    checkpoint_filter_fn,
    inflate_2d_to_3d,
    uniformer_base,
    uniformer_small,
    uniformer_tiny,
)

DATA = Path(__file__).resolve().parents[1] / "data"
FACTORIES: dict[str, Callable[..., UniFormer]] = {"small": uniformer_small, "base": uniformer_base}


def reference_shapes(variant: str) -> dict[str, tuple[int, ...]]:
    raw = json.loads((DATA / f"uniformer_{variant}_video_keys.json").read_text())
    return {k: tuple(v) for k, v in raw.items()}


@pytest.fixture(scope="module")
def models() -> dict[str, UniFormer]:
    """small and base with the official 400 classes, built once for the module."""
    torch.manual_seed(0)
    return {name: make().eval() for name, make in FACTORIES.items()}


def official_like_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, Tensor]:
    """Random tensors of the listed shapes, as a released checkpoint would hold (BN buffers sensible)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean"):
            state[key] = torch.randn(shape, generator=g) * 0.1
        else:
            state[key] = torch.randn(shape, generator=g) * 0.02
    return state


# --------------------------------------------------------------------------- official keys and shapes
@pytest.mark.parametrize("variant", ["small", "base"])
def test_keys_and_shapes_match_official(models: dict[str, UniFormer], variant: str) -> None:
    ref = reference_shapes(variant)
    ours = {k: tuple(v.shape) for k, v in models[variant].state_dict().items()}
    assert sorted(set(ref) - set(ours)) == [], "keys of the official model that ours lacks"
    assert sorted(set(ours) - set(ref)) == [], "keys ours has that the official model lacks"
    wrong = {k: (ours[k], ref[k]) for k in ref if ours[k] != ref[k]}
    assert wrong == {}
    assert len(ours) == {"small": 331, "base": 687}[variant]


def test_parameter_counts(models: dict[str, UniFormer]) -> None:
    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    assert round(counts["small"] / 1e6, 2) == 21.40
    assert round(counts["base"] / 1e6, 2) == 49.81


@pytest.mark.parametrize("variant", ["small", "base"])
def test_official_shaped_checkpoint_loads_strict(models: dict[str, UniFormer], variant: str) -> None:
    model = models[variant]
    state = official_like_state(reference_shapes(variant))
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())


def test_official_shaped_checkpoint_loads_into_stan(models: dict[str, UniFormer]) -> None:
    state = official_like_state(reference_shapes("small"), seed=1)
    spec = ModelSpec(
        arch="small", classes=[f"c{i}" for i in range(400)], target="c0", views="global", frames=8, size=64
    )
    stan = STAN(spec, models["small"]).eval()
    result = stan.load_state_dict({"backbone." + k: v for k, v in state.items()}, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        feats = stan.backbone.forward_features(x)
        expected = stan.backbone.head(feats.flatten(2).mean(-1))
        assert torch.allclose(stan(x), expected, atol=1e-6)


def test_official_checkpoint_with_wrong_shape_is_rejected(models: dict[str, UniFormer]) -> None:
    state = official_like_state(reference_shapes("small"))
    state["blocks3.0.attn.qkv.weight"] = torch.zeros(960, 321)
    with pytest.raises(RuntimeError, match=r"blocks3\.0\.attn\.qkv\.weight"):
        models["small"].load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- 2D -> 3D inflation
def test_inflate_sums_back_to_2d_kernel() -> None:
    w2 = torch.randn(8, 4, 5, 5, dtype=torch.float64)
    for t in (1, 3, 5):
        w3 = inflate_2d_to_3d(w2, t)
        assert w3.shape == (8, 4, t, 5, 5)
        assert torch.allclose(w3.sum(2), w2, atol=1e-12)
        assert torch.allclose(w3[:, :, 0], w3[:, :, -1])  # the same slice at every time step


def test_inflated_conv_on_static_clip_equals_2d_conv() -> None:
    """Away from the temporal border, a clip of identical frames gives the 2-D response."""
    conv2 = nn.Conv2d(3, 6, 3, padding=1).double()
    conv3 = nn.Conv3d(3, 6, 3, padding=1).double()
    with torch.no_grad():
        conv3.weight.copy_(inflate_2d_to_3d(conv2.weight, 3))
        conv3.bias.copy_(conv2.bias)
        img = torch.randn(1, 3, 10, 10, dtype=torch.float64)
        clip = img.unsqueeze(2).repeat(1, 1, 5, 1, 1)
        out = conv3(clip)
        assert torch.allclose(out[:, :, 2], conv2(img), atol=1e-12)


def expected_inflated(keys: list[str]) -> set[str]:
    """Keys that the notes (../shared/notes/uniformer.md §3) list as inflated from a 2-D image model."""
    patterns = [
        r"patch_embed[1-4]\.proj\.weight",
        r"blocks[1-4]\.\d+\.pos_embed\.weight",
        r"blocks[12]\.\d+\.(attn|conv1|conv2|mlp\.fc1|mlp\.fc2)\.weight",
    ]
    return {k for k in keys if any(re.fullmatch(p, k) for p in patterns)}


def test_checkpoint_filter_fn_inflates_image_checkpoint(models: dict[str, UniFormer]) -> None:
    """A fake 2-D (ImageNet, 1000 classes) image checkpoint mapped onto the 400-class video model."""
    video = models["small"]
    target = {k: v.clone() for k, v in video.state_dict().items()}
    g = torch.Generator().manual_seed(3)
    image: dict[str, Tensor] = {}
    for k, v in target.items():
        if v.ndim == 5:
            image[k] = torch.randn(v.shape[0], v.shape[1], v.shape[3], v.shape[4], generator=g)
        elif v.is_floating_point():
            image[k] = torch.randn(v.shape, generator=g).abs() + 0.1
        else:
            image[k] = v.clone()
    image["head.weight"] = torch.randn(1000, 512, generator=g)
    image["head.bias"] = torch.randn(1000, generator=g)

    mapped, notes = checkpoint_filter_fn({"model": image}, video)

    inflated = {k for k in mapped if mapped[k].ndim == 5 and image[k].ndim == 4}
    assert inflated == expected_inflated(list(target))
    assert len(inflated) == 4 + 18 + 5 * 7
    for k in inflated:
        assert mapped[k].shape == target[k].shape
        assert torch.allclose(mapped[k].sum(2), image[k], atol=1e-5)
    assert mapped["patch_embed1.proj.weight"].shape[2] == 3
    assert mapped["blocks1.0.attn.weight"].shape[2] == 5
    assert mapped["blocks3.0.pos_embed.weight"].shape[2] == 3
    # everything else is copied unchanged, except the head, which keeps the model's own initialisation
    for k in set(target) - inflated - {"head.weight", "head.bias"}:
        assert torch.equal(mapped[k], image[k]), k
    assert torch.equal(mapped["head.weight"], target["head.weight"])
    assert torch.equal(mapped["head.bias"], target["head.bias"])
    assert any("head re-initialised" in n for n in notes)
    assert any(f"inflated {len(inflated)} 2-D kernels" in n for n in notes)
    result = video.load_state_dict(mapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_checkpoint_filter_fn_strips_prefixes_and_keeps_matching_head() -> None:
    torch.manual_seed(0)
    src = uniformer_tiny(num_classes=3)
    dst = uniformer_tiny(num_classes=3)
    wrapped = {"state_dict": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 3}
    mapped, notes = checkpoint_filter_fn(wrapped, dst)
    assert notes == []
    assert set(mapped) == set(dst.state_dict())
    assert all(torch.equal(mapped[k], v) for k, v in src.state_dict().items())


# --------------------------------------------------------------------------- shapes
@pytest.fixture(scope="module")
def tiny() -> UniFormer:
    torch.manual_seed(0)
    return uniformer_tiny(num_classes=2).eval()


@pytest.mark.parametrize("frames", [2, 8, 16])
@pytest.mark.parametrize("side", [32, 64, 96])
def test_tiny_forward_shapes(tiny: UniFormer, frames: int, side: int) -> None:
    x = torch.randn(1, 3, frames, side, side)
    with torch.no_grad():
        feats = tiny.forward_features(x)
        pooled = tiny.forward_head(feats, pre_logits=True)
        logits = tiny.forward_head(feats)
    assert feats.shape == (1, 256, frames // 2, side // 32, side // 32)
    assert pooled.shape == (1, 256)
    assert logits.shape == (1, 2)
    assert torch.isfinite(logits).all()


def test_tiny_batch_and_non_square(tiny: UniFormer) -> None:
    with torch.no_grad():
        out = tiny.forward_features(torch.randn(3, 3, 4, 64, 96))
    assert out.shape == (3, 256, 2, 2, 3)


def test_tiny_parameter_count(tiny: UniFormer) -> None:
    """3.305 M with a 400-class head (the notes' figure for dims 32/64/160/256, depth 2/2/4/2)."""
    body = sum(p.numel() for n, p in tiny.named_parameters() if not n.startswith("head."))
    assert body + 400 * 256 + 400 == 3_305_424


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frames": 7}, "even"),
        ({"frames": 0}, "even"),
        ({"frames": 1}, "even"),
        ({"size": 48}, "multiple of 32"),
        ({"size": 0}, "multiple of 32"),
        ({"size": 100}, "multiple of 32"),
        ({"views": "both"}, "unknown views"),
        ({"target": "other"}, "target class"),
    ],
)
def test_model_spec_rejects_invalid_sizes(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)


@pytest.mark.parametrize(("frames", "size"), [(2, 32), (16, 224), (8, 64)])
def test_model_spec_accepts_valid_sizes(frames: int, size: int) -> None:
    assert ModelSpec(frames=frames, size=size).frames == frames


# --------------------------------------------------------------------------- gradients
def _grad_single_and_pair(model: nn.Module, x: Tensor, target: int) -> tuple[Tensor, Tensor]:
    """Input gradient of one clip alone and as the first of a batch of two identical clips."""
    x1 = x.clone().requires_grad_(True)
    model(x1)[0, target].backward()
    x2 = torch.cat([x, x]).requires_grad_(True)
    model(x2)[0, target].backward()
    return x1.grad, x2.grad[:1]  # type: ignore[index,return-value]


def test_input_gradient_of_one_clip_is_correct(tiny: UniFormer) -> None:
    """Regression: with batch 1, a strided view fed to BatchNorm made torch's backward return a wrong
    input gradient (forward unaffected). Eval-mode BN is per-sample, so batch 1 and 2 must agree."""
    tiny.requires_grad_(False)
    with torch.no_grad():
        for m in tiny.modules():  # non-trivial BN statistics
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(5))
    g1, g2 = _grad_single_and_pair(tiny, x, 1)
    scale = float(g2.abs().max())
    err = float((g1 - g2).abs().max())
    assert scale > 0
    assert err < 1e-4 * scale, f"max |grad(B=1) - grad(B=2)| = {err:.3g}, max |grad| = {scale:.3g}"


def test_gradcam_gradient_of_one_clip_is_correct(tiny: UniFormer) -> None:
    """The gradient at the last block's output (what Grad-CAM uses) for batch 1 equals batch 2's."""
    tiny.requires_grad_(False)
    grads: list[Tensor] = []

    def keep(_m: nn.Module, _i: object, out: Tensor) -> None:
        out.register_hook(lambda g: grads.append(g[:1].clone()))

    handle = tiny.last_block.register_forward_hook(keep)
    try:
        x = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(6))
        _grad_single_and_pair(tiny, x, 0)
    finally:
        handle.remove()
    assert len(grads) == 2
    scale = float(grads[1].abs().max())
    err = float((grads[0] - grads[1]).abs().max())
    assert err < 1e-4 * scale, f"max |grad(B=1) - grad(B=2)| = {err:.3g}, max |grad| = {scale:.3g}"


# --------------------------------------------------------------------------- against the official code
OFFICIAL = os.environ.get("STANVIEWER_OFFICIAL_UNIFORMER", "")


@pytest.mark.skipif(
    not OFFICIAL,
    reason="set STANVIEWER_OFFICIAL_UNIFORMER to the official video_classification/slowfast/models/uniformer.py",
)
@pytest.mark.parametrize(("variant", "batch", "frames", "size"), [("tiny", 2, 4, 64), ("small", 1, 2, 32)])
def test_matches_official_implementation(variant: str, batch: int, frames: int, size: int) -> None:
    """Same weights, same input: logits, pooled features and input gradients equal the official model's
    (scripts/check_official_equivalence.py; the official file is not part of this repository)."""
    spec = importlib.util.spec_from_file_location(
        "_check_official_equivalence", Path(__file__).resolve().parents[2] / "scripts/check_official_equivalence.py"
    )
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    r = check.compare(check.load_official(OFFICIAL), variant, batch, frames, size)
    assert r["keys_ok"], r["keys"]
    assert r["logit_max_abs_diff"] < 1e-4 * max(1.0, r["logit_max_abs"]), r
    assert r["pooled_max_abs_diff"] < 1e-4, r
    assert r["grad_max_abs_diff"] < 1e-4 * max(1.0, r["grad_max_abs"]), r
