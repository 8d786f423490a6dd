"""Screenshots of the real app window for the README: ``python scripts/screenshots.py``.

Starts the app under Xvfb (re-running itself with ``xvfb-run`` when there is no display; install it with
``apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1``), opens a synthetic rehabilitation video
(:func:`stanviewer.core.demo.demo_video`) with an analysis, and saves:

- ``docs/img/main-window.png``: the picture with its saliency overlay, the score curve with the threshold,
  flagged segments (one selected) and the label tier, the segments table;
- ``docs/img/review-tiers.png``: an annotator's corrections (flagged segments that match the generator's
  labels accepted, missed compensations marked by hand, false alarms left out, one edge moved), a
  therapist interval, review status "in progress";
- ``docs/img/analysis-running.png``: a second method being computed, its curve growing, progress and ETA
  (not for a posture model, which has one method).

Model: a bundled model (``--model``, default the per-frame CNN baseline ``cnn-narrow-patch-synth``, with
its recommended method and calibrated threshold), else the default bundled model; without any, a tiny *random*
model (its curve and heatmaps mean nothing; the screenshots show the app, not a result). Everything is
written to a temporary cache so the user's own cache is untouched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCREEN = "1600x1000x24"


def _relaunch_under_xvfb() -> int:
    exe = shutil.which("xvfb-run")
    if exe is None:
        print("no display and no xvfb-run: apt-get install -y xvfb libxcb-icccm4 libxcb-keysyms1", file=sys.stderr)
        return 2
    cmd = [exe, "-a", "-s", f"-screen 0 {SCREEN}", sys.executable, *sys.argv, "--inner"]
    return subprocess.call(cmd, env={**os.environ, "QT_QPA_PLATFORM": "xcb"})


def _checkpoint(tmp: Path, name: str | None) -> tuple[Path, str]:
    from stanviewer.core.errors import CheckpointError
    from stanviewer.core.models.bundled import bundled_checkpoints, default_checkpoint_path

    try:
        if name:
            for p in bundled_checkpoints():
                if p.stem == name:
                    return p, "bundled model"
        return default_checkpoint_path(), "bundled model"
    except CheckpointError:
        import torch

        from stanviewer.core.models.checkpoint import save_checkpoint
        from stanviewer.core.models.stan import STAN, ModelSpec

        torch.manual_seed(3)
        spec = ModelSpec(views="global", frames=8, size=64)
        path = save_checkpoint(tmp / "tiny-random.safetensors", STAN(spec), {"name": "tiny-random (placeholder)"})
        return path, "tiny random model (the bundled model is not there yet)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    ap.add_argument("--seed", type=int, default=7, help="which synthetic video")
    ap.add_argument(
        "--model",
        default="cnn-narrow-patch-synth",
        help="bundled model to show (its recommended method, when it has saliency maps; default: the per-frame "
        "CNN baseline, whose gradient maps the review screenshot shows; the README's main screenshot uses "
        "--model posture-narrow-synth, the model that localises best)",
    )
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not a.inner and not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return _relaunch_under_xvfb()

    tmp = Path(tempfile.mkdtemp(prefix="stanviewer-shots-"))
    for var, sub in (("STANVIEWER_CACHE_DIR", "cache"), ("STANVIEWER_DATA_DIR", "data"), ("STANVIEWER_LOG_DIR", "log")):
        os.environ[var] = str(tmp / sub)
    sys.path.insert(0, str(REPO))
    from stanviewer.core.demo import demo_video
    from stanviewer.core.explain.scoring import AnalysisSettings
    from stanviewer.core.explain.store import analyze_video
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.progress import run_job

    video = run_job(demo_video(a.seed))
    ck_path, what = _checkpoint(tmp, a.model)
    ck = load_checkpoint(ck_path)
    method = ck.meta.get("default_method") if ck.meta.get("default_method") in ("vanilla", "gradcam") else "vanilla"
    whole_video = ck.meta.get("default_method") == "posture"  # a posture model has this one method only
    if whole_video:
        method = "posture"
    print(f"video {video}\nmodel {ck_path} ({what}), method {method}")
    run_job(analyze_video(video, ck, AnalysisSettings(method=method)))

    from PySide6.QtWidgets import QApplication

    from stanviewer.qt.app import make_app
    from stanviewer.qt.main_window import MainWindow
    from stanviewer.qt.settings import AppSettings

    app = make_app()

    def spin(seconds: float, until=None) -> bool:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            if until is not None and until():
                return True
            time.sleep(0.01)
        return False

    w = MainWindow(settings=AppSettings(tmp / "settings.ini"))
    w.analysis_panel.set_checkpoint(ck_path)
    w.analysis_panel.set_method(method)
    w.resize(1600, 1000)
    w.show()
    w.open_path(video)
    if not spin(120, lambda: w.session.analysis is not None):
        print("the analysis did not appear", file=sys.stderr)
        return 1
    s = w.session
    spin(300, lambda: not w.device_label.text().endswith("checking…"))
    # a flagged segment, selected, with the playhead on its peak frame: the one that overlaps the video's
    # compensation labels most (the labels lane shows them; every other segment stays visible), else the longest
    if s.segments:
        labels = np.zeros(s.frame_count, bool)
        for tier in s.label_tiers:
            for a0, a1 in tier.intervals:
                labels[a0:a1] = True

        def weight(j: int) -> tuple[int, int]:
            g = s.segments[j]
            return int(labels[g.start : g.end].sum()), g.frames

        k = max(range(len(s.segments)), key=weight)
        s.select_segment(k)
        g = s.segments[k]
        s.set_frame(g.start + int(np.nanargmax(s.scores[g.start : g.end])))  # its peak: the saliency map shows
    spin(300, lambda: w.view.showing(s.frame) and w.view._heat_image is not None)
    spin(0.5)
    a.out.mkdir(parents=True, exist_ok=True)
    main_png = a.out / "main-window.png"
    w.grab().save(str(main_png))
    print(f"wrote {main_png}")

    # review, as an annotator corrects the model: flagged segments that show compensation (the generator's
    # labels stand in for what the annotator sees) are accepted with A, the compensations the model missed
    # are marked by hand (one edge then nudged), false alarms are left out; a therapist note on one of them
    r = w.review
    lab = r.labels
    if lab is not None and s.segments:
        r.set_active_tier("annotator")
        for g in s.segments:
            if labels[g.start : g.end].mean() >= 0.5:
                lab.accept("annotator", g.start)
        truth = [iv for tier in s.label_tiers for iv in tier.intervals]
        for a0, a1 in truth:
            if not any(iv.start < a1 and a0 < iv.end for iv in lab.tier("annotator").intervals):
                lab.create("annotator", a0, a1, "compensation")
        ivs = lab.tier("annotator").intervals
        if ivs:
            lab.nudge("annotator", ivs[0].start, "right", 6)
        if truth:
            a0, a1 = truth[-1]
            lab.create("therapist", a0, min(a1, a0 + max(2, (a1 - a0) // 2)), "trunk lean")
        r.set_status("in_progress")
        spin(1.0)
        tiers_png = a.out / "review-tiers.png"
        w.grab().save(str(tiers_png))
        print(f"wrote {tiers_png}")
        r.save()  # written into the temporary data folder; closing the window then asks nothing

    ap2 = w.analysis_panel
    if whole_video:  # no second method to run beside it: the running-analysis picture is left as it was
        w.close()
        QApplication.processEvents()
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    ap2.set_method("gradcam" if method != "gradcam" else "vanilla")
    ap2.run()
    spin(  # windows being scored (the person finder reports its own progress first)
        600,
        lambda: ": window " in ap2.message.text() and ap2.progress.value() >= 0.4 * ap2.progress.maximum(),
    )
    spin(0.5)
    run_png = a.out / "analysis-running.png"
    w.grab().save(str(run_png))
    print(f"wrote {run_png}")
    ap2.cancel()
    spin(60, lambda: not ap2.running)
    w.close()
    QApplication.processEvents()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
