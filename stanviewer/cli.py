"""The ``stanviewer`` command: one entry point with subcommands, each a thin wrapper over the core.

``stanviewer VIDEO`` (no subcommand) opens the app. Errors meant for the user print one line to stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stanviewer import DISCLAIMER, __version__
from stanviewer.core.explain.segments import DEFAULT_MERGE_SECONDS, DEFAULT_MIN_SECONDS
from stanviewer.core.models.registry import CNN_ARCHS, arch_names

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {}


def command(name: str, help: str) -> Callable:
    def deco(fn: Callable[[argparse.ArgumentParser], None]) -> Callable:
        COMMANDS[name] = (help, fn)
        return fn

    return deco


# --------------------------------------------------------------------------- subcommands
@command("open", "open videos in the desktop app (the default when a path is given)")
def _open_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="*", type=Path, help="video files to open")
    p.add_argument("--analysis", type=Path, help="analysis folder to show with the video")
    p.set_defaults(run=_run_open)


def _run_open(a: argparse.Namespace) -> int:
    from stanviewer.core.errors import StanError
    from stanviewer.qt.app import run_app

    for v in a.videos:  # a one-line error here rather than a dialog after the window opened
        if not Path(v).exists():
            raise StanError("no such file", v)
    return run_app([str(v) for v in a.videos], analysis=a.analysis)


@command("demo", "generate a synthetic rehabilitation video, analyse it with the bundled model and open it")
def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-gui", action="store_true", help="print the predicted class and flagged segments instead")
    p.add_argument("--checkpoint", type=Path, help="use this checkpoint instead of the bundled model")
    p.add_argument("--method", help="explanation method (default: the model's best, else vanilla)")
    p.add_argument("--seed", type=int, default=7, help="which synthetic video (default 7)")
    p.add_argument("--reps", default="3-4", help="exercise repetitions in the video, MIN-MAX (default 3-4)")
    p.set_defaults(run=_run_demo)


def _device(text: str) -> str:
    """``--device``: auto, cpu, mps, cuda or cuda:N (any case); anything else is a usage error."""
    d = text.strip().lower()
    if d in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d+", d):
        return d
    raise argparse.ArgumentTypeError(f"{text!r} is not a device: use auto, cpu, cuda, cuda:N or mps")


def _folder(text: str) -> Path:
    """An output folder: refused at once when a file of that name exists (not after the work)."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder (it is created if needed)")
    return p


def _file(text: str) -> Path:
    """An output file: refused at once when a folder of that name exists."""
    p = Path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    return p


def _classes(text: str) -> list[str]:
    """``--classes a,b[,c]``: two or more distinct names; the last is the class whose evidence is explained."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if len(names) < 2:
        raise argparse.ArgumentTypeError(f"needs two or more class names, comma-separated, not {text!r}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"names {', '.join(twice)} more than once")
    return names


def _parse_reps(text: str) -> tuple[int, int]:
    """``--reps MIN-MAX`` of ``demo`` and ``synth``."""
    from stanviewer.core.errors import StanError

    try:
        lo, hi = (int(x) for x in text.split("-"))
    except ValueError:
        raise StanError(f"--reps must look like MIN-MAX, e.g. 3-4, not {text!r}") from None
    if not 1 <= lo <= hi:
        raise StanError(f"--reps needs 1 <= MIN <= MAX, not {text!r}")
    return lo, hi


def _run_demo(a: argparse.Namespace) -> int:
    from stanviewer.core.demo import demo_video, describe_result
    from stanviewer.core.progress import run_job

    lo, hi = _parse_reps(a.reps)
    if a.no_gui:  # fail before drawing a video when there is no model (the app says so in a dialog)
        from stanviewer.core.models.bundled import default_checkpoint_path

        ck_path = a.checkpoint or default_checkpoint_path()
    else:
        from stanviewer.core.errors import StanError
        from stanviewer.qt.app import display_problem

        problem = display_problem()
        if problem is not None:
            raise StanError(problem)
    video = run_job(demo_video(a.seed, (lo, hi)))
    print(f"demo video: {video}")
    if not a.no_gui:
        from stanviewer.qt.app import run_app

        return run_app([str(video)], checkpoint=a.checkpoint, auto_run=True, method=a.method)
    from stanviewer.core.explain.result import AnalysisSettings
    from stanviewer.core.explain.store import analyze_video
    from stanviewer.core.models.checkpoint import load_checkpoint

    ck = load_checkpoint(ck_path)
    method = a.method or ck.meta.get("default_method") or "vanilla"
    analysis, folder = run_job(analyze_video(video, ck, AnalysisSettings(method=method)))
    for line in describe_result(analysis, ck.threshold(method)):
        print(line)
    print(f"analysis: {folder}")
    print(DISCLAIMER)
    return 0


@command("self-test", "installation check: bundled model, synthetic video, analysis, review file, one clip")
def _selftest_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, help="check this checkpoint instead of the bundled model")
    p.add_argument("--device", type=_device, default="cpu", help="cpu (default), auto, cuda, mps")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (its path is printed)")
    p.set_defaults(run=_run_selftest)


def _run_selftest(a: argparse.Namespace) -> int:
    from stanviewer.core.progress import run_job
    from stanviewer.core.selftest import self_test

    res = run_job(self_test(a.checkpoint, keep=a.keep, device=a.device))
    print(res.summary())
    if a.keep:
        print(f"files: {res.folder}")
    return 0


@command("info", "print a video's metadata and frame-index summary")
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("videos", nargs="+", type=Path)
    p.add_argument("--frames", action="store_true", help="also list every frame's index, time and keyframe flag")
    p.set_defaults(run=_run_info)


def _run_info(a: argparse.Namespace) -> int:
    from stanviewer.core.video import open_video

    for k, path in enumerate(a.videos):
        with open_video(path) as r:
            if k:
                print()
            print(r.info.summary())
            if a.frames:
                keys = set(r.index.keyframe_pts.tolist())
                print("frame,time_s,pts,keyframe")
                for i, (t, pts) in enumerate(zip(r.times(), r.index.pts)):
                    print(f"{i},{t:.6f},{int(pts)},{int(int(pts) in keys)}")
    return 0


def _segment_seconds_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--min-seconds`` / ``--merge-seconds``: how flagged segments are cut besides the threshold (the app's
    defaults)."""
    p.add_argument(
        "--min-seconds",
        type=float,
        default=DEFAULT_MIN_SECONDS,
        help=f"drop {what} shorter than this (default {DEFAULT_MIN_SECONDS}; 0 keeps all)",
    )
    p.add_argument(
        "--merge-seconds",
        type=float,
        default=DEFAULT_MERGE_SECONDS,
        help=f"join {what} separated by at most this (default {DEFAULT_MERGE_SECONDS}; 0 joins none)",
    )


