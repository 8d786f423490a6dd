"""The bundled model (``models/``) and human-readable model cards."""

from __future__ import annotations

from pathlib import Path

from stanviewer.core.errors import CheckpointError
from stanviewer.core.models.registry import describe_arch, family
from stanviewer.core.paths import models_dir

__all__ = ["BUNDLED_NAME", "bundled_checkpoints", "default_checkpoint_path", "describe", "load_default"]

BUNDLED_NAME = "stan-tiny-synth.safetensors"
SYNTHETIC_WARNING = (
    "Trained on synthetic videos of a drawn figure only: it knows nothing about real patients. "
    "Scores explain the model, they are not a diagnosis."
)


def default_checkpoint_path() -> Path:
    """Path of the bundled checkpoint; a clear error if the install lacks it."""
    path = models_dir() / BUNDLED_NAME
    if not path.exists():
        raise CheckpointError("the bundled model is missing from this installation", path)
    return path


def bundled_checkpoints() -> list[Path]:
    """Every checkpoint shipped in ``models/``: the default first, then the others by name (e.g. the per-frame
    CNN baseline). Reads no file contents (the GUI lists them before anything is loaded)."""
    d = models_dir()
    if not d.is_dir():
        return []
    others = sorted(p for p in d.glob("*.safetensors") if p.name != BUNDLED_NAME)
    default = d / BUNDLED_NAME
    return ([default] if default.exists() else []) + others


def load_default(device: str = "cpu"):
    from stanviewer.core.models.checkpoint import load_checkpoint

    return load_checkpoint(default_checkpoint_path(), device)


def _posture_reading(spec: dict) -> str:
    """What a posture model reads besides each frame's local view."""
    from stanviewer.core.models.posture import PostureConfig

    cfg = PostureConfig.from_dict(spec.get("backbone") or {})
    upper = "its upper-body image" + (" (heatmap read-out)" if cfg.upper_readout == "softargmax" else "")
    extra = [*(["its mirror image"] if cfg.mirror else []), *([upper] if cfg.upper else [])]
    moved = f", each also read moved by ±{cfg.shifts} px across and up/down" if cfg.shifts else ""
    return (f" and {' and '.join(extra)}" if extra else "") + moved


def _mask_text(spec: dict) -> str:
    """How the local view is masked, where it is not the default (each frame's ROI box)."""
    if "local" not in str(spec.get("views", "")):
        return ""
    if "local_margin" in spec and spec["local_margin"] is None:
        return ", local view unmasked"
    return ", local view masked by one stable box per video" if spec.get("local_mask") == "video" else ""


def describe(path: str | Path, meta: dict) -> str:
    """A short model card from checkpoint metadata."""
    spec = meta.get("spec", {})
    tr = meta.get("training", {})
    lines = [
        f"checkpoint  {path}",
        f"name        {meta.get('name', Path(path).stem)}",
        f"arch        {spec.get('arch')} ({describe_arch(spec.get('arch'))}), views {spec.get('views')}",
        f"classes     {', '.join(spec.get('classes', []))} (explained: {spec.get('target')})",
        (
            f"input       whole videos: every frame's {spec.get('size')} px local view"
            f"{_posture_reading(spec)} (trained on "
            f"{2 * float(spec.get('sample_fps') or 0):g} images/s), ROI {spec.get('roi_provider')}{_mask_text(spec)}"
            if family(spec.get("arch") or "") == "posture"
            else f"input       {spec.get('frames')} frames x {spec.get('size')} px at {spec.get('sample_fps')} "
            f"frames/s, ROI {spec.get('roi_provider')}{_mask_text(spec)}"
        ),
    ]
    if family(spec.get("arch") or "") == "posture":
        from stanviewer.core.models.posture import PostureConfig

        feats = PostureConfig.from_dict(spec.get("backbone") or {}).features
        lines.append(f"evidence    posture of {', '.join(feats)} (each against the video's median posture)")
        from stanviewer.core.explain.result import probability_scores

        scale = (
            "per-frame probability (sigmoid of the frame logit)"
            if probability_scores(meta)
            else "frame logits scaled 0-1 per video"
        )
        lines.append(f"scores      {scale}")
    if spec.get("roi_provider") in ("learned", "checked"):
        from stanviewer.core.roi.learned import describe_roi_record

        # a model trained on other boxes and switched to the detector afterwards records it at the top level
        record = describe_roi_record(meta if "roi_detector" in meta else tr)
        lines.append(f"detector    {record or 'not recorded (trained before the record existed)'}")
    if spec.get("video_centre"):
        lines.append("evidence    each window's pooled features against the video's median window features")
    if "imported_from" in meta:
        imp = meta["imported_from"]
        lines.append(f"imported    {imp.get('file')} ({'; '.join(imp.get('notes', [])) or 'as is'})")
    if tr.get("data_description"):
        lines.append(f"trained on  {tr['data_description']}")
    for split in ("val", "test"):
        m = tr.get(split) or {}
        if m:
            lines.append(
                f"{split:<11} video F1 {m.get('f1', float('nan')):.3f}, AUROC {m.get('auroc', float('nan')):.3f} "
                f"({m.get('videos')} videos)"
            )
    th = meta.get("thresholds") or {}
    if th:
        parts = [f"{k} {v.get('threshold'):.2f}" for k, v in sorted(th.items()) if isinstance(v, dict)]
        lines.append(f"thresholds  {', '.join(parts)}")
    if meta.get("default_method"):
        lines.append(f"method      {meta['default_method']} (default)")
    sw = meta.get("software", {})
    lines.append(f"software    stanviewer {sw.get('stanviewer')}, torch {sw.get('torch')}")
    if meta.get("synthetic_only", True) and "imported_from" not in meta:
        lines.append(f"warning     {SYNTHETIC_WARNING}")
    else:  # trained (or fine-tuned) on videos other than the generator's
        lines.append("note        Scores explain the model, they are not a diagnosis.")
    return "\n".join(lines)
