"""Label import/export: per-frame CSV, intervals CSV, JSON, ELAN .eaf and BORIS aggregated events.

Every export re-imports to the same labels (tier names, ``[start, end)`` frames and label texts; the JSON
and EAF formats also keep provenance or tier sources). Frames are 0-based, intervals end-exclusive;
seconds come from the video's presentation timestamps (:class:`~stanviewer.core.review.timing.FrameTimes`),
and imports map seconds back to the nearest frame boundary with the same timestamps.

========== ============================================================================================
format     content
========== ============================================================================================
frames     ``frame,time_s,<tier>,<tier>...``: one row per frame, the label text or empty. With
           ``binary=True`` and one tier: ``frame,label`` with 0/1 (DESIGN.md §4 per-frame labels; the
           label text comes back from ``label=``).
intervals  DESIGN.md §4: ``video,tier,label,start_frame,end_frame_excl,start_s,end_s,duration_s,source``;
           frames are authoritative on import, extra columns are ignored.
json       the review file's content (:mod:`~stanviewer.core.review.reviewfile`), with provenance.
eaf        ELAN EAF 3.0 (:mod:`~stanviewer.core.review.eaf`).
boris      BORIS aggregated events: ``Subject`` = tier, ``Behavior`` = label, ``Behavior type`` = STATE,
           ``Start (s)``/``Stop (s)``/``Duration (s)`` with 3 decimals, frame range in ``Comment start``.
========== ============================================================================================

Malformed files raise :class:`~stanviewer.core.errors.LabelError` naming the file and the line.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from stanviewer.core.errors import LabelError
from stanviewer.core.fileio import atomic_write
from stanviewer.core.review.model import MODEL_TIER, SOURCES, Interval, Tier, now_iso
from stanviewer.core.review.reviewfile import Review, VideoMismatchError, review_from_dict, write_review_dict
from stanviewer.core.review.timing import FrameTimes

__all__ = [
    "BORIS_COLUMNS",
    "EXTENSIONS",
    "FORMATS",
    "INTERVAL_COLUMNS",
    "export_labels",
    "format_of",
    "import_labels",
    "read_boris",
    "read_frames_csv",
    "read_intervals_csv",
    "read_json",
    "write_boris",
    "write_frames_csv",
    "write_intervals_csv",
]

INTERVAL_COLUMNS = [
    "video",
    "tier",
    "label",
    "start_frame",
    "end_frame_excl",
    "start_s",
    "end_s",
    "duration_s",
    "source",
]
BORIS_COLUMNS = [
    "Observation id",
    "Observation date",
    "Description",
    "Media file name",
    "Media duration (s)",
    "FPS",
    "Subject",
    "Behavior",
    "Behavioral category",
    "Modifiers",
    "Behavior type",
    "Start (s)",
    "Stop (s)",
    "Duration (s)",
    "Comment start",
    "Comment stop",
]
FORMATS = ("frames", "intervals", "json", "eaf", "boris")
#: default file name endings of each format
EXTENSIONS = {
    "frames": ".frames.csv",
    "intervals": ".intervals.csv",
    "json": ".labels.json",
    "eaf": ".eaf",
    "boris": ".boris.csv",
}


def format_of(path: str | Path) -> str:
    """Guess a format from a file name (``x.intervals.csv`` -> intervals, ``x.eaf`` -> eaf, ...)."""
    name = Path(path).name.lower()
    for fmt, ext in EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    if name.endswith(".stanreview.json") or name.endswith(".json"):
        return "json"
    if name.endswith(".csv"):
        head = _first_line(Path(path))
        if head.startswith("video,tier,"):
            return "intervals"
        if "Behavior" in head and "Start (s)" in head:
            return "boris"
        return "frames"
    raise LabelError("unknown label file type (use .frames.csv, .intervals.csv, .json, .eaf or .boris.csv)", path)


def _first_line(path: Path) -> str:
    try:
        with path.open(encoding="utf-8-sig") as f:
            return f.readline()
    except (OSError, UnicodeDecodeError):
        return ""


def _select(review: Review, tiers: Sequence[str] | None) -> list[Tier]:
    all_tiers = review.labels.all_tiers()
    if not tiers:
        return list(all_tiers)
    by_name = {t.name: t for t in all_tiers}
    missing = [n for n in tiers if n not in by_name]
    if missing:
        raise LabelError(f"no tier named {', '.join(missing)} (tiers: {', '.join(by_name) or 'none'})")
    return [by_name[n] for n in tiers]


def _write_text(path: Path, text: str) -> Path:
    try:
        with atomic_write(path) as f:
            f.write(text)
    except OSError as e:
        raise LabelError(f"cannot write ({e.strerror or e})", path) from e
    return path


def _csv_text(rows: Iterable[Sequence[object]]) -> str:
    rows = list(rows)
    # Python's writer quotes a field with "\n" (the line terminator) but not one with a lone "\r", which a
    # reader then takes for a line break: quote every field when a label holds one (rare; still plain CSV)
    lone_cr = any("\r" in c for row in rows for c in row if isinstance(c, str))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL if lone_cr else csv.QUOTE_MINIMAL)
    w.writerows(rows)
    return buf.getvalue()


# ---------------------------------------------------------------------- per-frame CSV
def write_frames_csv(
    review: Review, path: str | Path, times: FrameTimes, tiers: Sequence[str] | None = None, *, binary: bool = False
) -> Path:
    """One row per frame: ``frame,time_s,<tier>...`` (label or empty), or ``frame,label`` 0/1 (``binary``)."""
    sel = _select(review, tiers)
    n = review.labels.n_frames
    cols = [t.labels_per_frame(n) for t in sel]
    if binary:
        if len(sel) != 1:
            raise LabelError("a binary per-frame file holds exactly one tier (choose it with --tier)", path)
        rows: list[Sequence[object]] = [("frame", "label")]
        rows += [(i, int(bool(cols[0][i]))) for i in range(n)]
    else:
        rows = [("frame", "time_s", *[t.name for t in sel])]
        rows += [(i, f"{times.start_s(i):.6f}", *[c[i] for c in cols]) for i in range(n)]
    return _write_text(Path(path), _csv_text(rows))


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise LabelError("file not found", path) from None
    except OSError as e:
        raise LabelError(f"cannot read ({e.strerror or e})", path) from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise LabelError(f"line {line}: not UTF-8 text", path) from None
    # The csv module reads the whole text (newline="" semantics): a quoted label may hold line breaks
    # (ELAN allows multi-line values; \u2028 too), which splitting into lines first would cut apart.
    # Rows are numbered by the file line they start on.
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise LabelError(f"line {start}: not valid CSV ({e})", path) from None
    rows = [(k, r) for k, r in rows if any(c.strip() for c in r)]
    if not rows:
        raise LabelError("line 1: the file is empty (a header is required)", path)
    header = [c.strip() for c in rows[0][1]]
    return header, rows[1:]


def _runs(labels: Sequence[str], who: str, when: str, origin: str) -> tuple[Interval, ...]:
    out = []
    start = 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if labels[start]:
                out.append(Interval(start, i, labels[start], who, when, origin))
            start = i
    return tuple(out)


def read_frames_csv(
    path: str | Path, n_frames: int, *, tier: str = "annotator", label: str = "compensation"
) -> list[Tier]:
    """Read a per-frame CSV; a ``frame,label`` 0/1 file becomes one tier ``tier`` labelled ``label``."""
    path = Path(path)
    header, body = _read_csv(path)
    if not header or header[0] != "frame":
        raise LabelError(f"line 1: the first column must be 'frame' (got {','.join(header)})", path)
    binary = header == ["frame", "label"]
    names = [tier] if binary else [h for h in header[1:] if h != "time_s"]
    cols = [header.index(h) for h in (["label"] if binary else names)]
    if not names or any(not h for h in names):
        raise LabelError("line 1: no tier columns (or an empty column name) after 'frame'", path)
    if len(set(names)) != len(names):
        raise LabelError("line 1: a tier column appears twice", path)
    values = [[""] * n_frames for _ in names]
    seen: dict[int, int] = {}
    for line, row in body:
        if len(row) != len(header):
            raise LabelError(f"line {line}: expected {len(header)} fields, got {len(row)}", path)
        try:
            f = int(row[0])
        except ValueError:
            raise LabelError(f"line {line}: frame {row[0]!r} is not a whole number", path) from None
        if not 0 <= f < n_frames:
            raise LabelError(f"line {line}: frame {f} outside the video's frames 0..{n_frames - 1}", path)
        if f in seen:
            raise LabelError(f"line {line}: frame {f} appears twice (first on line {seen[f]})", path)
        seen[f] = line
        for j, c in enumerate(cols):
            v = row[c].strip()
            if binary:
                if v not in ("0", "1"):
                    raise LabelError(f"line {line}: label must be 0 or 1, not {v!r}", path)
                v = label if v == "1" else ""
            values[j][f] = v
    if len(seen) != n_frames:
        gap = next(i for i in range(n_frames) if i not in seen)
        raise LabelError(f"frame {gap} is missing ({len(seen)} of {n_frames} frames listed)", path)
    when = now_iso()
    return [
        _tier(name, _runs(v, "", when, "model" if name == MODEL_TIER else "import")) for name, v in zip(names, values)
    ]


def _tier(name: str, ivs: tuple[Interval, ...], source: str | None = None, **kw: object) -> Tier:
    src = source or (name if name in SOURCES else "annotator")
    return Tier(name, src, ivs, read_only=src == "model", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- intervals CSV
def write_intervals_csv(
    review: Review, path: str | Path, times: FrameTimes, tiers: Sequence[str] | None = None
) -> Path:
    """DESIGN.md §4 intervals: one row per interval, 0-based frames, end exclusive, seconds from pts."""
    rows: list[Sequence[object]] = [INTERVAL_COLUMNS]
    for t in _select(review, tiers):
        for iv in t.intervals:
            a, b = times.start_s(iv.start), times.start_s(iv.end)
            rows.append(
                (
                    review.video.name,
                    t.name,
                    iv.label,
                    iv.start,
                    iv.end,
                    f"{a:.6f}",
                    f"{b:.6f}",
                    f"{b - a:.6f}",
                    t.source,
                )
            )
    return _write_text(Path(path), _csv_text(rows))


def read_intervals_csv(path: str | Path, n_frames: int, *, video: str | None = None) -> list[Tier]:
    """Read DESIGN.md intervals; rows of other videos are skipped when ``video`` (a file name) is given."""
    path = Path(path)
    header, body = _read_csv(path)
    missing = [c for c in INTERVAL_COLUMNS if c not in header]
    if missing:
        raise LabelError(f"line 1: missing column(s) {', '.join(missing)}", path)
    ix = {c: header.index(c) for c in INTERVAL_COLUMNS}
    tiers: dict[str, tuple[str, list[tuple[int, Interval]]]] = {}
    when = now_iso()
    other_videos = set()
    for line, row in body:
        if len(row) < len(header):
            raise LabelError(f"line {line}: expected {len(header)} fields, got {len(row)}", path)
        if video is not None and row[ix["video"]] and row[ix["video"]] != video:
            other_videos.add(row[ix["video"]])
            continue
        name, label, source = row[ix["tier"]].strip(), row[ix["label"]].strip(), row[ix["source"]].strip()
        try:
            a, b = int(row[ix["start_frame"]]), int(row[ix["end_frame_excl"]])
        except ValueError:
            raise LabelError(f"line {line}: start_frame and end_frame_excl must be whole numbers", path) from None
        if not name:
            raise LabelError(f"line {line}: empty tier name", path)
        if not label:
            raise LabelError(f"line {line}: empty label", path)
        if source not in SOURCES:
            raise LabelError(f"line {line}: source must be one of {', '.join(SOURCES)}, not {source!r}", path)
        if not 0 <= a < b <= n_frames:
            raise LabelError(
                f"line {line}: frames {a}-{b} are not a valid range in 0..{n_frames} (end exclusive)", path
            )
        prev = tiers.setdefault(name, (source, []))
        if prev[0] != source:
            raise LabelError(f"line {line}: tier {name!r} has source {source!r} here and {prev[0]!r} before", path)
        prev[1].append((line, Interval(a, b, label, "", when, "model" if source == "model" else "import")))
    if not tiers and other_videos:
        raise LabelError(f"no rows for video {video!r} (the file lists {', '.join(sorted(other_videos))})", path)
    return [_tier(n, _no_overlap(path, n, rows), src) for n, (src, rows) in tiers.items()]


def _no_overlap(path: Path, name: str, rows: list[tuple[int, Interval]]) -> tuple[Interval, ...]:
    rows = sorted(rows, key=lambda r: r[1].start)
    for (l1, a), (l2, b) in itertools.pairwise(rows):
        if b.start < a.end:
            line = max(l1, l2)
            raise LabelError(
                f"line {line}: tier {name!r}: interval {b.start}-{b.end} overlaps {a.start}-{a.end} "
                f"(line {min(l1, l2)})",
                path,
            )
    return tuple(iv for _, iv in rows)


# ---------------------------------------------------------------------- JSON
def write_json(review: Review, path: str | Path, tiers: Sequence[str] | None = None) -> Path:
    """The review file's content (provenance included) at ``path``."""
    data = review.to_dict()
    if tiers:
        keep = {t.name for t in _select(review, tiers)}
        data["tiers"] = [t for t in data["tiers"] if t["name"] in keep]
    return write_review_dict(data, path)


