"""Attribution methods in Captum's shape: one object per method bound to a model, one ``attribute`` call.

``attribute(clips, target)`` takes one ``Tensor[B, 3, T, S, S]`` per view and returns attributions of the
same shapes. What is explained is the target class's **log-odds** (its logit minus the log-sum-exp of the
other logits), which does not depend on how softmax spreads the rest.

Methods (PAPER.md §3 plus extras):
- ``vanilla``: |gradient| (Captum ``Saliency``).
- ``smoothgrad``: mean |gradient| over N noisy copies, noise sigma = ``sigma`` x input range (seeded
  noise; the copies of all clips are batched through Captum ``Saliency``).
- ``gradcam``: Grad-CAM on the last block (Captum ``LayerGradCam``, ReLU), upsampled trilinearly to
  T x S x S. The stem halves T, so each Grad-CAM time step covers two frames.
- ``ig``: integrated gradients from the neutral (all-zero, i.e. mean grey) clip.
- ``occlusion``: temporal occlusion; each frame in turn is replaced by the neutral value and the drop
  of the target log-odds (clipped at 0) is that frame's attribution, spread over its pixels.
- ``window``: the window's target probability spread over all its frames and pixels (no spatial
  detail): with multiple-instance training this window-probability curve localises in time.

Parameters are frozen and the model is in eval mode while attributing (frozen parameters halve the
backward cost); hooks and ``requires_grad`` flags are restored in ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor, nn

__all__ = ["METHODS", "AttributionMethod", "LogOdds", "frozen", "make_method"]


class LogOdds(nn.Module):
    """Wraps a classifier: returns each class's log-odds ``Tensor[B, C]`` (logit - lse(other logits))."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *clips: Tensor) -> Tensor:
        logits = self.model(*clips).float()
        C = logits.shape[1]
        eye = torch.eye(C, dtype=torch.bool, device=logits.device)
        others = logits.unsqueeze(1).expand(-1, C, -1).masked_fill(eye, float("-inf"))
        return logits - torch.logsumexp(others, dim=2)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and parameters without gradients, restored afterwards."""
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, f in zip(model.parameters(), flags):
            p.requires_grad_(f)
        model.train(was_training)


class AttributionMethod:
    """Base class: bind a model; ``attribute(clips, target)`` returns per-view attributions."""

    name: ClassVar[str] = ""
    per_pixel: ClassVar[bool] = True  # False when the method has no spatial detail

    def __init__(self, model: nn.Module, **params: float) -> None:
        self.model = model
        self.forward_func = LogOdds(model)
        self.params = params

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def cost(self) -> int:
        """Forward+backward passes per clip (for batching and progress)."""
        return 1


class Vanilla(AttributionMethod):
    name = "vanilla"

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        from captum.attr import Saliency

        with frozen(self.model):
            out = Saliency(self.forward_func).attribute(
                tuple(c.detach().requires_grad_(True) for c in clips), target=target, abs=True
            )
        return tuple(o.detach() for o in out)


class SmoothGrad(AttributionMethod):
    """Mean |gradient| over ``samples`` noisy copies (noise sigma = ``sigma`` x each view's input range).

    The noise is drawn once per call from a seeded generator, then the noisy copies of all clips go
    through Captum's ``Saliency`` in chunks of ``batch`` copies: batching changes speed, not results.
    """

    name = "smoothgrad"

    def __init__(self, model: nn.Module, samples: int = 8, sigma: float = 0.15, batch: int = 8, seed: int = 0) -> None:
        super().__init__(model, samples=samples, sigma=sigma)
        self.samples, self.sigma, self.batch, self.seed = int(samples), float(sigma), max(1, int(batch)), seed

    def cost(self) -> int:
        return self.samples

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        from captum.attr import Saliency

        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        B = clips[0].shape[0]
        noise = [
            torch.randn((self.samples, *c.shape), generator=gen).to(c.device) * float(self.sigma * (c.max() - c.min()))
            for c in clips
        ]
        flat = [(c.detach().unsqueeze(0) + n).flatten(0, 1) for c, n in zip(clips, noise)]  # [N*B, ...]
        total = [torch.zeros_like(c) for c in clips]
        sal = Saliency(self.forward_func)
        with frozen(self.model):
            for a in range(0, self.samples * B, self.batch):
                chunk = tuple(f[a : a + self.batch].requires_grad_(True) for f in flat)
                grads = sal.attribute(chunk, target=target, abs=True)
                if isinstance(grads, Tensor):
                    grads = (grads,)
                idx = torch.arange(a, a + chunk[0].shape[0]) % B
                for t, g in zip(total, grads):
                    t.index_add_(0, idx.to(t.device), g.detach())
        return tuple(t / self.samples for t in total)


class GradCAM(AttributionMethod):
    name = "gradcam"

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        from captum.attr import LayerAttribution, LayerGradCam

        layer = self.model.last_block
        with frozen(self.model):
            cam = LayerGradCam(self.forward_func, layer).attribute(
                tuple(c.detach().requires_grad_(True) for c in clips), target=target, relu_attributions=True
            )
        # the backbone saw the views concatenated along the batch: split them back
        b = clips[0].shape[0]
        parts = cam.split(b, dim=0) if len(clips) > 1 else (cam,)
        out = []
        for c, p in zip(clips, parts):
            up = LayerAttribution.interpolate(p.detach(), tuple(c.shape[2:]), interpolate_mode="trilinear")
            out.append(up.expand(-1, c.shape[1], -1, -1, -1).clamp_min(0))
        return tuple(out)


class IntegratedGradients(AttributionMethod):
    name = "ig"

    def __init__(self, model: nn.Module, steps: int = 16, batch: int = 16) -> None:
        super().__init__(model, steps=steps)
        self.steps, self.batch = int(steps), int(batch)

    def cost(self) -> int:
        return self.steps

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        from captum.attr import IntegratedGradients as IG

        with frozen(self.model):
            out = IG(self.forward_func).attribute(
                tuple(c.detach().requires_grad_(True) for c in clips),
                baselines=tuple(torch.zeros_like(c) for c in clips),
                target=target,
                n_steps=self.steps,
                internal_batch_size=max(1, self.batch * clips[0].shape[0]),
            )
        if isinstance(out, Tensor):
            out = (out,)
        return tuple(o.detach().abs() for o in out)


class TemporalOcclusion(AttributionMethod):
    """Replace one frame (all views) with the neutral value; attribution = drop of the target log-odds."""

    name = "occlusion"
    per_pixel = False

    def __init__(self, model: nn.Module, span: int = 1, batch: int = 16) -> None:
        super().__init__(model, span=span)
        self.span, self.batch = max(1, int(span)), int(batch)

    def cost(self) -> int:
        return 1  # forward passes only, about one backward's worth per clip at T <= 16

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        B, _, T = clips[0].shape[:3]
        with torch.no_grad(), frozen(self.model):
            base = self.forward_func(*clips)[:, target]  # [B]
            drops = torch.zeros(B, T, device=clips[0].device)
            starts = list(range(0, T, self.span))
            for a in range(0, len(starts), max(1, self.batch // max(1, B))):
                chunk = starts[a : a + max(1, self.batch // max(1, B))]
                occluded = []
                for c in clips:
                    rep = c.unsqueeze(0).repeat(len(chunk), 1, 1, 1, 1, 1)  # [K, B, 3, T, S, S]
                    for k, s in enumerate(chunk):
                        rep[k, :, :, s : s + self.span] = 0.0
                    occluded.append(rep.flatten(0, 1))
                score = self.forward_func(*occluded)[:, target].view(len(chunk), B)
                for k, s in enumerate(chunk):
                    drops[:, s : s + self.span] += (base - score[k]).clamp_min(0).unsqueeze(1)
        return tuple(drops.view(B, 1, T, 1, 1).expand(-1, c.shape[1], -1, c.shape[3], c.shape[4]) for c in clips)


class OcclusionWindow(TemporalOcclusion):
    """Temporal occlusion weighted by the window probability: a frame scores high when hiding it lowers the
    evidence (which frame inside a window matters) *and* the windows around it show the target class (does
    this stretch show it at all). Whole-video scoring takes the geometric mean of the stitched occlusion
    score and the window probability of every frame (:mod:`stanviewer.core.explain.scoring`); on a single
    clip it ranks frames like plain occlusion (one window, one probability)."""

    name = "occlusion-window"
    window_weighted = True


class WindowProbability(AttributionMethod):
    """The window's target probability, constant over its frames and pixels."""

    name = "window"
    per_pixel = False

    def attribute(self, clips: tuple[Tensor, ...], target: int) -> tuple[Tensor, ...]:
        with torch.no_grad(), frozen(self.model):
            p = torch.sigmoid(self.forward_func(*clips)[:, target])  # [B]
        return tuple(p.view(-1, 1, 1, 1, 1).expand_as(c) for c in clips)


METHODS: dict[str, type[AttributionMethod]] = {
    m.name: m
    for m in (Vanilla, SmoothGrad, GradCAM, IntegratedGradients, TemporalOcclusion, OcclusionWindow, WindowProbability)
}


def make_method(name: str, model: nn.Module, **params: float) -> AttributionMethod:
    """Instantiate a method by name (``vanilla``, ``smoothgrad``, ``gradcam``, ``ig``, ``occlusion``,
    ``occlusion-window``, ``window``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name](model, **params)  # type: ignore[arg-type]


def frame_scores(attributions: tuple[Tensor, ...], aggregate: str = "mean") -> Tensor:
    """Per-frame raw scores ``Tensor[B, T]``: channel-mean |attribution|, aggregated over pixels, summed
    over views (``mean`` over pixels, or ``top10``: mean of the top 10% of pixels)."""
    total = None
    for a in attributions:
        m = a.abs().mean(1)  # [B, T, S, S]
        flat = m.flatten(2)
        if aggregate == "mean":
            s = flat.mean(-1)
        elif aggregate == "top10":
            k = max(1, flat.shape[-1] // 10)
            s = flat.topk(k, dim=-1).values.mean(-1)
        else:
            raise ValueError(f"unknown aggregation {aggregate!r}")
        total = s if total is None else total + s
    assert total is not None
    return total


def heatmaps(attributions: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Channel-mean |attribution| per view: ``Tensor[B, T, S, S]`` each."""
    return tuple(a.abs().mean(1) for a in attributions)
