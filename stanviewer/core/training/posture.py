"""Training of the posture-MIL model (``--arch posture-narrow``; :mod:`stanviewer.core.models.posture`).

``stanviewer train MANIFEST --arch posture-narrow --views local --init POSE.safetensors`` runs here, with
the same manifest, split, validation and output files as every other ``train`` run:

1. the pose reader's ResNet comes from ``--init``, a pose-pretrained per-frame CNN (``stanviewer pretrain
   --arch cnn-narrow-... --views local``; generator joints, no labels), and stays frozen;
2. its joint read-out (a linear layer on the last two feature maps) is fitted in closed form (ridge
   regression, ``ridge``) on the images of the training videos against the generator's joints (the
   manifest's ``joints`` column — joints, not labels); with ``reader_fit="train"`` (``--reader-fit train``)
   the read-outs, the fine-tuning and the upper-body reader leave the validation subjects out, so that
   early stopping and the video bias see readings like a new subject's;
3. the MIL heads learn from **video labels only**: each head's video logit is the log-mean-exp of its
   frames' logits (binary cross-entropy, the heads' losses averaged), AdamW, ``epochs`` passes over the
   training videos in batches of 8; the epoch with the lowest validation loss (of the averaged heads) is
   kept;
4. the video bias is calibrated on the validation videos (the threshold on their pooled logits that
   maximises video-level F1), so that ``video logit > 0`` is the decision.

Everything runs on cached view images (:mod:`stanviewer.core.training.data`): about a minute of CPU for
the read-out and a minute for the head on the 288-video synthetic set.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from stanviewer.core.errors import StanError
from stanviewer.core.fileio import write_dict_rows
from stanviewer.core.manifest import read_manifest, trained_on_synthetic_only
from stanviewer.core.metrics import prf
from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.posture import (
    JOINT_NAMES,
    UPPER_READ_JOINTS,
    UPPER_READOUTS,
    PostureConfig,
    PostureMIL,
    body_height,
    log_mean_exp,
    mirror_joints,
    to_video,
    upper_square,
)
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import Job, Progress
from stanviewer.core.training.data import VideoSample, load_samples
from stanviewer.core.training.pretrain import jitter_brightness, joint_targets, warmup_cosine
from stanviewer.core.views import normalise_images

if TYPE_CHECKING:
    from stanviewer.core.training.train import TrainConfig

__all__ = [
    "ImageDraws",
    "fit_pose_readout",
    "image_draws",
    "lift_shoulder",
    "readout_error",
    "train_posture",
    "train_reader",
    "video_bias",
]


def _read_joints(path: Path, joints: int) -> np.ndarray:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    try:
        arr = np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32)
        return arr.reshape(arr.shape[0], -1, 2)[:, :joints]
    except ValueError as e:
        raise StanError(f"joints file cannot be read ({e})", path) from None


def _images(s: VideoSample) -> torch.Tensor:
    return normalise_images(s.images[:, 0])  # [n, 3, S, S]


def _maps(
    model: PostureMIL, s: VideoSample, batch: int = 256, mirrored: bool = False, upper: bool = False
) -> torch.Tensor:
    x = _images(s)
    if mirrored:
        x = x.flip(-1)
    with torch.no_grad():
        return torch.cat([model._maps(x[i : i + batch], upper) for i in range(0, len(x), batch)]).double()


def _targets(s: VideoSample, joints: np.ndarray, size: int, upper: bool) -> torch.Tensor:
    """The sample's joints in its images' view coordinates ``[-1, 1]`` (``upper``: upper-body images)."""
    if upper:
        assert s.square is not None
        s = replace(s, square=upper_square(s.square))
    return torch.from_numpy(joint_targets(s, joints, "local", size))


#: learning rate of the first reader's fine-tuning (``--reader-steps``): it starts trained
READER_LR = 5e-4

#: joints the upper-body reader's ResNet is trained on (head to wrists and the pelvis: all that the
#: upper-body image usually shows); its read-out then keeps the first ``cfg.upper``
UPPER_TRAIN_JOINTS = UPPER_READ_JOINTS


#: radius (Gaussian sigma) of :func:`lift_shoulder`'s displacement, as a fraction of the image side
LIFT_RADIUS = 0.1
_SHOULDERS = (JOINT_NAMES.index("shoulder_l"), JOINT_NAMES.index("shoulder_r"))


def lift_shoulder(
    img: np.ndarray, y: torch.Tensor, rng: np.random.Generator, amplitude: float
) -> tuple[np.ndarray, torch.Tensor]:
    """Move one shoulder of an image up or down, as a shoulder hike (or a depression) would.

    ``img`` ``[S, S, 3]`` (any dtype), ``y`` its joints ``[J, 2]`` in view coordinates ``[-1, 1]`` (J >= 4,
    the order of ``JOINT_NAMES``). One shoulder (either, at random) is displaced vertically by ``d``, drawn
    uniformly within ``amplitude`` (a fraction of the image side), by a smooth warp: a Gaussian bump of
    sigma ``LIFT_RADIUS`` of the side centred on the moved shoulder. The shoulder's target moves by ``d``
    exactly; every other joint by the warp at its place (the neck a little, the head hardly). Images and
    targets stay consistent, so the reader learns that a shoulder's place in the image, not the figure's
    usual build, says where the shoulder is: the hikes it reads on new subjects are otherwise shrunk to
    about a fifth (docs/posture.md).
    """
    import cv2

    size = img.shape[0]
    side = _SHOULDERS[int(rng.integers(2))]
    d = float(rng.uniform(-amplitude, amplitude)) * size  # pixels, + = down (image rows)
    r = LIFT_RADIUS * size
    px = (y.numpy().astype(np.float64) + 1) / 2 * size - 0.5  # pixel-centre coordinates
    sx, sy = px[side]
    gx, gy = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64))
    # output pixel (x, y) shows the input at (x, y - d * g), g centred where the shoulder lands
    g = np.exp(-((gx - sx) ** 2 + (gy - sy - d) ** 2) / (2 * r * r))
    out = cv2.remap(
        np.ascontiguousarray(img), gx.astype(np.float32), (gy - d * g).astype(np.float32),
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE,
    )  # fmt: skip
    moved = px.copy()
    moved[:, 1] += d * np.exp(-((px[:, 0] - sx) ** 2 + (px[:, 1] - sy) ** 2) / (2 * r * r))
    moved[side, 1] = sy + d
    return out, torch.from_numpy(((moved + 0.5) / size * 2 - 1).astype(np.float32))


def train_reader(
    model: PostureMIL,
    samples: list[VideoSample],
    joints: dict[str, np.ndarray],
    *,
    upper: bool = False,
    steps: int = 1500,
    seed: int = 0,
    batch: int = 128,
    lr: float = 1e-3,
    lift: float = 0.0,
    weight: float = 0.0,
) -> Job[float]:
    """Train one pose reader's ResNet on its images against the generator's joints: single images, a
    linear layer on the last two feature maps (dropped afterwards), smooth L1, AdamW with warm-up and
    cosine decay, brightness/contrast jitter and mirror images. The ResNet is then frozen in evaluation
    mode. Returns the last 100 steps' mean error in view pixels.

    ``lift`` > 0: half the images get one shoulder moved up or down by up to that fraction of the image
    side (:func:`lift_shoulder`). A model whose upper-body read-out is ``softargmax`` trains that read-out
    (``model.upper_heat``) in place of the linear layer and keeps it.

    ``weight`` > 0: images are drawn with probability proportional to :func:`readout_weights` (the shoulders'
    distance from their usual height; joints, never labels), so that rare postures such as a shoulder hike
    fill more of each batch. 0: every image alike (the draws of runs made before this option).

    ``upper``: the upper-body reader on upper-body images, ``UPPER_TRAIN_JOINTS`` joints, the linear layer
    from random weights. Otherwise the first reader on local-view images, all joints, the linear layer
    starting from the fitted ridge read-out (:func:`fit_pose_readout` first), so that training starts
    where the reader is.
    """
    bb = model.upper_backbone if upper else model.backbone
    nj = UPPER_TRAIN_JOINTS if upper else model.cfg.joints
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    tg = [_targets(s, joints[s.name], model.spec.size, upper)[:, :nj] for s in samples]
    heat = upper and model.cfg.upper_readout == "softargmax"
    draw = image_draws(samples, joints, weight) if weight > 0 else None
    head: torch.nn.Module
    if heat:  # the soft-argmax read-out trains with the ResNet and stays with it
        head = model.upper_heat
        head.train()
    else:
        head = torch.nn.Linear(model.read_mean.numel(), nj * 2)
    if not upper:  # the ridge read-out with its standardisation folded in
        with torch.no_grad():
            w = model.pose.weight / model.read_std
            head.weight.copy_(w)
            head.bias.copy_(model.pose.bias - w @ model.read_mean)
    params = [*bb.parameters(), *head.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    warm = max(1, steps // 20)
    errs: list[float] = []
    what = "the upper-body reader" if upper else "the pose reader"
    bb.train()
    try:
        for step in range(steps):
            lr_now = warmup_cosine(lr, step, steps, warm)
            for g in opt.param_groups:
                g["lr"] = lr_now
            xs, ys = [], []
            if draw is None:  # (the random draws in this order, as runs made before weighting had them)
                ks, within = rng.integers(len(samples), size=batch), None
            else:
                ks, within = draw.sample(rng, batch)
            for j, k in enumerate(ks):
                s = samples[k]
                i = int(rng.integers(s.images.shape[0])) if within is None else int(within[j])
                img = jitter_brightness(s.images[i, 0], rng)
                y = tg[k][min(i, len(tg[k]) - 1)]
                if lift > 0 and rng.random() < 0.5:
                    img, y = lift_shoulder(img, y, rng, lift)
                if rng.random() < 0.5:
                    img, y = img[:, ::-1], mirror_joints(y)
                xs.append(img)
                ys.append(y)
            x = normalise_images(np.stack(xs).astype(np.uint8))
            y = torch.stack(ys)
            pred = model.upper_heat_joints(x) if heat else head(model._maps(x, upper)).view(len(xs), nj, 2)
            loss = F.smooth_l1_loss(pred, y, beta=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            errs.append(float((pred.detach() - y).norm(dim=-1).mean()) * model.spec.size / 2)
            yield Progress(step + 1, steps, f"training {what}: error {np.mean(errs[-100:]):.2f} px")
    finally:
        bb.eval()
        head.eval()
        for p in params:
            p.requires_grad_(False)
    return float(np.mean(errs[-100:])) if errs else float("nan")


#: shoulder deviation (body heights) at which a frame's read-out weight is ``1 + weight`` (:func:`readout_weights`)
READOUT_WEIGHT_SCALE = 0.03


def _weighting(weight: float) -> str:
    """How :func:`readout_weights` weighs images, in words for a checkpoint's training record."""
    return f"1 + {weight:g} * (shoulder deviation / {READOUT_WEIGHT_SCALE:g} body heights)^2"


