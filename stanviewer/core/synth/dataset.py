"""Synthetic rehabilitation videos and data sets in the manifest format.

A *subject* has a body, a room, a camera placement, a frame rate and a resolution. Each of their videos
shows a shoulder exercise (flexion or abduction repetitions) from a frontal, oblique or side view. In
compensation videos some repetitions come with trunk compensation (lateral lean, backward lean, trunk
rotation or shoulder hiking, chosen among those visible from that view) that grows with arm elevation.
The per-frame label is 1 while the compensation is visible: its magnitude is at least the visibility
unit of its kind (:data:`VISIBILITY`: 7 degrees of lean, 15 degrees of trunk rotation, 0.035 body units
of shoulder hiking, i.e. about 2% of the standing height). Every video also has natural sway (well below
those units), so "any trunk motion" is not the answer.

Written per video: the video (H.264 MP4 by default), ``labels/<name>.csv`` (``frame,label``),
``boxes/<name>.csv`` (``frame,x,y,w,h``: the figure's true bounding box, clipped to the frame) and
``joints/<name>.csv`` (``frame`` then x, y per joint in :data:`~stanviewer.core.synth.body.JOINTS` order).
A data set adds ``manifest.csv`` (``video,subject,label,frame_labels,split,boxes,joints``) with a subject-wise
train/test split, and ``synth.json`` with every generation parameter. Deterministic by seed.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from stanviewer.core.encode import VideoWriter
from stanviewer.core.errors import StanError
from stanviewer.core.fileio import atomic_write
from stanviewer.core.progress import Job, Progress
from stanviewer.core.synth.body import JOINTS, Body, Camera, Pose, draw_body
from stanviewer.core.synth.scene import Distractor, Sensor, make_room

__all__ = [
    "CLASSES",
    "VISIBLE",
    "SubjectSpec",
    "VideoSpec",
    "make_dataset",
    "make_video",
    "random_subject",
    "random_video_spec",
]

CLASSES = ("normal", "compensation")
VISIBILITY = {"lean_lateral": 7.0, "lean_back": 7.0, "lean_forward": 7.0, "rotation": 15.0, "hike": 0.035}
VISIBLE = 1.0  # a frame is labelled 1 when some compensation reaches this many visibility units
RESOLUTIONS = [(320, 240), (320, 240), (352, 288), (400, 300), (426, 240), (480, 360)]
FRAME_RATES = [15.0, 20.0, 24.0, 25.0, 29.97, 30.0]


@dataclass
class SubjectSpec:
    subject: str
    seed: int
    width: int
    height: int
    fps: float
    scale: float  # figure height as a fraction of the frame height
    x_center: float  # fraction of the frame width
    floor: float  # feet line as a fraction of the frame height
    body: Body = field(default_factory=Body)


@dataclass
class Rep:
    start: float  # seconds
    raise_s: float
    hold_s: float
    lower_s: float
    peak: float  # arm elevation relative to the trunk at the top (degrees)
    comp: str | None = None  # compensation type or None
    amp: float = 0.0  # degrees (lean, rotation) or body units (hike)
    comp2: str | None = None
    amp2: float = 0.0
    side: str | None = None  # free compensation events (pose data): left | right | both; None: the video's arm

    @property
    def end(self) -> float:
        return self.start + self.raise_s + self.hold_s + self.lower_s

    def elevation(self, t: float) -> float:
        """0..1 arm elevation at time t (smooth raise, hold, smooth lower)."""
        u = t - self.start
        if u <= 0 or u >= self.raise_s + self.hold_s + self.lower_s:
            return 0.0
        if u < self.raise_s:
            return 0.5 - 0.5 * math.cos(math.pi * u / self.raise_s)
        u -= self.raise_s
        if u < self.hold_s:
            return 1.0
        u -= self.hold_s
        return 0.5 + 0.5 * math.cos(math.pi * u / self.lower_s)


@dataclass
class VideoSpec:
    name: str
    subject: SubjectSpec
    seed: int
    yaw: float  # camera yaw (0 front, +-90 side)
    exercise: str  # flexion | abduction
    arm: str  # left | right | both
    reps: list[Rep]
    duration: float
    compensation: bool
    distractors: int
    codec: str = "h264"
    events: list[Rep] = field(default_factory=list)  # compensations on their own timing (``free`` pose data)

    @property
    def label(self) -> str:
        return CLASSES[int(self.compensation)]

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration * self.subject.fps)))


def random_subject(rng: np.random.Generator, subject: str) -> SubjectSpec:
    w, h = RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))]
    return SubjectSpec(
        subject=subject,
        seed=int(rng.integers(2**31)),
        width=w,
        height=h,
        fps=float(rng.choice(FRAME_RATES)),
        scale=float(rng.uniform(0.62, 0.85)),
        x_center=float(rng.uniform(0.35, 0.65)),
        floor=float(rng.uniform(0.9, 0.97)),
        body=Body.random(rng),
    )


def _comp_types(yaw: float) -> tuple[list[str], list[float]]:
    side_on = abs(math.sin(math.radians(yaw)))
    if side_on > 0.7:
        return ["lean_back", "hike", "rotation", "lean_forward"], [0.5, 0.2, 0.15, 0.15]
    return ["lean_lateral", "hike", "rotation"], [0.55, 0.3, 0.15]


def _amp(kind: str, rng: np.random.Generator) -> float:
    """Peak amplitude of a compensation: 2.2-4 visibility units (clearly visible at its peak)."""
    return float(rng.uniform(2.2, 4.0)) * VISIBILITY[kind]


def random_video_spec(
    rng: np.random.Generator,
    subject: SubjectSpec,
    name: str,
    compensation: bool,
    *,
    reps: tuple[int, int] = (3, 5),
    duration: float | None = None,
    codec: str = "h264",
    every_rep: bool = False,
    free: bool = False,
) -> VideoSpec:
    """Draw a video of ``subject``; ``duration`` (seconds) repeats exercises to fill a long video.
    ``every_rep``: a compensation video compensates in every repetition (pose data, see ``make_dataset``).
    ``free``: a compensation video's repetitions stay normal and its compensations come as events on
    their own timing, on a side of their own (pose data whose shoulder hikes and leans are independent of
    the arm: raised with the arm down, arm raised without them)."""
    view = rng.random()
    if view < 0.45:
        yaw = float(rng.uniform(-15, 15))
    elif view < 0.8:
        yaw = float(rng.choice([-1, 1]) * rng.uniform(75, 95))
    else:
        yaw = float(rng.choice([-1, 1]) * rng.uniform(30, 55))
    side_on = abs(math.sin(math.radians(yaw))) > 0.7
    exercise = "flexion" if (side_on and rng.random() < 0.75) or rng.random() < 0.4 else "abduction"
    arm = str(rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2]))
    out: list[Rep] = []
    t = float(rng.uniform(0.4, 1.2))
    n_target = int(rng.integers(reps[0], reps[1] + 1))
    while (duration is None and len(out) < n_target) or (duration is not None and t < duration - 5.0):
        r = Rep(
            start=t,
            raise_s=float(rng.uniform(0.9, 1.7)),
            hold_s=float(rng.uniform(0.2, 0.8)),
            lower_s=float(rng.uniform(0.9, 1.7)),
            peak=float(rng.uniform(100, 160)),
        )
        out.append(r)
        t = r.end + float(rng.uniform(0.4, 1.3))
    events: list[Rep] = []
    if compensation and free:
        total = duration if duration is not None else t + float(rng.uniform(0.2, 1.0))
        kinds, p = _comp_types(yaw)
        for _ in range(len(out) + 1):
            ev = Rep(
                start=float(rng.uniform(-0.5, total - 1.0)),
                raise_s=float(rng.uniform(0.6, 1.7)),
                hold_s=float(rng.uniform(0.2, 1.2)),
                lower_s=float(rng.uniform(0.6, 1.7)),
                peak=0.0,
                side=str(rng.choice(["left", "right", "both"], p=[0.4, 0.4, 0.2])),
            )
            ev.comp = str(rng.choice(kinds, p=p))
            ev.amp = float(rng.uniform(0.3, 1.0)) * _amp(ev.comp, rng)  # faint to clear, not only clear
            if rng.random() < 0.35:
                ev.comp2 = str(rng.choice([x for x in kinds if x != ev.comp]))
                ev.amp2 = float(rng.uniform(0.3, 1.0)) * _amp(ev.comp2, rng)
            events.append(ev)
    elif compensation:
        kinds, p = _comp_types(yaw)
        n = len(out)
        k = n if rng.random() < 0.15 else int(rng.integers(1, max(2, n)))
        if every_rep:
            k = n
        chosen = rng.choice(n, size=min(k, n), replace=False)
        for i in chosen:
            rep = out[int(i)]
            rep.comp = str(rng.choice(kinds, p=p))
            rep.amp = _amp(rep.comp, rng)
            rep.peak *= float(rng.uniform(0.75, 0.95))  # compensating patients reach less with the arm alone
            if rng.random() < 0.35:
                rest = [x for x in kinds if x != rep.comp]
                rep.comp2 = str(rng.choice(rest))
                rep.amp2 = 0.6 * _amp(rep.comp2, rng)
    if not (compensation and free):  # drawn here, after the compensations, so that seeds draw as before
        total = duration if duration is not None else t + float(rng.uniform(0.2, 1.0))
    return VideoSpec(
        name=name,
        subject=subject,
        seed=int(rng.integers(2**31)),
        yaw=yaw,
        exercise=exercise,
        arm=arm,
        reps=out,
        duration=float(total),
        compensation=compensation,
        distractors=int(rng.choice([0, 1, 1, 2])),
        codec=codec,
        events=events,
    )


class _Sway:
    """Smooth small random motion (natural sway) in degrees or body units."""

    def __init__(self, rng: np.random.Generator, amp: float) -> None:
        self.f = rng.uniform(0.05, 0.4, 3)
        self.p = rng.uniform(0, 2 * math.pi, 3)
        self.a = amp * rng.uniform(0.3, 1.0, 3) / 1.7

    def __call__(self, t: float) -> float:
        return float(np.sum(self.a * np.sin(2 * math.pi * self.f * t + self.p)))


def _pose_at(spec: VideoSpec, t: float, sway: dict[str, _Sway]) -> tuple[Pose, float]:
    """Pose at time t and the visible compensation then (in visibility units, >= VISIBLE means visible)."""
    pose = Pose(
        lean_lateral=sway["lat"](t),
        lean_forward=sway["fwd"](t),
        rotation=sway["rot"](t),
        hike_l=0.004 * sway["hike"](t),
        hike_r=-0.004 * sway["hike"](t),
        head_tilt=sway["head"](t),
        elbow_bend=10 + 3 * sway["elbow"](t),
        arm_l=(0.0, 4.0),
        arm_r=(0.0, 4.0),
    )
    intensity = 0.0
    for rep in spec.reps:
        e = rep.elevation(t)
        if e <= 0:
            continue
        angle = e * rep.peak
        arms = {"left": ["l"], "right": ["r"], "both": ["l", "r"]}[spec.arm]
        for a in arms:
            val = (angle, 4.0) if spec.exercise == "flexion" else (0.0, 4.0 + angle)
            if a == "l":
                pose.arm_l = val
            else:
                pose.arm_r = val
        if rep.comp is not None:
            intensity = max(intensity, _compensate(pose, rep, e, spec.arm))
    for ev in spec.events:
        e = ev.elevation(t)
        if e > 0:
            intensity = max(intensity, _compensate(pose, ev, e, ev.side or spec.arm))
    return pose, intensity


def _compensate(pose: Pose, rep: Rep, e: float, arm: str) -> float:
    """Add ``rep``'s compensation at envelope ``e`` (0..1) on the side of ``arm`` to ``pose``; returns its
    visible intensity (visibility units)."""
    intensity = 0.0
    k = e**1.3
    side = {"left": 1.0, "right": -1.0, "both": 1.0}[arm]
    for kind, amp in ((rep.comp, rep.amp), (rep.comp2, rep.amp2)):
        if kind is None:
            continue
        intensity = max(intensity, amp * k / VISIBILITY[kind])
        if kind == "lean_lateral":
            pose.lean_lateral += -side * amp * k
        elif kind == "lean_back":
            pose.lean_forward -= amp * k
        elif kind == "lean_forward":
            pose.lean_forward += amp * k
        elif kind == "rotation":
            pose.rotation += side * amp * k
        elif kind == "hike":
            if arm in ("left", "both"):
                pose.hike_l += amp * k
            if arm in ("right", "both"):
                pose.hike_r += amp * k
    return intensity


def make_video(spec: VideoSpec, out_dir: str | Path) -> dict:
    """Render and write one video with its labels, boxes and joints; returns its manifest row."""
    out = Path(out_dir)
    for sub in ("videos", "labels", "boxes", "joints"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    s = spec.subject
    rng = np.random.default_rng(spec.seed)
    room_rng = np.random.default_rng(s.seed)
    w, h = s.width, s.height
    n = spec.n_frames
    sensor = Sensor(rng, w, h, n, s.fps)
    m = sensor.margin
    floor_y = s.floor * h
    room = make_room(room_rng, w + 2 * m, h + 2 * m, floor_y + m)
    distractors = [Distractor.random(rng, w + 2 * m, h + 2 * m, floor_y + m) for _ in range(spec.distractors)]
    cam = Camera(yaw=spec.yaw, scale=s.scale * h / 1.8, cx=s.x_center * w + m, floor_y=floor_y + m)
    sway = {
        "lat": _Sway(rng, 1.5),
        "fwd": _Sway(rng, 1.5),
        "rot": _Sway(rng, 3.0),
        "hike": _Sway(rng, 1.0),
        "head": _Sway(rng, 3.0),
        "elbow": _Sway(rng, 1.0),
    }
    ext = {"h264": ".mp4", "mp4v": ".mp4", "mjpeg": ".avi"}.get(spec.codec, ".mp4")
    video_path = out / "videos" / f"{spec.name}{ext}"
    labels = np.zeros(n, np.uint8)
    boxes = np.zeros((n, 4), np.int32)
    joints = np.zeros((n, len(JOINTS), 2), np.float32)
    canvas = np.empty_like(room)
    with VideoWriter(
        video_path, s.fps, spec.codec, gop=int(round(s.fps * 4)), bframes=2, threads=1, preset="superfast"
    ) as writer:
        for i in range(n):
            t = i / s.fps
            np.copyto(canvas, room)
            for d in distractors:
                d.draw(canvas, t)
            pose, intensity = _pose_at(spec, t, sway)
            xy, box = draw_body(canvas, s.body, pose, cam)
            dx, dy = sensor.offsets[i]
            frame = sensor.apply(canvas, i)
            writer.write(frame)
            labels[i] = intensity >= VISIBLE
            x0, y0 = max(0.0, box[0] - m - dx), max(0.0, box[1] - m - dy)
            x1, y1 = min(float(w), box[2] - m - dx), min(float(h), box[3] - m - dy)
            boxes[i] = (round(x0), round(y0), round(x1 - x0), round(y1 - y0))
            joints[i] = xy - np.array([m + dx, m + dy])
    name = video_path.name
    _write_rows(out / "labels" / f"{spec.name}.csv", ["frame", "label"], ([i, int(v)] for i, v in enumerate(labels)))
    _write_rows(
        out / "boxes" / f"{spec.name}.csv",
        ["frame", "x", "y", "w", "h"],
        ([i, *map(int, b)] for i, b in enumerate(boxes)),
    )
    header = ["frame"] + [f"{j}_{c}" for j in JOINTS for c in "xy"]
    _write_rows(
        out / "joints" / f"{spec.name}.csv", header, ([i, *(f"{v:.1f}" for v in joints[i].ravel())] for i in range(n))
    )
    return {
        "video": f"videos/{name}",
        "subject": s.subject,
        "label": spec.label,
        "frame_labels": f"labels/{spec.name}.csv",
        "boxes": f"boxes/{spec.name}.csv",
        "joints": f"joints/{spec.name}.csv",
        "frames": n,
        "positive_frames": int(labels.sum()),
    }


def _write_rows(path: Path, header: list[str], rows: object) -> None:
    with atomic_write(path) as f:
        wr = csv.writer(f, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)  # type: ignore[arg-type]


def _render_all(specs: list[VideoSpec], out: Path, workers: int) -> Job[list[dict]]:
    """Render every video (in ``workers`` processes when > 1); rows in the order of ``specs``."""
    total_frames = sum(sp.n_frames for sp in specs)
    done = 0
    if workers <= 1 or len(specs) < 2:
        rows = []
        for k, sp in enumerate(specs):
            yield Progress(done, total_frames, f"video {k + 1}/{len(specs)}: {sp.name}")
            rows.append(make_video(sp, out))
            done += sp.n_frames
        return rows
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    result: dict[int, dict] = {}
    with ProcessPoolExecutor(max_workers=min(workers, len(specs))) as pool:
        pending = {pool.submit(make_video, sp, out): k for k, sp in enumerate(specs)}
        try:
            while pending:
                finished, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for fut in finished:
                    k = pending.pop(fut)
                    result[k] = fut.result()
                    done += specs[k].n_frames
                yield Progress(done, total_frames, f"{len(result)}/{len(specs)} videos ({workers} processes)")
        finally:  # cancelled or failed: do not start the videos still queued
            for fut in pending:
                fut.cancel()
    return [result[k] for k in range(len(specs))]


#: what a data set folder consists of (``make_dataset(overwrite=True)`` removes exactly these)
DATASET_ENTRIES = ("manifest.csv", "synth.json", "videos", "labels", "boxes", "joints")


def _remove_dataset(out: Path) -> None:
    """Delete an earlier synthetic set in ``out``: its manifest, ``synth.json`` and the files its manifest lists
    (inside ``out``), then its folders where that left them empty. Other files are kept."""
    from stanviewer.core.manifest import read_manifest

    try:
        entries = read_manifest(out / "manifest.csv") if (out / "manifest.csv").is_file() else []
    except StanError:
        entries = []
    root = out.resolve()
    for e in entries:
        files = [e.video, e.frame_labels, e.extra_path("boxes", out), e.extra_path("joints", out)]
        for f in (Path(x).resolve() for x in files if x is not None):
            if f.is_file() and root in f.parents:
                f.unlink()
    for n in ("manifest.csv", "synth.json"):
        (out / n).unlink(missing_ok=True)
    for n in ("videos", "labels", "boxes", "joints"):
        with contextlib.suppress(OSError):  # not empty: someone's files are in it
            (out / n).rmdir()


def make_dataset(
    out_dir: str | Path,
    *,
    subjects: int = 12,
    videos_per_subject: int = 6,
    test_fraction: float = 0.25,
    seed: int = 0,
    reps: tuple[int, int] = (3, 5),
    codec: str = "h264",
    long_seconds: float | None = None,
    workers: int = 1,
    pose_data: bool | str = False,
    overwrite: bool = False,
) -> Job[Path]:
    """Generate a data set (a job: yields :class:`Progress`, returns the manifest path).

    Half of each subject's videos show compensation. ``test_fraction`` of the subjects (at least one
    when there are two or more) form the test split. ``long_seconds`` makes every video that long.
    ``workers`` > 1 renders videos in that many processes; the files are the same either way (every
    video has its own seed, drawn before rendering starts).

    ``pose_data``: every video compensates in every repetition — posture variety for label-free pose
    pretraining (the readers otherwise see a shoulder hike in a few per cent of their images and read it
    shrunk). ``pose_data="free"``: every video compensates too, but in events on their own timing and side
    while the repetitions stay normal, so that a raised shoulder or a lean is not tied to a raised arm
    (``pose_data=True`` is ``"reps"``). Such a set has one class only: it is not for training or evaluating
    a classifier.

    A folder that already holds a data set (a manifest, ``synth.json``, or files in ``videos/``, ``labels/``,
    ``boxes/``, ``joints/``) is refused: a smaller new set would replace some videos and leave the others
    beside a manifest that no longer lists them. ``overwrite`` removes an earlier synthetic set first (only
    where its ``synth.json`` says it is one, and only the files its manifest lists); nothing else is deleted.
    """
    mode = "reps" if pose_data is True else (pose_data or None)
    if mode not in (None, "reps", "free"):
        raise StanError(f"pose data must be 'reps' or 'free', not {pose_data!r}")
    if subjects < 1 or videos_per_subject < 1:
        raise StanError("subjects and videos per subject must be at least 1")
    out = Path(out_dir)
    taken = [n for n in DATASET_ENTRIES if (out / n).is_file() or ((out / n).is_dir() and any((out / n).iterdir()))]
    if taken and not (overwrite and (out / "synth.json").is_file()):
        hint = ", or --force to replace the synthetic set" if (out / "synth.json").is_file() else ""
        raise StanError(
            f"this folder already holds {', '.join(taken)} (a data set); choose a new folder{hint}",
            out,
        )
    if taken:
        _remove_dataset(out)
    out.mkdir(parents=True, exist_ok=True)
    root = np.random.default_rng(seed)
    subj = [random_subject(root, f"S{k + 1:02d}") for k in range(subjects)]
    n_test = 0 if subjects < 2 else max(1, int(round(subjects * test_fraction)))
    test_ids = {s.subject for s in subj[subjects - n_test :]}
    specs: list[VideoSpec] = []
    for s in subj:
        flags = [mode is not None or v % 2 == 1 for v in range(videos_per_subject)]
        root.shuffle(flags)
        for v, comp in enumerate(flags):
            specs.append(
                random_video_spec(
                    root,
                    s,
                    f"{s.subject}_V{v + 1:02d}",
                    bool(comp),
                    reps=reps,
                    duration=long_seconds,
                    codec=codec,
                    every_rep=mode == "reps",
                    free=mode == "free",
                )
            )
    rows = yield from _render_all(specs, out, workers)
    for sp, row in zip(specs, rows):
        row["split"] = "test" if sp.subject.subject in test_ids else "train"
    manifest = out / "manifest.csv"
    cols = ["video", "subject", "label", "frame_labels", "split", "boxes", "joints"]
    _write_rows(manifest, cols, ([r[c] for c in cols] for r in rows))
    meta = {
        "generator": "stanviewer.core.synth",
        "seed": seed,
        "pose_data": mode is not None,
        "pose_data_mode": mode,
        "subjects": subjects,
        "videos_per_subject": videos_per_subject,
        "test_subjects": sorted(test_ids),
        "classes": list(CLASSES),
        "visibility_units": VISIBILITY,
        "videos": [
            {
                **{k: v for k, v in asdict(sp).items() if k != "subject"},
                "subject": sp.subject.subject,
                "fps": sp.subject.fps,
                "width": sp.subject.width,
                "height": sp.subject.height,
                "frames": r["frames"],
                "positive_frames": r["positive_frames"],
            }
            for sp, r in zip(specs, rows)
        ],
    }
    with atomic_write(out / "synth.json") as f:
        json.dump(meta, f, indent=1)
    yield Progress(1, 1, "done")
    return manifest
