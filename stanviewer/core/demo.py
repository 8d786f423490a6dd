"""``stanviewer demo``: a synthetic rehabilitation video, analysed with the bundled model.

The video (a drawn figure raising an arm, with trunk compensation in some repetitions) is generated
once per seed under ``data_dir()/demo/`` together with its per-frame labels, so the app shows the true
compensation frames as a label tier beneath the model's curve. Qt-free: the CLI prints the result
(``--no-gui``) or hands the video to the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stanviewer.core.paths import data_dir
from stanviewer.core.progress import Job, Progress

if TYPE_CHECKING:
    from stanviewer.core.explain.segments import SegmentOptions

__all__ = ["demo_video", "describe_result"]


def demo_video(seed: int = 7, reps: tuple[int, int] = (3, 4), folder: Path | None = None) -> Job[Path]:
    """Generate (or reuse) the demo video for ``seed``; a job returning its path.

    The video always shows compensation (the class the bundled model explains), so there is something
    to find. Layout: ``<folder>/videos/demo_s<seed>.mp4`` and ``<folder>/labels/demo_s<seed>.csv``.
    """
    from stanviewer.core.synth import make_video, random_subject, random_video_spec

    out = Path(folder) if folder is not None else data_dir() / "demo"
    name = f"demo_s{seed}" + ("" if reps == (3, 4) else f"_r{reps[0]}-{reps[1]}")
    path = out / "videos" / f"{name}.mp4"
    if path.exists() and (out / "labels" / f"{name}.csv").exists():
        yield Progress(1, 1, "demo video already generated")
        return path
    rng = np.random.default_rng(seed)
    subject = random_subject(rng, "DEMO")
    spec = random_video_spec(rng, subject, name, True, reps=reps)
    yield Progress(0, 1, f"drawing a synthetic video ({spec.n_frames} frames)")
    make_video(spec, out)
    yield Progress(1, 1, "done")
    return path


def describe_result(analysis: object, threshold: float, options: SegmentOptions | None = None) -> list[str]:
    """Lines that state the model's output and its flagged segments (never worded as a diagnosis); segments
    with ``options``, by default the app's (:meth:`SegmentOptions.from_seconds` at the video's frame rate)."""
    from stanviewer.core.explain.segments import SegmentOptions, segments_from_scores

    a = analysis
    pred = a.prediction  # type: ignore[attr-defined]
    probs = pred.get("probabilities", {})
    target = a.meta.get("target")  # type: ignore[attr-defined]
    o = options or SegmentOptions.from_seconds(a.fps)  # type: ignore[attr-defined]
    segs = segments_from_scores(a.scores, threshold, o)  # type: ignore[attr-defined]
    times = a.times  # type: ignore[attr-defined]
    lines = [
        f"model output: predicted class {pred.get('class')} (p={probs.get(pred.get('class'), float('nan')):.2f}; "
        f"{target} p={probs.get(target, float('nan')):.2f})",
        f"method {a.meta.get('method')}, threshold {threshold:.2f}: {len(segs)} flagged segment(s)",  # type: ignore[attr-defined]
    ]
    for s in segs:
        lines.append(
            f"  frames {s.start}-{s.end - 1}  {times[s.start]:.2f}-{a.end_time(s.end):.2f} s  "  # type: ignore[attr-defined]
            f"peak {float(np.max(a.scores[s.start : s.end])):.2f}"  # type: ignore[attr-defined]
        )
    return lines
