"""Turn a training run's best checkpoint into a shippable model file (used by the make_*_model.sh scripts).

    python scripts/finalize_model.py SRC OUT --name NAME [--description TEXT]

Weights to float16 (``--float32`` keeps them); metadata: the name, ``synthetic_only``, the ROI provider for new
videos (``inference_provider``: boxes read from files during training, e.g. the generator's true boxes, become
``motion``; ``motion``, ``learned`` and ``checked`` stay; the provider training used is recorded under
``training.roi_provider``) and the data description.
"""

from __future__ import annotations

import argparse

from stanviewer.core.models.checkpoint import load_checkpoint, save_checkpoint, update_metadata
from stanviewer.core.roi import inference_provider

DATA = "synthetic stick-figure rehabilitation videos (stanviewer synth --subjects 48 --videos-per-subject 8 --seed 1)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--name", required=True)
    ap.add_argument("--description", default="video labels only", help="appended to the data description")
    ap.add_argument("--float32", action="store_true", help="keep float32 weights")
    a = ap.parse_args()
    ck = load_checkpoint(a.src)
    save_checkpoint(a.out, ck.model, ck.meta, half=not a.float32)
    update_metadata(
        a.out,
        {
            "name": a.name,
            "synthetic_only": True,
            "spec": {"roi_provider": inference_provider(ck.spec.roi_provider)},
            "training": {"roi_provider": ck.spec.roi_provider, "data_description": f"{DATA}; {a.description}"},
        },
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
