"""Checkpoints: one safetensors file per model with JSON metadata; never unpickles untrusted data.

A stanviewer checkpoint is a ``.safetensors`` file whose header metadata holds one key, ``stanviewer``,
with a JSON document: ``format``, ``spec`` (:class:`ModelSpec`: architecture, classes, views, clip
length, sampling, input size, normalisation), ``thresholds`` (calibrated per method), ``training``
(data description, metrics, command), ``software`` (versions). Tensors are the model's state dict.

Official UniFormer ``.pth`` files are read with ``torch.load(weights_only=True)`` (tensors and plain
containers only: a pickle that tries to build any other object is refused, never executed) and mapped
with :func:`~stanviewer.core.models.uniformer.checkpoint_filter_fn`; user-supplied 2-D ResNet weights
(torchvision/timm key layout) go through the same reader into a per-frame CNN with :func:`import_resnet`.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from stanviewer import __version__
from stanviewer.core.errors import CheckpointError, describe
from stanviewer.core.fileio import sha256_file, write_via_temp
from stanviewer.core.models.metadata import check_metadata, not_a_model
from stanviewer.core.models.registry import build_model, is_known
from stanviewer.core.models.stan import STAN, ModelSpec
from stanviewer.core.models.uniformer import VARIANTS, UniFormer, UniFormerConfig, checkpoint_filter_fn

__all__ = [
    "FORMAT",
    "Checkpoint",
    "import_official",
    "import_resnet",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
    "update_metadata",
]

FORMAT = "stanviewer-checkpoint/1"


@dataclass
class Checkpoint:
    """A loaded model with its metadata. ``model`` is in eval mode on the CPU."""

    model: nn.Module
    meta: dict
    path: Path
    sha256: str
    spec: ModelSpec = field(init=False)

    def __post_init__(self) -> None:
        self.spec = ModelSpec.from_dict(self.meta["spec"])

    @property
    def name(self) -> str:
        return str(self.meta.get("name") or self.path.stem)

    def threshold(self, method: str, default: float = 0.5) -> float:
        th = self.meta.get("thresholds", {}).get(method)
        return float(th["threshold"]) if isinstance(th, dict) and "threshold" in th else default


def _software() -> dict:
    return {"stanviewer": __version__, "torch": torch.__version__}


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict | None = None, *, half: bool = False) -> Path:
    """Write ``model`` (a :class:`STAN` or other model with a ``spec``) and metadata, atomically.

    ``half`` stores floating-point tensors as float16 (half the size; loading casts back to float32).
    """
    path = Path(path)
    spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError("model has no spec; cannot write a stanviewer checkpoint", path)
    meta = {**(metadata or {})}
    meta["format"] = FORMAT
    meta["spec"] = spec.to_dict()
    meta.setdefault("software", _software())
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
        meta["stored_dtype"] = "float16"
    _write_atomic(path, tensors, meta)
    return path


def _write_atomic(path: Path, tensors: dict, meta: dict) -> None:
    """safetensors file with the metadata under ``stanviewer``; readers never see a partial file."""
    write_via_temp(path, lambda tmp: save_file(tensors, tmp, metadata={"stanviewer": json.dumps(meta, sort_keys=True)}))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointError("file not found", path)
    if path.is_dir():
        raise CheckpointError("is a folder, not a checkpoint file", path)
    if path.stat().st_size == 0:
        raise CheckpointError("file is empty (0 bytes)", path)


def _not_safetensors(path: Path) -> str:
    """Why a file that safetensors cannot open is not a checkpoint: a PyTorch ``.pth`` (zip or pickle) needs
    converting; anything else named ``.safetensors`` is damaged or cut short."""
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        head = b""
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"  # 8-byte header length, then the JSON header
    pickle = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5  # PROTO opcode, protocols 2-5
    if not looks_safetensors and (head.startswith(b"PK\x03\x04") or pickle):
        return "a PyTorch file, not a safetensors checkpoint: convert it with 'stanviewer model import'"
    if path.suffix.lower() == ".safetensors":
        return "a damaged or incomplete safetensors file (cut short while copying or downloading?)"
    return (
        "not a safetensors checkpoint; official UniFormer .pth files must first be converted with "
        "'stanviewer model import'"
    )


def read_metadata(path: str | Path) -> dict:
    """The ``stanviewer`` metadata of a checkpoint (no tensors are read)."""
    path = Path(path)
    _check_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            file_meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        why = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise CheckpointError(f"{_not_safetensors(path)} ({why})", path) from e
    raw = file_meta.get("stanviewer")
    if raw is None:
        raise CheckpointError(not_a_model(file_meta), path)
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"metadata is not valid JSON ({e.msg})", path) from e
    return check_metadata(meta, path)


def _build(meta: dict, path: Path) -> nn.Module:
    try:
        spec = ModelSpec.from_dict(meta["spec"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"model spec is invalid ({e})", path) from e
    if not is_known(spec.arch):
        raise CheckpointError(f"unknown architecture {spec.arch!r} in the model spec", path)
    try:
        return build_model(spec)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"model spec is invalid ({e})", path) from e


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise CheckpointError(f"missing key {missing[0]!r} ({len(missing)} missing in all)", path)
    if unexpected:
        raise CheckpointError(f"unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected in all)", path)
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"key {k!r} has shape {tuple(state[k].shape)}, the model needs {tuple(v.shape)}", path
            )
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a stanviewer checkpoint; clear :class:`CheckpointError` for anything wrong."""
    path = Path(path)
    meta = read_metadata(path)
    model = _build(meta, path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"tensors cannot be read ({str(e).splitlines()[0][:120]})", path) from e
    own = model.state_dict()
    state = {k: (v.to(own[k].dtype) if k in own and v.is_floating_point() else v) for k, v in state.items()}
    _load_state(model, state, path)
    for name, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"key {name!r} contains NaN or infinite values", path)
    model.eval().to(device)
    return Checkpoint(model=model, meta=meta, path=path, sha256=sha256_file(path))