def read_json(path: str | Path, n_frames: int) -> list[Tier]:
    """Tiers of a JSON export or a review file (the video is not checked here; see ``load_review``)."""
    from stanviewer.core.review.reviewfile import read_review_dict

    path = Path(path)
    data = read_review_dict(path)
    video = data.get("video") or {}
    frames = video.get("frames", n_frames) if isinstance(video, dict) else None
    if not isinstance(frames, int) or isinstance(frames, bool):
        raise LabelError(f'the "video" record has no whole number of frames (got {frames!r})', path)
    if frames != n_frames:
        raise LabelError(f"covers {frames} frames, the video has {n_frames}", path)
    review = review_from_dict(data, path, source=path)
    return list(review.labels.all_tiers())


# ---------------------------------------------------------------------- BORIS
def write_boris(review: Review, path: str | Path, times: FrameTimes, tiers: Sequence[str] | None = None) -> Path:
    """BORIS aggregated events (one STATE event per interval; Subject = tier, Behavior = label)."""
    v = review.video
    rows: list[Sequence[object]] = [BORIS_COLUMNS]
    obs = Path(v.path).stem
    date = review.modified[:19].replace("T", " ")
    for t in _select(review, tiers):
        for iv in t.intervals:
            a, b = times.start_s(iv.start), times.start_s(iv.end)
            rows.append(
                (
                    obs,
                    date,
                    f"stanviewer tier {t.name} (source {t.source})",
                    v.name,
                    f"{times.end:.3f}",
                    f"{v.fps:.3f}",
                    t.name,
                    iv.label,
                    t.source,
                    "",
                    "STATE",
                    f"{a:.3f}",
                    f"{b:.3f}",
                    f"{b - a:.3f}",
                    f"frames [{iv.start},{iv.end}) 0-based, end exclusive",
                    "",
                )
            )
    return _write_text(Path(path), _csv_text(rows))


