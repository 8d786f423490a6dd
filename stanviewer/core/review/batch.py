"""``stanviewer export`` and ``stanviewer agree``: many videos at once, thin over the review core.

Inputs are videos, folders of videos, ``manifest.csv`` files or review files (``*.stanreview.json``).
For each video: its review (the sidecar or ``project`` file; empty tiers when there is none), its
``model`` tier. A review file saved with a model tier is exported as it was reviewed (its model, analysis,
threshold and segment options) unless ``analysis``, ``threshold`` or ``segment_seconds`` are given. Else
its analysis (``analysis`` folder — one analysis, or a folder of ``<video stem>/`` analyses as written by
``stanviewer analyze --out`` — else the newest cached analysis of the video) gives the ``model`` tier at
``threshold`` (default: the analysis' calibrated threshold), its segments cut as the app cuts them:
``segment_seconds`` = (minimum length, merge gap) in seconds, default 0.4 s each
(:meth:`~stanviewer.core.explain.segments.SegmentOptions.from_seconds` at the video's frame rate).

:func:`export_job` writes, per video, ``OUT/<stem><ext>`` (labels in one format), ``OUT/clips/`` (clips
of the chosen tiers' intervals; default the flagged segments) and ``OUT/<stem>.pdf`` (the report, with
the ``report_writer`` the caller passes: the CLI passes :func:`stanviewer.qt.report.write_report` when
PySide6 is there). One failing video does not stop the others;
the result lists what was written and what failed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stanviewer.core.errors import LabelError, StanError
from stanviewer.core.explain.segments import DEFAULT_MERGE_SECONDS, DEFAULT_MIN_SECONDS, SegmentOptions
from stanviewer.core.fileio import distinct_names, each_file_once
from stanviewer.core.progress import Job, Progress, nested
from stanviewer.core.review.formats import EXTENSIONS, export_labels
from stanviewer.core.review.model import MODEL_TIER
from stanviewer.core.review.reviewfile import SUFFIX, Review, VideoRef, load_review, open_review, read_review_dict
from stanviewer.core.review.timing import FrameTimes

__all__ = ["ExportResult", "Prepared", "expand", "export_job", "prepare", "proposal_info", "run_agree"]

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".mts", ".m2ts"}
WHAT = ("labels", "clips", "report")


def expand(inputs: Sequence[str | Path]) -> list[Path]:
    """Video paths from files, folders, manifests and review files (in the order given, each once)."""
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            vids = sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_EXTENSIONS)
            if not vids:
                raise StanError("folder contains no video files", p)
            out += vids
        elif p.name.endswith(SUFFIX) or p.suffix.lower() == ".json":
            out.append(Path(read_review_dict(p)["video"]["path"]))
        elif p.suffix.lower() == ".csv":
            from stanviewer.core.manifest import read_manifest

            out += [e.video for e in read_manifest(p)]
        else:
            out.append(p)
    return each_file_once(out)  # a video given twice is exported once


@dataclass
class Prepared:
    """Everything needed to export one video."""

    review: Review
    times: FrameTimes
    analysis: Any = None  # stanviewer.core.explain.scoring.Analysis
    analysis_folder: Path | None = None
    threshold: float | None = None
    notes: list[str] = field(default_factory=list)
    options: SegmentOptions = field(default_factory=SegmentOptions)  # how the model tier's segments were cut
    as_reviewed: bool = False  # the model tier is the review file's own, kept as it was reviewed


def _find_analysis(video: VideoRef, analysis: Path | None) -> Path | None:
    if analysis is not None:
        # the folder itself, or the video's folder in `analyze --out`: its file name, or that name prefixed
        # with parent folders where a batch held two videos of one name; the one of this video wins
        stem = Path(video.path).stem
        cands = [analysis, analysis / stem]
        if analysis.is_dir():
            cands += sorted(q for q in analysis.iterdir() if q.is_dir() and q.name.endswith("_" + stem))
        cands = [c for c in cands if (c / "analysis.json").exists()]
        for cand in cands:
            if _analysis_fingerprint(cand) == video.fingerprint:
                return cand
        # `analyze --out` may have named it otherwise (trial_mp4 beside trial_mkv, a long name cut to fit):
        # any subfolder holding an analysis of this very video
        if analysis.is_dir():
            mtime = analysis.stat().st_mtime_ns
            hit = _by_fingerprint(str(analysis), mtime).get(video.fingerprint)
            if hit is not None:
                return Path(hit)
        return cands[0] if cands else None
    from stanviewer.core.explain.store import cached_analyses

    found = cached_analyses(video.fingerprint)
    return found[0] if found else None


@functools.lru_cache(maxsize=8)
def _by_fingerprint(folder: str, _mtime_ns: int) -> dict[str, str]:
    """{video fingerprint: subfolder} of the analyses in ``folder`` (read once per folder state)."""
    out: dict[str, str] = {}
    for q in sorted(Path(folder).iterdir()):
        if q.is_dir() and (q / "analysis.json").exists():
            fp = _analysis_fingerprint(q)
            if fp is not None:
                out.setdefault(fp, str(q))
    return out


def _analysis_fingerprint(folder: Path) -> str | None:
    try:
        meta = json.loads((folder / "analysis.json").read_text(encoding="utf-8"))
        return str(meta["video"]["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def proposal_info(analysis: Any, folder: Path | None = None) -> dict[str, Any]:
    """What the ``model`` tier records about the analysis (model, method, normalisation, target)."""
    meta = analysis.meta
    model = meta.get("model", {})
    return {
        "model": model.get("name", ""),
        "model_sha256": model.get("sha256", ""),
        "method": meta.get("method", ""),
        "method_params": meta.get("method_params", {}),
        "normalisation": meta.get("normalisation", {}),
        "target": meta.get("target", ""),
        "prediction": meta.get("prediction", {}),
        "analysis": str(folder) if folder is not None else "",
        "calibrated_threshold": meta.get("threshold"),
    }


def prepare(
    video: str | Path,
    *,
    project: str | Path | None = None,
    analysis: str | Path | None = None,
    threshold: float | None = None,
    allow_other_video: bool = False,
    segment_seconds: tuple[float, float] = (DEFAULT_MIN_SECONDS, DEFAULT_MERGE_SECONDS),
) -> Prepared:
    """Open a video's review, timestamps and analysis; set the ``model`` tier (see module doc)."""
    from stanviewer.core.video import open_video

    with open_video(video) as reader:
        ref = VideoRef.from_reader(reader)
        times = FrameTimes.from_reader(reader)
    review = open_review(ref, project, allow_other_video=allow_other_video)
    prep = Prepared(review, times, options=SegmentOptions.from_seconds(ref.fps, *segment_seconds, times=times.starts))
    if analysis is not None and not Path(analysis).is_dir():
        raise StanError("no such analysis folder (--analysis)", analysis)
    saved = review.labels.proposal
    as_reviewed = (
        analysis is None
        and threshold is None
        and tuple(segment_seconds)
        == (
            DEFAULT_MIN_SECONDS,
            DEFAULT_MERGE_SECONDS,
        )
    )
    if saved is not None and as_reviewed:
        return _as_saved(prep, saved, ref)
    folder = _find_analysis(ref, Path(analysis) if analysis is not None else None)
    if folder is None:
        if analysis is not None:  # the user named a folder: that it holds nothing for this video is an error
            raise StanError(
                f"holds no analysis of {Path(ref.path).name} (no analysis.json here or in a folder named after "
                "the video)",
                analysis,
            )
        prep.notes.append("no analysis found (analyse it first, or pass --analysis): no model tier, no scores")
        return prep
    from stanviewer.core.explain.store import load_analysis

    a = load_analysis(folder)
    fp = a.meta.get("video", {}).get("fingerprint")
    problem = ""
    if fp and fp != ref.fingerprint:
        problem = "is of another video (fingerprint differs)"
    elif len(a.scores) != ref.frames:
        problem = f"has {len(a.scores)} frames, the video {ref.frames}"
    if problem:
        if analysis is not None:
            raise StanError(f"the analysis {problem}", folder)
        prep.notes.append(f"the analysis in {folder} {problem}: ignored")
        return prep
    th = threshold if threshold is not None else a.meta.get("threshold")
    th = 0.5 if th is None else float(th)
    review.labels.set_proposal(a.scores, th, proposal_info(a, folder), prep.options)
    prep.analysis, prep.analysis_folder, prep.threshold = a, folder, th
    return prep


