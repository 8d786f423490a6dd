"""UniFormer video backbone (Li et al., "UniFormer: Unified Transformer for Efficient Spatiotemporal
Representation Learning", ICLR 2022), written for stanviewer in timm's file shape.

State-dict compatible with the official video checkpoints (GitHub Sense-X/UniFormer,
``video_classification``): same module names, shapes, LayerNorm epsilons, paddings and exact GELU, so
``uniformer_small_k400_16x8.pth`` loads with ``strict=True`` (see :func:`checkpoint_filter_fn`).

Shapes: input ``Tensor[B, 3, T, H, W]`` (T even >= 2, H and W multiples of 32); the stem halves T and
divides H, W by 4; stages 2-4 halve H and W again; ``forward_features`` returns
``Tensor[B, C4, T/2, H/32, W/32]`` after the final BatchNorm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stanviewer.core.models.configs import config_kwargs, config_to_dict

__all__ = [
    "VARIANTS",
    "UniFormer",
    "UniFormerConfig",
    "checkpoint_filter_fn",
    "inflate_2d_to_3d",
    "uniformer_base",
    "uniformer_small",
    "uniformer_tiny",
]


@dataclass
class UniFormerConfig:
    """Architecture of a UniFormer video backbone."""

    depth: tuple[int, int, int, int] = (3, 4, 8, 3)
    embed_dim: tuple[int, int, int, int] = (64, 128, 320, 512)
    head_dim: int = 64
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    num_classes: int = 400
    in_chans: int = 3
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    name: str = "small"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return config_to_dict(self, ("depth", "embed_dim"))

    @classmethod
    def from_dict(cls, d: dict) -> UniFormerConfig:
        return cls(**config_kwargs(cls, d, ("depth", "embed_dim")))


VARIANTS: dict[str, dict] = {
    "tiny": {"depth": (2, 2, 4, 2), "embed_dim": (32, 64, 160, 256), "drop_path_rate": 0.05},
    "small": {"depth": (3, 4, 8, 3), "embed_dim": (64, 128, 320, 512)},
    "base": {"depth": (5, 8, 20, 7), "embed_dim": (64, 128, 320, 512)},
}


class DropPath(nn.Module):
    """Stochastic depth: drop the residual branch of a whole sample with probability ``p`` (training)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class ConvMlp(nn.Module):
    """Pointwise (1x1x1 conv) MLP of the local blocks: C -> 4C -> C with exact GELU."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Conv3d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv3d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TokenMlp(nn.Module):
    """Linear MLP of the global blocks on tokens ``[B, N, C]``."""

    def __init__(self, dim: int, hidden: int, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class LocalBlock(nn.Module):
    """Local UniFormer block (official name ``CBlock``): DPE, local affinity conv, conv MLP."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, drop_path: float) -> None:
        super().__init__()
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm3d(dim)
        self.conv1 = nn.Conv3d(dim, dim, 1)
        self.conv2 = nn.Conv3d(dim, dim, 1)
        self.attn = nn.Conv3d(dim, dim, 5, padding=2, groups=dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm3d(dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class Attention(nn.Module):
    """Multi-head self-attention over all T*H*W tokens."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool, attn_drop: float, proj_drop: float) -> None:
        super().__init__()
        self.heads = max(1, heads)
        self.scale = (dim // self.heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        out = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B, N, C)))


class GlobalBlock(nn.Module):
    """Global UniFormer block (official name ``SABlock``): DPE, MHSA, MLP; LayerNorm eps 1e-6."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        drop: float,
        attn_drop: float,
        drop_path: float,
    ) -> None:
        super().__init__()
        self.pos_embed = nn.Conv3d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, qkv_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TokenMlp(dim, int(dim * mlp_ratio), drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_embed(x)
        B, C, T, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        # contiguous: see PatchEmbed.forward (the final BatchNorm follows the last block)
        return t.transpose(1, 2).reshape(B, C, T, H, W).contiguous()


class PatchEmbed(nn.Module):
    """Strided Conv3d then LayerNorm over channels (eps 1e-5)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple, stride: tuple, padding: tuple) -> None:
        super().__init__()
        self.proj = nn.Conv3d(in_ch, out_ch, kernel, stride=stride, padding=padding)
        self.norm = nn.LayerNorm(out_ch)

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        B, C, T, H, W = x.shape
        x = self.norm(x.flatten(2).transpose(1, 2))
        # contiguous, as in the official code. Not cosmetic: with B == 1 the view has an odd batch stride, and
        # torch's CPU BatchNorm backward (seen in 2.13) then returns a wrong input gradient (forward is fine).
        return x.transpose(1, 2).reshape(B, C, T, H, W).contiguous()


class UniFormer(nn.Module):
    """UniFormer video backbone with a linear head (timm-style ``forward_features`` / ``forward_head``)."""

    def __init__(self, cfg: UniFormerConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or UniFormerConfig()
        self.cfg = cfg
        d = cfg.embed_dim
        self.num_classes = cfg.num_classes
        self.num_features = d[-1]
        self.patch_embed1 = PatchEmbed(cfg.in_chans, d[0], (3, 4, 4), (2, 4, 4), (1, 0, 0))
        self.patch_embed2 = PatchEmbed(d[0], d[1], (1, 2, 2), (1, 2, 2), (0, 0, 0))
        self.patch_embed3 = PatchEmbed(d[1], d[2], (1, 2, 2), (1, 2, 2), (0, 0, 0))
        self.patch_embed4 = PatchEmbed(d[2], d[3], (1, 2, 2), (1, 2, 2), (0, 0, 0))
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        dpr = torch.linspace(0, cfg.drop_path_rate, sum(cfg.depth)).tolist()
        heads = [dim // cfg.head_dim for dim in d]
        o = [0, cfg.depth[0], sum(cfg.depth[:2]), sum(cfg.depth[:3])]
        self.blocks1 = nn.ModuleList(
            LocalBlock(d[0], cfg.mlp_ratio, cfg.drop_rate, dpr[o[0] + i]) for i in range(cfg.depth[0])
        )
        self.blocks2 = nn.ModuleList(
            LocalBlock(d[1], cfg.mlp_ratio, cfg.drop_rate, dpr[o[1] + i]) for i in range(cfg.depth[1])
        )
        self.blocks3 = nn.ModuleList(
            GlobalBlock(d[2], heads[2], cfg.mlp_ratio, cfg.qkv_bias, cfg.drop_rate, cfg.attn_drop_rate, dpr[o[2] + i])
            for i in range(cfg.depth[2])
        )
        self.blocks4 = nn.ModuleList(
            GlobalBlock(d[3], heads[3], cfg.mlp_ratio, cfg.qkv_bias, cfg.drop_rate, cfg.attn_drop_rate, dpr[o[3] + i])
            for i in range(cfg.depth[3])
        )
        self.norm = nn.BatchNorm3d(d[3])
        self.pre_logits = nn.Identity()
        self.head = nn.Linear(d[3], cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` classes."""
        self.num_classes = num_classes
        self.cfg.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            self._init_weights(self.head)

    @property
    def last_block(self) -> nn.Module:
        """The layer Grad-CAM hooks: output ``Tensor[B, C4, T/2, H/32, W/32]``."""
        return self.blocks4[-1]

    def forward_features(self, x: Tensor) -> Tensor:
        """``Tensor[B, 3, T, H, W]`` -> ``Tensor[B, C4, T/2, H/32, W/32]`` (after the final norm)."""
        x = self.pos_drop(self.patch_embed1(x))
        for blk in self.blocks1:
            x = blk(x)
        x = self.patch_embed2(x)
        for blk in self.blocks2:
            x = blk(x)
        x = self.patch_embed3(x)
        for blk in self.blocks3:
            x = blk(x)
        x = self.patch_embed4(x)
        for blk in self.blocks4:
            x = blk(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Average-pool the feature map over T*H*W, then the linear head (unless ``pre_logits``)."""
        x = self.pre_logits(x.flatten(2).mean(-1))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _create(variant: str, **kwargs: object) -> UniFormer:
    params = {**VARIANTS[variant], **kwargs}
    return UniFormer(UniFormerConfig(name=variant, **params))  # type: ignore[arg-type]


def uniformer_tiny(**kwargs: object) -> UniFormer:
    """Narrow CPU variant: dims 32/64/160/256, depth 2/2/4/2 (about 3.3 M parameters)."""
    return _create("tiny", **kwargs)


def uniformer_small(**kwargs: object) -> UniFormer:
    """UniFormer-S: dims 64/128/320/512, depth 3/4/8/3 (21.4 M parameters with 400 classes)."""
    return _create("small", **kwargs)


def uniformer_base(**kwargs: object) -> UniFormer:
    """UniFormer-B: dims 64/128/320/512, depth 5/8/20/7 (49.8 M parameters with 400 classes)."""
    return _create("base", **kwargs)


# --------------------------------------------------------------------------- foreign checkpoints
def inflate_2d_to_3d(weight: Tensor, time: int) -> Tensor:
    """Inflate a 2-D kernel ``[O, I, h, w]`` to 3-D ``[O, I, time, h, w]`` by repeating it over time and
    dividing by ``time`` (summing the result over time gives the 2-D kernel back)."""
    return weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time


def _unwrap(state: dict) -> dict:
    for key in ("model", "model_state", "state_dict", "module"):
        inner = state.get(key) if isinstance(state, dict) else None
        if isinstance(inner, dict) and any(isinstance(v, Tensor) for v in inner.values()):
            return _unwrap(inner)
    return state


def checkpoint_filter_fn(state_dict: dict, model: UniFormer) -> tuple[dict[str, Tensor], list[str]]:
    """Map a foreign UniFormer checkpoint onto ``model``'s keys.

    Unwraps ``model`` / ``model_state`` / ``state_dict`` containers, strips ``module.`` (DataParallel) and
    ``backbone.`` prefixes, inflates 2-D image weights to 3-D (repeat over time / t) and drops the head
    when the class count differs.

    Returns:
        The mapped state dict and a list of notes (what was inflated or dropped), for ``model info``.
    """
    sd = _unwrap(state_dict)
    target = model.state_dict()
    out: dict[str, Tensor] = {}
    notes: list[str] = []
    inflated = 0
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            continue
        k = key
        for prefix in ("module.", "_orig_mod.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        if k not in target:
            out[k] = value  # kept so that load reports it as unexpected
            continue
        want = target[k].shape
        if value.ndim == 4 and len(want) == 5 and tuple(value.shape) == (want[0], want[1], want[3], want[4]):
            value = inflate_2d_to_3d(value, want[2])
            inflated += 1
        if k.startswith("head.") and tuple(value.shape) != tuple(want):
            notes.append(f"head re-initialised ({tuple(value.shape)} -> {tuple(want)})")
            continue
        out[k] = value
    if inflated:
        notes.append(f"inflated {inflated} 2-D kernels to 3-D")
    head_keys = [k for k in ("head.weight", "head.bias") if k in target]
    if head_keys and not any(k in out for k in head_keys) and not notes_has(notes, "head re-initialised"):
        notes.append("checkpoint has no head; head initialised randomly")
    for k in head_keys:
        if k not in out:
            out[k] = target[k].clone()
    return out, sorted(set(notes))


def notes_has(notes: list[str], prefix: str) -> bool:
    return any(n.startswith(prefix) for n in notes)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