def read_boris(path: str | Path, times: FrameTimes, *, tier: str = "annotator") -> list[Tier]:
    """BORIS aggregated events -> tiers (Subject; empty or "No focal subject" -> ``tier``).

    Seconds map to the nearest frame boundary with the video's timestamps; a POINT event (no duration)
    becomes a one-frame interval.
    """
    path = Path(path)
    header, body = _read_csv(path)
    need = ["Subject", "Behavior", "Start (s)", "Stop (s)"]
    missing = [c for c in need if c not in header]
    if missing:
        raise LabelError(f"line 1: missing BORIS column(s) {', '.join(missing)}", path)
    ix = {c: header.index(c) for c in header}
    n = times.count
    when = now_iso()
    tiers: dict[str, tuple[str, list[tuple[int, Interval]]]] = {}
    for line, row in body:
        if len(row) < len(header):
            raise LabelError(f"line {line}: expected {len(header)} fields, got {len(row)}", path)
        subject = row[ix["Subject"]].strip()
        name = tier if subject in ("", "No focal subject") else subject
        label = row[ix["Behavior"]].strip()
        if not label:
            raise LabelError(f"line {line}: empty Behavior", path)
        try:
            t0, t1 = float(row[ix["Start (s)"]]), float(row[ix["Stop (s)"]] or row[ix["Start (s)"]])
        except ValueError:
            raise LabelError(f"line {line}: Start (s) and Stop (s) must be numbers", path) from None
        problem = times.range_problem(t0, t1)
        if problem:
            raise LabelError(f"line {line}: {problem}", path)
        a = min(times.boundary_at(t0), n - 1)
        b = max(min(times.boundary_at(t1), n), a + 1)
        category = row[ix["Behavioral category"]].strip() if "Behavioral category" in ix else ""
        source = category if category in SOURCES else (name if name in SOURCES else "annotator")
        entry = tiers.setdefault(name, (source, []))
        entry[1].append((line, Interval(a, b, label, "", when, "model" if source == "model" else "import")))
    return [_tier(nm, _no_overlap(path, nm, rows), src) for nm, (src, rows) in tiers.items()]


