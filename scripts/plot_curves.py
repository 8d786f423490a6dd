"""Plot learning curves of a training run (and optionally its pose pretraining) to a PNG.

    python scripts/plot_curves.py RUN_DIR [RUN_DIR2 ...] [--pretrain PRETRAIN_DIR ...]
                                  [--compare LABEL=HISTORY.csv ...] --out docs/img/x.png

RUN_DIR/history.csv is written by ``stanviewer train`` (several runs, e.g. stage A then stage B, are
chained on one epoch axis); PRETRAIN_DIR/pretrain_history.csv by ``stanviewer pretrain``; ``--compare``
draws other runs' histories in grey (from scratch, without feature standardisation, ...).
Needs matplotlib (installed with captum).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def _col(rows: list[dict], key: str) -> list[float]:
    return [float(r[key]) if r.get(key) not in (None, "", "nan") else float("nan") for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", type=Path, nargs="+", help="run folders (history.csv), in order: their epochs are chained")
    ap.add_argument("--pretrain", type=Path, action="append", default=[], help="pretraining run folder(s)")
    ap.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=HISTORY.csv",
        help="another run's history to draw in grey (e.g. from scratch, or without feature standardisation)",
    )
    ap.add_argument("--scratch", type=Path, help="same as --compare 'from scratch=PATH'")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    compare = [tuple(c.split("=", 1)) for c in a.compare]
    if a.scratch:
        compare.append(("from scratch", str(a.scratch)))
    hist: list[dict] = []
    bounds: list[tuple[float, str]] = []
    for run in a.runs:
        rows = _rows(run / "history.csv")
        offset = len(hist)
        for r in rows:
            r["epoch"] = str(float(r["epoch"]) + offset)
        if offset:
            bounds.append((offset + 0.5, run.name))
        hist += rows
    panels = 3 if a.pretrain else 2
    fig, ax = plt.subplots(1, panels, figsize=(5 * panels, 3.6), dpi=110)
    if a.pretrain:
        off = 0.0
        for k, pdir in enumerate(a.pretrain):
            pre = _rows(pdir / "pretrain_history.csv")
            steps = [v + off for v in _col(pre, "step")]
            ax[0].plot(steps, _col(pre, "joint_error_px"), color="tab:purple", alpha=1.0 if k == 0 else 0.6)
            if k:
                ax[0].axvline(off, color="k", lw=0.8, ls="--")
            off = steps[-1] if steps else off
        ax[0].set_title("Pose pretraining (no labels)")
        ax[0].set_xlabel("step")
        ax[0].set_ylabel("mean joint error (view px)")
        ax[0].set_yscale("log")
        ax[0].grid(alpha=0.3)
    a1, a2 = ax[-2], ax[-1]
    ep = _col(hist, "epoch")
    a1.plot(ep, _col(hist, "train_loss"), "o-", ms=3, label="train loss (MIL, video labels)")
    a1.plot(ep, _col(hist, "val_loss"), "s-", ms=3, label="validation loss (held-out subjects)")
    a2.plot(ep, _col(hist, "val_f1"), "o-", ms=3, label="validation video F1")
    a2.plot(ep, _col(hist, "val_auroc"), "s-", ms=3, label="validation AUROC")
    for k, (label, path) in enumerate(compare):
        sc = _rows(Path(path))
        style = ["x--", "+:", "d-."][k % 3]
        a1.plot(_col(sc, "epoch"), _col(sc, "train_loss"), style, ms=3, color="grey", label=f"train loss, {label}")
        a2.plot(_col(sc, "epoch"), _col(sc, "val_auroc"), style, ms=3, color="grey", label=f"AUROC, {label}")
    for x, name in bounds:
        for axis in (a1, a2):
            axis.axvline(x, color="k", lw=0.8, ls="--")
        a2.text(x + 0.3, 0.05, name, fontsize=7)
    a1.axhline(0.693, color="k", lw=0.8, ls=":", label="chance (ln 2)")
    a1.set_xlabel("epoch")
    a1.set_title("Weakly supervised training")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.axhline(0.5, color="k", lw=0.8, ls=":")
    a2.set_ylim(0, 1.02)
    a2.set_xlabel("epoch")
    a2.set_title("Video-level validation")
    a2.legend(fontsize=7, loc="lower right")
    a2.grid(alpha=0.3)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
