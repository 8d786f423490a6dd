"""Pose pretraining of the backbone on synthetic figures (a stand-in for Kinetics pretraining).

The paper fine-tunes a UniFormer pretrained on Kinetics-400; no such weights can be downloaded here, and
a tiny UniFormer trained from scratch with video labels stayed at chance on CPU (DESIGN.md §6; our own
run: training loss 0.69 after 150 steps). This module gives the backbone a generic sense of body pose
first: it regresses the 2-D positions of 17 joints in every frame of clips of synthetic videos (the
generator's ``joints/*.csv``), in the coordinates of the model's views. **No compensation label, video
label or frame label is used.** STAN is then trained with video labels only, starting from these
weights (``stanviewer train --init``).

Head: the backbone's last feature map ``[B, C, t, h, w]`` (UniFormer: t = T/2, two frames a step; the
per-frame CNN's ResNet: t = T, one frame a step) is pooled (or flattened) per time step and a linear layer
predicts the joints of the frames of that step; loss: smooth L1 on coordinates normalised to [-1, 1] of
the view. The per-frame CNN is pretrained the same way (``--arch cnn-...``); its pretrained ResNet can
then start any of the three sequence heads.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stanviewer.core.errors import StanError
from stanviewer.core.fileio import atomic_write
from stanviewer.core.manifest import read_manifest
from stanviewer.core.models.checkpoint import save_checkpoint
from stanviewer.core.models.framecnn import FrameCNN
from stanviewer.core.models.registry import build_model
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import Job, Progress
from stanviewer.core.training.data import VideoSample, load_samples
from stanviewer.core.views import normalise, view_names

__all__ = ["PoseHead", "jitter_brightness", "joint_targets", "pretrain_pose", "warmup_cosine"]


class PoseHead(nn.Module):
    """Joints of the 2 frames of each time step from the features of that step.

    ``pooled=True`` reads the spatially averaged features (what STAN's classification head sees), so
    pose must be encoded in the pooled vector; otherwise the flattened spatial map is used.
    """

    def __init__(self, channels: int, hw: int, joints: int, pooled: bool = True, frames_per_step: int = 2) -> None:
        super().__init__()
        self.joints = joints
        self.pooled = pooled
        self.per_step = frames_per_step
        self.fc = nn.Linear(channels * (1 if pooled else hw), frames_per_step * joints * 2)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """``Tensor[B, C, t, h, w]`` -> ``Tensor[B, t * frames_per_step, J, 2]``."""
        B, C, t, h, w = feat.shape
        if self.pooled:
            x = feat.mean(dim=(3, 4)).transpose(1, 2)  # [B, t, C]
        else:
            x = feat.permute(0, 2, 1, 3, 4).reshape(B, t, C * h * w)
        return self.fc(x).view(B, t * self.per_step, self.joints, 2)


def warmup_cosine(lr: float, step: int, steps: int, warm: int) -> float:
    """Learning rate at ``step`` of ``steps``: linear warm-up over ``warm`` steps, then cosine decay."""
    return lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, step / steps)))


def jitter_brightness(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast (0.8-1.2 around mid-grey) and brightness (+-20) of uint8 pixels, as float32."""
    return np.clip((img.astype(np.float32) - 115.0) * rng.uniform(0.8, 1.2) + 115.0 + rng.uniform(-20, 20), 0, 255)


def _feature_map(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The backbone's last feature map as a clip ``Tensor[B, C, t, h, w]`` for either model family."""
    if isinstance(model, FrameCNN):

        def per_frame(x: torch.Tensor) -> torch.Tensor:  # every frame through the 2-D ResNet
            b, c, t, s1, s2 = x.shape
            frames = x.transpose(1, 2).reshape(b * t, c, s1, s2)
            return model.frame_stack(model.backbone.forward_features(frames))

        return per_frame
    return model.backbone.forward_features


def _read_joints(path: Path) -> np.ndarray:
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    arr = np.array([[float(v) for v in r[1:]] for r in rows[1:]], np.float32)
    return arr.reshape(arr.shape[0], -1, 2)


def joint_targets(sample: VideoSample, joints: np.ndarray, view: str, size: int) -> np.ndarray:
    """Joints of the sample's images in one view, normalised to [-1, 1]: float [n, J, 2]."""
    j = joints[np.minimum(sample.frame_index, len(joints) - 1)].astype(np.float64)
    w, h = sample.frame_size
    if view == "global":
        s = size / max(w, h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        x0, y0 = (size - nw) // 2, (size - nh) // 2
        u = j[..., 0] * s + x0
        v = j[..., 1] * s + y0
    else:
        if sample.square is None:
            raise StanError("the local view needs a crop square")
        cx, cy, side = sample.square
        u = (j[..., 0] - (cx - side / 2)) * size / side
        v = (j[..., 1] - (cy - side / 2)) * size / side
    return np.stack([u / size * 2 - 1, v / size * 2 - 1], -1).astype(np.float32)


def pretrain_pose(
    manifest: str | Path,
    spec: ModelSpec,
    out: str | Path,
    *,
    steps: int = 1500,
    batch: int = 24,
    lr: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
    max_minutes: float | None = None,
    pooled: bool = True,
    init: str | Path | None = None,
    device: str = "auto",
    workers: int = 1,
) -> Job[Path]:
    """Pretrain a backbone on joint regression; writes a checkpoint of ``spec.arch`` (random head) to ``out``.

    Works for STAN (a clip through the UniFormer) and the per-frame CNNs (every frame through the ResNet).

    ``pooled`` predicts from spatially pooled features (default); ``init`` continues from a checkpoint.
    ``device`` as in :func:`~stanviewer.core.training.train.select_device`; ``workers`` processes decode
    videos not yet cached.
    """
    from stanviewer.core.training.train import select_device

    dev = select_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    manifest = Path(manifest)
    entries = {e.name: e for e in read_manifest(manifest)}
    if not all(e.extra.get("joints") for e in entries.values()):
        raise StanError("pose pretraining needs a joints column (synthetic data sets have one)", manifest)
    samples = yield from load_samples(manifest, spec, split="train", workers=workers)
    targets = []
    views = view_names(spec.views)
    for s in samples:
        jo = _read_joints(manifest.parent / entries[s.name].extra["joints"])
        targets.append(np.stack([joint_targets(s, jo, v, spec.size) for v in views], 1))  # [n, V, J, 2]
    J = targets[0].shape[2]
    model = build_model(spec)
    if init is not None:
        from stanviewer.core.models.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(init).model.state_dict())
    bb = model.backbone
    fmap = _feature_map(model)
    with torch.no_grad():
        feat = fmap(torch.zeros(1, 3, spec.frames, spec.size, spec.size))
    per_step = spec.frames // feat.shape[2]  # UniFormer's stem halves T (2 frames a step); the CNN keeps T
    head = PoseHead(feat.shape[1], feat.shape[3] * feat.shape[4], J, pooled=pooled, frames_per_step=per_step)
    model.to(dev)
    head.to(dev)
    params = list(bb.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    warm = max(1, steps // 20)
    T = spec.frames
    history: list[dict] = []
    t0 = time.monotonic()
    losses: list[float] = []
    bb.train()
    for step in range(steps):
        lr_now = warmup_cosine(lr, step, steps, warm)
        for g in opt.param_groups:
            g["lr"] = lr_now
        xs, ys = [], []
        for _ in range(batch):
            k = int(rng.integers(len(samples)))
            s, tg = samples[k], targets[k]
            v = int(rng.integers(len(views)))
            pos = np.arange(int(rng.integers(s.sub)), s.images.shape[0], s.sub)
            a = int(rng.integers(0, max(1, pos.size - T + 1)))
            idx = pos[a : a + T]
            if idx.size < T:
                idx = np.concatenate([idx, np.full(T - idx.size, idx[-1] if idx.size else 0)])
            img = jitter_brightness(s.images[idx, v], rng)
            xs.append(img.astype(np.uint8))
            ys.append(tg[idx, v])
        x = normalise(torch.from_numpy(np.stack(xs))).to(dev)
        y = torch.from_numpy(np.stack(ys)).to(dev)
        pred = head(fmap(x))
        loss = F.smooth_l1_loss(pred, y, beta=0.05)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 25 == 0 or step == steps - 1:
            # mean pixel error of the last batch in view pixels, for a readable curve
            px = float((pred.detach() - y).norm(dim=-1).mean()) * spec.size / 2
            history.append({"step": step + 1, "loss": float(np.mean(losses[-25:])), "joint_error_px": px,
                            "lr": lr_now, "minutes": round((time.monotonic() - t0) / 60, 2)})  # fmt: skip
        yield Progress(step + 1, steps, f"pose pretraining loss {np.mean(losses[-25:]):.4f}")
        if max_minutes and (time.monotonic() - t0) / 60 > max_minutes:
            break
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "pretrain_history.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(history)
    meta = {
        "name": f"{out.name}-pose-pretrained",
        "pretraining": {
            "task": "2-D joint regression on synthetic figures (no compensation, video or frame labels used)",
            "manifest": str(manifest),
            "videos": len(samples),
            "steps": len(losses),
            "batch": batch,
            "lr": lr,
            "seed": seed,
            "final_joint_error_px": history[-1]["joint_error_px"],
            "head": "pooled features" if pooled else "flattened feature map",
        },
        "training": {"data": "backbone pretrained on synthetic pose only; the head is untrained"},
    }
    return save_checkpoint(out / "pretrained.safetensors", model.cpu(), meta)