# ---------------------------------------------------------------------- dispatch
def export_labels(
    review: Review,
    path: str | Path,
    fmt: str,
    times: FrameTimes,
    *,
    tiers: Sequence[str] | None = None,
    scores_csv: str | Path | None = None,
    binary: bool = False,
) -> Path:
    """Write ``review``'s labels in ``fmt`` (one of :data:`FORMATS`); ``scores_csv`` is linked from EAF."""
    if times.count != review.labels.n_frames:
        raise LabelError(f"the timestamps cover {times.count} frames, the labels {review.labels.n_frames}")
    if fmt == "frames":
        return write_frames_csv(review, path, times, tiers, binary=binary)
    if fmt == "intervals":
        return write_intervals_csv(review, path, times, tiers)
    if fmt == "json":
        return write_json(review, path, tiers)
    if fmt == "eaf":
        from stanviewer.core.review.eaf import write_eaf

        return write_eaf(review, path, times, tiers=tiers, scores_csv=scores_csv)
    if fmt == "boris":
        return write_boris(review, path, times, tiers)
    raise LabelError(f"unknown label format {fmt!r}; choose from {', '.join(FORMATS)}")


def import_labels(
    path: str | Path,
    times: FrameTimes,
    fmt: str | None = None,
    *,
    video: str | None = None,
    tier: str = "annotator",
    label: str = "compensation",
    fingerprint: str | None = None,
    allow_other_video: bool = False,
) -> list[Tier]:
    """Read tiers from a label file of any :data:`FORMATS` (guessed from the name when ``fmt`` is None).

    ``video`` (a file name) picks the rows of an intervals CSV. With ``fingerprint``, files that record
    the video's fingerprint (JSON, EAF) must match it, else :class:`VideoMismatchError` (unless
    ``allow_other_video``). Put the tiers into a model with :meth:`LabelsModel.replace_tiers` (one undo
    step).
    """
    return _tier_names_as_loaded(_read_any(path, times, fmt, video, tier, label, fingerprint, allow_other_video), path)