def _as_saved(prep: Prepared, saved: Any, ref: VideoRef) -> Prepared:
    """The review file holds the ``model`` tier as it was reviewed (its model, analysis, threshold and segment
    options): export that, not a tier cut again from whichever analysis of the video is newest. Its analysis
    is loaded for the scores and heatmaps when it is still there."""
    prep.as_reviewed = True
    meta = saved.meta or {}
    seg = meta.get("segment_options") or {}
    secs = seg.get("seconds")
    prep.options = SegmentOptions(
        int(seg.get("min_frames", 1)),
        int(seg.get("merge_gap", 0)),
        float(seg.get("hysteresis", 0.0)),
        (float(secs[0]), float(secs[1])) if isinstance(secs, list) and len(secs) == 2 else None,
        prep.times.starts if isinstance(secs, list) else None,
    )
    th = meta.get("threshold")
    prep.threshold = None if th is None else float(th)
    where = Path(str(meta.get("analysis") or ""))
    shown = f"{meta.get('model', '?')} / {meta.get('method', '?')}"
    if str(where) and (where / "analysis.json").exists():
        from stanviewer.core.explain.store import load_analysis

        try:
            a = load_analysis(where)
        except StanError as e:
            prep.notes.append(f"the model tier as reviewed ({shown}); its analysis cannot be read ({e}): no scores")
            return prep
        fp = (a.meta.get("video") or {}).get("fingerprint")
        if (not fp or fp == ref.fingerprint) and len(a.scores) == ref.frames:
            prep.analysis, prep.analysis_folder = a, where
            return prep
    prep.notes.append(
        f"the model tier as reviewed ({shown}); its analysis is no longer there: no score curve or heatmaps "
        "(pass --analysis, --threshold or segment options to cut the tier again from an analysis)"
    )
    return prep


