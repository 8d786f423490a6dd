"""Plot learning curves of a training run (and optionally its pose pretraining) to a PNG.

    python scripts/plot_curves.py RUN_DIR [--pretrain PRETRAIN_DIR] [--scratch HISTORY.csv] --out docs/img/x.png

RUN_DIR/history.csv is written by ``stanviewer train``; PRETRAIN_DIR/pretrain_history.csv by
``stanviewer pretrain``; ``--scratch`` adds the history of a comparable run from random weights.
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
    ap.add_argument("run", type=Path)
    ap.add_argument("--pretrain", type=Path)
    ap.add_argument("--scratch", type=Path, help="history.csv of a run from random weights, for comparison")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    hist = _rows(a.run / "history.csv")
    panels = 3 if a.pretrain else 2
    fig, ax = plt.subplots(1, panels, figsize=(5 * panels, 3.6), dpi=110)
    if a.pretrain:
        pre = _rows(a.pretrain / "pretrain_history.csv")
        ax[0].plot(_col(pre, "step"), _col(pre, "joint_error_px"), color="tab:purple")
        ax[0].set_title("Pose pretraining (no labels)")
        ax[0].set_xlabel("step")
        ax[0].set_ylabel("mean joint error (view px)")
        ax[0].grid(alpha=0.3)
    a1, a2 = ax[-2], ax[-1]
    ep = _col(hist, "epoch")
    a1.plot(ep, _col(hist, "train_loss"), "o-", label="train loss (MIL, video labels)")
    a1.plot(ep, _col(hist, "val_loss"), "s-", label="validation loss (held-out subjects)")
    if a.scratch:
        sc = _rows(a.scratch)
        a1.plot(_col(sc, "epoch"), _col(sc, "train_loss"), "x--", color="grey", label="train loss, from scratch")
    a1.axhline(0.693, color="k", lw=0.8, ls=":", label="chance (ln 2)")
    a1.set_xlabel("epoch")
    a1.set_title("Weakly supervised training")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    a2.plot(ep, _col(hist, "val_f1"), "o-", label="validation video F1")
    a2.plot(ep, _col(hist, "val_auroc"), "s-", label="validation AUROC")
    if a.scratch:
        a2.plot(_col(sc, "epoch"), _col(sc, "val_auroc"), "x--", color="grey", label="AUROC, from scratch")
    a2.axhline(0.5, color="k", lw=0.8, ls=":")
    a2.set_ylim(0, 1.02)
    a2.set_xlabel("epoch")
    a2.set_title("Video-level validation")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