@command("agree", "agreement of two label tiers of a video: Cohen's kappa, precision/recall/F1, disagreements")
def _agree_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=Path, help="a review file (*.stanreview.json) or a video that has one")
    p.add_argument("--a", required=True, help="reference tier (e.g. annotator)")
    p.add_argument("--b", required=True, help="compared tier (e.g. model, therapist)")
    p.add_argument("--label", help="compare this label only (default: any label)")
    p.add_argument("--project", type=Path, help="project folder holding the review files")
    p.add_argument("--analysis", type=Path, help="analysis folder for the model tier (default: the cached one)")
    p.add_argument("--threshold", type=float, help="threshold of the model tier (default: the calibrated one)")
    _segment_seconds_args(p, "the model tier's segments")
    p.add_argument("--force", action="store_true", help="use a review file even if its video fingerprint differs")
    p.set_defaults(run=_run_agree)


def _run_agree(a: argparse.Namespace) -> int:
    from stanviewer.core.review.batch import run_agree

    lines = run_agree(
        a.target,
        a.a,
        a.b,
        label=a.label,
        project=a.project,
        analysis=a.analysis,
        threshold=a.threshold,
        segment_seconds=(a.min_seconds, a.merge_seconds),
        allow_other_video=a.force,
    )
    print("\n".join(lines))
    return 0


def _heat_colormaps() -> tuple[str, ...]:
    from stanviewer.core.explain.overlay import HEAT_COLORMAPS

    return HEAT_COLORMAPS


@command("export", "export labels, clips and PDF reports of videos, folders or manifests")
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="videos, folders, manifest.csv or review files")
    p.add_argument("--what", default="labels", help="comma-separated: labels, clips, report (default: labels)")
    p.add_argument(
        "--format",
        default="intervals",
        choices=["csv", "intervals", "json", "eaf", "boris"],
        help="label format (default: intervals; csv = one row per frame)",
    )
    p.add_argument("--out", type=_folder, required=True, help="output folder (created)")
    p.add_argument("--tier", action="append", help="tier(s) to export or clip (repeatable; default: all / model)")
    p.add_argument("--threshold", type=float, help="threshold of the model tier (default: the calibrated one)")
    _segment_seconds_args(p, "the model tier's segments")
    p.add_argument("--padding", type=int, default=0, help="frames added before and after each clip")
    p.add_argument("--burn-in", action="store_true", help="burn heatmap, timestamp and score strip into clips")
    p.add_argument(
        "--colormap",
        default="inferno",
        choices=list(_heat_colormaps()),
        help="colour map of the burnt-in heatmap (default: inferno, as the app)",
    )
    p.add_argument(
        "--heat-floor",
        type=float,
        default=0.1,
        help="heatmap values under this are not drawn (0 to 0.99; default 0.1, as the app)",
    )
    p.add_argument("--merged", action="store_true", help="one clip file per video instead of one per segment")
    p.add_argument("--project", type=Path, help="project folder holding the review files")
    p.add_argument(
        "--analysis", type=Path, help="analysis folder, or the folder of `analyze --out` (one subfolder per video)"
    )
    p.add_argument("--force", action="store_true", help="use review files even if their video fingerprint differs")
    p.set_defaults(run=_run_export)


