"""The ``stanviewer`` command: one entry point with subcommands, each a thin wrapper over the core.

``stanviewer VIDEO`` (no subcommand) opens the app. Errors meant for the user print one line to stderr
and exit with status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from stanviewer import DISCLAIMER, __version__

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
    from stanviewer.qt.app import run_app

    return run_app([str(v) for v in a.videos], analysis=a.analysis)


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


@command("synth", "generate a synthetic rehabilitation data set (or one long video)")
def _synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", type=Path, help="output folder (created)")
    p.add_argument("--subjects", type=int, default=12)
    p.add_argument("--videos-per-subject", type=int, default=6)
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of subjects in the test split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reps", default="3-5", help="repetitions per video, MIN-MAX (default 3-5)")
    p.add_argument("--codec", choices=["h264", "mp4v", "mjpeg"], default="h264")
    p.add_argument("--long", type=float, metavar="SECONDS",
                   help="make one long video of this many seconds (scale tests) instead of a data set")  # fmt: skip
    p.set_defaults(run=_run_synth)


def _run_synth(a: argparse.Namespace) -> int:
    from stanviewer.core.errors import StanError
    from stanviewer.core.progress import run_job
    from stanviewer.core.synth import make_dataset

    try:
        lo, hi = (int(x) for x in a.reps.split("-"))
    except ValueError:
        raise StanError(f"--reps must look like 3-5, not {a.reps!r}") from None
    if a.long:
        job = make_dataset(a.out, subjects=1, videos_per_subject=1, seed=a.seed, long_seconds=a.long, codec=a.codec)
    else:
        job = make_dataset(
            a.out,
            subjects=a.subjects,
            videos_per_subject=a.videos_per_subject,
            test_fraction=a.test_fraction,
            seed=a.seed,
            reps=(lo, hi),
            codec=a.codec,
        )
    manifest = run_job(job)
    print(f"wrote {manifest}")
    return 0


# --------------------------------------------------------------------------- main
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
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    first = next((x for x in argv if not x.startswith("-")), None)
    if first is not None and first not in COMMANDS:
        argv.insert(argv.index(first), "open")  # ``stanviewer VIDEO`` opens the app
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if any(a in argv for a in ("-h", "--help")):
            return 0
        args = parser.parse_args(["open", *argv])
    from stanviewer.core.errors import StanError

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
    except (OSError, MemoryError) as e:
        if debug:
            raise
        print(f"stanviewer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
