"""Posture-MIL (``posture-narrow``): per-frame compensation evidence from the figure's 2-D posture.

Why this model exists (docs/cnn.md, "Posture is enough"): on the synthetic data a small network on each
frame's posture, trained with **video labels only** (multiple-instance learning), localises compensation
in time far better than gradients of the STAN or of the per-frame CNN, provided two things the pixel
models lack: posture is expressed *relative to the video's own median posture* (the subject's build and
the camera angle drop out), and the read-out is per frame.

The model has three parts, applied one after another to a whole video (not to a window):

1. **pose reader**: the pose-pretrained narrow ResNet of the CNN recipe (``stanviewer pretrain --arch
   cnn-narrow-...``, generator joints, no labels) reads every local-view image; a linear layer on its
   last two feature maps (flattened, standardised) gives 17 joints in view coordinates ``[-1, 1]``,
   mapped back to video pixels through the video's crop square. New models also have an **upper-body
   reader**: a second ResNet of the same shape, trained on the upper-body image (the top half of the crop
   square, its middle half wide: twice the pixels on head, neck and shoulders), whose head, neck and
   shoulder joints are averaged with the first reader's (the shoulder hike moves the shoulders about one
   pixel of the 64 px local view);
2. **posture features** (:func:`posture_features`): joints smoothed over time (Gaussian, ``smooth``
   images), relative to the pelvis, divided by the video's median body height (head to mid-ankle), minus
   the video's median posture, at the frame and at a few neighbouring images (``context``, in images at
   twice the model's sampling rate);
3. **MIL head**: ``heads`` two-layer MLPs (started from different random weights, trained together, their
   logits averaged) give each frame a logit (its evidence for the target class); the video's logit is the
   log-mean-exp of its frames' logits minus a bias calibrated on validation videos.

The frame logits are the explanation (method ``posture``): they are what the video decision is made of.
Because the median is taken over the whole video, a video is analysed in two passes (read every image,
then score), see :mod:`stanviewer.core.explain.posture`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from stanviewer.core.models.resnet import VARIANTS as RESNETS
from stanviewer.core.models.resnet import ResNet, ResNetConfig
from stanviewer.core.models.stan import ModelSpec

__all__ = [
    "FEATURE_JOINTS",
    "JOINT_NAMES",
    "MIRROR",
    "TRUNK_FEATURES",
    "UPPER_JOINTS",
    "UPPER_READOUTS",
    "UPPER_READ_JOINTS",
    "HeatmapReadout",
    "PostureConfig",
    "PostureMIL",
    "body_height",
    "image_step",
    "log_mean_exp",
    "mirror_joints",
    "posture_features",
    "smooth_rows",
    "to_video",
    "upper_square",
    "upper_to_local",
]

#: the generator's joints, in the order of its joints CSV (``<name>_x, <name>_y``)
JOINT_NAMES = (
    "head", "neck", "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "wrist_l", "wrist_r", "pelvis",
    "hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r", "toe_l", "toe_r",
)  # fmt: skip
#: joints the posture features may use (the toes add nothing the ankles do not say)
FEATURE_JOINTS = 15
#: joints the posture features of new models use: the compensation is in the trunk and the shoulders (the
#: arm moves in every repetition, compensated or not; its joints are also read least reliably). Measured
#: offline on new synthetic subjects: frame F1 71.2 with all 15 joints, 76.7 with these four (docs/posture.md)
TRUNK_FEATURES = ("head", "neck", "shoulder_l", "shoulder_r")
_PELVIS, _HEAD = JOINT_NAMES.index("pelvis"), JOINT_NAMES.index("head")
_ANKLES = (JOINT_NAMES.index("ankle_l"), JOINT_NAMES.index("ankle_r"))
#: joint index of each joint's mirror image (left <-> right)
MIRROR = tuple(
    JOINT_NAMES.index(n[:-2] + {"_l": "_r", "_r": "_l"}[n[-2:]]) if n[-2:] in ("_l", "_r") else i
    for i, n in enumerate(JOINT_NAMES)
)


#: joints read again from the upper-body image (head, neck and shoulders: the lean and the shoulder hike)
UPPER_JOINTS = 4


def upper_square(square: tuple[float, float, float]) -> tuple[float, float, float]:
    """The upper-body image's crop square: the top half of the local view's square, middle half of its
    width (twice the pixels on head, neck and shoulders at the same image size)."""
    cx, cy, side = (float(v) for v in square)
    return cx, cy - side / 4, side / 2


def upper_to_local(q: Tensor) -> Tensor:
    """Joints ``[..., 2]`` in the upper-body view's coordinates ``[-1, 1]`` -> the local view's coordinates."""
    return torch.stack([q[..., 0] / 2, (q[..., 1] - 1) / 2], -1)


def mirror_joints(q: Tensor) -> Tensor:
    """Joints ``[..., J, 2]`` in view coordinates ``[-1, 1]`` read from a mirrored image -> joints of the
    image itself (x negated, left and right swapped)."""
    q = q[..., list(MIRROR[: q.shape[-2]]), :]
    return torch.stack([-q[..., 0], q[..., 1]], -1)


#: joints the upper-body reader is trained on and its soft-argmax read-out reads (head to wrists and the
#: pelvis: all that the upper-body image usually shows); the model keeps the first ``PostureConfig.upper``
UPPER_READ_JOINTS = 9
#: the upper-body reader's read-outs (``PostureConfig.upper_readout``)
UPPER_READOUTS = ("linear", "softargmax")


class HeatmapReadout(nn.Module):
    """Joints as the softmax-weighted mean position of one heatmap each (soft-argmax).

    Feature maps of several stages are resampled to ``grid`` × ``grid`` (averaged down or bilinearly up) and
    joined; a 3×3 convolution (64 channels, ReLU) and a 1×1 convolution give ``joints`` heatmaps. The read
    position moves with the figure in the image, where a linear regression on coarse flattened maps shrinks
    rare postures (a shoulder hike) towards the usual one (docs/posture.md).
    """

    def __init__(self, channels: int, joints: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.conv = nn.Sequential(nn.Conv2d(channels, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, joints, 1))
        g = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid * 2 - 1  # cell centres in [-1, 1]
        self.register_buffer("gx", g.repeat(grid), persistent=False)
        self.register_buffer("gy", g.repeat_interleave(grid), persistent=False)

    def forward(self, maps: list[Tensor]) -> Tensor:
        def fit(m: Tensor) -> Tensor:
            if m.shape[-1] > self.grid:
                return F.adaptive_avg_pool2d(m, self.grid)
            return F.interpolate(m, size=self.grid, mode="bilinear", align_corners=False)

        h = self.conv(torch.cat([fit(m) for m in maps], 1)).flatten(2).softmax(-1)  # [N, J, grid²]
        return torch.stack([h @ self.gx, h @ self.gy], -1)


@dataclass
class PostureConfig:
    """Architecture of a :class:`PostureMIL` (stored as ``spec.backbone`` in checkpoints)."""

    resnet: dict = field(default_factory=lambda: {"name": "narrow", **RESNETS["narrow"]})
    joints: int = len(JOINT_NAMES)
    context: list[int] = field(default_factory=lambda: [-3, -1, 0, 1, 3])  # images at 2 x sample_fps
    hidden: list[int] = field(default_factory=lambda: [128, 64])
    heads: int = 5  # MIL heads averaged (an ensemble: frame F1 71.3 vs 67.5-72.6 for its members)
    smooth: float = 1.5  # Gaussian smoothing of the joints over time, sigma in images (0: none)
    # read every image and its mirror image and average the joints (the read-out is fitted on both);
    # checkpoints written before this option existed read without the mirror image
    mirror: bool = True
    # joints (the first ``upper`` of JOINT_NAMES) read again by a second reader from the upper-body image
    # (:func:`upper_square`) and averaged with the local view's reading; 0: none (files written before it)
    upper: int = UPPER_JOINTS
    # joints (names of the first FEATURE_JOINTS of JOINT_NAMES) the posture features are made of; files
    # written before this option existed use all FEATURE_JOINTS
    features: list[str] = field(default_factory=lambda: list(TRUNK_FEATURES))
    # the upper-body reader's read-out: "linear" (ridge regression on its flattened last two feature maps;
    # files written before this option existed) or "softargmax" (a heatmap per joint on its first three
    # stages at a quarter of the image size; each joint the heatmap's softmax-weighted mean position)
    upper_readout: str = "linear"
    # test-time shifts in pixels: every image (and its mirror image) is also read moved by +-shifts px
    # across and up/down, the joints moved back, and the five readings averaged (about 3.3x the reading
    # time on 2 CPU cores); 0: off (training, and files written before this option existed). Measured in
    # docs/posture.md ("test-time shifts").
    shifts: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PostureConfig:
        kw = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if kw and "mirror" not in kw:
            kw["mirror"] = False
        if kw and "upper" not in kw:
            kw["upper"] = 0
        if kw and "features" not in kw:
            kw["features"] = list(JOINT_NAMES[:FEATURE_JOINTS])
        return cls(**kw)

    def feature_index(self) -> list[int]:
        """Indices (into JOINT_NAMES) of the joints the posture features use."""
        names = JOINT_NAMES[: min(self.joints, FEATURE_JOINTS)]
        bad = [f for f in self.features if f not in names]
        if bad or not self.features:
            raise ValueError(f"posture features must name joints of {', '.join(names)}; got {bad or 'none'}")
        return [names.index(f) for f in self.features]


#: the test-time shifts (``PostureConfig.shifts``), in units of the shift: the image itself and moved right,
#: left, down and up
SHIFT_MOVES = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def shift_image(x: Tensor, dx: int, dy: int) -> Tensor:
    """Images ``[N, C, S, S]`` with their content moved ``dx`` px right and ``dy`` px down; the uncovered
    border is 0 (the normalisation mean: the value the local view's mask gives pixels outside the person)."""
    if dx == 0 and dy == 0:
        return x
    h, w = x.shape[-2:]
    p = max(abs(dx), abs(dy))
    xp = F.pad(x, (p, p, p, p))
    return xp[..., p - dy : p - dy + h, p - dx : p - dx + w]


def image_step(fps: float, sample_fps: float) -> int:
    """Source frames between two images the model was trained on (the training cache's density)."""
    step = max(1, round(fps / sample_fps)) if sample_fps > 0 else 1
    return max(1, step // (2 if step >= 2 else 1))


def to_video(q: Tensor, square: tuple[float, float, float]) -> Tensor:
    """Joints in view coordinates ``[-1, 1]`` ``[N, J, 2]`` -> pixels of the frame the square is in."""
    cx, cy, side = square
    return torch.stack([(q[..., 0] + 1) / 2 * side + cx - side / 2, (q[..., 1] + 1) / 2 * side + cy - side / 2], -1)


def smooth_rows(p: Tensor, sigma: float) -> Tensor:
    """Gaussian smoothing of ``p`` ``[N, ...]`` along its rows (sigma in rows; the ends are repeated)."""
    if sigma <= 0 or p.shape[0] < 2:
        return p
    r = max(1, int(3 * sigma + 0.5))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=p.dtype) / sigma) ** 2)
    k = k / k.sum()
    idx = (torch.arange(p.shape[0])[:, None] + torch.arange(-r, r + 1)[None]).clamp(0, p.shape[0] - 1)
    return torch.tensordot(p[idx], k, dims=([1], [0]))