def readout_weights(s: VideoSample, joints: np.ndarray, weight: float) -> np.ndarray:
    """Each image's weight in the read-out fit: ``1 + weight * (d / 0.03)**2``, where ``d`` is how far the
    generator's shoulders stand from their usual height above the neck in that video (the larger side,
    in body heights: head to mid-ankles, the video's median). Rare postures such as a shoulder hike
    otherwise count for little and are read shrunk towards the average (measured: a hike read at 0.26 of
    its height on new subjects). Joints only, never labels. ``weight`` 0: every image weighs 1."""
    n = len(s.frame_index)
    if weight <= 0 or n == 0:
        return np.ones(n)
    j = np.asarray(joints, np.float64)[np.clip(s.frame_index, 0, len(joints) - 1)]
    idx = {name: k for k, name in enumerate(JOINT_NAMES)}
    height = float(body_height(torch.from_numpy(j)))
    neck = j[:, idx["neck"], 1]
    above = np.stack([neck - j[:, idx["shoulder_l"], 1], neck - j[:, idx["shoulder_r"], 1]], 1) / height
    d = np.abs(above - np.median(above, 0)).max(1)
    return 1.0 + weight * (d / READOUT_WEIGHT_SCALE) ** 2


@dataclass
class ImageDraws:
    """Weighted draws of (sample, image) pairs: cumulative probabilities over every image of every sample."""

    cum: np.ndarray  # [images]: cumulative probability, the last one 1
    offsets: np.ndarray  # [samples + 1]: index of each sample's first image in ``cum``

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws: each one's sample index and image index within that sample."""
        flat = np.minimum(np.searchsorted(self.cum, rng.random(n), side="right"), len(self.cum) - 1)
        ks = np.searchsorted(self.offsets, flat, side="right") - 1
        return ks, flat - self.offsets[ks]