def _read_any(
    path: str | Path,
    times: FrameTimes,
    fmt: str | None,
    video: str | None,
    tier: str,
    label: str,
    fingerprint: str | None,
    allow_other_video: bool,
) -> list[Tier]:
    fmt = fmt or format_of(path)
    n = times.count
    if fingerprint is not None and not allow_other_video and fmt in ("json", "eaf"):
        _check_fingerprint(Path(path), fmt, fingerprint)
    if fmt == "frames":
        return read_frames_csv(path, n, tier=tier, label=label)
    if fmt == "intervals":
        return read_intervals_csv(path, n, video=video)
    if fmt == "json":
        return read_json(path, n)
    if fmt == "eaf":
        from stanviewer.core.review.eaf import read_eaf

        return read_eaf(path, times)
    if fmt == "boris":
        return read_boris(path, times, tier=tier)
    raise LabelError(f"unknown label format {fmt!r}; choose from {', '.join(FORMATS)}", path)


def _tier_names_as_loaded(tiers: list[Tier], path: str | Path) -> list[Tier]:
    """Imported tier names follow the review file's rule (what loading it accepts), whatever the format.

    Surrounding whitespace is removed (ELAN and spreadsheets keep a trailing space invisibly); a name that
    is then empty, or two tiers whose names become one, are refused with a message naming them, so that
    an import can never lead to a review file that does not open again.
    """
    seen: dict[str, str] = {}
    out = []
    for t in tiers:
        name = t.name.strip()
        if not name:
            raise LabelError(f"a tier has an empty name ({t.name!r}); name it in the file and import again", path)
        if name in seen:
            raise LabelError(
                f"tiers {seen[name]!r} and {t.name!r} have the same name once surrounding spaces are removed", path
            )
        seen[name] = t.name
        out.append(t if name == t.name else replace(t, name=name))
    return out


def _check_fingerprint(path: Path, fmt: str, fingerprint: str) -> None:
    if fmt == "json":
        from stanviewer.core.review.reviewfile import read_review_dict

        video = read_review_dict(path).get("video")
        stored = str(video.get("fingerprint", "")) if isinstance(video, dict) else ""
    else:
        from stanviewer.core.review.eaf import read_properties

        stored = read_properties(path).get("stanviewer.video_fingerprint", "")
    if stored and stored != fingerprint:
        raise VideoMismatchError(
            f"the labels were made for another video (fingerprint {stored[:12]}…, this video {fingerprint[:12]}…); "
            "import them anyway only on purpose (the app asks; `export` and `agree` take --force)",
            path,
        )