def body_height(p: Tensor) -> Tensor:
    """A video's body height from joints ``p`` ``[N, J, 2]``: the median over rows of head to mid-ankles."""
    feet = (p[:, _ANKLES[0]] + p[:, _ANKLES[1]]) / 2
    return torch.quantile((p[:, _HEAD] - feet).norm(dim=1), 0.5).clamp_min(1e-6)


def posture_features(
    p: Tensor,
    offsets: list[int] | tuple[int, ...],
    smooth: float = 0.0,
    joints: list[int] | None = None,
    fixed_reference: bool = False,
) -> Tensor:
    """Per-frame posture features ``[N, len(joints) * 2 * len(offsets)]`` of joints ``p`` ``[N, J, 2]``.

    Joints smoothed over rows (Gaussian, sigma ``smooth`` rows), relative to the pelvis over the median body
    height, minus the median posture (medians over all ``N`` rows: the whole video), at each row and at the
    rows ``offsets`` away (clamped to the video). ``joints``: the joints kept (default: the first
    ``FEATURE_JOINTS``); the body height is measured from head and ankles either way. ``fixed_reference``:
    the body height and the median posture are constants for autograd (the same values): a gradient then
    stays with the frames whose joints it is about, instead of flowing to whichever frames are the medians.
    """
    p = p[:, :FEATURE_JOINTS].to(torch.float64) if p.shape[1] > FEATURE_JOINTS else p.to(torch.float64)
    p = smooth_rows(p, smooth)
    n = p.shape[0]
    height = body_height(p)
    q = (p - p[:, _PELVIS : _PELVIS + 1]) / (height.detach() if fixed_reference else height)
    median = torch.quantile(q, 0.5, dim=0, keepdim=True)
    q = q - (median.detach() if fixed_reference else median)
    if joints is not None:
        q = q[:, list(joints)]
    q = q.reshape(n, -1)
    idx = torch.arange(n)
    return torch.cat([q[(idx + s).clamp(0, n - 1)] for s in offsets], 1).to(torch.float32)