@dataclass
class ExportResult:
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def export_job(
    inputs: Sequence[str | Path],
    out: str | Path,
    *,
    what: Sequence[str] = ("labels",),
    fmt: str = "intervals",
    tiers: Sequence[str] | None = None,
    threshold: float | None = None,
    padding: int = 0,
    burn_in: bool = False,
    heat_style: tuple[str, float] = ("inferno", 0.1),
    merged: bool = False,
    project: str | Path | None = None,
    analysis: str | Path | None = None,
    allow_other_video: bool = False,
    report_writer: Callable[..., Path] | None = None,
    segment_seconds: tuple[float, float] = (DEFAULT_MIN_SECONDS, DEFAULT_MERGE_SECONDS),
) -> Job[ExportResult]:
    """Export labels, clips and/or reports of many videos into ``out`` (see module doc); ``heat_style`` is the
    burnt-in heatmap's colour map and floor (:func:`stanviewer.core.explain.overlay.blend_heat`).

    ``report_writer`` is :func:`stanviewer.qt.report.write_report`, passed in by the caller (the core
    never imports Qt); without it reports are skipped with a note.
    """
    from stanviewer.core.review.clips import ClipOptions, check_output_folder, export_clips, requests_from_tier

    bad = [w for w in what if w not in WHAT]
    if bad:
        raise StanError(f"--what takes {', '.join(WHAT)}, not {', '.join(bad)}")
    if not what:
        raise StanError(f"--what names nothing to export: give one or more of {', '.join(WHAT)}")
    videos = expand(inputs)
    out = check_output_folder(out)
    res = ExportResult()
    writer_fn = report_writer
    if "report" in what and writer_fn is None:
        res.notes.append("reports skipped: the PDF report needs stanviewer.qt.report (PySide6)")
    stems = distinct_names(videos)  # two trial1.mp4 of different folders must not share an output file
    for k, video in enumerate(videos):
        name = Path(video).name
        yield Progress(k, len(videos), f"{name}: preparing")
        try:
            prep = prepare(
                video,
                project=project,
                analysis=analysis,
                threshold=threshold,
                allow_other_video=allow_other_video,
                segment_seconds=segment_seconds,
            )
            res.notes += [f"{name}: {n}" for n in prep.notes]
            review = prep.review
            stem = stems[k]
            if "labels" in what:
                scores_csv = prep.analysis_folder / "scores.csv" if prep.analysis_folder else None
                path = out / (stem + EXTENSIONS[fmt])
                res.written.append(export_labels(review, path, fmt, prep.times, tiers=tiers, scores_csv=scores_csv))
            if "clips" in what:
                names = (
                    list(tiers)
                    if tiers
                    else (
                        [MODEL_TIER] if review.labels.proposal else [t.name for t in review.labels.tiers if t.intervals]
                    )
                )
                reqs = []
                for t in names:
                    try:
                        reqs += requests_from_tier(review.labels.tier(t))
                    except StanError as e:
                        raise LabelError(str(e)) from None
                a = prep.analysis
                opts = ClipOptions(
                    padding=padding,
                    merged=merged,
                    heatmap=burn_in and a is not None and a.heatmap_path is not None,
                    timestamp=burn_in,
                    score_strip=burn_in and a is not None,
                    heatmap_colormap=heat_style[0],
                    heatmap_floor=heat_style[1],
                )
                if burn_in and not opts.heatmap and reqs:
                    why = "no analysis" if a is None else "the analysis has no heatmaps (its method, or --no-heatmaps)"
                    res.notes.append(f"{name}: clips without the heatmap: {why}")
                if not reqs:
                    res.notes.append(f"{name}: no segments in tier(s) {', '.join(names) or '-'}: no clips")
                else:
                    job = export_clips(
                        video,
                        reqs,
                        out / "clips",
                        opts,
                        scores=None if a is None else a.scores,
                        threshold=prep.threshold,
                        heatmaps=None if a is None else a.heatmap_path,
                        provenance=review.labels.proposal.meta if review.labels.proposal else None,
                        stem=stem,
                    )
                    clips = yield from nested(job, k, len(videos), name)
                    res.written += clips
            if "report" in what and writer_fn is not None:
                res.written.append(
                    writer_fn(review, out / f"{stem}.pdf", analysis=prep.analysis, threshold=prep.threshold)
                )
        except StanError as e:
            res.failed.append((Path(video), str(e)))
    yield Progress(len(videos), len(videos), "done")
    return res


