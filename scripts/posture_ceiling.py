"""Is compensation recoverable from 2-D posture, from video labels alone? A ceiling from the true joints.

The synthetic data set records every frame's 2-D joints (the ``joints`` column of its manifest). This
script scores frames from those joints — not from pixels, so no model of the tool is involved — and
measures frame-level F1 exactly as ``stanviewer evaluate`` does (protocol a, long sequence: the same
test and calibration videos, per-video normalisation of the scores to [0, 1], the threshold that
maximises pooled F1 on the calibration videos). Rows:

- **hand-made lean**: the trunk's angle from vertical (pelvis → neck), as its deviation from the video's
  median; no training;
- **supervised MLP**: a small per-frame network on posture features trained *with frame labels* (an upper
  bound, not something the tool may use);
- **MIL MLP, video labels only**: the same network trained with the video label alone (multiple-instance
  objective: the video's logit is the log-mean-exp of its frames' logits), optionally with Gaussian noise
  of σ video pixels added to every joint coordinate — how precise a pose estimate must be for the
  weakly supervised route to work. Video-level F1 (logit > 0) and AUROC of the test videos beside it.

Posture features of a frame: its joints relative to the pelvis, divided by the video's median body height,
minus the video's median posture (so that subject and camera drop out), at the frame and ±4, ±8 frames.

``--pose-checkpoint CK`` (a pose-pretrained per-frame CNN, ``stanviewer pretrain --arch cnn-...``) adds the
same MIL rows on joints **predicted from pixels**: the frozen ResNet's last two feature maps of each local
view image (64 px, every half model step), a ridge-regression joint head fitted on the training videos'
images, mapped back to video pixels; printed beside the true joints at the same images. The images come
from the training cache of ``CK``'s spec (its ROI provider unless ``--roi`` names another;
``STANVIEWER_CACHE_DIR``).

    python scripts/posture_ceiling.py DATA/manifest.csv [--noise 0,2,3,5] [--epochs 40] [--pose-checkpoint CK]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stanviewer.core.errors import StanError
from stanviewer.core.evaluate import _pick, _pooled
from stanviewer.core.explain.scoring import normalise_scores
from stanviewer.core.explain.segments import calibrate_threshold
from stanviewer.core.manifest import ManifestEntry, read_frame_labels, read_manifest
from stanviewer.core.metrics import auroc, prf

JOINTS = ("head", "neck", "shoulder_l", "shoulder_r", "elbow_l", "elbow_r", "wrist_l", "wrist_r", "pelvis")
JOINTS += ("hip_l", "hip_r", "knee_l", "knee_r", "ankle_l", "ankle_r")
CONTEXT = (-8, -4, 0, 4, 8)
HEADER = (
    "| scores | labels used | joint noise (px) | threshold | frame F1 (protocol a) | video F1 | video AUROC |\n"
    "|---|---|---|---|---|---|---|"
)


def read_joints(path: Path) -> np.ndarray:
    """[N, J, 2] video-pixel coordinates of :data:`JOINTS` from the generator's joints CSV."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise StanError(f"{path}: no joints")
    return np.array([[[float(r[f"{j}_x"]), float(r[f"{j}_y"])] for j in JOINTS] for r in rows], np.float64)


def posture_features(p: np.ndarray, context: tuple[int, ...] = CONTEXT) -> np.ndarray:
    """Per-frame features (see the module docstring) of joints ``p`` [N, J, 2]; ``context``: offsets in rows."""
    pelvis = p[:, JOINTS.index("pelvis")][:, None]
    feet = (p[:, JOINTS.index("ankle_l")] + p[:, JOINTS.index("ankle_r")]) / 2
    height = float(np.median(np.linalg.norm(p[:, JOINTS.index("head")] - feet, axis=1)))
    q = (p - pelvis) / max(height, 1e-6)
    q = (q - np.median(q, 0, keepdims=True)).reshape(len(q), -1)
    idx = np.arange(len(q))
    return np.concatenate([q[np.clip(idx + s, 0, len(q) - 1)] for s in context], 1).astype(np.float32)


def lean(p: np.ndarray) -> np.ndarray:
    trunk = p[:, JOINTS.index("neck")] - p[:, JOINTS.index("pelvis")]
    angle = np.degrees(np.arctan2(trunk[:, 0], -trunk[:, 1]))
    return np.abs(angle - np.median(angle))


def mlp(n_in: int) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Linear(n_in, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1)
    )


