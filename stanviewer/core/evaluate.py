"""``stanviewer evaluate``: the paper's experiment layout on any data set in the manifest format.

For every checkpoint (a model trained with some views) and every explanation method:

- **video level** (Table 1 analogue): the model's decision on the test videos (F1 of the target class,
  accuracy, AUROC);
- **frame level, long sequence** (all frames): thresholds calibrated on training videos (pooled F1),
  applied to test videos, under both protocols of DESIGN.md §5: (a) target-class videos only (the
  paper's setting), (b) all videos, where a video predicted as not-target gets no flagged frames;
- **frame level, short sequence**: one clip of T frames sampled uniformly over each video (the paper's
  20-frame setting), scored by the method on that clip alone;
- beside every F1, the trivial baselines: every frame flagged; frames flagged at random at the same
  rate as the method flagged (seeded); (b) every frame of videos predicted positive.

On videos made by ``stanviewer synth`` (a ``synth.json`` beside their ``videos/`` folder), a breakdown of
protocol a by **compensation kind and view** (:func:`~stanviewer.core.synth.reps.recall_by_kind`): the
share of each kind's labelled frames flagged at the calibrated threshold, and the share of the frames of
normal repetitions flagged (false alarms) — which compensations an explanation finds and which it misses.

``sanity=True`` adds the model-randomisation check (Adebayo et al. 2018): weights re-initialised top
down (head, then stage 4, 3, 2, 1 and the stem, cumulatively); frame F1 and the Spearman rank
correlation with the trained model's scores should fall.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stanviewer.core.errors import StanError
from stanviewer.core.explain.methods import LogOdds, frame_scores, frozen, make_method
from stanviewer.core.explain.posture import METHOD as POSTURE
from stanviewer.core.explain.scoring import AnalysisSettings, normalise_scores
from stanviewer.core.explain.segments import calibrate_threshold, flags_from_segments, segments_from_scores
from stanviewer.core.explain.store import EVALUATION, analyze_video
from stanviewer.core.fileio import atomic_write, write_dict_rows
from stanviewer.core.manifest import ManifestEntry, read_frame_labels, read_manifest
from stanviewer.core.metrics import auroc, prf
from stanviewer.core.models.checkpoint import Checkpoint, load_checkpoint
from stanviewer.core.models.registry import family
from stanviewer.core.progress import Job, Progress, nested
from stanviewer.core.synth.reps import recall_by_kind
from stanviewer.core.video import open_video

__all__ = ["EvalConfig", "EvalReport", "evaluate", "oracle_window_scores", "rank_corr"]


@dataclass
class EvalConfig:
    methods: list[str] = field(default_factory=lambda: ["window", "vanilla", "smoothgrad", "gradcam"])
    coverage: str = "sampled"
    calib_videos: int = 40  # training videos used for calibration (per protocol), chosen with a seed
    # where they come from: "train", the manifest's training split; "val", only the videos of the subjects
    # the checkpoint held out for validation (its training record's subjects_val): for a posture model
    # trained with --reader-fit train they are read like new subjects' videos
    calib_from: str = "train"
    test_videos: int | None = None  # cap on test videos (None: all)
    short: bool = True
    sanity: bool = False
    seed: int = 0
    device: str = "auto"
    batch: int = 16
    samples: int = 8


@dataclass
class EvalReport:
    video_rows: list[dict]
    frame_rows: list[dict]
    sanity_rows: list[dict]
    markdown: str
    kind_rows: list[dict] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # checkpoint path -> its name in the rows and tables


def model_names(checkpoints: list[Path]) -> dict[str, str]:
    """Each checkpoint's name in the tables: its model name, with the file's distinct name beside it where two
    checkpoints share a model name (``best`` and ``last`` of one run), so their rows never mix."""
    from stanviewer.core.fileio import distinct_names
    from stanviewer.core.models.checkpoint import read_metadata

    base = {}
    for c in checkpoints:
        try:
            base[str(c)] = str(read_metadata(c).get("name") or Path(c).stem)
        except StanError:
            base[str(c)] = Path(c).stem  # loading it will say what is wrong
    files = dict(zip([str(c) for c in checkpoints], distinct_names(checkpoints), strict=True))
    counts: dict[str, int] = {}
    for n in base.values():
        counts[n] = counts.get(n, 0) + 1
    return {c: (f"{n} ({files[c]})" if counts[n] > 1 else n) for c, n in base.items()}


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    r = np.empty(len(x), np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        r[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return r


def rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass
class _Scored:
    entry: ManifestEntry
    labels: np.ndarray
    scores: np.ndarray
    predicted_target: bool
    evidence: float


#: where ``evaluate`` takes its calibration videos from (:attr:`EvalConfig.calib_from`)
CALIB_FROM = ("train", "val")


def _calibration_pool(
    ck: Checkpoint, train_e: list[ManifestEntry], calib_from: str, manifest: Path
) -> list[ManifestEntry]:
    """The training-split videos a checkpoint's thresholds may be calibrated on: all of them, or (``"val"``)
    those of the subjects it held out for validation."""
    if calib_from == "train":
        return train_e
    subjects = set(ck.meta.get("training", {}).get("subjects_val") or [])
    if not subjects:
        raise StanError(
            f"{ck.name}: its training record names no validation subjects to calibrate on; use --calib-from train",
            ck.path,
        )
    pool = [e for e in train_e if e.subject in subjects]
    if not any(e.label == ck.spec.target for e in pool):
        raise StanError(
            f"no {ck.spec.target} video of {ck.name}'s validation subjects ({', '.join(sorted(subjects))}) is in "
            "the manifest's training split; use --calib-from train",
            manifest,
        )
    return pool


def _pick(entries: list[ManifestEntry], n: int | None, seed: int) -> list[ManifestEntry]:
    if n is None or len(entries) <= n:
        return entries
    rng = np.random.default_rng(seed)
    idx = sorted(rng.choice(len(entries), size=n, replace=False).tolist())
    return [entries[i] for i in idx]


def _score_videos(ck: Checkpoint, entries: list[ManifestEntry], st: AnalysisSettings, label: str) -> Job[list[_Scored]]:
    out = []
    for k, e in enumerate(entries):
        yield Progress(k, len(entries), f"{label} {k + 1}/{len(entries)}: {e.name}")
        job = analyze_video(e.video, ck, st, made_by=EVALUATION)
        a, _ = yield from nested(job, k, len(entries), f"{label} {k + 1}/{len(entries)}")
        labels = read_frame_labels(e.frame_labels, len(a.scores))
        out.append(
            _Scored(
                e, labels, a.scores, a.prediction["class"] == a.meta["target"], float(a.prediction["pooled_evidence"])
            )
        )
    return out


def _pooled(videos: list[tuple[np.ndarray, np.ndarray]], th: float) -> dict:
    tp = fp = fn = 0
    for s, y in videos:
        flags = flags_from_segments(segments_from_scores(s, th), len(y))
        m = prf(flags, y)
        tp, fp, fn = tp + m.tp, fp + m.fp, fn + m.fn
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    rate = (tp + fp) / max(1, sum(len(y) for _, y in videos))
    return {"precision": p, "recall": r, "f1": f, "flag_rate": rate}


def oracle_window_scores(labels: np.ndarray, window: int, stride: int | None = None, mode: str = "share") -> np.ndarray:
    """Frame scores of a *perfect* window classifier: the ceiling of any window-probability curve.

    Windows of ``window`` frames every ``stride`` frames (default ``window // 4``; the last window ends at the
    last frame); a window's score is the share of labelled frames in it (``mode="share"``, a perfectly
    calibrated probability) or 1 if it holds any (``"any"``, a perfect detector); a frame's score is the
    mean over the windows that hold it, as in the app's window method. With labels, this tells how much
    frame F1 a window length can reach at best, whatever the model.
    """
    if mode not in ("share", "any"):
        raise ValueError(f"mode must be 'share' or 'any', not {mode!r}")
    y = np.asarray(labels, np.float64)
    n = len(y)
    if n == 0:
        return np.zeros(0)
    w = int(min(max(1, window), n))
    step = max(1, w // 4 if stride is None else int(stride))
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    c = np.concatenate([[0.0], np.cumsum(y)])
    acc, cnt = np.zeros(n), np.zeros(n)
    for a in starts:
        share = (c[a + w] - c[a]) / w
        acc[a : a + w] += share if mode == "share" else float(share > 0)
        cnt[a : a + w] += 1
    return acc / cnt


def _baselines(videos: list[tuple[np.ndarray, np.ndarray]], rate: float, seed: int) -> dict:
    ys = np.concatenate([y for _, y in videos]) if videos else np.zeros(0)
    all_f1 = prf(np.ones_like(ys), ys).f1 if ys.size else float("nan")
    rng = np.random.default_rng(seed)
    rnd = prf(rng.random(ys.size) < rate, ys).f1 if ys.size else float("nan")
    return {"flag_all_f1": all_f1, "random_f1": rnd}


def _protocol_b(videos: list[_Scored]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(v.scores if v.predicted_target else np.full(len(v.scores), -np.inf), v.labels) for v in videos]


def _short_clip_scores(ck: Checkpoint, e: ManifestEntry, method: str, st: AnalysisSettings, roi) -> tuple:
    """Scores of a T-frame clip sampled uniformly over the video, and the labels of those frames."""
    from stanviewer.core.views import global_view, local_geometry, local_view, normalise, view_names

    spec = ck.spec
    with open_video(e.video) as r:
        n = r.frame_count
        idx = np.linspace(0, n - 1, spec.frames).round().astype(np.int64)
        rw, rh = r.size
        s = min(1.0, st.work_side / max(rw, rh))
        work = (max(2, round(rw * s)), max(2, round(rh * s)))
        frames = r.frames(idx.tolist(), size=work)
        imgs = []
        for v in view_names(spec.views):
            if v == "global":
                imgs.append(np.stack([global_view(f, spec.size) for f in frames]))
            else:
                boxes, sq = local_geometry(*roi(r), spec.local_mask, (rw, rh), work)
                m = spec.local_margin
                imgs.append(np.stack([local_view(f, boxes[i], sq, spec.size, m) for f, i in zip(frames, idx)]))
        labels = read_frame_labels(e.frame_labels, n)[idx]
    clips = tuple(normalise(torch.from_numpy(im[None])) for im in imgs)
    m = make_method(method, ck.model, **st.method_params())
    attrs = m.attribute(clips, ck.spec.target_index)
    raw = frame_scores(attrs, st.aggregate)[0].float().numpy()
    with torch.no_grad(), frozen(ck.model):
        ev = float(LogOdds(ck.model)(*clips)[0, ck.spec.target_index])
    return normalise_scores(raw), labels, ev > 0


def _roi_fn(ck: Checkpoint):
    def roi(reader):
        from stanviewer.core.progress import run_job
        from stanviewer.core.roi import compute_roi, inference_provider

        t = run_job(compute_roi(reader, provider=inference_provider(ck.spec.roi_provider)), stream=None)
        return np.asarray(t.boxes, np.float32), t.crop_square()

    return roi


def _randomised(ck: Checkpoint, level: str) -> Checkpoint:
    """A copy of the checkpoint with weights re-initialised from the top down to ``level``."""
    model = copy.deepcopy(ck.model)
    order = ["head", "blocks4", "blocks3", "blocks2", "blocks1"]
    upto = order[: order.index(level) + 1]
    torch.manual_seed(1234)
    if hasattr(model, "randomisation_levels"):  # models other than STAN name their own levels
        levels = model.randomisation_levels()
        for name in upto:
            for mod in levels[name]:
                for m in mod.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        return Checkpoint(model=model, meta=ck.meta, path=ck.path, sha256=f"{ck.sha256}-rand2-{level}")
    bb = model.backbone
    for name in upto:
        # "head" is the classifier the model really uses: the MLP head when it has one (the backbone's own
        # linear head is then an unused Identity; randomising it changed nothing, a bug fixed here)
        mod = model.classifier if name == "head" else getattr(bb, name)
        for m in mod.modules() if hasattr(mod, "modules") else [mod]:
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        if name == "head" and getattr(model, "mlp_head", None) is None:
            bb._init_weights(bb.head)
    clone = Checkpoint(model=model, meta=ck.meta, path=ck.path, sha256=f"{ck.sha256}-rand2-{level}")
    return clone


def evaluate(manifest: str | Path, checkpoints: list[Path], cfg: EvalConfig, out_dir: str | Path) -> Job[EvalReport]:
    manifest = Path(manifest)
    entries = read_manifest(manifest)
    if not all(e.frame_labels for e in entries):
        raise StanError("evaluation needs a frame_labels column for every video", manifest)
    train_e = [e for e in entries if (e.split or "train") == "train"]
    test_e = [e for e in entries if e.split == "test"]
    if not test_e:
        raise StanError("the manifest has no test split (split column with train/test)", manifest)
    test_e = _pick(test_e, cfg.test_videos, cfg.seed)
    if cfg.calib_from not in CALIB_FROM:
        raise StanError(f"calibration videos come from one of {', '.join(CALIB_FROM)}, not {cfg.calib_from!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video_rows: list[dict] = []
    frame_rows: list[dict] = []
    sanity_rows: list[dict] = []
    kind_rows: list[dict] = []
    names = model_names(checkpoints)
    for cpath in checkpoints:
        ck = load_checkpoint(cpath)
        name = names[str(cpath)]
        tgt = ck.spec.target
        unknown = sorted({e.label for e in entries} - set(ck.spec.classes))
        if unknown:
            raise StanError(
                f"the manifest's label(s) {', '.join(map(repr, unknown))} are not classes of {name} "
                f"({', '.join(ck.spec.classes)}); evaluate a model trained on these classes",
                manifest,
            )
        pool = _calibration_pool(ck, train_e, cfg.calib_from, manifest)
        pos_train = [e for e in pool if e.label == tgt]
        if not pos_train:
            raise StanError(f"no training video of class {tgt!r} to calibrate the thresholds on", manifest)
        calib_a = _pick(pos_train, cfg.calib_videos, cfg.seed)
        calib_b = _pick(pool, cfg.calib_videos, cfg.seed + 1)
        first = True
        whole_video = family(ck.spec.arch) == "posture"  # scores whole videos with its own evidence
        for method in [POSTURE] if whole_video else cfg.methods:
            st = AnalysisSettings(
                method=method,
                coverage=cfg.coverage,
                device=cfg.device,
                batch=cfg.batch,
                samples=cfg.samples,
                heatmaps=False,
            )
            test = yield from _score_videos(ck, test_e, st, f"{name} {method} test")
            if first:
                y = np.array([e.label == tgt for e in test_e])
                ev = np.array([v.evidence for v in test])
                m = prf(ev > 0, y)
                video_rows.append(
                    {
                        "model": name,
                        "views": ck.spec.views,
                        "videos": len(test),
                        "f1": m.f1,
                        "accuracy": float(np.mean((ev > 0) == y)),
                        "auroc": auroc(ev, y),
                    }
                )
                first = False
            ca = yield from _score_videos(ck, calib_a, st, f"{name} {method} calibration (a)")
            cb = yield from _score_videos(ck, calib_b, st, f"{name} {method} calibration (b)")
            th_a, _ = calibrate_threshold([(v.scores, v.labels) for v in ca])
            th_b, _ = calibrate_threshold(_protocol_b(cb))
            test_a = [(v.scores, v.labels) for v in test if v.entry.label == tgt]
            ra = _pooled(test_a, th_a)
            kinds = recall_by_kind(
                (v.entry.video, flags_from_segments(segments_from_scores(v.scores, th_a), len(v.labels)), v.labels)
                for v in test
                if v.entry.label == tgt
            )
            kind_rows += [{"model": name, "method": method, "threshold": th_a, **r} for r in kinds]
            frame_rows.append(
                {
                    "model": name,
                    "views": ck.spec.views,
                    "method": method,
                    "sequence": "long",
                    "protocol": "a",
                    "threshold": th_a,
                    "calibrated_on": cfg.calib_from,
                    **ra,
                    **_baselines(test_a, ra["flag_rate"], cfg.seed),
                }
            )
            test_b = _protocol_b(test)
            rb = _pooled(test_b, th_b)
            base_b = _baselines([(np.zeros(1), v.labels) for v in test], rb["flag_rate"], cfg.seed)
            pred_pos = [v for v in test if v.predicted_target]
            ys = np.concatenate([v.labels for v in test])
            flags = np.concatenate([np.full(len(v.labels), v.predicted_target) for v in test])
            frame_rows.append(
                {
                    "model": name,
                    "views": ck.spec.views,
                    "method": method,
                    "sequence": "long",
                    "protocol": "b",
                    "threshold": th_b,
                    "calibrated_on": cfg.calib_from,
                    **rb,
                    **base_b,
                    "predicted_positive_all_f1": prf(flags, ys).f1,
                    "videos_predicted_positive": len(pred_pos),
                }
            )
            if cfg.short and not whole_video:  # a T-frame clip has no video median to compare postures with
                roi = _roi_fn(ck)
                cal, tst = [], []
                for k, e in enumerate(calib_a):
                    yield Progress(k, len(calib_a), f"{name} {method} short calibration: {e.name}")
                    s, lab, _ = _short_clip_scores(ck, e, method, st, roi)
                    cal.append((s, lab))
                for k, e in enumerate([e for e in test_e if e.label == tgt]):
                    yield Progress(k, len(test_e), f"{name} {method} short test: {e.name}")
                    s, lab, _ = _short_clip_scores(ck, e, method, st, roi)
                    tst.append((s, lab))
                th_s, _ = calibrate_threshold(cal)
                rs = _pooled(tst, th_s)
                frame_rows.append(
                    {
                        "model": name,
                        "views": ck.spec.views,
                        "method": method,
                        "sequence": "short",
                        "protocol": "a",
                        "threshold": th_s,
                        "calibrated_on": cfg.calib_from,
                        **rs,
                        **_baselines(tst, rs["flag_rate"], cfg.seed),
                    }
                )
            if cfg.sanity:
                trained = np.concatenate([v.scores for v in test if v.entry.label == tgt])
                for level in ("head", "blocks4", "blocks3", "blocks2", "blocks1"):
                    rc = _randomised(ck, level)
                    rt = yield from _score_videos(
                        rc,
                        [v.entry for v in test if v.entry.label == tgt],
                        st,
                        f"{name} {method} randomised to {level}",
                    )
                    pairs = [(v.scores, v.labels) for v in rt]
                    r = _pooled(pairs, th_a)
                    sanity_rows.append(
                        {
                            "model": name,
                            "method": method,
                            "randomised": level,
                            "f1": r["f1"],
                            "trained_f1": ra["f1"],
                            "rank_corr": rank_corr(trained, np.concatenate([v.scores for v in rt])),
                        }
                    )
    _write_csv(out / "video_level.csv", video_rows)
    _write_csv(out / "frame_level.csv", frame_rows)
    for name, rows in (("sanity.csv", sanity_rows), ("by_kind.csv", kind_rows)):
        if rows:
            _write_csv(out / name, rows)
        else:  # an earlier run's table must not sit beside this run's report as if it were this run's
            (out / name).unlink(missing_ok=True)
    md = markdown_report(video_rows, frame_rows, sanity_rows, kind_rows, cfg.calib_from)
    with atomic_write(out / "report.md") as f:
        f.write(md)
    return EvalReport(video_rows, frame_rows, sanity_rows, md, kind_rows, names)


def _write_csv(path: Path, rows: list[dict]) -> None:
    if rows:
        write_dict_rows(path, rows, ".4f")


def _f(x: float) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def markdown_report(
    video_rows: list[dict],
    frame_rows: list[dict],
    sanity_rows: list[dict],
    kind_rows: list[dict] | None = None,
    calib_from: str = "train",
) -> str:
    out = [
        "### Video-level classification (test subjects)",
        "",
        "| model | views | videos | F1 | accuracy | AUROC |",
        "|---|---|---|---|---|---|",
    ]
    for r in video_rows:
        out.append(
            f"| {r['model']} | {r['views']} | {r['videos']} | {_f(r['f1'])} | {_f(r['accuracy'])} | {_f(r['auroc'])} |"
        )
    out += [
        "",
        "### Frame-level F1 (test subjects; thresholds calibrated on "
        + ("training videos)" if calib_from == "train" else "the videos of each model's validation subjects)"),
        "",
        "Protocol a: target-class videos only. Protocol b: all videos; videos predicted as not-target get "
        "no flagged frames. Baselines: every frame flagged; random flags at the method's rate; (b) every "
        "frame of the videos predicted positive.",
        "",
        "| model | views | method | sequence | protocol | threshold | precision | recall | **F1** | flag-all F1 | "
        "random F1 | predicted-positive F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in frame_rows:
        out.append(
            f"| {r['model']} | {r['views']} | {r['method']} | {r['sequence']} | {r['protocol']} | "
            f"{r['threshold']:.2f} | "
            f"{_f(r['precision'])} | {_f(r['recall'])} | **{_f(r['f1'])}** | {_f(r['flag_all_f1'])} | "
            f"{_f(r['random_f1'])} | {_f(r.get('predicted_positive_all_f1', float('nan')))} |"
        )
    if sanity_rows:
        out += [
            "",
            "### Model-randomisation check (protocol a, long sequence)",
            "",
            "| model | method | randomised down to | F1 | trained F1 | rank corr. with trained scores |",
            "|---|---|---|---|---|---|",
        ]
        for r in sanity_rows:
            out.append(
                f"| {r['model']} | {r['method']} | {r['randomised']} | {_f(r['f1'])} | {_f(r['trained_f1'])} | "
                f"{r['rank_corr']:.2f} |"
            )
    if kind_rows:
        out += [
            "",
            "### By compensation kind (synthetic test videos; protocol a, long sequence)",
            "",
            "Share of each kind's labelled frames flagged at the calibrated threshold (recall); for normal "
            "repetitions of the same videos, the share of their frames flagged (false alarms). A repetition "
            "with two kinds counts under its first.",
            "",
            "| model | method | kind | view | repetitions | frames | flagged |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in kind_rows:
            out.append(
                f"| {r['model']} | {r['method']} | {r['kind']} | {r['view']} | {r['repetitions']} | {r['frames']} | "
                f"{_f(r['share_flagged'])} |"
            )
    return "\n".join(out) + "\n"


def store_thresholds(checkpoint: str | Path, frame_rows: list[dict], name: str | None = None) -> str:
    """Write the calibrated thresholds (long sequence, protocol a) of a checkpoint into its metadata.

    Methods not evaluated this time keep their stored thresholds. ``default_method`` becomes the method
    with the best test F1 among those evaluated this time (the same test videos), unless the stored default
    was not evaluated this time: F1s of other runs come from other videos, so it stays. Returns a one-line
    summary.
    """
    from stanviewer.core.models.checkpoint import read_metadata, update_metadata

    meta = read_metadata(checkpoint)
    name = name or str(meta.get("name") or Path(checkpoint).stem)  # the rows' name (:func:`model_names`)
    rows = [r for r in frame_rows if r["model"] == name and r["sequence"] == "long" and r["protocol"] == "a"]
    if not rows:
        return f"{checkpoint}: no rows to store"
    old = meta.get("thresholds") if isinstance(meta.get("thresholds"), dict) else {}
    new = {
        r["method"]: {
            "threshold": float(r["threshold"]),
            "test_f1": float(r["f1"]),
            "protocol": "a",
            "calibrated_on": str(r.get("calibrated_on", "train")),
        }
        for r in rows
    }
    th = {**old, **new}
    current = meta.get("default_method")
    if isinstance(current, str) and current in old and current not in new:
        best, why = current, " (kept: not evaluated this time)"
    else:
        best, why = max(new, key=lambda m: new[m]["test_f1"]), ""
    update_metadata(checkpoint, {"thresholds": th, "default_method": best})
    parts = ", ".join(f"{m} {v['threshold']:.2f}" + ("" if m in new else " (kept)") for m, v in th.items())
    return f"{checkpoint}: thresholds {parts}; default method {best}{why}"
