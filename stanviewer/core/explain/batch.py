"""``stanviewer analyze``: many videos (files, folders, manifests), resumable, one line per result."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stanviewer.core.errors import StanError
from stanviewer.core.explain.result import Analysis
from stanviewer.core.explain.scoring import AnalysisSettings
from stanviewer.core.explain.segments import SegmentOptions, segments_from_scores
from stanviewer.core.explain.store import analysis_key, analyze_video, roi_identity
from stanviewer.core.fileio import (
    atomic_write,
    distinct_names,
    each_file_once,
    fingerprint,
    fit_file_name,
    write_dict_rows,
)
from stanviewer.core.manifest import read_frame_labels, read_manifest
from stanviewer.core.progress import run_job

__all__ = ["VIDEO_EXTENSIONS", "expand_inputs", "run_analyze"]

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".mts", ".m2ts"}


@dataclass
class Item:
    video: Path
    labels_file: Path | None = None


def expand_inputs(inputs: list[Path]) -> list[Item]:
    """Videos from files, folders (their video files, sorted) and manifest.csv files; a video given twice
    is listed once."""
    items: list[Item] = []
    for p in inputs:
        if p.is_dir():
            vids = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS)
            if not vids:
                raise StanError("folder contains no video files", p)
            items += [Item(v) for v in vids]
        elif p.suffix.lower() == ".csv":
            items += [Item(e.video, e.frame_labels) for e in read_manifest(p)]
        else:
            items.append(Item(p))
    return each_file_once(items, lambda it: it.video)


def _fmt_time(t: float) -> str:
    m, s = divmod(t, 60)
    return f"{int(m)}:{s:06.3f}"


def run_analyze(a: argparse.Namespace) -> int:
    from stanviewer.core.models.bundled import default_checkpoint_path
    from stanviewer.core.models.checkpoint import load_checkpoint

    ck = load_checkpoint(a.checkpoint or default_checkpoint_path())
    if a.views and a.views != ck.spec.views:
        raise StanError(
            f"the checkpoint was trained with views {ck.spec.views!r}, not {a.views!r}; "
            "choose a checkpoint trained for those views (stanviewer train --views ...)",
            ck.path,
        )
    method = a.method or ck.meta.get("default_method", "window")
    st = AnalysisSettings(
        method=method,
        target=a.target,
        stride=a.stride,
        coverage=a.coverage,
        batch=a.batch,
        device=a.device,
        samples=a.samples,
        sigma=a.sigma,
        heatmaps=not a.no_heatmaps,
    )
    items = expand_inputs(list(a.inputs))
    names = [fit_file_name(n, limit=200) for n in distinct_names([it.video for it in items])]  # p01/trial1, p02/trial1
    if a.out:  # said at once, not after the first analysis
        from stanviewer.core.review.clips import check_output_folder

        check_output_folder(a.out)
    failed = 0
    for k, item in enumerate(items):
        name = names[k]
        out = (a.out / name) if a.out else None
        try:
            labels = None
            analysis, skipped = None, False
            if out is not None and (out / "analysis.json").exists() and not a.no_cache:
                meta = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
                # the cache's own key: same video, model file, settings and person boxes (a new ROI
                # provider version or person-detector file means the boxes, hence the scores, may differ)
                same = item.video.exists() and meta.get("analysis_key") == analysis_key(
                    fingerprint(item.video), ck.sha256, st, roi_identity(ck.spec)
                )
                if same:  # not analysed again; its segments are cut again (the threshold or options may differ)
                    print(f"[{k + 1}/{len(items)}] {name}: already analysed with these settings ({out})")
                    from stanviewer.core.explain.store import load_analysis

                    analysis, folder, skipped = load_analysis(out), out, True
            if analysis is None:
                analysis, folder = run_job(analyze_video(item.video, ck, st, out=out, use_cache=not a.no_cache))
            if not skipped and item.labels_file is not None:
                labels = read_frame_labels(item.labels_file, len(analysis.scores))
                if out is not None:
                    from stanviewer.core.explain.store import save_analysis

                    save_analysis(analysis, out, labels)
        except (StanError, OSError) as e:  # this video's problem, not the batch's: the others go on
            failed += 1
            print(f"[{k + 1}/{len(items)}] {name}: error: {_why(e)}", file=sys.stderr)
            continue
        th = a.threshold if a.threshold is not None else ck.threshold(method)
        segs = segments_from_scores(analysis.scores, th, printed_segment_options(a, analysis.fps, analysis.times))
        pred = analysis.prediction
        p = pred["probabilities"].get(pred["class"], float("nan"))
        target_p = pred["probabilities"].get(analysis.meta["target"], float("nan"))
        print(
            f"[{k + 1}/{len(items)}] {name}: predicted {pred['class']} (p={p:.2f}; "
            f"{analysis.meta['target']} p={target_p:.2f}), method {method}, threshold {th:.2f}, "
            f"{len(segs)} flagged segment(s) -> {folder}"
        )
        for note in analysis.cautions():  # as the app's segment panel says them
            print(f"    note: {note}")
        t = analysis.times
        if out is not None:  # the flagged segments as printed, for a spreadsheet
            try:
                write_segments_csv(out / "segments.csv", analysis, segs, th)
            except OSError as e:
                failed += 1
                print(f"[{k + 1}/{len(items)}] {name}: error: {_why(e)}", file=sys.stderr)
        for s in segs[:50]:
            print(
                f"    frames {s.start}-{s.end - 1}  {_fmt_time(t[s.start])} - {_fmt_time(analysis.end_time(s.end))}  "
                f"peak {float(np.max(analysis.scores[s.start : s.end])):.2f}"
            )
        if len(segs) > 50:
            print(f"    ... {len(segs) - 50} more")
    print("Scores show which frames influenced the model; they are not a diagnosis.")
    if ck.meta.get("synthetic_only", True) and "imported_from" not in ck.meta:
        from stanviewer.core.models.bundled import SYNTHETIC_WARNING

        print(SYNTHETIC_WARNING)
    return 2 if failed else 0


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, StanError):
        where = f": {e.filename}" if getattr(e, "filename", None) else ""
        return f"cannot write the results ({e.strerror or e}){where}"
    return str(e)


def write_segments_csv(path: Path, analysis: Analysis, segs: list, threshold: float) -> None:
    """``segments.csv`` of ``analyze --out``: one row per flagged segment (0-based frames, the last one
    included; end time = when the last frame ends), its peak and mean score, and the threshold used."""
    sc = np.asarray(analysis.scores, np.float64)
    t = analysis.times
    rows = [
        {
            "segment": k + 1,
            "first_frame": g.start,
            "last_frame": g.end - 1,
            "start_s": round(float(t[g.start]), 6),
            "end_s": round(analysis.end_time(g.end), 6),
            "duration_s": round(analysis.end_time(g.end) - float(t[g.start]), 6),
            "peak": round(float(np.max(sc[g.start : g.end])), 6),
            "mean": round(float(np.mean(sc[g.start : g.end])), 6),
            "threshold": round(float(threshold), 6),
        }
        for k, g in enumerate(segs)
    ]
    if rows:
        write_dict_rows(path, rows)
    else:
        with atomic_write(path) as f:
            f.write("segment,first_frame,last_frame,start_s,end_s,duration_s,peak,mean,threshold\n")


def printed_segment_options(a: argparse.Namespace, fps: float, times: np.ndarray | None = None) -> SegmentOptions:
    """The segment options of ``analyze``'s printout: ``--min-frames``/``--merge-gap`` when given, else
    ``--min-seconds``/``--merge-seconds`` at the video's frame rate ``fps`` (in seconds of its own frames
    with its frame ``times`` when the frame rate varies)."""
    o = SegmentOptions.from_seconds(fps, a.min_seconds, a.merge_seconds, times=times)
    if a.min_frames is None and a.merge_gap is None:
        return o
    return SegmentOptions(
        a.min_frames if a.min_frames is not None else o.min_frames,
        a.merge_gap if a.merge_gap is not None else o.merge_gap,
    )