def _run_export(a: argparse.Namespace) -> int:
    from stanviewer.core.progress import run_job
    from stanviewer.core.review.batch import export_job

    what = [w.strip() for w in a.what.split(",") if w.strip()]
    writer = None
    if "report" in what:
        try:
            from stanviewer.qt.report import write_report as writer
        except ImportError as e:
            print(f"note: reports skipped: the PDF report needs PySide6 ({e})")
    job = export_job(
        a.inputs,
        a.out,
        what=what,
        fmt="frames" if a.format == "csv" else a.format,
        tiers=a.tier,
        threshold=a.threshold,
        padding=a.padding,
        burn_in=a.burn_in,
        heat_style=(a.colormap, a.heat_floor),
        merged=a.merged,
        project=a.project,
        analysis=a.analysis,
        allow_other_video=a.force,
        report_writer=writer,
        segment_seconds=(a.min_seconds, a.merge_seconds),
    )
    res = run_job(job)
    for path in res.written:
        print(f"wrote {path}")
    for note in res.notes:
        print(f"note: {note}")
    for _video, err in res.failed:
        print(f"stanviewer: error: {err}", file=sys.stderr)
    return 2 if res.failed else 0


@command("synth", "generate a synthetic rehabilitation data set (or one long video)")
def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=_folder, help="output folder (created; a folder with a data set is refused)")
    p.add_argument(
        "--force", action="store_true", help="replace the data set already in OUT (its generated files are deleted)"
    )
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--videos-per-subject", type=int, default=6)
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of subjects in the test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", default="3-5", help="repetitions per video, MIN-MAX (default 3-5)")
    p.add_argument("--codec", choices=["h264", "mp4v", "mjpeg"], default="h264")
    p.add_argument(
        "--long",
        type=float,
        metavar="SECONDS",
        help="make one long video of this many seconds (scale tests) instead of a data set",
    )
    p.add_argument("--workers", type=int, default=1, help="render videos in this many processes (same files)")
    p.add_argument(
        "--pose-data",
        nargs="?",
        const="reps",
        choices=["reps", "free"],
        help="posture variety for label-free pose pretraining (one class only, not for training or evaluating "
        "a classifier): every video compensates, in every repetition (`reps`, the default) or in events on "
        "their own timing and side with normal repetitions (`free`: shoulder hikes and leans not tied to a "
        "raised arm)",
    )
    p.set_defaults(run=_run_synth)


def _run_synth(a: argparse.Namespace) -> int:
    from stanviewer.core.progress import run_job
    from stanviewer.core.synth import make_dataset

    lo, hi = _parse_reps(a.reps)
    if a.long:
        job = make_dataset(
            a.out,
            subjects=1,
            videos_per_subject=1,
            seed=a.seed,
            long_seconds=a.long,
            codec=a.codec,
            overwrite=a.force,
        )
    else:
        job = make_dataset(
            a.out,
            subjects=a.subjects,
            videos_per_subject=a.videos_per_subject,
            test_fraction=a.test_fraction,
            seed=a.seed,
            reps=(lo, hi),
            codec=a.codec,
            workers=a.workers,
            pose_data=a.pose_data,
            overwrite=a.force,
        )
    manifest = run_job(job)
    print(f"wrote {manifest}")
    return 0


@command("roi", "find the person in every frame of a video (ROI boxes) and print or save them")
def _roi_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path)
    p.add_argument(
        "--provider", default="motion", choices=["motion", "learned", "checked", "pose", "skeleton", "csv", "none"]
    )
    p.add_argument(
        "--file",
        type=Path,
        help="input of the skeleton (.skeleton) and csv (boxes/joints) providers; the detector file of 'learned' "
        "and 'checked' (default: the bundled one, which knows only the synthetic figure)",
    )
    p.add_argument("--out", type=_file, help="write frame,x,y,w,h,confidence rows to this CSV")
    p.add_argument("--no-cache", action="store_true", help="recompute even if cached boxes exist")
    p.set_defaults(run=_run_roi)


def _run_roi(a: argparse.Namespace) -> int:
    import numpy as np

    from stanviewer.core.fileio import atomic_write
    from stanviewer.core.progress import run_job
    from stanviewer.core.roi import compute_roi
    from stanviewer.core.video import open_video

    params = {"file": a.file} if a.file is not None else {}
    with open_video(a.video) as r:
        track = run_job(compute_roi(r, a.provider, use_cache=not a.no_cache, **params))
    xywh = track.xywh()
    cx, cy, side = track.crop_square()
    print(f"video       {a.video}")
    used = f", {track.params['used']} boxes used" if track.params.get("used") else ""
    print(f"provider    {track.provider} ({len(track)} frames of {track.size[0]}x{track.size[1]}{used})")
    every = int(track.params.get("every") or 1) if track.provider == "learned" else 1
    if every > 1:  # the detector looked at every n-th frame; the others are filled in (confidence 0)
        seen = np.zeros(len(track), bool)
        seen[::every] = True
        seen[-1] = True
        conf = track.confidence[seen]
        looked = f" of the {int(seen.sum())} frames the detector looked at (one in {every}; the rest filled in)"
    else:
        conf, looked = track.confidence, " of frames"
    print(f"detected    {np.mean(conf > 0):.0%}{looked}, mean confidence {np.mean(conf):.2f}")
    print(f"median box  x={np.median(xywh[:, 0]):.0f} y={np.median(xywh[:, 1]):.0f} "
          f"w={np.median(xywh[:, 2]):.0f} h={np.median(xywh[:, 3]):.0f}")  # fmt: skip
    print(f"crop square cx={cx:.0f} cy={cy:.0f} side={side:.0f}")
    if a.out:
        with atomic_write(a.out) as f:
            f.write("frame,x,y,w,h,confidence\n")
            for i, (b, c) in enumerate(zip(xywh, track.confidence)):
                f.write(f"{i},{b[0]:.1f},{b[1]:.1f},{b[2]:.1f},{b[3]:.1f},{c:.3f}\n")
        print(f"wrote {a.out}")
    return 0


