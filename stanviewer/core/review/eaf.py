"""ELAN ``.eaf`` (EAF 3.0) export and import of label tiers (PEERS.md §Formats).

Written document (children in the schema's strict order)::

    ANNOTATION_DOCUMENT  AUTHOR DATE FORMAT="3.0" VERSION="3.0" xsi:noNamespaceSchemaLocation=EAFv3.0.xsd
      HEADER  MEDIA_FILE="" TIME_UNITS="milliseconds"
        MEDIA_DESCRIPTOR  MEDIA_URL=file:///.../video.mp4 MIME_TYPE RELATIVE_MEDIA_URL=./video.mp4
        LINKED_FILE_DESCRIPTOR  LINK_URL=file:///.../scores.csv MIME_TYPE="text/plain" RELATIVE_LINK_URL
        PROPERTY  (lastUsedAnnotationId, stanviewer.* : frame indexing, fingerprint, tier sources, model)
      TIME_ORDER  TIME_SLOT TIME_SLOT_ID=ts1 TIME_VALUE=<ms>   (two slots per annotation, sorted by time)
      TIER  TIER_ID=<tier> LINGUISTIC_TYPE_REF="stanviewer-interval" ANNOTATOR=...
        ANNOTATION/ALIGNABLE_ANNOTATION ANNOTATION_ID TIME_SLOT_REF1 TIME_SLOT_REF2 / ANNOTATION_VALUE=<label>
      TIER  TIER_ID="<tier> frames" LINGUISTIC_TYPE_REF="stanviewer-frames" PARENT_REF=<tier>
        ANNOTATION/REF_ANNOTATION ANNOTATION_REF=<parent id> / ANNOTATION_VALUE="[start,end)"
      LINGUISTIC_TYPE  stanviewer-interval (TIME_ALIGNABLE="true"), stanviewer-frames (Symbolic_Association)
      CONSTRAINT  STEREOTYPE="Symbolic_Association"

One tier per stanviewer tier (``model``, ``annotator``, ``therapist``, ...). Times are whole
milliseconds: frame f starts at ``round(pts_f * 1000)``; an interval ends at the start of its first
excluded frame (the end of the video for the last frame). The dependent ``<tier> frames`` tier keeps the
exact 0-based frame range of every annotation, so nothing depends on millisecond rounding; on import a
frame range is used when its times still match the annotation (it was not moved in ELAN), otherwise
the milliseconds are mapped to the nearest frame boundary with the video's timestamps. Files made in
ELAN without these tiers import the same way. The linked scores CSV (``frame,time_s,score,...``) lets
ELAN's time-series viewer plot the curve (choose ``time_s`` and ``score`` in its configuration dialog).
"""

from __future__ import annotations

import mimetypes
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from xml.parsers import expat

from stanviewer import __version__
from stanviewer.core.errors import LabelError
from stanviewer.core.fileio import atomic_write, fit_file_name
from stanviewer.core.review.model import SOURCES, Interval, Tier, now_iso
from stanviewer.core.review.reviewfile import Review
from stanviewer.core.review.timing import FrameTimes

__all__ = ["read_eaf", "read_properties", "write_eaf"]

XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
LT_INTERVAL = "stanviewer-interval"
LT_FRAMES = "stanviewer-frames"
FRAMES_SUFFIX = " frames"
_FRAMES_RE = re.compile(r"^\s*\[\s*(\d+)\s*,\s*(\d+)\s*\)\s*$")


def _mime(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0]
    return kind if kind and kind.startswith("video/") else "video/*"


def _relative(target: Path, folder: Path) -> str:
    try:
        rel = os.path.relpath(target, folder)
    except ValueError:  # another drive on Windows
        return target.as_uri()
    rel = rel.replace(os.sep, "/")
    if any("\udc80" <= ch <= "\udcff" for ch in rel):  # a name that is not valid UTF-8: its bytes, %-encoded
        rel = urllib.parse.quote_from_bytes(os.fsencode(rel), safe="/._-~")
    return rel if rel.startswith("../") else "./" + rel