def image_draws(samples: list[VideoSample], joints: dict[str, np.ndarray], weight: float) -> ImageDraws:
    """Draws of training images with probability proportional to :func:`readout_weights` (a sample's images
    beyond its weights take its last weight)."""
    w = [readout_weights(s, joints[s.name], weight) for s in samples]
    w = [wk[np.minimum(np.arange(s.images.shape[0]), len(wk) - 1)] for wk, s in zip(w, samples)]
    flat = np.concatenate(w)
    return ImageDraws(np.cumsum(flat) / flat.sum(), np.cumsum([0, *(len(wk) for wk in w)]))


def fit_pose_readout(
    model: PostureMIL,
    samples: list[VideoSample],
    joints: dict[str, np.ndarray],
    ridge: float = 10.0,
    upper: bool = False,
    weight: float = 0.0,
) -> Job[float]:
    """Fit ``model.pose`` (and its standardisation) by ridge regression; returns the training error in
    view pixels (mean joint distance). With ``model.cfg.mirror`` the mirror images (and their mirrored
    joints) are fitted too, so that the read-out reads both alike. ``upper``: the upper-body reader's
    read-out (``model.upper_pose``) on upper-body images. ``weight`` > 0: a weighted fit, images with the
    shoulders away from their usual height weighing more (:func:`readout_weights`); the standardisation
    stays unweighted and the ridge is scaled by the mean weight, so that ``weight`` 0 is the plain fit."""
    d = model.read_mean.numel()
    linear = model.upper_pose if upper else model.pose
    out = linear.out_features
    nj = out // 2
    n, s1, sq = 0, torch.zeros(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    sw, s1w = 0.0, torch.zeros(d, dtype=torch.float64)
    xx = torch.zeros(d, d, dtype=torch.float64)
    xy = torch.zeros(d, out, dtype=torch.float64)
    sy = torch.zeros(out, dtype=torch.float64)
    for k, s in enumerate(samples):
        t = _targets(s, joints[s.name], model.spec.size, upper)
        wv = torch.from_numpy(readout_weights(s, joints[s.name], weight))[:, None]
        for mirrored in (False, True) if model.cfg.mirror else (False,):
            m = _maps(model, s, mirrored=mirrored, upper=upper)
            y = (mirror_joints(t) if mirrored else t)[:, :nj].reshape(len(m), -1).double()
            n += len(m)
            s1 += m.sum(0)
            sq += (m * m).sum(0)
            sw += float(wv.sum())
            s1w += (wv * m).sum(0)
            xx += m.T @ (wv * m)
            xy += m.T @ (wv * y)
            sy += (wv * y).sum(0)
        yield Progress(k + 1, len(samples), f"fitting the joint read-out: {s.name}")
    mu = s1 / n
    var = (sq / n - mu**2).clamp_min(0)
    sd = var.sqrt() + 1e-6
    mw, yw = s1w / sw, sy / sw  # weighted means (= the plain means without weighting)
    zz = (xx - sw * torch.outer(mw, mw)) / torch.outer(sd, sd)
    zy = (xy - sw * torch.outer(mw, yw)) / sd[:, None]
    w = torch.linalg.solve(zz + ridge * (sw / n) * torch.eye(d, dtype=torch.float64), zy)  # [d, out]
    with torch.no_grad():
        (model.upper_mean if upper else model.read_mean).copy_(mu.float())
        (model.upper_std if upper else model.read_std).copy_(sd.float())
        linear.weight.copy_(w.T.float())
        linear.bias.copy_((yw - ((mw - mu) / sd) @ w).float())
    return readout_error(model, samples, joints, upper)


def readout_error(
    model: PostureMIL, samples: list[VideoSample], joints: dict[str, np.ndarray], upper: bool = False
) -> float:
    """A reader's mean joint error (view pixels) on every 20th of ``samples``, read as the model reads."""
    nj = model.cfg.upper if upper else model.cfg.joints
    err = []
    for s in samples[:: max(1, len(samples) // 20)]:
        with torch.no_grad():
            q = model._read(_images(s), upper)
        t = _targets(s, joints[s.name], model.spec.size, upper)[:, :nj]
        err.append(float((q - t).norm(dim=-1).mean()) * model.spec.size / 2)
    return float(np.mean(err))


def _video_features(model: PostureMIL, s: VideoSample, su: VideoSample | None = None) -> torch.Tensor:
    """Posture features of a training video's images (joints read by the model, in video pixels); ``su``:
    the same video's upper-body images (models with an upper-body reader)."""
    if s.square is None:
        raise StanError(f"{s.name}: the local view has no crop square")
    x = _images(s)
    xu = _images(su).split(256) if su is not None else [None] * len(x.split(256))
    with torch.no_grad():
        q = torch.cat([model.joints(a, b) for a, b in zip(x.split(256), xu)])
    return model.posture_features(to_video(q.double(), s.square))


def video_bias(logits: np.ndarray, labels: np.ndarray) -> float:
    """The threshold on pooled video logits that maximises video-level F1 (midpoints between values; the
    one nearest 0 among ties). 0 when there is nothing to calibrate on."""
    if len(logits) == 0 or labels.min() == labels.max():
        return 0.0
    v = np.sort(np.unique(logits))
    cands = np.concatenate([[v[0] - 1.0], (v[1:] + v[:-1]) / 2, [0.0]])
    f1 = np.array([prf(logits > c, labels).f1 for c in cands])
    best = np.flatnonzero(f1 >= f1.max() - 1e-12)
    return float(cands[best[np.argmin(np.abs(cands[best]))]])


def _video_metrics(model: PostureMIL, feats: dict[str, torch.Tensor], samples: list[VideoSample]):
    from stanviewer.core.training.train import video_metrics

    with torch.no_grad():
        pooled = [model.video_logit(model.frame_logits(feats[s.name])) for s in samples]
    return video_metrics(samples, pooled, model.spec.target_index)


READER_DATA_PREFIX = "reader-data:"  # names of --reader-data videos (kept apart from the manifest's own)


def _reader_data(
    manifest: Path, spec: ModelSpec, workers: int, joints: dict[str, np.ndarray], n_joints: int, upper: bool = False
) -> Job[list[VideoSample]]:
    """The videos of ``--reader-data`` (every split; their labels are ignored), renamed so that their names
    cannot meet the training manifest's; their joints go into ``joints`` (``n_joints`` 0: already there)."""
    if not manifest.is_file():
        raise StanError("the reader data manifest does not exist", manifest)
    entries = {e.name: e for e in read_manifest(manifest)}
    missing = [n for n, e in entries.items() if not e.extra.get("joints")]
    if missing:
        raise StanError(f"reader data needs a joints column for every video: {missing[0]} has none", manifest)
    samples = yield from load_samples(manifest, spec, workers=workers, upper=upper)
    out = [replace(s, name=READER_DATA_PREFIX + s.name) for s in samples]
    if n_joints:
        for s in samples:
            joints[READER_DATA_PREFIX + s.name] = _read_joints(
                manifest.parent / entries[s.name].extra["joints"], n_joints
            )
    return out


def train_posture(
    manifest: str | Path,
    spec: ModelSpec,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    train_subjects: set[str] | None = None,
    test_subjects: set[str] | None = None,
    ridge: float = 10.0,
) -> Job:
    """Train a posture-MIL model (see the module docstring); a job returning a ``TrainResult``."""
    from stanviewer.core.models.framecnn import FrameCNN
    from stanviewer.core.models.registry import build_model
    from stanviewer.core.training.train import TrainResult, _split_val

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    t_start = time.monotonic()
    if spec.views != "local":
        raise StanError(f"the posture model reads the local view only: use --views local, not {spec.views}")
    if not np.isfinite(cfg.readout_weight) or cfg.readout_weight < 0:
        raise StanError(f"the read-out weight must be a number >= 0, not {cfg.readout_weight}")
    if not np.isfinite(cfg.upper_weight) or cfg.upper_weight < 0:
        raise StanError(f"the upper-body reader's draw weight must be a number >= 0, not {cfg.upper_weight}")
    if not np.isfinite(cfg.upper_lift) or not 0 <= cfg.upper_lift <= 0.25:
        raise StanError(f"the shoulder lift must be a fraction of the image side from 0 to 0.25, not {cfg.upper_lift}")
    if cfg.reader_fit not in ("all", "train"):
        raise StanError(f"reader_fit must be 'all' or 'train', not {cfg.reader_fit!r}")
    if not cfg.init:
        raise StanError(
            "the posture model needs a pose-pretrained ResNet: --init POSE.safetensors from "
            "`stanviewer pretrain MANIFEST --arch cnn-narrow-patch --views local --out DIR`"
        )
    ck = load_checkpoint(cfg.init)
    # a pose-pretrained per-frame CNN, or a posture model: its first reader's ResNet is the start
    if not isinstance(ck.model, (FrameCNN, PostureMIL)) or ck.model.backbone.cfg.to_dict().get("name") != "narrow":
        raise StanError(
            f"--init must be a pose-pretrained narrow per-frame CNN or a posture model, not {ck.spec.arch}", ck.path
        )
    manifest = Path(manifest)
    entries = {e.name: e for e in read_manifest(manifest)}
    samples = yield from load_samples(manifest, spec, workers=cfg.workers)
    if train_subjects is not None or test_subjects is not None:
        pool = [s for s in samples if train_subjects is None or s.subject in train_subjects]
        test = [s for s in samples if test_subjects is not None and s.subject in test_subjects]
        pool = [s for s in pool if s not in test]
    else:
        pool = [s for s in samples if (entries[s.name].split or "train") == "train"]
        test = [s for s in samples if entries[s.name].split == "test"]
    missing = [s.name for s in pool if not entries[s.name].extra.get("joints")]
    if missing:  # joints of the training videos only; test videos need none
        raise StanError(
            f"the joint read-out is fitted on the training videos' joints: {missing[0]} has no joints column",
            manifest,
        )
    tr, val = _split_val(pool, cfg.val_fraction, rng)
    target = spec.target_index
    if not any(s.label == target for s in tr) or all(s.label == target for s in tr):
        raise StanError("training needs videos of both classes")

    if cfg.upper_readout not in UPPER_READOUTS:
        raise StanError(f"the upper-body read-out must be one of {UPPER_READOUTS}, not {cfg.upper_readout!r}")
    if cfg.upper_readout != "linear":
        arch = spec.backbone or PostureConfig().to_dict()
        spec = replace(spec, backbone={**arch, "upper_readout": cfg.upper_readout})
    model = build_model(spec)
    assert isinstance(model, PostureMIL)
    model.backbone.load_state_dict(ck.model.backbone.state_dict())
    model.eval()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    # the videos the readers are fitted on: with "train", the validation subjects are read like new ones
    fit = tr if cfg.reader_fit == "train" else pool
    joints = {s.name: _read_joints(manifest.parent / entries[s.name].extra["joints"], model.cfg.joints) for s in fit}
    extra, extra_upper = [], []  # --reader-data: more videos for the readers (joints only, never the heads)
    if cfg.reader_data:
        extra = yield from _reader_data(Path(cfg.reader_data), spec, cfg.workers, joints, model.cfg.joints)
        fit = [*fit, *extra]
    read_err = yield from fit_pose_readout(model, fit, joints, ridge, weight=cfg.readout_weight)
    reader_desc: dict = {}
    init_desc: dict = {}  # a posture --init: how its readers were made (the ResNets this model starts from)
    if isinstance(ck.model, PostureMIL):
        init_desc["init_pose_readout"] = ck.meta.get("training", {}).get("pose_readout")
    if cfg.reader_steps:  # fine-tune the first reader on the local views, then fit its read-out again
        err0 = read_err
        train_err = yield from train_reader(model, fit, joints, steps=cfg.reader_steps, seed=cfg.seed, lr=READER_LR)
        read_err = yield from fit_pose_readout(model, fit, joints, ridge, weight=cfg.readout_weight)
        reader_desc = {
            "fine_tuning": {
                "steps": cfg.reader_steps,
                "lr": READER_LR,
                "train_error_view_px": round(train_err, 3),
                "readout_error_before_view_px": round(err0, 3),
            }
        }
    upper: dict[str, VideoSample] = {}
    upper_err = upper_train_err = None
    if model.cfg.upper:
        # it starts from the --init's upper-body reader where it has one, else from its (first) ResNet
        src = ck.model.upper_backbone if getattr(ck.model.cfg, "upper", 0) else ck.model.backbone
        model.upper_backbone.load_state_dict(src.state_dict())
        heat = model.cfg.upper_readout == "softargmax"
        if heat and hasattr(ck.model, "upper_heat"):  # the --init's soft-argmax read-out is the start too
            model.upper_heat.load_state_dict(ck.model.upper_heat.state_dict())
        elif heat and not cfg.upper_steps:
            raise StanError(
                "the soft-argmax read-out is trained with the upper-body reader: give --upper-steps, or --init a "
                "posture model that has one"
            )
        usamples = yield from load_samples(manifest, spec, workers=cfg.workers, upper=True)
        upper = {s.name: s for s in usamples}
        if extra:
            extra_upper = yield from _reader_data(Path(cfg.reader_data), spec, cfg.workers, joints, 0, upper=True)
            upper.update({s.name: s for s in extra_upper})
        upool = [upper[s.name] for s in fit]
        upper_train_err = yield from train_reader(
            model,
            upool,
            joints,
            upper=True,
            steps=cfg.upper_steps,
            seed=cfg.seed,
            lift=cfg.upper_lift,
            weight=cfg.upper_weight,
        )
        if heat:  # trained with the ResNet: nothing to fit
            upper_err = readout_error(model, upool, joints, upper=True)
        else:
            upper_err = yield from fit_pose_readout(model, upool, joints, ridge, upper=True, weight=cfg.readout_weight)
        model.eval()

    feats: dict[str, torch.Tensor] = {}
    everyone = [*pool, *test]
    for k, s in enumerate(everyone):
        feats[s.name] = _video_features(model, s, upper.get(s.name))
        yield Progress(k + 1, len(everyone), f"reading posture: {s.name}")

    head = model.mil
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=1e-4)
    history: list[dict] = []
    best_val, best_state, best_epoch = float("inf"), None, 0
    order = list(range(len(tr)))
    for epoch in range(cfg.epochs):
        head.train()
        rng.shuffle(order)
        losses = []
        for i in range(0, len(order), 8):
            batch = [tr[k] for k in order[i : i + 8]]
            # every head learns on its own (MIL on its own frame logits); the model averages them
            z = torch.stack([torch.logsumexp(model.head_logits(feats[s.name]), 1) for s in batch], 1)  # [H, B]
            z = z - torch.log(torch.tensor([float(len(feats[s.name])) for s in batch]))
            y = torch.tensor([float(s.label == target) for s in batch]).expand_as(z)
            loss = F.binary_cross_entropy_with_logits(z, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        head.eval()
        val_m, _ = _video_metrics(model, feats, val) if val else ({}, [])
        tr_m, _ = _video_metrics(model, feats, tr)
        rec = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "train_acc": tr_m["accuracy"],
               **{f"val_{k}": v for k, v in val_m.items() if k != "videos"}}  # fmt: skip
        history.append(rec)
        vl = val_m.get("loss", rec["train_loss"])
        if vl < best_val - 1e-4:
            best_val, best_epoch = vl, epoch + 1
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        yield Progress(epoch + 1, cfg.epochs, f"epoch {epoch + 1}/{cfg.epochs} loss {rec['train_loss']:.3f}"
                       + (f" val loss {vl:.3f} auroc {val_m['auroc']:.3f}" if val else ""))  # fmt: skip
    if best_state is not None:
        head.load_state_dict(best_state)
    with torch.no_grad():
        model.video_bias.zero_()
        if val:
            lg = np.array([float(log_mean_exp(model.frame_logits(feats[s.name]))) for s in val])
            model.video_bias.fill_(video_bias(lg, np.array([float(s.label == target) for s in val])))
    val_m, _ = _video_metrics(model, feats, val) if val else ({}, [])
    test_m, test_rows = _video_metrics(model, feats, test) if test else ({}, [])
    from stanviewer.core.training.train import _write_history, split_description

    _write_history(out / "history.csv", history)
    upper_desc = {}
    if model.cfg.upper:
        upper_desc["upper_body"] = {
            "joints": list(JOINT_NAMES[: model.cfg.upper]),
            "steps": cfg.upper_steps,
            **({"shoulder_lift": cfg.upper_lift} if cfg.upper_lift else {}),
            **({"draw_weighting": _weighting(cfg.upper_weight)} if cfg.upper_weight else {}),
            "readout": model.cfg.upper_readout,
            # no steps (--upper-steps 0): the upper reader reads with the ResNet it started from
            "train_error_view_px": round(upper_train_err, 3) if np.isfinite(upper_train_err or np.nan) else None,
            "readout_error_view_px": round(float(upper_err or 0.0), 3),
        }
    from stanviewer.core.roi.learned import roi_record

    training = {
        **split_description(manifest, tr, val, test),
        "config": {**asdict(cfg), "ridge": ridge},
        **roi_record(spec.roi_provider),
        "pose_readout": {
            "fitted_on": "generator joints of the training and validation videos"
            if cfg.reader_fit == "all"
            else f"generator joints of the training videos ({len(fit)}); validation subjects held out",
            "error_view_px": round(read_err, 3),
            "weighting": _weighting(cfg.readout_weight) if cfg.readout_weight else "none",
            "init": str(cfg.init),
            # the mask the readers' start was pretrained under, where it differs from this model's
            **({"init_mask_box": ck.spec.local_mask} if ck.spec.local_mask != spec.local_mask else {}),
            **({"reader_data": {"manifest": Path(cfg.reader_data).name, "videos": len(extra)}} if extra else {}),
            **init_desc,
            **reader_desc,
            **upper_desc,
        },
        "video_bias": float(model.video_bias),
        "history": history,
        "stop": f"epochs done (best epoch {best_epoch})",
        "val": val_m,
        "test": test_m,
        "minutes": round((time.monotonic() - t_start) / 60, 1),
    }
    # nothing to resume (a run takes minutes): "last" is the same model as "best", the epoch kept
    best_path, last_path = out / "best.safetensors", out / "last.safetensors"
    for path in (best_path, last_path):
        # frame scores are probabilities (sigmoid of the frame logit), not rescaled per video
        meta = {
            "name": out.name,
            "training": training,
            "default_method": "posture",
            "frame_scores": "probability",
            "synthetic_only": trained_on_synthetic_only(manifest),
        }
        save_checkpoint(path, model, meta)
    if test_rows:
        write_dict_rows(out / "test_videos.csv", test_rows)
    return TrainResult(best=best_path, last=last_path, history=history, val=val_m, test=test_m)