def update_metadata(path: str | Path, changes: dict) -> dict:
    """Merge ``changes`` into a checkpoint's metadata (rewrites the file atomically)."""
    path = Path(path)
    meta = read_metadata(path)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(meta.get(k), dict):
            meta[k] = {**meta[k], **v}
        else:
            meta[k] = v
    _write_atomic(path, state, meta)
    return meta


# --------------------------------------------------------------------------- official checkpoints
def _read_foreign(path: Path) -> dict:
    """Tensors of an official checkpoint (.pth via weights_only, or a bare .safetensors)."""
    _check_file(path)
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"not a safetensors file ({str(e).splitlines()[0][:120]})", path) from e
    try:
        with warnings.catch_warnings():
            # Random bytes make torch warn about "pickle protocol 150" before failing; the error says it all.
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(_unpickling_reason(str(e)), path) from e
    except Exception as e:  # damaged bytes reach the unpickler as IndexError, KeyError, struct.error...
        raise CheckpointError(f"not a PyTorch checkpoint ({describe(e)})", path) from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"holds a {type(obj).__name__}, not a state dict", path)
    return obj


def _unpickling_reason(message: str) -> str:
    """A one-line reason from torch's weights-only unpickler error (its first line is boilerplate)."""
    m = re.search(r"GLOBAL ([\w.]+)", message)
    if m:
        return (
            f"refused: the file asks to build the Python object {m.group(1)}, which could run code; "
            "only tensors are read (weights_only=True) and nothing was executed"
        )
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue", "WeightsUnpickler")
    lines = [ln.strip() for ln in message.splitlines() if ln.strip() and not ln.strip().startswith(boilerplate)]
    detail = (lines or message.splitlines() or [""])[0][:120]
    return f"not a PyTorch checkpoint of tensors (weights-only unpickler: {detail}); nothing was executed"


def _variant_of(state: dict[str, torch.Tensor]) -> str:
    depth = []
    for stage in range(1, 5):
        idx = {int(k.split(".")[1]) for k in state if k.startswith(f"blocks{stage}.") and k.split(".")[1].isdigit()}
        depth.append(max(idx) + 1 if idx else 0)
    for name, v in VARIANTS.items():
        if tuple(depth) == tuple(v["depth"]):
            emb = state.get("patch_embed1.proj.weight")
            if emb is not None and emb.shape[0] == v["embed_dim"][0]:
                return name
    raise CheckpointError(f"does not look like a UniFormer video model (blocks per stage {depth})")