def log_mean_exp(z: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(z, 0) - float(np.log(len(z)))


def train(videos: list[tuple[np.ndarray, np.ndarray, bool]], frames: bool, epochs: int, seed: int) -> torch.nn.Module:
    """Frame labels (``frames``) or video labels through the MIL objective."""
    torch.manual_seed(seed)
    net = mlp(videos[0][0].shape[1])
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-4)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    xs = [torch.from_numpy(x) for x, _, _ in videos]
    for _ in range(epochs):
        order = torch.randperm(len(videos)).tolist()
        for i in range(0, len(order), 8):
            losses = []
            for k in order[i : i + 8]:
                z = net(xs[k]).squeeze(1)
                y, positive = videos[k][1], videos[k][2]
                if frames:
                    losses.append(bce(z, torch.from_numpy(y.astype(np.float32))))
                else:
                    losses.append(bce(log_mean_exp(z), torch.tensor(float(positive))))
            loss = torch.stack(losses).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def predicted_joints(
    manifest: Path,
    checkpoint: Path,
    train_names: set[str],
    lam: float = 10.0,
    roi: str | None = None,
    workers: int = 1,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Per video name: (predicted joints, true joints, source frame index) at the local view's images, and
    the test videos' joint errors [images, J] in video pixels (see the module docstring). ``roi``: place
    the crops with this ROI provider instead of the checkpoint's."""
    from stanviewer.core.models.checkpoint import load_checkpoint
    from stanviewer.core.models.framecnn import FrameCNN
    from stanviewer.core.progress import run_job
    from stanviewer.core.training.data import load_samples
    from stanviewer.core.training.pretrain import joint_targets
    from stanviewer.core.views import normalise, view_names

    ck = load_checkpoint(checkpoint)
    if not isinstance(ck.model, FrameCNN) or "local" not in view_names(ck.spec.views):
        raise StanError(
            "--pose-checkpoint needs a per-frame CNN with a local view (stanviewer pretrain --arch cnn-...)"
        )
    local = view_names(ck.spec.views).index("local")
    net = ck.model.backbone.eval()
    entries = {e.name: e for e in read_manifest(manifest)}
    spec = dataclasses.replace(ck.spec, roi_provider=roi) if roi else ck.spec
    samples = run_job(load_samples(manifest, spec, workers=workers))
    feats, targets, truth = {}, {}, {}
    with torch.no_grad():
        for smp in samples:
            x = normalise(smp.images[:, local][:, None])[:, :, 0]  # [n, 3, S, S]
            l3 = net.layer3(net.layer2(net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))))
            feats[smp.name] = torch.cat([net.layer4(l3).flatten(1), l3.flatten(1)], 1).double().numpy()
            jp = entries[smp.name].extra_path("joints", manifest.parent)
            if jp is None:
                raise StanError(f"{smp.name}: no joints column", manifest)
            j = read_joints(jp)
            targets[smp.name] = joint_targets(smp, j.astype(np.float32), "local", ck.spec.size).reshape(len(x), -1)
            truth[smp.name] = (j[np.minimum(smp.frame_index, len(j) - 1)], smp.frame_index, smp.square)
    names = [n for n in feats if n in train_names]
    x_tr = np.concatenate([feats[n] for n in names])
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6

    def design(f: np.ndarray) -> np.ndarray:
        return np.concatenate([(f - mu) / sd, np.ones((len(f), 1))], 1)

    a = design(x_tr)
    w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ np.concatenate([targets[n] for n in names]))
    out, errors = {}, []
    for n, f in feats.items():
        p_true, frame_index, (cx, cy, side) = truth[n]
        q = (design(f) @ w).reshape(len(f), -1, 2)
        p = np.stack([(q[..., 0] + 1) / 2 * side + cx - side / 2, (q[..., 1] + 1) / 2 * side + cy - side / 2], -1)
        out[n] = (p, p_true, frame_index)
        if n not in train_names:
            errors.append(np.linalg.norm(p - p_true, axis=-1))
    return out, np.concatenate(errors)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--noise", default="0,2,3,5", help="joint noise σ in video pixels for the MIL rows")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--target", default="compensation")
    ap.add_argument("--test-videos", type=int, default=48)
    ap.add_argument("--calib-videos", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pose-checkpoint", type=Path, help="also score joints predicted by this pose-pretrained CNN")
    ap.add_argument("--roi", help="ROI provider placing the pose checkpoint's crops (default: the checkpoint's)")
    ap.add_argument("--workers", type=int, default=1, help="processes preparing videos not yet cached")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    try:
        entries = read_manifest(args.manifest)
        root = args.manifest.parent
        train_e = [e for e in entries if (e.split or "train") == "train"]
        test_all = _pick([e for e in entries if e.split == "test"], args.test_videos, args.seed)
        calib = _pick([e for e in train_e if e.label == args.target], args.calib_videos, args.seed)

        def load(e: ManifestEntry) -> tuple[np.ndarray, np.ndarray, bool]:
            jp = e.extra_path("joints", root)
            if jp is None:
                raise StanError(f"{args.manifest}: line {e.line} has no joints column (a synthetic data set has)")
            p = read_joints(jp)
            return p, read_frame_labels(e.frame_labels, len(p)), e.label == args.target

        raw = {e.name: load(e) for e in [*train_e, *test_all]}
    except StanError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    test_pos = [e for e in test_all if e.label == args.target]
    n_pos = len(test_pos)
    flag_all = _pooled([(np.ones(len(raw[e.name][1])), raw[e.name][1]) for e in test_pos], 0.5)["f1"]
    print(
        f"{len(train_e)} training videos, {len(calib)} calibration and {n_pos} test videos of class "
        f"'{args.target}' (of {len(test_all)} test videos); flag-all frame F1 {100 * flag_all:.1f}\n"
    )
    print(HEADER)

    def report(data: dict, name: str, labels: str, noise: str, score, video_logit=None) -> None:
        def norm(e: ManifestEntry) -> tuple[np.ndarray, np.ndarray]:
            return normalise_scores(score(e)), data[e.name][1]

        th, _ = calibrate_threshold([norm(e) for e in calib])
        f1 = _pooled([norm(e) for e in test_pos], th)["f1"]
        vid = "| – | –"
        if video_logit is not None:
            logits = np.array([video_logit(e) for e in test_all])
            truth = np.array([e.label == args.target for e in test_all])
            vid = f"| {100 * prf((logits > 0).astype(int), truth.astype(int)).f1:.1f} | {auroc(logits, truth):.3f}"
        print(f"| {name} | {labels} | {noise} | {th:.2f} | **{100 * f1:.1f}** {vid} |", flush=True)

    def learned_rows(data: dict, name: str, noises: list[float], context: tuple[int, ...], supervised: bool) -> None:
        """MIL rows (one per joint noise σ) and optionally the supervised row, on ``data[name] = (p, y, pos)``."""
        configs = [(True, 0.0)] if supervised else []
        for frames, sigma in [*configs, *((False, s) for s in noises)]:
            rng = np.random.default_rng(args.seed)
            feats = {
                n: (posture_features(p + (rng.normal(0.0, sigma, p.shape) if sigma > 0 else 0.0), context), y, c)
                for n, (p, y, c) in sorted(data.items())
            }
            net = train([feats[e.name] for e in train_e], frames, args.epochs, args.seed)

            def frame_logits(e: ManifestEntry, feats: dict = feats, net: torch.nn.Module = net) -> torch.Tensor:
                with torch.no_grad():
                    return net(torch.from_numpy(feats[e.name][0])).squeeze(1)

            report(
                data,
                "supervised MLP" if frames else f"MIL MLP, {name}",
                "frame labels" if frames else "video labels only",
                f"{sigma:g}",
                lambda e, fl=frame_logits: fl(e).numpy(),
                (lambda e, fl=frame_logits: float(log_mean_exp(fl(e)))) if not frames else None,
            )

    report(raw, "hand-made lean (trunk angle)", "none", "0", lambda e: lean(raw[e.name][0]))
    learned_rows(raw, "true joints", [float(x) for x in args.noise.split(",")], CONTEXT, supervised=True)
    if args.pose_checkpoint is not None:
        try:
            pred, errors = predicted_joints(
                args.manifest, args.pose_checkpoint, {e.name for e in train_e}, roi=args.roi, workers=args.workers
            )
        except StanError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        labels = {n: raw[n][1] for n in raw}
        at_images = {
            n: (p_true, labels[n][np.minimum(fi, len(labels[n]) - 1)], raw[n][2])
            for n, (_, p_true, fi) in pred.items()
            if n in raw
        }
        predicted = {n: (p, at_images[n][1], at_images[n][2]) for n, (p, _, _) in pred.items() if n in raw}
        trunk = [JOINTS.index(j) for j in ("head", "neck", "shoulder_l", "shoulder_r", "pelvis")]
        print(
            f"\njoints predicted from pixels by {args.pose_checkpoint.name} (ridge head on its last two feature maps), "
            f"test images: error median {np.median(errors):.1f} px, mean {errors.mean():.1f} px (trunk joints: "
            f"median {np.median(errors[:, trunk]):.1f}, mean {errors[:, trunk].mean():.1f}); the rows below score "
            "the model's images (every half model step), with context ±1, ±3 images\n"
        )
        print(
            "| scores | labels used | joint noise (px) | threshold | frame F1 (protocol a) | video F1 | video AUROC |"
        )
        print("|---|---|---|---|---|---|---|")
        ctx = (-3, -1, 0, 1, 3)
        report(
            at_images, "hand-made lean, true joints at the images", "none", "0", lambda e: lean(at_images[e.name][0])
        )
        learned_rows(at_images, "true joints at the images", [0.0], ctx, supervised=False)
        learned_rows(predicted, "joints predicted from pixels", [0.0], ctx, supervised=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
