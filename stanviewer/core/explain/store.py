"""Analysis results on disk (DESIGN.md §4) and the cache that makes reopening a video instant.

One folder per analysed video:
- ``scores.csv``: ``frame,time_s,score,raw,window_prob[,label]`` (score in [0, 1], frames 0-based);
- ``analysis.json``: video (path, fingerprint, frames, fps, size), model (name, SHA-256, classes),
  prediction, method and parameters, views, window settings, normalisation, threshold, software
  version, time taken;
- ``windows.csv``: every model window (phase, first and last frame, target log-odds, probability);
- ``heatmaps.zip``: per-frame maps (:mod:`stanviewer.core.explain.heatmaps`), for pixel methods.

Cached analyses live under ``cache_dir()/analyses/<video fingerprint>/<settings hash>/``.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stanviewer.core.errors import StanError
from stanviewer.core.explain.result import Analysis, AnalysisSettings
from stanviewer.core.fileio import atomic_write
from stanviewer.core.paths import cache_dir
from stanviewer.core.progress import Job, Progress
from stanviewer.core.video import open_video

if TYPE_CHECKING:
    from stanviewer.core.models.checkpoint import Checkpoint

__all__ = ["analysis_key", "analyze_video", "cached_analyses", "load_analysis", "roi_identity", "save_analysis"]


def roi_identity(spec: Any) -> dict | None:
    """What a new video's ROI boxes depend on, for a model with a local view: the provider used at inference,
    its version and default parameters, the ROI cache and track versions, and what the provider's own cache
    key adds (the detector file's content for ``learned`` and ``checked``); None for a global-only model.

    Part of the analysis cache key: when the person finder changes (a new provider version), analyses
    computed with the old boxes are not reused. ``spec`` is a :class:`ModelSpec` or its metadata dict.
    """
    get = spec.get if isinstance(spec, dict) else lambda k, d=None: getattr(spec, k, d)
    if "local" not in str(get("views", "")):
        return None
    from stanviewer.core.roi import PROVIDERS, inference_provider
    from stanviewer.core.roi.cache import CACHE_VERSION
    from stanviewer.core.roi.track import TRACK_VERSION

    name = inference_provider(str(get("roi_provider", "motion") or "motion"))
    cls = PROVIDERS.get(name)
    params = {**cls.post_defaults, **cls.defaults} if cls is not None else {}
    ident = {
        "provider": name,
        "version": getattr(cls, "version", 1),
        "params": params,
        "cache": CACHE_VERSION,
        "track": TRACK_VERSION,
    }
    extra = _provider_extra(cls)
    if extra:  # e.g. the detector file of ``learned`` and ``checked``: its boxes change with it
        ident["extra"] = extra
    return ident


def _provider_extra(cls: Any) -> str:
    """The default provider's own cache-key text (an input file's content); "" where it has none or
    cannot be made without parameters (``csv`` needs a file)."""
    if cls is None:
        return ""
    try:
        return str(cls().cache_key_extra())
    except Exception:  # a provider that needs parameters or an optional extra
        return ""


def analysis_key(fingerprint: str, checkpoint_sha: str, settings: AnalysisSettings, roi: Any = None) -> str:
    """Cache key of an analysis: video content, model file, result-changing settings and ``roi`` (the
    :func:`roi_identity` of the model, or a digest of boxes given by the caller)."""
    d: dict[str, Any] = {"v": fingerprint, "m": checkpoint_sha, "s": settings.key()}
    if roi is not None:
        d["r"] = roi
    blob = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_folder(fingerprint: str, key: str) -> Path:
    return cache_dir() / "analyses" / fingerprint[:32] / key


def save_analysis(a: Analysis, folder: str | Path, labels: np.ndarray | None = None) -> Path:
    """Write an analysis folder (atomic per file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(folder / "scores.csv") as f:
        w = csv.writer(f, lineterminator="\n")
        head = ["frame", "time_s", "score", "raw", "window_prob"] + (["label"] if labels is not None else [])
        w.writerow(head)
        for i in range(len(a.scores)):
            row = [i, f"{a.times[i]:.6f}", f"{a.scores[i]:.6f}", f"{a.raw[i]:.6g}", f"{a.window_prob[i]:.6f}"]
            if labels is not None:
                row.append(int(labels[i]))
            w.writerow(row)
    with atomic_write(folder / "windows.csv") as f:
        w = csv.DictWriter(f, fieldnames=["phase", "start", "end", "evidence", "prob"], lineterminator="\n")
        w.writeheader()
        w.writerows(a.windows)
    meta = dict(a.meta)
    if a.heatmap_path is not None:
        target = folder / "heatmaps.zip"
        if Path(a.heatmap_path).resolve() != target.resolve():
            shutil.copyfile(a.heatmap_path, target)
        meta["heatmaps"] = "heatmaps.zip"
    with atomic_write(folder / "analysis.json") as f:
        json.dump(meta, f, indent=1)
    return folder


def load_analysis(folder: str | Path) -> Analysis:
    """Read an analysis folder written by :func:`save_analysis` (clear errors when malformed).

    Raises:
        StanError: naming the folder, the file and (for the CSV files) the line.
    """
    folder = Path(folder)
    meta_path, scores_path = folder / "analysis.json", folder / "scores.csv"
    if not meta_path.exists() or not scores_path.exists():
        raise StanError("not an analysis folder (analysis.json and scores.csv are needed)", folder)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise StanError(f"analysis.json is malformed ({str(e)[:160]})", folder) from e
    if not isinstance(meta, dict):
        raise StanError("analysis.json is malformed (not a JSON object)", folder)
    rows = _csv_rows(folder, "scores.csv", ("frame", "time_s", "score"))
    scores, raw, wprob, times, frames = [], [], [], [], []
    for line, r in rows:
        try:  # a short row has None for its missing fields: TypeError
            scores.append(float(r["score"]))
            raw.append(float(r["raw"] if "raw" in r else r["score"]))
            wprob.append(float(r.get("window_prob", "nan")))
            times.append(float(r["time_s"]))
            frames.append(int(r["frame"]))
        except (ValueError, TypeError) as e:
            raise StanError(f"scores.csv line {line}: a value is missing or not a number ({e})", folder) from e
    if frames != list(range(len(frames))):
        raise StanError("scores.csv must list frames 0..N-1 in order", folder)
    windows = []
    if (folder / "windows.csv").exists():
        for line, r in _csv_rows(folder, "windows.csv", ("phase", "start", "end", "evidence", "prob")):
            try:
                windows.append(
                    {
                        "phase": int(r["phase"]),
                        "start": int(r["start"]),
                        "end": int(r["end"]),
                        "evidence": float(r["evidence"]),
                        "prob": float(r["prob"]),
                    }
                )
            except (ValueError, TypeError) as e:
                raise StanError(f"windows.csv line {line}: a value is missing or not a number ({e})", folder) from e
    name = meta.get("heatmaps")
    if name is not None and not isinstance(name, str):
        raise StanError(f"analysis.json is malformed (heatmaps must be a file name, not {name!r})", folder)
    heat = folder / name if name else None
    prediction = meta.get("prediction", {})
    return Analysis(
        scores=np.array(scores, np.float32),
        raw=np.array(raw, np.float32),
        window_prob=np.array(wprob, np.float32),
        times=np.array(times, np.float64),
        windows=windows,
        prediction=prediction if isinstance(prediction, dict) else {},
        meta=meta,
        heatmap_path=heat if heat is not None and heat.is_file() else None,
    )


def _csv_rows(folder: Path, name: str, need: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line, row) of a CSV file of an analysis folder with the columns ``need``; StanError when malformed."""
    try:
        text = (folder / name).read_text(encoding="utf-8")
    except (OSError, ValueError) as e:
        raise StanError(f"{name} cannot be read as UTF-8 text ({str(e)[:160]})", folder) from e
    try:
        reader = csv.DictReader(text.splitlines())
        rows = [(reader.line_num, r) for r in reader]
    except csv.Error as e:
        raise StanError(f"{name} line {reader.line_num}: not valid CSV ({e})", folder) from e
    missing = [c for c in need if c not in (reader.fieldnames or [])]
    if missing:
        raise StanError(f"{name} line 1: missing column(s) {', '.join(missing)}", folder)
    return rows


#: ``meta["made_by"]`` of analyses that ``evaluate`` made for its own tables (sampled coverage, no maps)
EVALUATION = "evaluate"


def made_by_evaluation(folder: Path) -> bool:
    """Whether the cached analysis in ``folder`` was made by ``evaluate`` (not asked for by a user)."""
    try:
        return json.loads((folder / "analysis.json").read_text(encoding="utf-8")).get("made_by") == EVALUATION
    except (OSError, ValueError, AttributeError):
        return False


def cached_analyses(fingerprint: str) -> list[Path]:
    """Cached analysis folders of a video: those users asked for (app, ``analyze``) newest first, then those
    ``evaluate`` made, newest first — the first is the one the app shows and ``export``/``agree`` use."""
    base = cache_dir() / "analyses" / fingerprint[:32]
    if not base.exists():
        return []
    found = [p for p in base.iterdir() if (p / "analysis.json").exists()]
    return sorted(found, key=lambda p: (made_by_evaluation(p), -(p / "analysis.json").stat().st_mtime))


_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]  # names this computer


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) sends Ctrl+C there: never judge, never sweep
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # no permission to signal it, or a platform without signal 0: assume it runs
        return True
    return True


def _sweep_stale_work(parent: Path) -> None:
    """Remove work folders (``.<key>.<pid>-<host>.<token>.tmp``) of runs on this computer whose process is
    gone (killed, crashed); a run on another computer sharing the cache folder is never judged from here."""
    if not parent.is_dir():
        return
    for p in parent.glob(".*.tmp"):
        pid, _, host = p.name.split(".")[-3].partition("-") if p.name.count(".") >= 4 else ("", "", "")
        if pid.isdigit() and host == _HOST and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _move_into_place(work: Path, folder: Path, a: Analysis) -> Analysis:
    """Rename the finished ``work`` folder to ``folder``; if another run put the same analysis there first,
    keep that one (the same video, model, settings and boxes) and return it."""
    if folder.exists() and not (folder / "analysis.json").exists():
        shutil.rmtree(folder, ignore_errors=True)  # a folder left by an older version, or damaged
    try:
        os.rename(work, folder)
    except OSError:
        if (folder / "analysis.json").exists():
            with contextlib.suppress(StanError):
                return load_analysis(folder)
        raise
    if a.heatmap_path is not None:
        a.heatmap_path = folder / "heatmaps.zip"
    return a


def analyze_video(
    path: str | Path,
    checkpoint: Checkpoint,
    settings: AnalysisSettings | None = None,
    *,
    out: str | Path | None = None,
    use_cache: bool = True,
    labels: np.ndarray | None = None,
    roi: tuple | None = None,
    made_by: str | None = None,
) -> Job[tuple[Analysis, Path]]:
    """Analyse a video file, reusing a cached result with the same video, model and settings.

    Returns the analysis and its folder (``out`` when given, else the cache folder). ``made_by``
    (:data:`EVALUATION`) marks an analysis made for ``evaluate``'s tables; a user's request for the same
    analysis later takes the mark off (see :func:`cached_analyses`).
    """
    st = settings or AnalysisSettings()
    with open_video(path) as reader:
        if roi is not None:  # boxes given by the caller: the key follows them
            boxes = np.ascontiguousarray(np.asarray(roi[0], np.float32))
            roi_key: Any = {"boxes": hashlib.sha256(boxes.tobytes()).hexdigest()[:16], "square": list(roi[1])}
        else:
            roi_key = roi_identity(checkpoint.spec)
        key = analysis_key(reader.info.fingerprint, checkpoint.sha256, st, roi_key)
        folder = cache_folder(reader.info.fingerprint, key)
        if use_cache and (folder / "analysis.json").exists():
            try:
                a = load_analysis(folder)
                a.meta["analysis_key"] = key  # analyses cached before the key was recorded get it now
                here = str(Path(path).resolve())
                moved = a.meta.setdefault("video", {}).get("path") != here  # renamed, moved, or a copy
                a.meta["video"]["path"] = here  # "open analysis folder" opens the video where it is now
                if made_by is None and a.meta.get("made_by"):  # a user asks for it: it is theirs now
                    a.meta.pop("made_by")
                    save_analysis(a, folder)
                elif moved:
                    save_analysis(a, folder)
                yield Progress(1, 1, "cached")
                if out is not None:
                    save_analysis(a, out, labels)
                    return a, Path(out)
                return a, folder
            except StanError:
                shutil.rmtree(folder, ignore_errors=True)
        from stanviewer.core.explain.scoring import analyze_reader

        # each run computes in a folder of its own and moves it into place when done: two runs of one
        # analysis (the app's and a terminal's) never write into, or clean up, each other's files
        _sweep_stale_work(folder.parent)
        work = folder.parent / f".{folder.name}.{os.getpid()}-{_HOST}.{secrets.token_hex(3)}.tmp"
        work.mkdir(parents=True)
        try:
            a = yield from analyze_reader(reader, checkpoint, st, heatmap_path=work / "heatmaps.zip", roi=roi)
            a.meta["video"]["path"] = str(Path(path).resolve())
            a.meta["analysis_key"] = key  # video, model, settings and person boxes (``analyze --out`` skips on it)
            if made_by:
                a.meta["made_by"] = made_by
            save_analysis(a, work, labels)
            a = _move_into_place(work, folder, a)
        finally:  # cancelled, interrupted or failed: leave no half-made folder behind
            shutil.rmtree(work, ignore_errors=True)
    if out is not None:
        save_analysis(a, out, labels)
        return a, Path(out)
    return a, folder