def import_official(
    src: str | Path,
    out: str | Path,
    classes: list[str],
    *,
    target: str | None = None,
    views: str = "global+local",
    frames: int = 16,
    size: int = 224,
    sample_fps: float = 7.5,
) -> tuple[Path, list[str]]:
    """Convert an official UniFormer video checkpoint into a stanviewer checkpoint.

    Returns the output path and notes (what was inflated or re-initialised).
    """
    src = Path(src)
    raw = _read_foreign(src)
    from stanviewer.core.models.uniformer import _unwrap

    state = {k: v for k, v in _unwrap(raw).items() if isinstance(v, torch.Tensor)}
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    if not state:
        raise CheckpointError("contains no tensors", src)
    try:
        variant = _variant_of(state)
    except CheckpointError as e:
        raise CheckpointError(e.reason, src) from None
    backbone = UniFormer(UniFormerConfig(name=variant, **VARIANTS[variant], num_classes=len(classes)))
    mapped, notes = checkpoint_filter_fn(state, backbone)
    _load_state(backbone, mapped, src)
    spec = ModelSpec(
        arch=variant,
        classes=list(classes),
        target=target or classes[-1],
        views=views,
        frames=frames,
        size=size,
        sample_fps=sample_fps,
    )
    model = STAN(spec, backbone)
    meta = {
        "name": Path(out).stem,
        "imported_from": {"file": src.name, "sha256": sha256_file(src), "notes": notes},
        "training": {"data": "not fine-tuned: weights as imported (head re-initialised if classes differ)"},
        "thresholds": {},
    }
    return save_checkpoint(out, model, meta), notes


def import_resnet(
    src: str | Path,
    out: str | Path,
    arch: str,
    classes: list[str],
    *,
    target: str | None = None,
    views: str = "global+local",
    frames: int = 8,
    size: int = 64,
    sample_fps: float = 5.0,
    roi_provider: str = "motion",
) -> tuple[Path, list[str]]:
    """A per-frame CNN checkpoint (``arch`` = ``cnn-...``) whose ResNet holds user-supplied 2-D weights.

    ``src`` is a torchvision/timm-layout ResNet state dict (e.g. ImageNet ``resnet50`` weights; ``.pth``
    read with ``weights_only=True``, or ``.safetensors``), mapped with
    :func:`~stanviewer.core.models.resnet.checkpoint_filter_fn` (its ``fc`` classifier is dropped). The
    sequence head is initialised randomly: train it with ``stanviewer train --arch ARCH --init OUT``
    (same ``--frames``, whose value fixes the head's input size).

    Returns the output path and notes (what was dropped or filled).
    """
    from stanviewer.core.models.framecnn import FrameCNN, FrameCNNConfig
    from stanviewer.core.models.resnet import ResNet, ResNetConfig
    from stanviewer.core.models.resnet import checkpoint_filter_fn as resnet_filter

    src = Path(src)
    try:
        cfg = FrameCNNConfig.for_arch(arch, frames)
    except ValueError as e:
        raise CheckpointError(str(e), src) from None
    raw = _read_foreign(src)
    backbone = ResNet(ResNetConfig.from_dict({**cfg.resnet, "num_classes": 0}))
    mapped, notes = resnet_filter(raw, backbone)
    if not mapped:
        raise CheckpointError("contains no tensors", src)
    if "conv1.weight" not in mapped or not any(k.startswith("layer4.") for k in mapped):
        raise CheckpointError(
            "does not look like a ResNet state dict (torchvision/timm names conv1, layer1..layer4, fc)", src
        )
    _load_state(backbone, mapped, src)
    spec = ModelSpec(
        arch=arch,
        classes=list(classes),
        target=target or classes[-1],
        views=views,
        frames=frames,
        size=size,
        sample_fps=sample_fps,
        roi_provider=roi_provider,
    )
    model = FrameCNN(spec, backbone)
    notes = [*notes, "sequence head initialised randomly"]
    meta = {
        "name": Path(out).stem,
        "imported_from": {"file": src.name, "sha256": sha256_file(src), "notes": notes},
        "training": {"data": "not fine-tuned: ResNet weights as imported, random sequence head"},
        "thresholds": {},
    }
    return save_checkpoint(out, model, meta), notes
