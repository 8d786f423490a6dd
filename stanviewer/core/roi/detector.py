"""The person-box detector behind the ``learned`` ROI provider (:mod:`.learned`): model, files, training.

The motion provider (:mod:`.motion`) needs no training but loses whole subjects now and then: legs whose
colour matches the wall, a poster joined to the body, a region beside the person (docs/posture.md,
nineteenth session). This provider is a learned alternative: a small ResNet reads the whole frame
letterboxed to :attr:`DetectorConfig.size` pixels and gives

- a logit per cell of a ``grid x grid`` map: the softmax over the cells says which cell holds the centre
  of *the* person's box (one person per video: the patient; bystanders are what it learns to ignore),
- at every cell the centre's offset inside the cell (sigmoid) and the box's log width and height (in
  quarters of the input side).

:func:`decode` takes the most likely cell. The softmax peak is the frame's confidence.

Files are safetensors with JSON metadata (never pickles): :func:`save_detector`, :func:`load_detector`.
The bundled file (``models/roi/person-detector-synth.safetensors``) was trained on synthetic videos only;
it finds the drawn figure, not real people (its model card: ``models/README.md``). :func:`train_detector`
is the job behind ``stanviewer train-detector``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stanviewer.core.errors import RoiError, StanError
from stanviewer.core.models.configs import config_kwargs, config_to_dict
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.learned import BUNDLED_DETECTOR, bundled_detector_path

__all__ = [
    "BUNDLED_DETECTOR",
    "DetectorConfig",
    "DetectorTraining",
    "PersonDetector",
    "bundled_detector_path",
    "decode",
    "describe_detector",
    "letterbox",
    "load_detector",
    "save_detector",
    "train_detector",
]

_META_KEY = "stanviewer_detector"


@dataclass
class DetectorConfig:
    """Architecture and input of a :class:`PersonDetector`."""

    size: int = 128  # the frame is letterboxed (scaled, padded at the right/bottom) to size x size
    grid: int = 16  # cells per side of the centre map (the ResNet's second stage: stride 8)
    stem: int = 32
    widths: tuple[int, int, int] = (32, 64, 96)
    layers: tuple[int, int, int] = (1, 1, 2)
    mean: float = 0.45
    std: float = 0.25

    def to_dict(self) -> dict:
        return config_to_dict(self, ("widths", "layers"))

    @classmethod
    def from_dict(cls, d: dict) -> DetectorConfig:
        cfg = cls(**config_kwargs(cls, d, ("widths", "layers")))
        if cfg.size % 8 or cfg.grid != cfg.size // 8:
            raise ValueError(f"size must be a multiple of 8 and grid = size / 8, not {cfg.size} / {cfg.grid}")
        return cfg


class PersonDetector(nn.Module):
    """Three ResNet stages; the second (stride 8) and the third (stride 16, upsampled) feed a small head."""

    def __init__(self, cfg: DetectorConfig | None = None) -> None:
        super().__init__()
        from stanviewer.core.models.resnet import ResNet, ResNetConfig

        self.cfg = cfg = cfg or DetectorConfig()
        rc = ResNetConfig(layers=(*cfg.layers, 1), widths=(*cfg.widths, cfg.widths[-1]), stem=cfg.stem, name="det")
        bb = ResNet(rc)
        self.conv1, self.bn1, self.relu, self.maxpool = bb.conv1, bb.bn1, bb.relu, bb.maxpool
        self.layer1, self.layer2, self.layer3 = bb.layer1, bb.layer2, bb.layer3
        c2, c3 = cfg.widths[1], cfg.widths[2]
        self.head = nn.Sequential(nn.Conv2d(c2 + c3, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 5, 1))

    def normalise(self, images: np.ndarray) -> torch.Tensor:
        """uint8 ``[N, S, S, 3]`` RGB -> float ``[N, 3, S, S]``."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        return (x - self.cfg.mean) / self.cfg.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images ``[N, 3, S, S]`` -> ``[N, 5, grid, grid]`` (centre logit, offset x/y, log w/h)."""
        l2 = self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))
        l3 = self.layer3(l2)
        return self.head(torch.cat([l2, F.interpolate(l3, size=l2.shape[-2:], mode="nearest")], 1))


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """``frame`` scaled so that its longer side is ``size`` and padded with black at the right and bottom:
    ``(uint8 [size, size, 3], scale)``; frame pixels = letterbox pixels / scale."""
    h, w = frame.shape[:2]
    s = size / max(w, h)
    img = np.zeros((size, size, 3), np.uint8)
    small = cv2.resize(frame, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    img[: small.shape[0], : small.shape[1]] = small[:size, :size]
    return img, s


def decode(out: torch.Tensor, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The detector's output ``[N, 5, G, G]`` -> ``(boxes float [N, 4] (x0, y0, x1, y1) in letterbox pixels,
    confidence float [N])``: the most likely centre cell, its offset and size; confidence = its softmax
    probability."""
    n, _, g, _ = out.shape
    stride = size / g
    prob = torch.softmax(out[:, 0].reshape(n, -1).float(), 1)
    conf, k = prob.max(1)
    gy, gx = k // g, k % g
    o = out[torch.arange(n), :, gy, gx].float()
    cx = (gx + torch.sigmoid(o[:, 1])) * stride
    cy = (gy + torch.sigmoid(o[:, 2])) * stride
    w = torch.exp(o[:, 3].clamp(-8, 4)) * size / 4
    h = torch.exp(o[:, 4].clamp(-8, 4)) * size / 4
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    return boxes.detach().numpy().astype(np.float64), conf.detach().numpy().astype(np.float64)


def save_detector(model: PersonDetector, path: str | Path, meta: dict | None = None) -> Path:
    """Write ``model`` as safetensors with its configuration (and ``meta``) as JSON metadata, atomically."""
    from safetensors.torch import save_file

    from stanviewer.core.fileio import write_via_temp

    path = Path(path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    info = {"format": 1, "config": model.cfg.to_dict(), **(meta or {})}
    return write_via_temp(
        path, lambda tmp: save_file(state, tmp, metadata={_META_KEY: json.dumps(info, sort_keys=True)})
    )


def load_detector(path: str | Path) -> tuple[PersonDetector, dict]:
    """A detector file -> ``(model in eval mode, its metadata)``; :class:`RoiError` naming the file and the
    first offending key for anything else (empty, not safetensors, not a detector, wrong shapes)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise RoiError(f"person detector file not found: {path}")
    if path.stat().st_size == 0:
        raise RoiError(f"person detector file is empty: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta_text = (f.metadata() or {}).get(_META_KEY)
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safe_open handle)
    except Exception as e:  # safetensors raises several types for damaged files
        raise RoiError(f"not a readable safetensors file: {path} ({type(e).__name__}: {e})") from e
    if meta_text is None:
        raise RoiError(f"not a stanviewer person detector (no '{_META_KEY}' metadata): {path}")
    try:
        meta = json.loads(meta_text)
        model = PersonDetector(DetectorConfig.from_dict(meta.get("config") or {}))
    except (ValueError, TypeError) as e:
        raise RoiError(f"person detector {path} has a malformed configuration: {e}") from e
    own = model.state_dict()
    for k, v in own.items():
        if k not in state:
            raise RoiError(f"person detector {path} lacks the key {k!r}")
        if tuple(state[k].shape) != tuple(v.shape):
            got, want = tuple(state[k].shape), tuple(v.shape)
            raise RoiError(f"person detector {path}: {k!r} has shape {got}, expected {want}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise RoiError(f"person detector {path} has an unexpected key {extra[0]!r}")
    model.load_state_dict({k: state[k].float() if v.is_floating_point() else state[k] for k, v in own.items()})
    if not all(torch.isfinite(v).all() for v in model.state_dict().values() if v.is_floating_point()):
        raise RoiError(f"person detector {path} holds non-finite weights")
    return model.eval(), meta


# --------------------------------------------------------------------------------------------- training
@dataclass
class DetectorTraining:
    """Settings of :func:`train_detector`."""

    steps: int = 1500
    batch: int = 64
    lr: float = 2e-3
    frames_per_video: int = 12
    seed: int = 0
    threads: int = 0
    config: DetectorConfig = field(default_factory=DetectorConfig)


def _training_frames(manifests: Sequence[Path], cfg: DetectorTraining) -> Job[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Letterboxed frames and their boxes (letterbox pixels) of every manifest row with a boxes column
    (``split`` test rows are left out: they are for evaluation)."""
    from stanviewer.core.manifest import read_boxes_csv, read_manifest
    from stanviewer.core.video import open_video

    rows = []
    for m in manifests:
        m = Path(m)
        for e in read_manifest(m):
            if e.split == "test":
                continue
            if not e.extra.get("boxes"):
                raise StanError(f"the detector learns from known person boxes: {e.name} has no boxes column", m)
            rows.append((e, m.parent / e.extra["boxes"]))
    if not rows:
        raise StanError("no training videos (rows with split train/val and a boxes column) in the manifests")
    images, targets, names = [], [], []
    size = cfg.config.size
    for k, (e, bpath) in enumerate(rows):
        known = read_boxes_csv(bpath)
        with open_video(e.video) as r:
            idx = np.unique(np.linspace(0, r.frame_count - 1, cfg.frames_per_video).round().astype(int))
            for i in idx:
                if int(i) not in known:
                    continue
                img, s = letterbox(r.frame(int(i)), size)
                x, y, w, h = known[int(i)]
                images.append(img)
                targets.append(np.array([x, y, x + w, y + h], np.float32) * s)
        names.append(e.name)
        yield Progress(k + 1, len(rows), f"reading training frames: {e.name}")
    return np.stack(images), np.stack(targets), names


def _loss(out: torch.Tensor, boxes: np.ndarray, size: int) -> tuple[torch.Tensor, float, float]:
    n, _, g, _ = out.shape
    stride = size / g
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    gx = np.clip((cx // stride).astype(int), 0, g - 1)
    gy = np.clip((cy // stride).astype(int), 0, g - 1)
    ce = F.cross_entropy(out[:, 0].reshape(n, -1), torch.from_numpy(gy * g + gx))
    o = out[torch.arange(n), :, torch.from_numpy(gy), torch.from_numpy(gx)]
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-3) / (size / 4)
    off = torch.from_numpy(np.stack([cx / stride - gx, cy / stride - gy], 1)).float()
    size_loss = F.l1_loss(o[:, 3:], torch.from_numpy(np.log(wh)).float())
    reg = F.l1_loss(torch.sigmoid(o[:, 1:3]), off.clamp(0, 1)) + size_loss
    return ce + 2 * reg, float(ce.detach()), float(reg.detach())


def describe_detector(path: str | Path, meta: dict) -> str:
    """A short card of a detector file for ``stanviewer model info``."""
    cfg, tr = meta.get("config", {}), meta.get("training", {})
    lines = [
        f"person detector {Path(path).name} (ROI provider 'learned'; not a classifier)",
        f"  input       whole frame letterboxed to {cfg.get('size', '?')} px; centre map {cfg.get('grid', '?')} x "
        f"{cfg.get('grid', '?')}",
        f"  trained on  {tr.get('videos', '?')} videos, {tr.get('frames', '?')} frames with known boxes "
        f"({', '.join(Path(m).parent.name or str(m) for m in tr.get('manifests', [])) or '?'})",
        f"  training    {tr.get('steps', '?')} steps of {tr.get('batch', '?')}, seed {tr.get('seed', '?')}; final "
        f"losses centre {tr.get('final_centre_loss', '?')}, box {tr.get('final_box_loss', '?')}",
    ]
    if meta.get("description"):
        lines.append(f"  about       {meta['description']}")
    return "\n".join(lines)


def train_detector(manifests: Sequence[str | Path], out: str | Path, cfg: DetectorTraining | None = None) -> Job[dict]:
    """Train a :class:`PersonDetector` on the frames of ``manifests`` (rows with a ``boxes`` column, test
    rows left out) and write it to ``out``; a job returning the training record (also in the file's
    metadata). Mirror images and brightness/contrast jitter; AdamW, warm-up and cosine decay."""
    cfg = cfg or DetectorTraining()
    if cfg.steps < 1 or cfg.batch < 1 or cfg.frames_per_video < 1:
        raise StanError("steps, batch and frames per video must be >= 1")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.monotonic()
    images, boxes, names = yield from _training_frames([Path(m) for m in manifests], cfg)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = PersonDetector(cfg.config)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.05)
    size, warm = cfg.config.size, max(1, cfg.steps // 15)
    hist: list[tuple[float, float]] = []
    model.train()
    for step in range(cfg.steps):
        lr = cfg.lr * min(1.0, (step + 1) / warm) * 0.5 * (1 + np.cos(np.pi * step / cfg.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        k = rng.integers(len(images), size=cfg.batch)
        x, b = images[k].astype(np.float32), boxes[k].copy()
        flip = rng.random(cfg.batch) < 0.5
        x[flip] = x[flip, :, ::-1]
        b[flip, 0], b[flip, 2] = size - boxes[k][flip, 2], size - boxes[k][flip, 0]
        x = (x - 115) * rng.uniform(0.8, 1.2, (cfg.batch, 1, 1, 1)) + 115 + rng.uniform(-20, 20, (cfg.batch, 1, 1, 1))
        loss, ce, reg = _loss(model(model.normalise(np.clip(x, 0, 255).astype(np.uint8))), b, size)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist.append((ce, reg))
        ce_m, reg_m = np.mean(hist[-100:], 0)
        yield Progress(step + 1, cfg.steps, f"training the person detector: centre {ce_m:.3f}, box {reg_m:.3f}")
    model.eval()
    record = {
        "training": {
            "manifests": [str(m) for m in manifests],
            "videos": len(names),
            "frames": int(len(images)),
            "steps": cfg.steps,
            "batch": cfg.batch,
            "lr": cfg.lr,
            "frames_per_video": cfg.frames_per_video,
            "seed": cfg.seed,
            "final_centre_loss": round(float(np.mean([h[0] for h in hist[-100:]])), 4),
            "final_box_loss": round(float(np.mean([h[1] for h in hist[-100:]])), 4),
            "seconds": round(time.monotonic() - t0, 1),
        },
        "description": "person-box detector trained on videos with known boxes",
    }
    save_detector(model, out, record)
    return record