@command("train-detector", "train the person-box detector of the 'learned' ROI provider on videos with known boxes")
def _train_detector_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifests", type=Path, nargs="+", help="manifest.csv files with a boxes column (test rows skipped)")
    p.add_argument("--out", type=_file, required=True, help="detector file to write (.safetensors)")
    p.add_argument("--steps", type=int, default=1500, help="training steps (batches of --batch frames)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames-per-video", type=int, default=12, help="frames read from each video, evenly spaced")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.set_defaults(run=_run_train_detector)


def _run_train_detector(a: argparse.Namespace) -> int:
    from stanviewer.core.progress import run_job
    from stanviewer.core.roi.detector import DetectorTraining, train_detector

    cfg = DetectorTraining(
        steps=a.steps, batch=a.batch, frames_per_video=a.frames_per_video, seed=a.seed, threads=a.threads
    )
    rec = run_job(train_detector(a.manifests, a.out, cfg))["training"]
    print(
        f"wrote {a.out}: {rec['videos']} videos, {rec['frames']} frames, {rec['steps']} steps; final losses "
        f"centre {rec['final_centre_loss']}, box {rec['final_box_loss']} ({rec['seconds']:.0f} s)"
    )
    return 0


@command("train", "train a STAN, per-frame CNN or posture model on a manifest with video-level labels")
def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="manifest.csv (video,subject,label[,frame_labels][,split])")
    p.add_argument("--out", type=_folder, required=True, help="output folder (checkpoints, history.csv)")
    p.add_argument(
        "--arch",
        default="tiny",
        choices=arch_names(),
        help="STAN: tiny, small, base (UniFormer); per-frame CNN (PAPER.md §5): cnn-<resnet18|resnet50|narrow>-"
        "<fcl|patch|rnn>; posture-narrow: the posture-MIL model (docs/posture.md)",
    )
    p.add_argument("--views", default="global+local", choices=["global", "local", "global+local"])
    p.add_argument("--frames", type=int, default=8, help="clip length T in model frames (even)")
    p.add_argument("--size", type=int, default=64, help="input side in pixels (multiple of 32)")
    p.add_argument("--sample-fps", type=float, default=5.0, help="frames per second the model sees")
    p.add_argument("--roi", default="motion", help="ROI provider for the local view (motion, none, truth, ...)")
    _mask_args(p)
    p.add_argument(
        "--classes", type=_classes, default="normal,compensation", help="class names, the last is the target"
    )
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch", type=int, default=6, help="videos per step (half of each class)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--pool", default="lse", choices=["lse", "max", "mean", "topk"], help="MIL pooling")
    p.add_argument(
        "--head-hidden",
        type=int,
        default=128,
        help="hidden units of the MLP classification head (0: the official linear head)",
    )
    p.add_argument("--val-fraction", type=float, default=0.15, help="share of training subjects for validation")
    p.add_argument("--patience", type=int, default=8, help="early stopping patience (epochs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads (default: all)")
    p.add_argument("--max-minutes", type=float, help="stop after this many minutes (a checkpoint is kept)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--init", type=Path, help="start from this stanviewer checkpoint (fine-tuning)")
    p.add_argument(
        "--freeze-stages",
        type=int,
        default=0,
        help="keep the first N backbone stages fixed (0-3; 4 = the whole backbone, only the head learns)",
    )
    p.add_argument(
        "--upper-steps",
        type=int,
        default=1500,
        help="posture model: training steps of its upper-body pose reader (default 1500, about 8 minutes on one "
        "CPU core; 0: no training, only its read-out fitted: it reads with the --init's upper-body reader if the "
        "--init is a posture model that has one, else with the first reader's ResNet)",
    )
    p.add_argument(
        "--upper-lift",
        type=float,
        default=0.0,
        metavar="F",
        help="posture model: while its upper-body reader trains, half the images get one shoulder moved up or "
        "down by up to F of the image side (a smooth warp; the joint targets move with it), so that the reader "
        "follows a shoulder's place rather than the figure's usual build (default 0: off; measured with 0.12: "
        "no gain on new synthetic subjects, docs/posture.md)",
    )
    p.add_argument(
        "--upper-readout",
        choices=["linear", "softargmax"],
        default="linear",
        help="posture model: its upper-body reader's read-out: 'linear' (ridge regression on the ResNet's last "
        "two feature maps; default, the bundled file's) or 'softargmax' (a heatmap per joint on its first three "
        "stages, trained with it; the most accurate reader on new subjects, but no confirmed frame F1 gain over "
        "four runs: docs/posture.md)",
    )
    p.add_argument(
        "--upper-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="posture model: while its upper-body reader trains, each image is drawn with probability "
        "proportional to 1 + W * (d / 0.03)^2, d being how far the generator's shoulders stand from their usual "
        "height above the neck (in body heights; joints, never labels), so that rare postures such as a shoulder "
        "hike fill more of each batch (default 0: every image alike; measured with 4: it reads more of a hike "
        "and more rise where there is none, frame F1 -2.9 on new synthetic subjects, docs/posture.md)",
    )
    p.add_argument(
        "--reader-steps",
        type=int,
        default=0,
        help="posture model: fine-tuning steps of its first pose reader on the training videos' local views "
        "(default 0: the --init ResNet as it is; 1500 take about 6 minutes on one CPU core)",
    )
    p.add_argument(
        "--reader-fit",
        choices=["all", "train"],
        default="all",
        help="posture model: videos its pose readers are fitted on (read-outs, fine-tuning, upper-body reader): "
        "'all' training videos, validation subjects included (default; how the file bundled before was made), or "
        "'train' only (how the bundled file was made): "
        "the validation subjects are then read like new subjects, so early stopping and the "
        "video decision threshold are set on realistic readings (wholly unseen when the --init ResNet was "
        "pose-pretrained on other subjects, e.g. by scripts/gpu_reader_pretrain.sh)",
    )
    p.add_argument(
        "--readout-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="posture model: in the joint read-out fits, an image weighs 1 + W * (d / 0.03)^2, d being how far "
        "the generator's shoulders stand from their usual height above the neck (body heights); rare postures "
        "such as a shoulder hike are then read less shrunk towards the average (default 0: every image alike)",
    )
    p.add_argument(
        "--reader-data",
        type=Path,
        metavar="MANIFEST",
        help="posture model: more videos with a joints column (e.g. `synth --pose-data`) for its pose readers "
        "(read-outs, fine-tuning, upper-body reader) only; their labels are ignored and the heads never see them",
    )
    p.add_argument(
        "--no-feature-norm",
        action="store_true",
        help="with --init: feed the head raw pooled (STAN) or frame (CNN) features (default: standardised)",
    )
    p.add_argument(
        "--video-centre",
        action="store_true",
        help="STAN: the head reads each window's pooled features minus the median of its video's window features, "
        "i.e. against the same person's usual posture in that recording (fine-tuning: the median of each video's "
        "windows of the step, with the gradient through it)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--cv", help="cross-validation instead of the manifest split: loso or kfold:K")
    p.add_argument("--workers", type=int, default=1, help="processes that decode videos not yet cached")
    p.set_defaults(run=_run_train)