def run_agree(
    target: str | Path,
    a: str,
    b: str,
    *,
    label: str | None = None,
    project: str | Path | None = None,
    analysis: str | Path | None = None,
    threshold: float | None = None,
    segment_seconds: tuple[float, float] = (DEFAULT_MIN_SECONDS, DEFAULT_MERGE_SECONDS),
    allow_other_video: bool = False,
) -> list[str]:
    """Lines of the agreement report of tiers ``a`` and ``b`` of a review file or a video's review.

    The ``model`` tier comes from the analysis when one is found (at ``threshold``), else from the
    review file as it was saved. ``allow_other_video``: use a review file whose video fingerprint differs.
    """
    from stanviewer.core.review.agreement import agreement

    target = Path(target)
    if target.name.endswith(SUFFIX) or target.suffix.lower() == ".json":
        video = Path(read_review_dict(target)["video"]["path"])
        if video.exists():
            prep = prepare(
                video,
                project=None,
                analysis=analysis,
                threshold=threshold,
                segment_seconds=segment_seconds,
                allow_other_video=allow_other_video,
            )
            review = load_review(target, prep.review.video, allow_other_video=allow_other_video)
            if prep.analysis is not None and not prep.as_reviewed and prep.threshold is not None:
                review.labels.set_proposal(
                    prep.analysis.scores, prep.threshold, proposal_info(prep.analysis), prep.options
                )
            times = prep.times
        else:
            review = load_review(target)
            times = FrameTimes.from_fps(review.video.frames, review.video.fps)
    else:
        prep = prepare(
            target,
            project=project,
            analysis=analysis,
            threshold=threshold,
            segment_seconds=segment_seconds,
            allow_other_video=allow_other_video,
        )
        review, times = prep.review, prep.times
    if MODEL_TIER in (a, b) and review.labels.proposal is None:
        # the model tier comes from an analysis (or the review file as saved with one): say that none was found
        raise StanError(
            f"no analysis found for {Path(review.video.path).name}, and its review file holds no model tier "
            "(analyse it first, or pass --analysis)"
        )
    ag = agreement(review.labels, a, b, label)
    head = [f"video       {review.video.path}"]
    prop = review.labels.proposal
    if prop is not None and MODEL_TIER in (a, b):
        m = prop.meta
        head.append(
            f"model tier  {m.get('model', '?')} / {m.get('method', '?')} at threshold {m.get('threshold', '?')}"
        )
    return head + ag.lines(times.starts)