def log_mean_exp(z: Tensor) -> Tensor:
    """The MIL pooling of frame logits into the video's logit."""
    return torch.logsumexp(z, 0) - math.log(max(1, z.shape[0]))


class PostureMIL(nn.Module):
    """Pose reader + posture-MIL head (see the module docstring)."""

    def __init__(self, spec: ModelSpec, backbone: ResNet | None = None) -> None:
        super().__init__()
        cfg = PostureConfig.from_dict(spec.backbone) if spec.backbone else PostureConfig()
        if spec.views != "local":
            raise ValueError(f"the posture model reads the local view only, not {spec.views!r}")
        if len(spec.classes) != 2:
            raise ValueError(f"the posture model has two classes (target and other), not {len(spec.classes)}")
        if backbone is None:
            backbone = ResNet(ResNetConfig.from_dict({**cfg.resnet, "num_classes": 0}))
        if backbone.num_classes:
            backbone.reset_classifier(0)
        cfg.resnet = backbone.cfg.to_dict()
        spec.backbone = cfg.to_dict()
        self.spec, self.cfg = spec, cfg
        self.backbone = backbone
        with torch.no_grad():
            was = backbone.training
            backbone.eval()
            maps = self._stages(backbone, torch.zeros(1, 3, spec.size, spec.size))  # shapes only
            d = self._maps(torch.zeros(1, 3, spec.size, spec.size)).shape[1]
            backbone.train(was)
        self.register_buffer("read_mean", torch.zeros(d))
        self.register_buffer("read_std", torch.ones(d))
        self.pose = nn.Linear(d, cfg.joints * 2)
        if cfg.upper_readout not in UPPER_READOUTS:
            raise ValueError(f"the upper-body read-out must be one of {UPPER_READOUTS}, not {cfg.upper_readout!r}")
        if cfg.upper:  # the upper-body reader: its own ResNet (same shape), standardisation and read-out
            self.upper_backbone = ResNet(ResNetConfig.from_dict(cfg.resnet))
            self.upper_backbone.load_state_dict(backbone.state_dict())
            self.register_buffer("upper_mean", torch.zeros(d))
            self.register_buffer("upper_std", torch.ones(d))
            self.upper_pose = nn.Linear(d, cfg.upper * 2)
            if cfg.upper_readout == "softargmax":
                self.upper_heat = HeatmapReadout(sum(m.shape[1] for m in maps), UPPER_READ_JOINTS, maps[0].shape[-1])
        self.feature_joints = cfg.feature_index()
        self.mil = nn.ModuleList(self._mlp(len(self.feature_joints) * 2 * len(cfg.context), cfg.hidden)
                                 for _ in range(max(1, cfg.heads)))  # fmt: skip
        self.register_buffer("video_bias", torch.zeros(()))

    @staticmethod
    def _mlp(n_in: int, hidden: list[int]) -> nn.Sequential:
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(n_in, h), nn.ReLU()]
            n_in = h
        return nn.Sequential(*layers, nn.Linear(n_in, 1))

    @staticmethod
    def _stages(bb: ResNet, x: Tensor) -> list[Tensor]:
        """The ResNet's first three stages' feature maps of images ``[N, 3, S, S]``."""
        l1 = bb.layer1(bb.maxpool(bb.relu(bb.bn1(bb.conv1(x)))))
        l2 = bb.layer2(l1)
        return [l1, l2, bb.layer3(l2)]

    def upper_heat_joints(self, x: Tensor) -> Tensor:
        """The soft-argmax read-out's ``UPPER_READ_JOINTS`` joints of upper-body images ``[N, 3, S, S]`` in
        their own view coordinates ``[-1, 1]``: ``[N, UPPER_READ_JOINTS, 2]``."""
        return self.upper_heat(self._stages(self.upper_backbone, x))

    def _maps(self, x: Tensor, upper: bool = False) -> Tensor:
        """The ResNet's last two feature maps of images ``[N, 3, S, S]``, flattened: ``[N, D]`` (``upper``:
        the upper-body reader's ResNet)."""
        bb = self.upper_backbone if upper else self.backbone
        l3 = self._stages(bb, x)[2]
        return torch.cat([bb.layer4(l3).flatten(1), l3.flatten(1)], 1)

    def read_features(self, x: Tensor, upper: bool = False) -> Tensor:
        """Standardised pose-reader features of normalised images ``[N, 3, S, S]``: ``[N, D]``."""
        if upper:
            return (self._maps(x, True) - self.upper_mean) / self.upper_std
        return (self._maps(x) - self.read_mean) / self.read_std

    def raw_joints(self, x: Tensor, upper: bool = False) -> Tensor:
        """The read-out of images ``[N, 3, S, S]`` as they are (no mirror image): ``[N, J, 2]`` (``upper``:
        the upper-body reader's ``cfg.upper`` joints of upper-body images, in their own coordinates)."""
        if upper and self.cfg.upper_readout == "softargmax":
            return self.upper_heat_joints(x)[:, : self.cfg.upper]
        if upper:
            return self.upper_pose(self.read_features(x, True)).view(x.shape[0], self.cfg.upper, 2)
        return self.pose(self.read_features(x)).view(x.shape[0], self.cfg.joints, 2)

    def _read_once(self, x: Tensor, upper: bool = False) -> Tensor:
        q = self.raw_joints(x, upper)
        if self.cfg.mirror:
            q = (q + mirror_joints(self.raw_joints(x.flip(-1), upper))) / 2
        return q

    def _read(self, x: Tensor, upper: bool = False) -> Tensor:
        d = int(self.cfg.shifts)
        if d <= 0:
            return self._read_once(x, upper)
        moves = SHIFT_MOVES
        n, size = x.shape[0], x.shape[-1]
        q = self._read_once(torch.cat([shift_image(x, dx * d, dy * d) for dx, dy in moves]), upper)
        back = torch.tensor([[2.0 * dx * d / size, 2.0 * dy * d / size] for dx, dy in moves], dtype=q.dtype)
        q = q.view(len(moves), n, *q.shape[1:]) - back.to(q.device)[:, None, None, :]
        return q.mean(0)

    def joints(self, x: Tensor, upper_images: Tensor | None = None) -> Tensor:
        """Joints of normalised local-view images ``[N, 3, S, S]`` in view coordinates ``[-1, 1]``:
        ``[N, J, 2]``. With ``cfg.mirror``, the mean of the images' and their mirror images' joints; with
        ``cfg.upper``, the first ``cfg.upper`` joints are averaged with the upper-body reader's reading of
        ``upper_images`` (the same frames' upper-body images, required then)."""
        q = self._read(x)
        if self.cfg.upper:
            if upper_images is None:
                raise ValueError("this posture model also reads the upper-body images: pass upper_images")
            k = self.cfg.upper
            q = torch.cat([(q[:, :k] + upper_to_local(self._read(upper_images, True))) / 2, q[:, k:]], 1)
        return q

    def posture_features(self, joints: Tensor, rows_step: int = 1, fixed_reference: bool = False) -> Tensor:
        """This model's posture features (:func:`posture_features` with its context, smoothing and feature
        joints) of a whole video's joints ``[N, J, 2]`` in video pixels, read every ``rows_step`` images of
        the training density: ``[N, F]`` float32."""
        offsets = [int(o) * rows_step for o in self.cfg.context]
        return posture_features(joints, offsets, self.cfg.smooth * rows_step, self.feature_joints, fixed_reference)

    def head_logits(self, features: Tensor) -> Tensor:
        """Posture features ``[N, F]`` -> every head's frame logits ``[heads, N]``."""
        return torch.stack([h(features).squeeze(1) for h in self.mil])

    def frame_logits(self, features: Tensor) -> Tensor:
        """Posture features ``[N, F]`` -> each frame's evidence for the target class ``[N]`` (heads averaged)."""
        return self.head_logits(features).mean(0)

    def video_logit(self, frame_logits: Tensor) -> Tensor:
        """The video's calibrated logit for the target class (> 0: target)."""
        return log_mean_exp(frame_logits) - self.video_bias

    def forward(self, *clips: Tensor) -> Tensor:
        raise TypeError(
            "the posture model scores whole videos, not clips: use stanviewer.core.explain.posture "
            "(stanviewer analyze / evaluate do)"
        )

    def randomisation_levels(self) -> dict[str, list[nn.Module]]:
        """Modules re-initialised, top down, by the model-randomisation check."""
        bbs = [self.backbone, *([self.upper_backbone] if self.cfg.upper else [])]
        return {
            # the per-frame head and the joint read-outs under it
            "head": [
                *self.mil,
                self.pose,
                *([self.upper_pose] if self.cfg.upper else []),
                *([self.upper_heat] if hasattr(self, "upper_heat") else []),
            ],
            "blocks4": [bb.layer4 for bb in bbs],
            "blocks3": [bb.layer3 for bb in bbs],
            "blocks2": [bb.layer2 for bb in bbs],
            "blocks1": [m for bb in bbs for m in (bb.layer1, bb.conv1, bb.bn1)],
        }