def _mask_args(p: argparse.ArgumentParser) -> None:
    """``--no-mask`` / ``--mask-margin`` of ``train`` and ``pretrain`` (see :func:`_mask_margin`)."""
    p.add_argument(
        "--no-mask",
        action="store_true",
        help="local view: keep the whole crop square instead of masking pixels outside the ROI box",
    )
    p.add_argument(
        "--mask-margin",
        type=float,
        default=0.08,
        help="local view: widen the ROI box by this fraction of its size before masking (default 0.08)",
    )
    p.add_argument(
        "--mask-box",
        choices=["frame", "video"],
        default="frame",
        help="local view: mask each frame outside its own ROI box (`frame`, default) or outside one stable "
        "box per video (`video`: a raised arm widening the box does not move the mask's edge beside the trunk)",
    )


def _mask_margin(a: argparse.Namespace) -> float | None:
    """The spec's ``local_margin`` from ``--no-mask`` / ``--mask-margin`` (None: no mask)."""
    from stanviewer.core.errors import StanError

    if a.no_mask:
        return None
    if not 0 <= a.mask_margin <= 1:
        raise StanError(f"--mask-margin must be between 0 and 1, not {a.mask_margin}")
    return a.mask_margin


def _train_parts(a: argparse.Namespace):
    from stanviewer.core.models.stan import ModelSpec
    from stanviewer.core.training.train import TrainConfig

    classes = list(a.classes)
    spec = ModelSpec(
        arch=a.arch,
        classes=classes,
        target=classes[-1],
        views=a.views,
        frames=a.frames,
        size=a.size,
        sample_fps=a.sample_fps,
        roi_provider=a.roi,
        local_margin=_mask_margin(a),
        local_mask=a.mask_box,
        head_hidden=a.head_hidden,
        # standardise features measured on a pretrained backbone (--init); from scratch the statistics of
        # random features would mean nothing and the trainer would hold BatchNorm at its initial statistics
        feature_norm=not a.no_feature_norm and a.init is not None,
        video_centre=a.video_centre,
    )
    cfg = TrainConfig(
        epochs=a.epochs,
        batch_videos=a.batch,
        lr=a.lr,
        weight_decay=a.weight_decay,
        pool=a.pool,
        val_fraction=a.val_fraction,
        patience=a.patience,
        seed=a.seed,
        threads=a.threads,
        max_minutes=a.max_minutes,
        augment=not a.no_augment,
        init=str(a.init) if a.init else None,
        freeze_stages=a.freeze_stages,
        upper_steps=a.upper_steps,
        upper_lift=a.upper_lift,
        upper_readout=a.upper_readout,
        upper_weight=a.upper_weight,
        reader_steps=a.reader_steps,
        reader_fit=a.reader_fit,
        readout_weight=a.readout_weight,
        reader_data=str(a.reader_data) if a.reader_data else None,
        device=a.device,
        workers=a.workers,
    )
    return spec, cfg


#: ``train`` options for the window models (STAN, per-frame CNN) that the posture model's recipe does not use
POSTURE_IGNORES = (
    "batch", "pool", "no_augment", "head_hidden", "weight_decay", "patience", "max_minutes", "device", "frames",
    "freeze_stages", "video_centre",
)  # fmt: skip


