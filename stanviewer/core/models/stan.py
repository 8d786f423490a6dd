"""STAN: a UniFormer backbone over one or two views of a clip, with a classification head (PAPER.md §1-2).

With ``global+local`` the same backbone sees both views; their pooled features are averaged before the
head. ``forward(*clips)`` takes one ``Tensor[B, 3, T, S, S]`` per view in :attr:`STAN.view_names` order
and returns logits ``Tensor[B, classes]``, so Captum can attribute each view separately.

:class:`ModelSpec` is everything needed to rebuild a model and feed it (stored in checkpoint metadata).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from stanviewer.core.models.uniformer import VARIANTS, UniFormer, UniFormerConfig
from stanviewer.core.views import LOCAL_MASKS, MEAN, STD, view_names

__all__ = ["STAN", "ModelSpec", "build_model", "video_centre"]


@dataclass
class ModelSpec:
    """Architecture and input conventions of a model.

    Attributes:
        arch: backbone variant (``tiny``, ``small``, ``base``) or another registered architecture.
        classes: class names; ``target`` is the class whose evidence is explained.
        views: ``global``, ``local`` or ``global+local``.
        frames: clip length T (even, >= 2).
        size: input side S in pixels (multiple of 32).
        sample_fps: frames per second fed to the model; a video at ``fps`` is sampled every
            ``round(fps / sample_fps)`` frames (at least 1).
        mean, std: per-channel normalisation of RGB in [0, 1].
        backbone: the backbone's :class:`UniFormerConfig` as a dict.
        local_margin: the local view masks pixels outside the ROI box widened by this fraction of its size
            on each side; ``None`` keeps the whole crop square (the posture model reads limbs that a
            motion box may cut off).
        local_mask: which box masks each frame's local view: ``frame`` (the ROI box of that frame) or
            ``video`` (one stable box per video, :func:`~stanviewer.core.views.mask_boxes`), so that a
            raised arm widening the frame's box does not move the mask's edge beside the trunk.
        video_centre: STAN only: the head reads each window's pooled features minus the **video's median
            window features** (per channel), so a window is judged against the same person's usual posture
            in that recording rather than against the training population (set per video with
            :meth:`STAN.set_video_centre`; measured in models/README.md).
    """

    arch: str = "tiny"
    classes: list[str] = field(default_factory=lambda: ["normal", "compensation"])
    target: str = "compensation"
    views: str = "global+local"
    frames: int = 16
    size: int = 64
    sample_fps: float = 5.0
    mean: list[float] = field(default_factory=lambda: list(MEAN))
    std: list[float] = field(default_factory=lambda: list(STD))
    roi_provider: str = "motion"
    local_margin: float | None = 0.08  # local view: mask outside the ROI box widened by this; None: no mask
    local_mask: str = "frame"  # the mask's box: each frame's ROI box, or one stable box per video ("video")
    head_hidden: int = 0  # 0: the backbone's linear head (official layout); > 0: a two-layer MLP head
    feature_norm: bool = False  # standardise pooled features (training-set mean/std buffers) before the head
    video_centre: bool = False  # STAN: subtract the video's median window features before the head
    backbone: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        view_names(self.views)
        if self.frames < 2 or self.frames % 2:
            raise ValueError(f"clip length must be even and >= 2, not {self.frames}")
        if self.size < 32 or self.size % 32:
            raise ValueError(f"input size must be a multiple of 32, not {self.size}")
        if self.local_mask not in LOCAL_MASKS:
            raise ValueError(f"local mask must be one of {LOCAL_MASKS}, not {self.local_mask!r}")
        if self.target not in self.classes:
            raise ValueError(f"target class {self.target!r} is not one of {self.classes}")

    @property
    def target_index(self) -> int:
        return self.classes.index(self.target)

    def step_for(self, fps: float) -> int:
        """Temporal sampling step (frames) for a video at ``fps``."""
        return max(1, round(fps / self.sample_fps)) if self.sample_fps > 0 else 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class FeatureNorm(nn.Module):
    """Standardisation of features before a classification head (``spec.feature_norm``), shared by STAN and
    the per-frame CNN: ``feat_mean``/``feat_std`` buffers measured on training windows, saved in checkpoints.

    Pooled features of a pretrained backbone vary little around large offsets (per-feature std ~0.1,
    |mean| ~0.2 for the bundled STAN); the same MIL head stayed at chance on them (test AUROC 0.47) and
    learned on standardised features (0.86), everything else equal (models/README.md).
    """

    spec: ModelSpec

    def _init_feature_norm(self, dim: int) -> None:
        if self.spec.feature_norm:
            self.register_buffer("feat_mean", torch.zeros(dim))
            self.register_buffer("feat_std", torch.ones(dim))

    def standardise(self, f: Tensor) -> Tensor:
        """``f`` standardised over its last dimension when the spec asks for it, else ``f``."""
        return (f - self.feat_mean) / self.feat_std if self.spec.feature_norm else f

    def set_feature_stats(self, mean: Tensor, std: Tensor) -> None:
        """Set the standardisation applied before the head (``spec.feature_norm``)."""
        if not self.spec.feature_norm:
            raise ValueError("this model has no feature standardisation (spec.feature_norm is False)")
        self.feat_mean.copy_(mean.to(self.feat_mean))
        self.feat_std.copy_(std.clamp_min(1e-6).to(self.feat_std))


class STAN(FeatureNorm):
    """UniFormer over the views of a clip; pooled features averaged across views, then the head."""

    def __init__(self, spec: ModelSpec, backbone: UniFormer | None = None) -> None:
        super().__init__()
        self.spec = spec
        if backbone is None:
            cfg = spec.backbone or {**VARIANTS[spec.arch], "name": spec.arch}
            ucfg = UniFormerConfig.from_dict({**cfg, "num_classes": len(spec.classes)})
            backbone = UniFormer(ucfg)
        if backbone.num_classes != len(spec.classes):
            backbone.reset_classifier(len(spec.classes))
        self.backbone = backbone
        self.view_names = view_names(spec.views)
        if spec.head_hidden > 0:
            # a small MLP on the pooled features: measured to learn compensation from video labels where a
            # linear head on the same features did not (see models/README.md)
            backbone.reset_classifier(0)
            c = backbone.num_features
            self.mlp_head: nn.Module | None = nn.Sequential(
                nn.Linear(c, spec.head_hidden),
                nn.GELU(),
                nn.Dropout(0.1),
                nn.Linear(spec.head_hidden, len(spec.classes)),
            )
        else:
            self.mlp_head = None
        self._init_feature_norm(backbone.num_features)
        self._centre: Tensor | None = None  # the current video's median pooled features (spec.video_centre)
        spec.backbone = {**backbone.cfg.to_dict(), "num_classes": len(spec.classes)}

    @property
    def last_block(self) -> nn.Module:
        return self.backbone.last_block

    def features(self, *clips: Tensor) -> Tensor:
        """Pooled features averaged over views: ``Tensor[B, C4]``."""
        if len(clips) != len(self.view_names):
            raise ValueError(f"expected {len(self.view_names)} view tensor(s) ({self.spec.views}), got {len(clips)}")
        b = clips[0].shape[0]
        x = clips[0] if len(clips) == 1 else torch.cat(clips, 0)
        f = self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)
        if len(clips) > 1:
            f = f.view(len(clips), b, -1).mean(0)
        return f

    def forward(self, *clips: Tensor) -> Tensor:
        """One ``Tensor[B, 3, T, S, S]`` per view -> logits ``Tensor[B, classes]``."""
        return self.head(self.features(*clips))

    def head(self, f: Tensor, centre: Tensor | None = None) -> Tensor:
        """Pooled features ``Tensor[B, C4]`` -> logits (centred on the video and standardised first when the
        spec asks for it). ``centre`` (``Tensor[C4]``, or one row per window ``Tensor[B, C4]``) overrides the
        centre set with :meth:`set_video_centre` (training scores windows of several videos at once)."""
        if self.spec.video_centre:
            c = centre if centre is not None else self._centre
            if c is None:
                raise RuntimeError("this model judges windows against their video: call set_video_centre first")
            f = f - c.to(f)
        return self.classifier(self.standardise(f))

    def set_video_centre(self, centre: Tensor | None) -> None:
        """The median pooled features ``Tensor[C4]`` of the video being scored (``spec.video_centre``); see
        :func:`video_centre`. ``None`` forgets it."""
        self._centre = None if centre is None else centre.detach().float()

    def classify(self, f: Tensor, centre: Tensor | None = None) -> Tensor:
        """Same as :meth:`head` (the name shared with the per-frame CNN, whose ``head`` is a module)."""
        return self.head(f, centre)

    @property
    def classifier(self) -> nn.Module:
        """The classification head: the MLP head if the spec asks for one, else the backbone's linear head."""
        return self.mlp_head if self.mlp_head is not None else self.backbone.head

    def evidence(self, logits: Tensor) -> Tensor:
        """Log-odds of the target class against the others: ``Tensor[B]`` (the MIL instance score)."""
        t = self.spec.target_index
        others = torch.cat([logits[:, :t], logits[:, t + 1 :]], 1)
        return logits[:, t] - torch.logsumexp(others, 1)


def video_centre(features: Tensor) -> Tensor:
    """The centre of a video's window features ``Tensor[W, C]``: the per-channel median over its windows."""
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"expected window features [W, C] with W >= 1, got {tuple(features.shape)}")
    return features.float().median(0).values


def build_model(spec: ModelSpec) -> nn.Module:
    """A fresh (randomly initialised) model for ``spec``."""
    return STAN(spec)
