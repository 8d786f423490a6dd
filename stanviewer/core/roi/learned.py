"""``learned``: person boxes from a small detector trained on videos with known boxes (the synthetic generator's).

The motion provider (:mod:`.motion`) needs no training but loses whole subjects now and then: legs whose
colour matches the wall, a poster joined to the body, a region beside the person (docs/posture.md,
nineteenth session). This provider runs a learned detector (:mod:`.detector`) on every ``every``-th frame
instead; the shared post-processing fills in the frames between and smooths. The bundled detector
(``models/roi/person-detector-synth.safetensors``) was trained on synthetic videos only: it finds the drawn
figure, not real people (its card: ``models/README.md``). PyTorch is imported only when a video is read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from stanviewer.core.errors import RoiError
from stanviewer.core.fileio import sha256_file
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, register
from stanviewer.core.video import VideoReader

__all__ = ["BUNDLED_DETECTOR", "LearnedProvider", "bundled_detector_path", "describe_roi_record", "roi_record"]

#: file name of the bundled detector inside ``models/roi/`` (apart from the classifiers in ``models/``)
BUNDLED_DETECTOR = "person-detector-synth.safetensors"


def bundled_detector_path() -> Path:
    """Where the bundled detector lies."""
    from stanviewer.core.paths import models_dir

    return models_dir() / "roi" / BUNDLED_DETECTOR


@register("learned")
class LearnedProvider(RoiProvider):
    """The person detector on every ``every``-th frame (the others are filled in by the shared
    post-processing); ``file``: a detector file (default: the bundled one)."""

    name = "learned"
    defaults: ClassVar[dict[str, Any]] = {"file": None, "every": 2, "batch": 32}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if int(self.params["every"]) < 1 or int(self.params["batch"]) < 1:
            raise RoiError("learned parameters 'every' and 'batch' must be >= 1")
        self._path = Path(self.params["file"]) if self.params["file"] else bundled_detector_path()
        self._model: Any = None

    def _detector(self) -> Any:
        if self._model is None:
            from stanviewer.core.roi.detector import load_detector

            self._model, _ = load_detector(self._path)
        return self._model

    def cache_key_extra(self) -> str:
        """The detector file's content, so that boxes cached with another detector are not reused."""
        if not self._path.is_file():
            return str(self._path)
        return sha256_file(self._path)[:16]

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        import torch

        from stanviewer.core.roi.detector import decode, letterbox

        model = self._detector()
        size = model.cfg.size
        n = reader.frame_count
        every, batch = int(self.params["every"]), int(self.params["batch"])
        boxes = np.full((n, 4), np.nan)
        conf = np.zeros(n)
        pending: list[tuple[int, np.ndarray, float]] = []

        def flush() -> None:
            with torch.no_grad():
                b, c = decode(model(model.normalise(np.stack([p[1] for p in pending]))), size)
            for (i, _, s), bi, ci in zip(pending, b, c, strict=True):
                boxes[i], conf[i] = bi / s, ci
            pending.clear()

        for i, frame in reader.iter_frames():
            if i % every == 0 or i == n - 1:
                img, s = letterbox(frame, size)
                pending.append((i, img, s))
                if len(pending) >= batch:
                    flush()
                    yield Progress(i + 1, n, "finding the person (learned detector)")
        if pending:
            flush()
        yield Progress(n, n, "learned detector done")
        return boxes, conf, None


def roi_record(provider: str) -> dict:
    """What a trained model records about its ROI provider beyond the name: for ``learned`` and ``checked``,
    the bundled detector file's name and SHA-256, so that the crops a model was trained on can be traced (the
    provider's boxes depend on that file); ``{}`` for every other provider."""
    if provider not in ("learned", "checked"):
        return {}
    path = bundled_detector_path()
    return {"roi_detector": {"file": path.name, "sha256": sha256_file(path) if path.is_file() else None}}


def describe_roi_record(record: dict) -> str | None:
    """One line on the detector a model's crops come from, and whether the installed detector is that file;
    ``None`` where ``record`` (a model's training record, or its top-level metadata for a model switched to a
    detector-based provider after training) holds no ``roi_detector``. A different detector places other
    crops than the ones the model was trained or measured on."""
    rec = record.get("roi_detector")
    if not isinstance(rec, dict):
        return None
    want = str(rec.get("sha256") or "")
    path = bundled_detector_path()
    have = sha256_file(path) if path.is_file() else ""
    if not want:
        state = "its checksum was not recorded"
    elif have == want:
        state = "the installed detector is that file"
    elif have:
        state = f"the installed detector differs ({have[:12]}): its crops are not the ones this model was trained on"
    else:
        state = f"no detector is installed at {path}"
    return f"{rec.get('file')} (sha256 {want[:12] or '?'}): {state}"
