"""Subject-wise cross-validation: ``loso`` (leave one subject out) or ``kfold:K`` (K folds of subjects).

Each fold trains on the other subjects (with its own validation subjects for early stopping) and reports
the video-level F1 and AUROC of the held-out subjects (the paper's Table 1 analogue). Results go to
``OUT/cv.csv`` with one row per fold and a final ``mean`` row.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from stanviewer.core.errors import StanError
from stanviewer.core.fileio import atomic_write
from stanviewer.core.manifest import read_manifest
from stanviewer.core.models.stan import ModelSpec
from stanviewer.core.progress import Job, Progress, nested
from stanviewer.core.training.train import TrainConfig, train

__all__ = ["cross_validate", "folds"]


def folds(subjects: list[str], scheme: str, seed: int = 0) -> list[list[str]]:
    """Held-out subject groups for ``loso`` or ``kfold:K``."""
    subjects = sorted(set(subjects))
    if scheme == "loso":
        return [[s] for s in subjects]
    if scheme.startswith("kfold:"):
        try:
            k = int(scheme.split(":", 1)[1])
        except ValueError:
            raise StanError(f"--cv kfold:K needs an integer K, not {scheme!r}") from None
        if not 2 <= k <= len(subjects):
            raise StanError(f"--cv {scheme}: K must be between 2 and the number of subjects ({len(subjects)})")
        order = np.random.default_rng(seed).permutation(subjects).tolist()
        return [order[i::k] for i in range(k)]
    raise StanError(f"unknown cross-validation {scheme!r}; use loso or kfold:K")


def cross_validate(
    manifest: str | Path, spec: ModelSpec, out_dir: str | Path, cfg: TrainConfig, scheme: str
) -> Job[list[dict]]:
    out = Path(out_dir)
    earlier = sorted(q.name for q in out.glob("fold*") if q.is_dir())
    earlier += ["cv.csv"] if (out / "cv.csv").exists() else []
    if earlier:  # its folds would mix with this run's (a LOSO run has more folds than kfold:2)
        raise StanError(f"this folder holds an earlier cross-validation ({earlier[0]}): use a new --out", out)
    entries = read_manifest(manifest)
    subjects = [e.subject for e in entries]
    groups = folds(subjects, scheme, cfg.seed)
    rows: list[dict] = []
    for k, held in enumerate(groups):
        yield Progress(k, len(groups), f"fold {k + 1}/{len(groups)} (test: {', '.join(held)})")
        train_subj = set(subjects) - set(held)
        job = train(manifest, spec, out / f"fold{k + 1:02d}", cfg, train_subjects=train_subj, test_subjects=set(held))
        res = yield from nested(job, k, len(groups), f"fold {k + 1}/{len(groups)}")
        # a fold whose test videos are all of one class has no F1 or AUROC to speak of (F1 would read 1.0
        # when nothing is flagged): it is left out of the means, and the row says why
        one_class = len({e.label for e in entries if e.subject in set(held)}) < 2
        rows.append(
            {
                "fold": k + 1,
                "test_subjects": " ".join(held),
                "videos": res.test.get("videos", 0),
                "f1": float("nan") if one_class else res.test.get("f1", float("nan")),
                "auroc": float("nan") if one_class else res.test.get("auroc", float("nan")),
                "accuracy": res.test.get("accuracy", float("nan")),
                "note": "test videos of one class only: no F1 or AUROC" if one_class else "",
            }
        )
    mean = {"fold": "mean", "test_subjects": "", "videos": sum(r["videos"] for r in rows)}
    for key in ("f1", "auroc", "accuracy"):
        vals = [r[key] for r in rows if r[key] == r[key]]
        mean[key] = float(np.mean(vals)) if vals else float("nan")
    skipped = sum(1 for r in rows if r["note"])
    mean["note"] = f"F1 and AUROC over {len(rows) - skipped} of {len(rows)} folds" if skipped else ""
    rows.append(mean)
    with atomic_write(out / "cv.csv") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rows
