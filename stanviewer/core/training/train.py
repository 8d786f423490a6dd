"""Weakly supervised training of STAN (or any registered model) with a multiple-instance objective.

Each step takes a class-balanced batch of whole videos. A video is cut into consecutive windows of T
model frames; every window gets an evidence score (target-class log-odds); the video score pools them
(:func:`~stanviewer.core.training.mil.pool_scores`, smooth maximum by default) and a binary
cross-entropy compares it with the video label. Only video labels are used: frame labels never reach
training.

Augmentation (per video, the same for all its frames, so that nothing changes within a video that the
label could hide in): horizontal flip, brightness/contrast jitter, a small translation, the sampling
phase (which half-step frames are used) and a random temporal offset of the window grid.

Optimisation: AdamW, linear warm-up then cosine decay, class-balanced batches, validation on held-out
*training subjects* every epoch with early stopping on validation loss, a checkpoint every epoch
(``last.safetensors``; ``best.safetensors`` at the best validation), ``--resume`` from ``last``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from stanviewer.core.errors import CheckpointError, StanError, describe
from stanviewer.core.fileio import write_dict_rows, write_via_temp
from stanviewer.core.manifest import trained_on_synthetic_only
from stanviewer.core.metrics import auroc, prf
from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint
from stanviewer.core.models.framecnn import FrameCNN
from stanviewer.core.models.registry import build_model
from stanviewer.core.models.stan import STAN, ModelSpec, video_centre
from stanviewer.core.progress import Job, Progress
from stanviewer.core.training.data import VideoSample, load_samples, model_windows
from stanviewer.core.training.mil import pool_scores
from stanviewer.core.views import normalise

__all__ = ["TrainConfig", "TrainResult", "evaluate_videos", "select_device", "train"]


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_videos: int = 6
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: float = 0.05  # fraction of all steps
    pool: str = "lse"
    pool_r: float = 4.0
    max_windows: int = 16  # per video and step (a random contiguous run of windows beyond that)
    val_fraction: float = 0.15  # share of training subjects held out for validation / early stopping
    patience: int = 8
    seed: int = 0
    threads: int | None = None
    max_minutes: float | None = None
    augment: bool = True
    init: str | None = None  # stanviewer checkpoint to start from (fine-tuning)
    device: str = "auto"
    eval_stride: int | None = None  # window stride (model frames) for validation; default T/2
    freeze_stages: int = 0  # keep the first N backbone stages fixed (4: the whole backbone, only the head learns)
    workers: int = 1  # processes that decode videos not yet in the training cache
    upper_steps: int = 1500  # posture model: training steps of the upper-body pose reader
    # posture model: the upper-body reader's training moves one shoulder of half its images up or down by up
    # to this fraction of the image side (0: off; see training.posture.lift_shoulder)
    upper_lift: float = 0.0
    # posture model: the upper-body reader's read-out, "linear" (ridge) or "softargmax" (heatmaps, trained with it)
    upper_readout: str = "linear"
    # posture model: the upper-body reader's training draws images with the shoulders away from their usual
    # height this much more often (0: every image alike; see training.posture.readout_weights)
    upper_weight: float = 0.0
    reader_steps: int = 0  # posture model: fine-tuning steps of the first pose reader (0: kept as --init)
    # posture model: videos the readers are fitted on (read-outs, fine-tuning, upper-body reader): "all" the
    # training split, or "train" only, validation subjects held out (read like new subjects)
    reader_fit: str = "all"
    # posture model: weight of images with the shoulders away from their usual height in the read-out fits
    # (0: every image alike; see training.posture.readout_weights)
    readout_weight: float = 0.0
    # posture model: a manifest of more videos with joints for the pose readers only (never the heads)
    reader_data: str | None = None


@dataclass
class TrainResult:
    best: Path
    last: Path
    history: list[dict] = field(default_factory=list)
    val: dict = field(default_factory=dict)
    test: dict = field(default_factory=dict)


def select_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA, then MPS, then CPU; an explicit name must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise StanError("CUDA was requested but no CUDA GPU is available (use --device cpu or auto)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise StanError("MPS was requested but is not available (use --device cpu or auto)")
    return torch.device(name)


def _augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x: uint8 [W, V, T, S, S, 3] of one video -> augmented copy (same transform for every frame)."""
    out = x
    if rng.random() < 0.5:
        out = out[..., :, ::-1, :]
    s = out.shape[-2]
    dx, dy = (int(v) for v in rng.integers(-s // 16, s // 16 + 1, 2))
    if dx or dy:
        out = np.roll(out, (dy, dx), axis=(-3, -2))
    f = out.astype(np.float32)
    contrast = rng.uniform(0.8, 1.2)
    bright = rng.uniform(-20, 20)
    f = (f - 115.0) * contrast + 115.0 + bright
    return np.clip(f, 0, 255).astype(np.uint8)


def _video_windows(
    sample: VideoSample, spec: ModelSpec, stride: int, rng: np.random.Generator | None, max_windows: int
) -> np.ndarray:
    """uint8 [W, V, T, S, S, 3] windows of one video (training: random phase/offset, capped)."""
    T = spec.frames
    phase = int(rng.integers(sample.sub)) if rng is not None else 0
    offset = int(rng.integers(0, T // 2 + 1)) if rng is not None else 0
    wins = list(model_windows(sample, T, stride, phase, offset))
    if rng is not None and len(wins) > max_windows:
        a = int(rng.integers(0, len(wins) - max_windows + 1))
        wins = wins[a : a + max_windows]
    idx = np.stack(wins)  # [W, T]
    imgs = sample.images[idx]  # [W, T, V, S, S, 3]
    return np.ascontiguousarray(imgs.transpose(0, 2, 1, 3, 4, 5))


def _to_views(x: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """uint8 [W, V, T, S, S, 3] -> V tensors float [W, 3, T, S, S]."""
    t = normalise(torch.from_numpy(x))  # [W, V, 3, T, S, S]
    return [t[:, v].to(device) for v in range(t.shape[1])]


def window_evidence(model: STAN, x: np.ndarray, device: torch.device, batch: int = 32) -> torch.Tensor:
    """Evidence (target log-odds) of every window, without gradients: ``Tensor[W]``."""
    outs = []
    with torch.no_grad():
        for a in range(0, x.shape[0], batch):
            logits = model(*_to_views(x[a : a + batch], device))
            outs.append(model.evidence(logits).float().cpu())
    return torch.cat(outs)


def evaluate_videos(
    model: STAN, samples: list[VideoSample], cfg: TrainConfig, device: torch.device, feat_cache: dict | None = None
) -> tuple[dict, list[dict]]:
    """Video-level metrics (loss, accuracy, F1 of the target class, AUROC) with the MIL decision rule.

    ``feat_cache`` (head-only training: the backbone does not change) reuses pooled window features.
    """
    model.eval()
    spec = model.spec
    stride = cfg.eval_stride or max(1, spec.frames // 2)
    use_cache = feat_cache is not None and stride == max(1, spec.frames // 2)
    centred = bool(getattr(spec, "video_centre", False))
    pooled = []
    for s in samples:
        if use_cache or centred:
            with torch.no_grad():
                if use_cache:
                    f = _cached_features(model, s, device, feat_cache).to(device)
                else:
                    f = _window_features(model, _video_windows(s, spec, stride, None, 10**9), device).to(device)
                c = video_centre(f) if centred else None
                ev = model.evidence(model.classify(f, c) if centred else model.classify(f)).float().cpu()
        else:
            ev = window_evidence(model, _video_windows(s, spec, stride, None, 10**9), device)
        pooled.append(pool_scores(ev, cfg.pool, cfg.pool_r))
    return video_metrics(samples, pooled, spec.target_index)


def video_metrics(samples: list[VideoSample], pooled: list[torch.Tensor], target: int) -> tuple[dict, list[dict]]:
    """Video-level metrics (loss, accuracy, F1 of class ``target``, AUROC; decision: pooled logit > 0) and
    one row per video, from each video's pooled logit."""
    rows, scores, labels, losses = [], [], [], []
    for s, v in zip(samples, pooled):
        y = float(s.label == target)
        losses.append(float(F.binary_cross_entropy_with_logits(v, torch.tensor(y))))
        scores.append(float(v))
        labels.append(y)
        rows.append(
            {
                "video": s.name,
                "subject": s.subject,
                "label": int(y),
                "score": float(v),
                "prob": float(torch.sigmoid(v)),
                "pred": int(v > 0),
            }
        )
    sc, lb = np.asarray(scores), np.asarray(labels)
    m = prf(sc > 0, lb)
    return {
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "accuracy": float(np.mean((sc > 0) == (lb > 0))) if len(lb) else float("nan"),
        "f1": m.f1,
        "precision": m.precision,
        "recall": m.recall,
        "auroc": auroc(sc, lb),
        "videos": len(samples),
    }, rows


def split_description(manifest: str | Path, tr: list, val: list, test: list) -> dict:
    """The manifest and the videos and subjects of each split, as recorded in a checkpoint's training metadata."""
    return {
        "manifest": str(manifest),
        "videos_train": len(tr),
        "videos_val": len(val),
        "videos_test": len(test),
        "subjects_train": sorted({s.subject for s in tr}),
        "subjects_val": sorted({s.subject for s in val}),
        "subjects_test": sorted({s.subject for s in test}),
    }


def load_backbone(model: torch.nn.Module, source: torch.nn.Module, same_head: bool = True) -> None:
    """Copy ``source``'s weights into ``model``; the head too when both have the same kind of head.

    Feature standardisation buffers (``feat_mean``/``feat_std``) are copied when both models have them and
    otherwise left as they are (the trainer then measures them).
    """
    state = source.state_dict()
    optional = ("feat_mean", "feat_std")
    heads = ("backbone.head.", "mlp_head.", "head.")  # UniFormer's linear head, STAN's MLP, the CNN's head
    if not same_head:
        state = {k: v for k, v in state.items() if not k.startswith(heads)}
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k not in optional or k in own}
    missing, unexpected = model.load_state_dict(state, strict=False)
    skip = optional + (() if same_head else heads)
    bad = [k for k in missing if not k.startswith(skip)] + list(unexpected)
    if bad:
        raise RuntimeError(f"first mismatched key {bad[0]!r}")


def freeze_stages(model: STAN, n: int) -> list[torch.nn.Module]:
    """Freeze the patch embeddings and blocks of the first ``n`` stages; returns the frozen modules.

    Gradients then stop at stage ``n + 1``, so a step costs little more than a forward pass there.
    """
    if not 0 <= n <= 4:
        raise StanError(f"--freeze-stages must be between 0 and 4, not {n}")
    bb = getattr(model, "backbone", None)
    if isinstance(model, FrameCNN):  # ResNet: stem + layer1..layerN (4: the whole backbone)
        mods = (
            [model.backbone]
            if n == 4
            else ([bb.conv1, bb.bn1] if n else []) + [getattr(bb, f"layer{k}") for k in range(1, n + 1)]
        )
        for m in mods:
            for p in m.parameters():
                p.requires_grad_(False)
        return mods
    names = [name for k in range(1, n + 1) for name in (f"patch_embed{k}", f"blocks{k}")]
    if n == 4:
        names.append("norm")  # the whole backbone: only the head learns
    mods: list[torch.nn.Module] = []
    for name in names:
        mod = getattr(bb, name, None) if bb is not None else None
        if mod is None:
            raise StanError("--freeze-stages only applies to UniFormer backbones")
        mods.append(mod)
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(False)
    return mods


def _window_features(model: STAN, x: np.ndarray, device: torch.device, batch: int = 32) -> torch.Tensor:
    """Pooled features of every window, without gradients: ``Tensor[W, C]`` (on the CPU)."""
    outs = []
    with torch.no_grad():
        for a in range(0, x.shape[0], batch):
            outs.append(model.features(*_to_views(x[a : a + batch], device)).float().cpu())
    return torch.cat(outs)


def _cached_features(model: STAN, s: VideoSample, device: torch.device, cache: dict | None) -> torch.Tensor:
    """Features of all windows of ``s`` at stride T/2 (no augmentation), from ``cache`` when there."""
    if cache is not None and s.name in cache:
        return cache[s.name]
    f = _window_features(model, _video_windows(s, model.spec, max(1, model.spec.frames // 2), None, 10**9), device)
    if cache is not None:
        cache[s.name] = f
    return f


def _feature_stats(
    model: STAN, samples: list[VideoSample], device: torch.device, cache: dict | None = None
) -> Job[tuple[torch.Tensor, torch.Tensor]]:
    """Mean and standard deviation of the pooled features over all windows (stride T/2) of ``samples``."""
    model.eval()
    total, total_sq, n = None, None, 0
    for i, s in enumerate(samples):
        f = _cached_features(model, s, device, cache)
        if getattr(model.spec, "video_centre", False):  # the head reads features minus the video's centre
            f = f - video_centre(f)
        f = f.reshape(-1, f.shape[-1])  # STAN [W, C]; per-frame CNN [W, T, D] -> every frame's features
        f64 = f.double()
        total = f64.sum(0) if total is None else total + f64.sum(0)
        total_sq = (f64**2).sum(0) if total_sq is None else total_sq + (f64**2).sum(0)
        n += f.shape[0]
        yield Progress(i + 1, len(samples), f"feature statistics: {i + 1}/{len(samples)} videos")
    assert total is not None and total_sq is not None
    mean = total / n
    std = (total_sq / n - mean**2).clamp_min(0).sqrt()
    return mean.float(), std.float()


def _split_val(samples: list[VideoSample], frac: float, rng: np.random.Generator) -> tuple[list, list]:
    subjects = sorted({s.subject for s in samples})
    if frac <= 0 or len(subjects) < 3:
        return samples, []
    n_val = max(1, round(len(subjects) * frac))
    val_subj = set(rng.choice(subjects, size=n_val, replace=False).tolist())
    return [s for s in samples if s.subject not in val_subj], [s for s in samples if s.subject in val_subj]


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = max(1, int(cfg.warmup * total))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def _save_state(path: Path, opt: torch.optim.Optimizer, info: dict) -> None:
    """Optimizer and loop state as safetensors + JSON (never pickled)."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"{pid}.{k}"] = (v if isinstance(v, torch.Tensor) else torch.tensor(v)).contiguous()
    meta = {"param_groups": sd["param_groups"], **info}
    write_via_temp(path, lambda tmp: save_file(tensors, tmp, metadata={"state": json.dumps(meta)}))


#: loop state that ``_save_state`` writes beside the optimizer's, with the types ``train`` needs on resume
_STATE_KEYS = {"epoch": int, "step": int, "best_val": (int, float), "bad_epochs": int, "history": list}


def _load_state(path: Path, opt: torch.optim.Optimizer) -> dict:
    """Optimizer and loop state written by :func:`_save_state` into ``opt``; returns the loop state.

    Raises:
        CheckpointError: naming the file, when it is damaged or belongs to another model or optimizer
            (``opt`` is left unchanged then).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["state"])
            state: dict[int, dict] = {}
            for key in f.keys():  # noqa: SIM118
                pid, name = key.split(".", 1)
                state.setdefault(int(pid), {})[name] = f.get_tensor(key)
    except (SafetensorError, OSError, KeyError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"not a readable trainer state ({describe(e)})", path) from e
    if not isinstance(meta, dict):
        raise CheckpointError("not a readable trainer state (its state is not a JSON object)", path)
    for k, types in _STATE_KEYS.items():
        if isinstance(meta.get(k), bool) or not isinstance(meta.get(k), types):
            raise CheckpointError(f"not a readable trainer state ({k!r} is {meta.get(k)!r})"[:200], path)
    if not all(isinstance(h, dict) for h in meta["history"]):
        raise CheckpointError("not a readable trainer state (its history is not a list of records)", path)
    params = [p for g in opt.param_groups for p in g["params"]]
    for pid, st in state.items():
        if not 0 <= pid < len(params):
            raise CheckpointError(f"holds the state of parameter {pid}; this optimizer has {len(params)}", path)
        for name, t in st.items():
            if t.dim() > 0 and t.shape != params[pid].shape:
                raise CheckpointError(
                    f"{pid}.{name} has shape {list(t.shape)}, the parameter {list(params[pid].shape)} "
                    "(a trainer state of another model?)",
                    path,
                )
    before = opt.state_dict()
    try:
        opt.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        opt.load_state_dict(before)
        raise CheckpointError(f"does not fit this model's optimizer ({describe(e)})", path) from e
    return meta


def train(
    manifest: str | Path,
    spec: ModelSpec,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    resume: bool = False,
    train_subjects: set[str] | None = None,
    test_subjects: set[str] | None = None,
) -> Job[TrainResult]:
    """Train a STAN model on the ``train`` split of ``manifest`` (a job returning a :class:`TrainResult`).

    ``train_subjects`` / ``test_subjects`` override the manifest's split (cross-validation folds).
    """
    cfg = cfg or TrainConfig()
    from stanviewer.core.models.registry import family

    if getattr(spec, "video_centre", False) and family(spec.arch) != "stan":
        raise StanError(f"--video-centre applies to STAN models (tiny, small, base), not {spec.arch}")
    earlier = [n for n in ("best.safetensors", "last.safetensors") if (Path(out_dir) / n).exists()]
    if earlier and not resume:  # its models would be overwritten and its other files left beside the new ones
        raise StanError(
            f"this folder holds an earlier training run ({earlier[0]}): train into a new --out"
            + ("" if family(spec.arch) == "posture" else ", or --resume it"),
            out_dir,
        )
    if family(spec.arch) == "posture":  # whole-video model: its own recipe (a few minutes, nothing to resume)
        from stanviewer.core.training.posture import train_posture

        if resume:
            raise StanError("--resume does not apply to the posture model (it trains in minutes): run it again")
        return (
            yield from train_posture(
                manifest, spec, out_dir, cfg, train_subjects=train_subjects, test_subjects=test_subjects
            )
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = select_device(cfg.device)
    t_start = time.monotonic()

    samples = yield from load_samples(manifest, spec, workers=cfg.workers)
    entries_split = {}
    from stanviewer.core.manifest import read_manifest

    for e in read_manifest(manifest):
        entries_split[e.name] = e.split or "train"
    if train_subjects is not None or test_subjects is not None:
        pool = [s for s in samples if train_subjects is None or s.subject in train_subjects]
        test = [s for s in samples if test_subjects is not None and s.subject in test_subjects]
        pool = [s for s in pool if s not in test]
    else:
        pool = [s for s in samples if entries_split.get(s.name) == "train"]
        test = [s for s in samples if entries_split.get(s.name) == "test"]
    tr, val = _split_val(pool, cfg.val_fraction, rng)
    pos = [s for s in tr if s.label == spec.target_index]
    neg = [s for s in tr if s.label != spec.target_index]
    if not pos or not neg:
        raise StanError(f"training needs videos of both classes ({len(pos)} target, {len(neg)} other)")

    stats_from_init = False
    if cfg.init:
        ck = load_checkpoint(cfg.init)
        fm, fs = getattr(ck.model, "feat_mean", None), getattr(ck.model, "feat_std", None)
        measured = fm is not None and fs is not None and not (bool((fm == 0).all()) and bool((fs == 1).all()))
        # else measured below (also when the init's head read features centred differently)
        same_centring = getattr(ck.spec, "video_centre", False) == getattr(spec, "video_centre", False)
        stats_from_init = measured and getattr(spec, "feature_norm", False) and same_centring
        from stanviewer.core.models.framecnn import parse_arch

        def _cnn_backbone(arch: str) -> str | None:
            return parse_arch(arch)[0] if arch.startswith("cnn-") else None

        # per-frame CNNs with the same ResNet share a pretrained backbone whatever their sequence head
        other_head = ck.spec.arch != spec.arch and _cnn_backbone(ck.spec.arch) == _cnn_backbone(spec.arch) is not None
        if ck.spec.arch != spec.arch and not other_head:
            raise StanError(f"--init checkpoint is {ck.spec.arch}, not {spec.arch}", ck.path)
        other_classes = ck.spec.classes != spec.classes  # e.g. a pretrained backbone, your own class names
        if other_classes:
            yield Progress(0, 0, f"--init: its classes {ck.spec.classes} are not {spec.classes}: its head is not used")
        model = build_model(spec)  # views do not change the parameters: any views' checkpoint initialises any views
        try:
            same_head = not other_head and not other_classes and ck.spec.head_hidden == getattr(spec, "head_hidden", 0)
            load_backbone(model, ck.model, same_head=same_head)
        except RuntimeError as e:
            why = str(e).splitlines()[-1].strip()[:160]
            if ck.spec.frames != spec.frames:
                why += f"; it was made for {ck.spec.frames}-frame clips, this run uses {spec.frames}"
            raise StanError(f"--init checkpoint does not fit this model ({why})", ck.path) from None
    else:
        model = build_model(spec)
    model.to(device)
    frozen_mods = freeze_stages(model, cfg.freeze_stages)
    # head-only training on a STAN: the backbone never changes, so window features are computed once (stride
    # T/2, no pixel augmentation; the window grid still moves by half a window from step to step)
    head_only = cfg.freeze_stages == 4 and isinstance(model, (STAN, FrameCNN))
    feat_cache: dict[str, torch.Tensor] | None = {} if head_only else None
    centred = bool(getattr(model.spec, "video_centre", False))
    if centred and not isinstance(model, STAN):
        raise StanError("--video-centre applies to STAN models (tiny, small, base)")
    if getattr(model.spec, "feature_norm", False) and not resume and not stats_from_init:
        mean, std = yield from _feature_stats(model, tr, device, feat_cache)
        model.set_feature_stats(mean, std)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    half = max(1, cfg.batch_videos // 2)
    steps_per_epoch = max(1, math.ceil(max(len(pos), len(neg)) / half))
    total = steps_per_epoch * cfg.epochs
    history: list[dict] = []
    start_epoch, step, best_val, bad_epochs = 0, 0, float("inf"), 0
    last_path, best_path = out / "last.safetensors", out / "best.safetensors"
    state_path = out / "trainer_state.safetensors"
    if resume:
        if not (last_path.exists() and state_path.exists()):
            raise StanError("nothing to resume: no last.safetensors / trainer_state.safetensors", out)
        saved = load_checkpoint(last_path)
        was, now = saved.spec.to_dict(), model.spec.to_dict()
        changed = [k for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k)]
        if changed:  # the same run goes on, or none: a resumed model must be the model that was trained
            k = changed[0]
            raise StanError(
                f"--resume: this run was started with {k} {was.get(k)!r}, this command asks for {now.get(k)!r}; "
                "resume with the options it was started with, or train into a new --out",
                out,
            )
        model.load_state_dict(saved.model.state_dict())
        model.to(device)
        info = _load_state(state_path, opt)
        start_epoch, step = info["epoch"], info["step"]
        best_val, bad_epochs, history = info["best_val"], info["bad_epochs"], info["history"]
        rng = np.random.default_rng(cfg.seed + 1000 * start_epoch)
        torch.manual_seed(cfg.seed + 1000 * start_epoch)
    use_amp = device.type == "cuda"
    from stanviewer.core.roi.learned import roi_record

    train_desc = {**split_description(manifest, tr, val, test), "config": asdict(cfg), **roi_record(spec.roi_provider)}
    # the model card warns that the model knows only synthetic figures when it saw nothing else
    synthetic = trained_on_synthetic_only(manifest)
    stop_reason = "epochs done"
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        for m in frozen_mods:
            m.eval()  # frozen stages keep their BatchNorm statistics
        if centred and not head_only:
            # the head reads differences between windows of one video, small against stochastic depth and
            # dropout: fine-tune in eval mode (deterministic features, as head-only training saw them)
            model.eval()
        if getattr(model.spec, "feature_norm", False):
            # the head reads features standardised with fixed statistics: BatchNorm on batch statistics would
            # shift those features (a precaution; the train-mode collapse seen first came from augmentation)
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        rng.shuffle(pos)
        rng.shuffle(neg)
        losses, correct, seen = [], 0, 0
        t_epoch = time.monotonic()
        for k in range(steps_per_epoch):
            batch = [pos[(k * half + j) % len(pos)] for j in range(half)]
            batch += [neg[(k * half + j) % len(neg)] for j in range(half)]
            wins, owner, centres = [], [], []
            for b, s in enumerate(batch):
                if head_only:
                    f = _cached_features(model, s, device, feat_cache)
                    if centred:  # every window of the video, before the random choice below
                        c = video_centre(f)
                    f = f[int(rng.integers(min(2, f.shape[0]))) :: 2]  # stride T, random half-window offset
                    if f.shape[0] > cfg.max_windows:
                        a = int(rng.integers(0, f.shape[0] - cfg.max_windows + 1))
                        f = f[a : a + cfg.max_windows]
                    wins.append(f)
                    owner += [b] * f.shape[0]
                    if centred:
                        centres.append(c.expand(f.shape[0], -1))
                    continue
                x = _video_windows(s, spec, spec.frames, rng, cfg.max_windows)
                if cfg.augment:
                    x = _augment(x, rng)
                wins.append(x)
                owner += [b] * x.shape[0]
            owner_t = torch.tensor(owner)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, total, cfg)
            if head_only:
                feats = torch.cat(wins).to(device)
                logits = model.classify(feats, torch.cat(centres).to(device)) if centred else model.classify(feats)
            elif centred:
                # the windows of a video (stride T, up to max_windows: a whole synthetic video) give its centre, as
                # at inference; the gradient flows through the centre too (detached, the loss climbed from the
                # second epoch: the backbone moved what the centre then cancelled)
                with torch.autocast(device.type, enabled=use_amp):
                    feats = model.features(*_to_views(np.concatenate(wins), device)).float()
                own = owner_t.to(feats.device)
                per_video = torch.stack([video_centre(feats[own == b]) for b in range(len(batch))])
                logits = model.classify(feats, per_video[own])
            else:
                with torch.autocast(device.type, enabled=use_amp):
                    logits = model(*_to_views(np.concatenate(wins), device))
            ev = model.evidence(logits.float()).cpu()
            vid_scores = torch.stack([pool_scores(ev[owner_t == b], cfg.pool, cfg.pool_r) for b in range(len(batch))])
            y = torch.tensor([float(s.label == spec.target_index) for s in batch])
            loss = F.binary_cross_entropy_with_logits(vid_scores, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 5.0)
            opt.step()
            step += 1
            losses.append(float(loss.detach()))
            correct += int(((vid_scores > 0).float() == y).sum())
            seen += len(batch)
            msg = f"epoch {epoch + 1}/{cfg.epochs} loss {np.mean(losses[-20:]):.3f} acc {correct / seen:.2f}"
            yield Progress(step, total, msg)
            if cfg.max_minutes and (time.monotonic() - t_start) / 60 > cfg.max_minutes:
                stop_reason = "time budget"
                break
        val_m, _ = evaluate_videos(model, val, cfg, device, feat_cache) if val else ({}, [])
        rec = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": float(np.mean(losses)),
            "train_acc": correct / max(1, seen),
            "lr": _lr_at(max(0, step - 1), total, cfg),  # the rate of the epoch's last step (not the next one's)
            "seconds": round(time.monotonic() - t_epoch, 1),
            **{f"val_{k}": v for k, v in val_m.items() if k != "videos"},
        }
        history.append(rec)
        yield Progress(
            step, total, " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items())
        )
        meta = {"name": out.name, "training": {**train_desc, "history": history}, "synthetic_only": synthetic}
        save_checkpoint(last_path, model, meta)
        val_loss = val_m.get("loss", rec["train_loss"])
        if val_loss < best_val - 1e-4:
            best_val, bad_epochs = val_loss, 0
            save_checkpoint(best_path, model, meta)
        else:
            bad_epochs += 1
        _save_state(
            state_path,
            opt,
            {"epoch": epoch + 1, "step": step, "best_val": best_val, "bad_epochs": bad_epochs, "history": history},
        )
        _write_history(out / "history.csv", history)
        if stop_reason == "time budget":
            break
        if bad_epochs >= cfg.patience:
            stop_reason = f"early stop (no validation improvement for {cfg.patience} epochs)"
            break
    if not best_path.exists():
        meta = {"name": out.name, "training": {**train_desc, "history": history}, "synthetic_only": synthetic}
        save_checkpoint(best_path, model, meta)
    best = load_checkpoint(best_path, device)
    val_m, _ = evaluate_videos(best.model, val, cfg, device) if val else ({}, [])
    test_m, test_rows = evaluate_videos(best.model, test, cfg, device) if test else ({}, [])
    training = {
        **train_desc,
        "history": history,
        "stop": stop_reason,
        "val": val_m,
        "test": test_m,
        "minutes": round((time.monotonic() - t_start) / 60, 1),
    }
    from stanviewer.core.models.checkpoint import update_metadata

    update_metadata(best_path, {"training": training})
    if test_rows:
        write_dict_rows(out / "test_videos.csv", test_rows)
    return TrainResult(best=best_path, last=last_path, history=history, val=val_m, test=test_m)


def _write_history(path: Path, history: list[dict]) -> None:
    write_dict_rows(path, history)