def write_eaf(
    review: Review,
    path: str | Path,
    times: FrameTimes,
    *,
    tiers: Sequence[str] | None = None,
    scores_csv: str | Path | None = None,
) -> Path:
    """Write the tiers of ``review`` as EAF 3.0 (see module doc); ``scores_csv`` is linked for plotting."""
    path = Path(path)
    all_tiers = review.labels.all_tiers()
    sel = [t for t in all_tiers if not tiers or t.name in tiers]
    if tiers and len(sel) != len(set(tiers)):
        missing = sorted(set(tiers) - {t.name for t in sel})
        raise LabelError(f"no tier named {', '.join(missing)}")
    names = {t.name for t in sel}
    for t in sel:
        if t.name + FRAMES_SUFFIX in names:
            raise LabelError(f"tier names {t.name!r} and {t.name + FRAMES_SUFFIX!r} collide in EAF")
    video = Path(review.video.path)
    folder = path.parent.resolve()

    root = ET.Element(
        "ANNOTATION_DOCUMENT",
        {
            "AUTHOR": review.labels.reviewer or review.labels.user,
            "DATE": now_iso().replace("Z", "+00:00"),
            "FORMAT": "3.0",
            "VERSION": "3.0",
            "xmlns:xsi": XSI,
            "xsi:noNamespaceSchemaLocation": SCHEMA,
        },
    )
    header = ET.SubElement(root, "HEADER", {"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    ET.SubElement(
        header,
        "MEDIA_DESCRIPTOR",
        {
            "MEDIA_URL": video.resolve().as_uri(),
            "MIME_TYPE": _mime(video),
            "RELATIVE_MEDIA_URL": _relative(video, folder),
        },
    )
    if scores_csv is not None and Path(scores_csv).is_file():
        # the score curve goes beside the .eaf (the analysis cache it comes from may be deleted any time)
        sc = path.with_name(fit_file_name(path.stem, ".scores.csv")).resolve()
        if Path(scores_csv).resolve() != sc:
            try:
                data = Path(scores_csv).read_bytes()
                with atomic_write(sc, "wb", encoding=None) as f:
                    f.write(data)
            except OSError as e:
                raise LabelError(f"cannot copy the score curve beside the EAF file ({e.strerror or e})", sc) from e
        ET.SubElement(
            header,
            "LINKED_FILE_DESCRIPTOR",
            {
                "LINK_URL": sc.as_uri(),
                "MIME_TYPE": "text/plain",
                "RELATIVE_LINK_URL": _relative(sc, folder),
                "TIME_ORIGIN": "0",
                "ASSOCIATED_WITH": video.resolve().as_uri(),
            },
        )
    n_annotations = sum(len(t.intervals) for t in sel) * 2
    props = [
        ("lastUsedAnnotationId", str(n_annotations)),
        ("stanviewer.software", f"stanviewer {__version__}"),
        ("stanviewer.frame_indexing", "0-based frames; [start,end) end-exclusive; ms = round(pts*1000)"),
        ("stanviewer.video_fingerprint", review.video.fingerprint),
        ("stanviewer.video_frames", str(review.video.frames)),
    ]
    for t in sel:
        props.append((f"stanviewer.tier.{t.name}.source", t.source))
        if t.meta:
            for k in ("model", "method", "threshold"):
                if k in t.meta:
                    props.append((f"stanviewer.tier.{t.name}.{k}", str(t.meta[k])))
    for name, value in props:
        ET.SubElement(header, "PROPERTY", {"NAME": name}).text = value

    # time slots: two per annotation, ids in time order
    slots: list[tuple[int, int, int]] = []  # (ms, tier index, interval index * 2 + side)
    for ti, t in enumerate(sel):
        for k, iv in enumerate(t.intervals):
            slots.append((times.ms(iv.start), ti, 2 * k))
            slots.append((times.ms(iv.end), ti, 2 * k + 1))
    slots.sort()
    slot_id = {(ti, key): f"ts{j + 1}" for j, (_, ti, key) in enumerate(slots)}
    order = ET.SubElement(root, "TIME_ORDER")
    for j, (ms, _, _) in enumerate(slots):
        ET.SubElement(order, "TIME_SLOT", {"TIME_SLOT_ID": f"ts{j + 1}", "TIME_VALUE": str(ms)})

    aid = 0
    frame_tiers = []
    for ti, t in enumerate(sel):
        attrs = {"LINGUISTIC_TYPE_REF": LT_INTERVAL, "TIER_ID": t.name}
        annotator = t.annotator or next((iv.who for iv in reversed(t.intervals) if iv.who), "")
        if annotator:
            attrs["ANNOTATOR"] = annotator
        tier_el = ET.SubElement(root, "TIER", attrs)
        refs = []
        for k, iv in enumerate(t.intervals):
            aid += 1
            ann = ET.SubElement(tier_el, "ANNOTATION")
            al = ET.SubElement(
                ann,
                "ALIGNABLE_ANNOTATION",
                {
                    "ANNOTATION_ID": f"a{aid}",
                    "TIME_SLOT_REF1": slot_id[(ti, 2 * k)],
                    "TIME_SLOT_REF2": slot_id[(ti, 2 * k + 1)],
                },
            )
            ET.SubElement(al, "ANNOTATION_VALUE").text = iv.label
            refs.append((f"a{aid}", iv))
        frame_tiers.append((t, refs))
    for t, refs in frame_tiers:
        attrs = {"LINGUISTIC_TYPE_REF": LT_FRAMES, "PARENT_REF": t.name, "TIER_ID": t.name + FRAMES_SUFFIX}
        tier_el = ET.SubElement(root, "TIER", attrs)
        for parent, iv in refs:
            aid += 1
            ann = ET.SubElement(tier_el, "ANNOTATION")
            ra = ET.SubElement(ann, "REF_ANNOTATION", {"ANNOTATION_ID": f"a{aid}", "ANNOTATION_REF": parent})
            ET.SubElement(ra, "ANNOTATION_VALUE").text = f"[{iv.start},{iv.end})"
    ET.SubElement(
        root,
        "LINGUISTIC_TYPE",
        {"GRAPHIC_REFERENCES": "false", "LINGUISTIC_TYPE_ID": LT_INTERVAL, "TIME_ALIGNABLE": "true"},
    )
    ET.SubElement(
        root,
        "LINGUISTIC_TYPE",
        {
            "CONSTRAINTS": "Symbolic_Association",
            "GRAPHIC_REFERENCES": "false",
            "LINGUISTIC_TYPE_ID": LT_FRAMES,
            "TIME_ALIGNABLE": "false",
        },
    )
    ET.SubElement(
        root,
        "CONSTRAINT",
        {
            "DESCRIPTION": "1-1 association with a parent annotation",
            "STEREOTYPE": "Symbolic_Association",
        },
    )
    ET.indent(root, space="    ")
    data = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
    try:
        with atomic_write(path, "wb") as f:
            f.write(data + b"\n")
    except OSError as e:
        raise LabelError(f"cannot write ({e.strerror or e})", path) from e
    return path


# ---------------------------------------------------------------------- reading
def _parse(path: Path) -> tuple[ET.Element, dict[int, int]]:
    """Parse with expat directly so that every element's line is known (for error messages)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabelError("file not found", path) from None
    except OSError as e:
        raise LabelError(f"cannot read ({e.strerror or e})", path) from e
    parser = expat.ParserCreate()
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}

    def start(tag: str, attrs: dict[str, str]) -> None:
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
        root = builder.close()
    except expat.ExpatError as e:
        raise LabelError(f"line {e.lineno}: not well-formed XML ({expat.ErrorString(e.code)})", path) from None
    except LookupError as e:  # <?xml encoding="..."?> names an encoding Python does not know
        raise LabelError(f"line 1: {e}", path) from None
    return root, lines


def read_properties(path: str | Path) -> dict[str, str]:
    """The HEADER's ``PROPERTY`` values of an EAF file (e.g. ``stanviewer.video_fingerprint``)."""
    root, _ = _parse(Path(path))
    header = root.find("HEADER")
    if header is None:
        return {}
    return {p.get("NAME", ""): (p.text or "").strip() for p in header.findall("PROPERTY")}


def read_eaf(path: str | Path, times: FrameTimes) -> list[Tier]:
    """Read the time-aligned tiers of an EAF file into frame intervals (see module doc).

    Dependent ``<tier> frames`` tiers written by :func:`write_eaf` are used for exact frames; other
    dependent tiers are ignored. Tier sources come from the ``stanviewer.tier.*.source`` properties or
    the tier names.
    """
    path = Path(path)
    root, lines = _parse(path)

    def fail(el: ET.Element | None, msg: str) -> LabelError:
        return LabelError(f"line {lines.get(id(el), 1) if el is not None else 1}: {msg}", path)

    if root.tag != "ANNOTATION_DOCUMENT":
        raise fail(root, f"not an ELAN file (root element {root.tag}, expected ANNOTATION_DOCUMENT)")
    header = root.find("HEADER")
    units = header.get("TIME_UNITS", "milliseconds") if header is not None else "milliseconds"
    if units != "milliseconds":
        raise fail(header, f"TIME_UNITS must be milliseconds, not {units!r}")
    props = {}
    if header is not None:
        for p in header.findall("PROPERTY"):
            props[p.get("NAME", "")] = (p.text or "").strip()
    slots: dict[str, int] = {}
    order = root.find("TIME_ORDER")
    for ts in order.findall("TIME_SLOT") if order is not None else []:
        sid, value = ts.get("TIME_SLOT_ID"), ts.get("TIME_VALUE")
        if not sid:
            raise fail(ts, "TIME_SLOT without TIME_SLOT_ID")
        if value is None:
            continue  # unaligned slot; an annotation using it is reported below
        try:
            slots[sid] = int(value)
        except ValueError:
            raise fail(ts, f"TIME_VALUE {value!r} is not whole milliseconds") from None

    # frame ranges from the dependent tiers: parent annotation id -> (start, end)
    frames_of: dict[str, tuple[int, int]] = {}
    dependent: set[str] = set()
    for tier_el in root.findall("TIER"):
        if tier_el.get("PARENT_REF") is None:
            continue
        dependent.add(tier_el.get("TIER_ID", ""))
        if tier_el.get("LINGUISTIC_TYPE_REF") != LT_FRAMES:
            continue
        for ra in tier_el.iter("REF_ANNOTATION"):
            m = _FRAMES_RE.match(ra.findtext("ANNOTATION_VALUE") or "")
            if m:
                frames_of[ra.get("ANNOTATION_REF", "")] = (int(m.group(1)), int(m.group(2)))

    n = times.count
    when = now_iso()
    out: list[Tier] = []
    for tier_el in root.findall("TIER"):
        name = tier_el.get("TIER_ID")
        if not name:
            raise fail(tier_el, "TIER without TIER_ID")
        if name in dependent:
            continue
        source = props.get(f"stanviewer.tier.{name}.source") or (name if name in SOURCES else "annotator")
        if source not in SOURCES:
            source = "annotator"
        rows: list[tuple[ET.Element, Interval]] = []
        for al in tier_el.iter("ALIGNABLE_ANNOTATION"):
            r1, r2 = al.get("TIME_SLOT_REF1", ""), al.get("TIME_SLOT_REF2", "")
            if r1 not in slots or r2 not in slots:
                raise fail(al, f"annotation {al.get('ANNOTATION_ID')} refers to a missing or unaligned time slot")
            t1, t2 = slots[r1], slots[r2]
            if t2 < t1:
                raise fail(al, f"annotation {al.get('ANNOTATION_ID')} ends ({t2} ms) before it starts ({t1} ms)")
            problem = times.range_problem(t1 / 1000.0, t2 / 1000.0)
            if problem:
                raise fail(al, f"annotation {al.get('ANNOTATION_ID')}: {problem}")
            label = (al.findtext("ANNOTATION_VALUE") or "").strip()
            if not label:
                raise fail(al, f"annotation {al.get('ANNOTATION_ID')} has an empty value")
            fr = frames_of.get(al.get("ANNOTATION_ID", ""))
            if fr is not None and 0 <= fr[0] < fr[1] <= n and (times.ms(fr[0]), times.ms(fr[1])) == (t1, t2):
                a, b = fr
            else:
                a = min(times.boundary_at(t1 / 1000.0), n - 1)
                b = max(min(times.boundary_at(t2 / 1000.0), n), a + 1)
            rows.append(
                (
                    al,
                    Interval(
                        a, b, label, tier_el.get("ANNOTATOR", ""), when, "model" if source == "model" else "import"
                    ),
                )
            )
        rows.sort(key=lambda r: r[1].start)
        for (_, x), (el, y) in pairwise(rows):
            if y.start < x.end:
                raise fail(el, f"tier {name!r}: annotation at frames {y.start}-{y.end} overlaps {x.start}-{x.end}")
        meta = {}
        for k in ("model", "method", "threshold"):
            v = props.get(f"stanviewer.tier.{name}.{k}")
            if v is not None and k == "threshold":
                try:
                    meta[k] = float(v)
                except ValueError:
                    raise fail(header, f"property stanviewer.tier.{name}.threshold {v!r} is not a number") from None
            elif v is not None:
                meta[k] = v
        out.append(
            Tier(
                name,
                source,
                tuple(iv for _, iv in rows),
                read_only=source == "model",
                annotator=tier_el.get("ANNOTATOR", ""),
                meta=meta,
            )
        )
    return out