def _given(a: argparse.Namespace, command: str, dests: tuple[str, ...]) -> list[str]:
    """The options among ``dests`` that this command line set to something other than their default."""
    sub = next(x for x in build_parser()._actions if isinstance(x, argparse._SubParsersAction)).choices[command]
    flags = {act.dest: act.option_strings[0] for act in sub._actions if act.option_strings}
    return [flags[d] for d in dests if d in flags and getattr(a, d, None) != sub.get_default(d)]


def _run_train(a: argparse.Namespace) -> int:
    from stanviewer.core.progress import run_job
    from stanviewer.core.training.train import train

    spec, cfg = _train_parts(a)
    if a.arch.startswith("posture"):
        ignored = _given(a, "train", POSTURE_IGNORES)
        if ignored:  # said, not silently dropped: the posture model trains its readers and heads its own way
            print(f"note: {', '.join(ignored)} do(es) not apply to the posture model (ignored)", file=sys.stderr)
    if a.cv:
        from stanviewer.core.training.cv import cross_validate

        rows = run_job(cross_validate(a.manifest, spec, a.out, cfg, a.cv))
        for r in rows:
            note = f"  ({r['note']})" if r.get("note") else ""
            print(
                f"fold {r['fold']}: test subjects {r['test_subjects']}  video F1 {r['f1']:.3f}  AUROC {r['auroc']:.3f}"
                + note
            )
        return 0
    res = run_job(train(a.manifest, spec, a.out, cfg, resume=a.resume))
    print(f"best checkpoint: {res.best}")
    if res.val:
        print(f"validation: video F1 {res.val['f1']:.3f}  AUROC {res.val['auroc']:.3f}  ({res.val['videos']} videos)")
    else:
        print(
            "validation: none (--val-fraction gave no validation subject): best.safetensors is the epoch with the "
            "lowest training loss, and --patience watched the training loss"
        )
    if res.test:
        print(
            f"test:       video F1 {res.test['f1']:.3f}  AUROC {res.test['auroc']:.3f}  ({res.test['videos']} videos)"
        )
    return 0


@command("pretrain", "pose-pretrain a backbone on a synthetic data set (joints column; no labels used)")
def _pretrain_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="synthetic manifest with a joints column")
    p.add_argument("--out", type=_folder, required=True, help="output folder (pretrained.safetensors)")
    p.add_argument(
        "--arch",
        default="tiny",
        choices=[a for a in arch_names() if not a.startswith("posture")],  # its readers are cnn-narrow-patch's
        help="STAN or per-frame CNN (as in train; a posture model's reader is pretrained as cnn-narrow-patch)",
    )
    p.add_argument("--views", default="global+local", choices=["global", "local", "global+local"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--sample-fps", type=float, default=5.0)
    p.add_argument("--roi", default="motion")
    _mask_args(p)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=24, help="clips per step")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument(
        "--spatial-head",
        action="store_true",
        help="predict joints from the flattened feature map instead of the pooled features",
    )
    p.add_argument("--init", type=Path, help="continue from this checkpoint")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--workers", type=int, default=1, help="processes that decode videos not yet cached")
    p.set_defaults(run=_run_pretrain)


def _run_pretrain(a: argparse.Namespace) -> int:
    from stanviewer.core.models.stan import ModelSpec
    from stanviewer.core.progress import run_job
    from stanviewer.core.training.pretrain import pretrain_pose

    spec = ModelSpec(
        arch=a.arch,
        views=a.views,
        frames=a.frames,
        size=a.size,
        sample_fps=a.sample_fps,
        roi_provider=a.roi,
        local_margin=_mask_margin(a),
        local_mask=a.mask_box,
    )
    path = run_job(
        pretrain_pose(
            a.manifest,
            spec,
            a.out,
            steps=a.steps,
            batch=a.batch,
            lr=a.lr,
            seed=a.seed,
            threads=a.threads,
            max_minutes=a.max_minutes,
            pooled=not a.spatial_head,
            init=a.init,
            device=a.device,
            workers=a.workers,
        )
    )
    print(f"wrote {path} (use it with: stanviewer train ... --init {path})")
    return 0


@command("model", "import an official UniFormer checkpoint or 2-D ResNet weights, or show a checkpoint's card")
def _model_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="convert an official UniFormer video .pth into a stanviewer checkpoint")
    imp.add_argument("source", type=Path, help="e.g. uniformer_small_k400_16x8.pth (read with weights_only=True)")
    imp.add_argument(
        "--classes", type=_classes, required=True, help="class names, comma-separated; the last is the target"
    )
    imp.add_argument("--out", type=_file, required=True, help="output .safetensors")
    imp.add_argument("--views", default="global+local", choices=["global", "local", "global+local"])
    imp.add_argument("--frames", type=int, default=16)
    imp.add_argument("--size", type=int, default=224)
    imp.add_argument("--sample-fps", type=float, default=7.5)
    imp.add_argument(
        "--arch",
        choices=CNN_ARCHS,
        help="import 2-D ResNet weights (torchvision/timm names, e.g. ImageNet resnet50) into this per-frame CNN "
        "(its head starts random; train it with --init); default: the source is a UniFormer video checkpoint",
    )
    imp.add_argument("--roi", default="motion", help="ROI provider for the local view (per-frame CNN imports)")
    info = sub.add_parser("info", help="print a checkpoint's metadata")
    info.add_argument("checkpoint", type=Path, nargs="?", help="default: the bundled model")
    info.add_argument("--json", action="store_true", help="print the raw metadata JSON")
    p.set_defaults(run=_run_model)


