"""``stanviewer --self-test``: the check a clinic's IT runs after installing (Qt-free).

Loads the bundled model, draws a short synthetic video, analyses it, writes and re-reads a review file,
exports one clip and checks it frame by frame count. Everything happens in a temporary folder that is
removed afterwards (``keep`` leaves it); the analysis cache is not used, so the model really runs.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from stanviewer.core.errors import StanError
from stanviewer.core.progress import Job, Progress

__all__ = ["SelfTestResult", "self_test"]


@dataclass
class SelfTestResult:
    checks: list[tuple[str, str]] = field(default_factory=list)  # (step, what was seen)
    seconds: float = 0.0
    folder: Path | None = None

    def summary(self) -> str:
        return f"self-test passed in {self.seconds:.1f} s: " + "; ".join(f"{k} {v}" for k, v in self.checks)


def self_test(checkpoint: str | Path | None = None, keep: bool = False, device: str = "cpu") -> Job[SelfTestResult]:
    """Run the installation check (a job); raises :class:`StanError` naming the step that failed."""
    from stanviewer.core.demo import demo_video
    from stanviewer.core.explain.result import AnalysisSettings
    from stanviewer.core.explain.store import analyze_video
    from stanviewer.core.models.bundled import default_checkpoint_path
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.review.clips import ClipOptions, ClipRequest, export_clips
    from stanviewer.core.review.reviewfile import VideoRef, load_review, open_review
    from stanviewer.core.video import open_video

    t0 = time.monotonic()
    res = SelfTestResult()
    tmp = Path(tempfile.mkdtemp(prefix="stanviewer-selftest-"))
    res.folder = tmp
    step = "model"
    try:
        path = Path(checkpoint) if checkpoint else default_checkpoint_path()
        ck = load_checkpoint(path, device)
        res.checks.append(("model", f"{path.name} ({ck.spec.arch}, {ck.spec.views})"))
        yield Progress(1, 5, "model loaded")

        step = "synthetic video"
        video = yield from demo_video(seed=11, reps=(1, 2), folder=tmp / "demo space ü")
        with open_video(video) as r:
            n = r.frame_count
        res.checks.append(("video", f"{n} frames"))
        yield Progress(2, 5, "video drawn")

        step = "analysis"
        method = ck.meta.get("default_method") or "vanilla"
        st = AnalysisSettings(method=method, device=device, coverage="sampled")
        analysis, _ = yield from analyze_video(video, ck, st, out=tmp / "analysis", use_cache=False)
        if analysis.scores.shape != (n,):
            raise StanError(f"the analysis scored {analysis.scores.shape[0]} of {n} frames")
        threshold = ck.threshold(method)
        res.checks.append(("analysis", f"{method}, every frame scored, output {analysis.prediction.get('class')}"))
        yield Progress(3, 5, "analysed")

        step = "review file"
        review = open_review(video)
        tier = review.labels.set_proposal(analysis.scores, threshold, {"method": method})
        review.labels.create("annotator", 0, min(n, 5), "compensation")
        saved = review.save()
        back = load_review(saved, VideoRef.open(video))
        if back.labels.spans() != review.labels.spans() or back.to_dict()["tiers"] != review.to_dict()["tiers"]:
            raise StanError("the review file read back differs from what was written", saved)
        res.checks.append(("review file", f"{len(tier.intervals)} flagged segment(s) written and read back"))
        yield Progress(4, 5, "review file round trip")

        step = "clip export"
        seg = tier.intervals[0] if tier.intervals else None
        req = ClipRequest(seg.start, seg.end, "model") if seg else ClipRequest(0, min(n, 12), "selftest")
        clips = yield from export_clips(video, [req], tmp / "clips", ClipOptions())
        with open_video(clips[0]) as r:
            got = r.frame_count
        if got != req.end - req.start:
            raise StanError(f"the clip has {got} frames, {req.end - req.start} were asked for", clips[0])
        res.checks.append(("clip", f"{got} frames, H.264"))
        yield Progress(5, 5, "clip exported")
    except StanError as e:
        raise StanError(f"self-test failed at '{step}': {e}") from None
    except Exception as e:  # an installation problem is reported, not shown as a traceback
        raise StanError(f"self-test failed at '{step}': {type(e).__name__}: {e}") from None
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    res.seconds = time.monotonic() - t0
    return res
