"""Put every video of a synthetic manifest in the train split (pose pretraining draws: every subject trains;
``stanviewer synth`` keeps at least one test subject). Used by the gpu_*_pretrain.sh scripts.

    python scripts/all_train_split.py MANIFEST.csv
"""

from __future__ import annotations

import csv
import sys


def main() -> None:
    path = sys.argv[1]
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["split"] = "train"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