def _run_model(a: argparse.Namespace) -> int:
    import json

    from stanviewer.core.models import checkpoint as ck

    if a.model_command == "import":
        classes = list(a.classes)  # two or more distinct names (checked by the option's type)
        if a.arch:
            out, notes = ck.import_resnet(
                a.source,
                a.out,
                a.arch,
                classes,
                views=a.views,
                frames=a.frames,
                size=a.size,
                sample_fps=a.sample_fps,
                roi_provider=a.roi,
            )
        else:
            out, notes = ck.import_official(
                a.source, a.out, classes, views=a.views, frames=a.frames, size=a.size, sample_fps=a.sample_fps
            )
        print(f"wrote {out}")
        for n in notes:
            print(f"  {n}")
        return 0
    from stanviewer.core.models.bundled import default_checkpoint_path

    path = a.checkpoint or default_checkpoint_path()
    if _is_detector(path):  # the learned ROI provider's person detector, not a classifier
        from stanviewer.core.roi.detector import describe_detector, load_detector

        det_meta = load_detector(path)[1]
        print(json.dumps(det_meta, indent=1, sort_keys=True) if a.json else describe_detector(path, det_meta))
        return 0
    meta = ck.read_metadata(path)
    if a.json:
        print(json.dumps(meta, indent=1, sort_keys=True))
        return 0
    from stanviewer.core.models.bundled import describe

    print(describe(path, meta))
    return 0


def _is_detector(path: Path) -> bool:
    """Whether ``path`` is a person-detector file (``train-detector``); unreadable files are not."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return "stanviewer_detector" in (f.metadata() or {})
    except Exception:  # anything unreadable: the checkpoint reader names the problem
        return False


@command("analyze", "score every frame of videos with a model and an explanation method")
def _analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, help="videos, folders of videos, or manifest.csv files")
    p.add_argument("--checkpoint", type=Path, help="stanviewer checkpoint (default: the bundled model)")
    p.add_argument(
        "--method",
        default=None,
        help="vanilla, smoothgrad, gradcam, ig, occlusion, occlusion-window or window; posture for a posture "
        "model (default: the model's best)",
    )
    p.add_argument("--views", help="check that the model uses these views (global, local, global+local)")
    p.add_argument("--target", help="class to explain (default: the model's target class)")
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--stride", type=int, help="window stride in model frames (default T/2)")
    p.add_argument(
        "--coverage",
        choices=["full", "sampled"],
        default="full",
        help="full: the model sees every frame; sampled: one phase, interpolated (faster)",
    )
    p.add_argument("--batch", type=int, default=16, help="clips per batch")
    p.add_argument("--samples", type=int, default=8, help="SmoothGrad noisy samples")
    p.add_argument("--sigma", type=float, default=0.15, help="SmoothGrad noise (fraction of input range)")
    p.add_argument("--threshold", type=float, help="threshold for the printed segments (default: calibrated)")
    _segment_seconds_args(p, "printed segments")
    p.add_argument("--min-frames", type=int, help="as --min-seconds, in frames (overrides it)")
    p.add_argument("--merge-gap", type=int, help="as --merge-seconds, in frames (overrides it)")
    p.add_argument("--out", type=_folder, help="write results to OUT/<video name>/ (default: the cache only)")
    p.add_argument("--no-heatmaps", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="recompute even if a cached result exists")
    p.set_defaults(run=_run_analyze)


def _run_analyze(a: argparse.Namespace) -> int:
    from stanviewer.core.explain.batch import run_analyze

    return run_analyze(a)


@command("evaluate", "the paper's experiment layout: video-level and frame-level F1 per method and view")
def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", type=Path, help="manifest with frame_labels and a train/test split")
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        help="checkpoint(s) to compare, e.g. one per views (default: the bundled model)",
    )
    p.add_argument(
        "--methods",
        default="window,vanilla,smoothgrad,gradcam",
        help="comma-separated: vanilla, smoothgrad, gradcam, ig, occlusion, occlusion-window, window (default: "
        "window,vanilla,smoothgrad,gradcam; a posture model is evaluated with its own method, posture)",
    )
    p.add_argument("--out", type=_folder, required=True, help="folder for video_level.csv, frame_level.csv, report.md")
    p.add_argument("--coverage", choices=["full", "sampled"], default="sampled")
    p.add_argument("--calib-videos", type=int, default=40, help="training videos used to calibrate thresholds")
    p.add_argument(
        "--calib-from",
        choices=["train", "val"],
        default="train",
        help="where the calibration videos come from: 'train', the manifest's training split (default), or "
        "'val', only the videos of the subjects each checkpoint held out for validation (named in its training "
        "record; for a posture model trained with --reader-fit train they are read like new subjects' videos)",
    )
    p.add_argument("--test-videos", type=int, help="at most this many test videos (default: all)")
    p.add_argument("--no-short", action="store_true", help="skip the short-sequence (one clip) evaluation")
    p.add_argument("--sanity", action="store_true", help="add the model-randomisation check")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="store the calibrated thresholds (protocol a) in the checkpoint's metadata",
    )
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(a: argparse.Namespace) -> int:
    from stanviewer.core.errors import StanError
    from stanviewer.core.evaluate import EvalConfig, evaluate, store_thresholds
    from stanviewer.core.models.bundled import default_checkpoint_path
    from stanviewer.core.progress import run_job

    if a.calibrate and not a.checkpoint:  # it writes into the file: never into the installed model by default
        raise StanError(
            "--calibrate writes the thresholds into the checkpoint file: name it with --checkpoint (a bundled "
            "model too; it is never changed by default)"
        )
    cks = a.checkpoint or [default_checkpoint_path()]
    cfg = EvalConfig(
        methods=[m.strip() for m in a.methods.split(",") if m.strip()],
        coverage=a.coverage,
        calib_videos=a.calib_videos,
        calib_from=a.calib_from,
        test_videos=a.test_videos,
        short=not a.no_short,
        sanity=a.sanity,
        seed=a.seed,
        device=a.device,
    )
    rep = run_job(evaluate(a.manifest, cks, cfg, a.out))
    print(rep.markdown)
    if a.calibrate:
        for c in cks:
            print(store_thresholds(c, rep.frame_rows, rep.names.get(str(c))))
    return 0


# --------------------------------------------------------------------------- main
_AT_LEAST_1 = (
    "batch", "calib_videos", "epochs", "frames_per_video", "patience", "samples", "steps", "subjects",
    "videos_per_subject", "workers", "stride", "test_videos", "min_frames",
)  # fmt: skip
_NOT_NEGATIVE = (
    "head_hidden", "reader_steps", "upper_steps", "merge_gap", "padding", "threads", "sigma", "weight_decay",
    "mask_margin", "readout_weight", "upper_weight", "upper_lift", "merge_seconds", "min_seconds",
)  # fmt: skip
#: the values each numeric option takes (by its dest, in every command): (test, what the message says)
RANGES: dict[str, tuple] = {
    **{d: (lambda v: v >= 1, "at least 1") for d in _AT_LEAST_1},
    **{d: (lambda v: v >= 0, "0 or more") for d in _NOT_NEGATIVE},
    **{d: (lambda v: v > 0, "more than 0") for d in ("lr", "sample_fps", "long", "max_minutes")},
    "frames": (lambda v: v >= 2 and v % 2 == 0, "an even number, at least 2"),
    "size": (lambda v: v >= 32 and v % 32 == 0, "a multiple of 32"),
    "freeze_stages": (lambda v: 0 <= v <= 4, "0 to 4"),
    "val_fraction": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "test_fraction": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
    "threshold": (lambda v: 0 <= v <= 1, "from 0 to 1"),
    "heat_floor": (lambda v: 0 <= v < 1, "from 0 up to (not including) 1"),
}


def _checked(convert: Any, dest: str) -> Any:
    ok, what = RANGES[dest]

    def check(text: str) -> Any:
        v = convert(text)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, not {text}")
        return v

    check.__name__ = getattr(convert, "__name__", "value")  # argparse names the type in its messages
    return check


def _check_ranges(parser: argparse.ArgumentParser) -> None:
    """Give every numeric option of every command its range (:data:`RANGES`): a usage error, not a traceback
    from deep inside a run."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _check_ranges(sub)
        elif action.dest in RANGES and action.type in (int, float):
            action.type = _checked(action.type, action.dest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stanviewer",
        description="Review rehabilitation videos with per-frame explanations of a video classifier. " + DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"stanviewer {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        fn(p)
    _check_ranges(parser)
    return parser


def _terminated(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _opens_the_app(args: argparse.Namespace) -> bool:
    return args.command == "open" or (args.command == "demo" and not getattr(args, "no_gui", False))


def _stop_cleanly_on_termination() -> None:
    """``kill``, ``timeout``, a closed terminal: stop as Ctrl+C does, so that jobs remove their partial files."""
    import signal

    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            with contextlib.suppress(ValueError, OSError):  # not the main thread, or not allowed here
                signal.signal(sig, _terminated)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = ["self-test" if x == "--self-test" else x for x in argv]  # the bundle's documented spelling
    debug = "--debug" in argv
    first = next((x for x in argv if not x.startswith("-")), None)
    if first is not None and first not in COMMANDS:
        if not Path(first).exists() and not Path(first).suffix:  # a mistyped command, not a video
            import difflib

            near = difflib.get_close_matches(first, list(COMMANDS), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else f"; commands: {', '.join(sorted(COMMANDS))}"
            print(
                f"stanviewer: error: unknown command '{first}'{hint} (to open a video, give its path)", file=sys.stderr
            )
            return 2
        argv.insert(argv.index(first), "open")  # ``stanviewer VIDEO`` opens the app
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if any(a in argv for a in ("-h", "--help")):
            return 0
        args = parser.parse_args(["open", *argv])
    from stanviewer.core.errors import StanError

    if not _opens_the_app(args):  # inside Qt's event loop the interrupt would be swallowed by a slot
        _stop_cleanly_on_termination()
    try:
        return int(args.run(args) or 0)
    except StanError as e:
        if debug:
            raise
        print(f"stanviewer: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stanviewer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # ``stanviewer … | head``: the reader has what it wanted
        import os

        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except (OSError, MemoryError) as e:
        if debug:
            raise
        print(f"stanviewer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
