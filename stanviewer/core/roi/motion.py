"""``motion``: find the person in a fixed-camera video from what moves, then from how they look.

Rehabilitation videos are filmed with a fixed camera; the patient mostly stands or sits still and moves
the arms and trunk. Motion alone finds only the moving parts, while the person's box includes the static
legs, so the provider works in two stages on frames reduced to ``work_side`` pixels (longest side), in
chunks of ``chunk`` frames (memory stays bounded on long videos; each chunk is analysed on its own):

1. **Motion.** A reference picture is the per-pixel median of up to 60 frames spread over the chunk.
   Each frame's global gain (lighting drift) is the median ratio of its grey levels to the reference's,
   and its translation against the reference (camera shake) is found by phase correlation restricted to
   ``max_shake`` pixels, so periodic wallpaper cannot alias it. After undoing both, a pixel moves when
   it lies outside the reference's 3x3 min-max envelope by more than ``min_diff`` grey levels and by
   more than ``threshold`` times that pixel's own typical deviation (flickering screens and noisy
   texture raise the latter), followed by a 3x3 opening. The fraction of frames in which each pixel
   moves is the motion map.
2. **The person.** The strongest blobs of the smoothed motion map are candidates (the moving arms and
   trunk, or a distractor). For each, GrabCut segments the reference picture inside a rectangle from
   a little above the blob down to the bottom of the frame, which recovers the static body (legs,
   trunk, the arm at rest) by colour; the segment touching the blob (plus pieces within a few pixels,
   such as a head cut off at the neck) is the body; when several segments touch the blob, the one that
   looks most like a person (tallest, most upright, not a filled block) is taken, since a raised arm
   often touches a poster or a cupboard that GrabCut keeps whole. Furniture that touches the person
   and falls inside the rectangle joins it (its colours never appear outside the rectangle, so GrabCut's background
   model does not know them). So the body is segmented ``refine`` more times around its own vertical
   axis (the column band it covers most): everything farther than ``band`` x its height from the axis
   is certain background, which cuts such furniture at the band's edge and teaches GrabCut its colours
   as background; only the previous body's pixels within ``seed_band`` of the axis start as probable
   body. When the first segment joins the person to a door, a cupboard or a patch of wall that covers
   more columns than the person's thin trunk and legs, that axis lies on the furniture, and the
   refinement keeps a filled block or a short piece (an arm); then the rest of the first segment is
   refined again round its next axes (up to two), and the most person-like body is kept. Then
   columns with little body in them are trimmed from the sides while the body is wider than
   ``max_aspect`` times its height. The candidate whose body is tallest (relative to the frame) and
   most upright, weighted by the square root of its motion energy and discounted when it fills its
   bounding box like a cupboard, window or poster does (a person's silhouette leaves most of its box
   empty), wins (a pendulum that never stops must not outweigh a patient who moves seldom). A patient
   who moves only a hand at hip height gives a blob so low that the rectangle starts in the middle of
   the shirt, whose colour then counts as background, and GrabCut keeps a single leg: a body that thin
   and short is segmented again from a rectangle ``retry_up`` x the frame height above the blob, and
   the better-scoring body is kept; so is a body shorter than 0.6 x the frame that starts more than
   ``low`` x its blob's height under the blob's top (a hand moving over the shirt: GrabCut keeps a leg
   and the hanging arm). A candidate whose blob lies mostly above its body's top scores less
   (:func:`_motion_on_body`: an arm sweeps from the shoulder, a pendulum over a cupboard does not),
   unless the blob is more than ``stand`` x as high as wide (a hand raised and lowered over the head;
   a pendulum's blob is a flat arc).
   GrabCut starts its colour models from random k-means centres, and a body can come out whole from one
   start and without its head from another, so each candidate is segmented ``votes`` times from fixed
   random seeds (the same video always gives the same boxes): its score is the mean, its body the
   pixels found in most runs. Last, filled blocks that GrabCut still joined to the winner's body (a
   poster behind the head, a cupboard beside the trunk) are removed: parts of the body farther than
   ``side_band`` x its height from its axis that are at least ``block_side`` x the height on both sides
   and fill at least ``block_fill`` of their bounding box (limbs are thin or leave their box mostly
   empty), such parts at least ``block_strip`` x the height wide that fill 97 % of their box (the
   straight strip of a box behind the legs, or of a poster behind the head, that sticks out beside
   the body: limbs slant and end round), level slivers thinner than that reaching ``sliver`` x the
   height sideways (the lower edge of a cabinet behind the hips; upright slivers are limbs cut by the
   band's edge), and wide, filled rows on top of the body above a narrower head (a window over the
   head; a block wider than ``top_broad`` x the height ends at its first row narrower than 0.9 x its
   median width, so a poster and the shoulders under it do not count as one block).
   Legs whose colour lies between the wall's and the floor's are lost by GrabCut (its colour models
   are global); under the body, down to ``below`` x its height, the pixels that differ from their own
   row of wall or floor beside the body and touch it are added (row by row, legs still stand out).
   Likewise a head lost against the wall: over the body, up to ``above`` x its height, what looks like
   no pixel of its own rows of wall beside it (a striped wall's colours are all there) and sits on the
   body's top (over the shoulders, a gap of one row allowed) joins it, provided it ends below wall
   and is no wider than a head, after a few narrowing shoulder rows (a poster or window over the
   person goes on or is wider and is not added), and is not a line (climbing ``line`` x the height or
   more with a median width under 0.04 x the height: a poster's edge over a head already found).
3. **Per frame**, the box bounds the static body and the moving pixels of that frame that touch it,
   within arm's reach (``reach`` x the body height) of the upper body, moved by that frame's camera
   shake back into the frame's own pixels. Its confidence is the body's plausibility (0 if no body
   was found: the shared post-processing then fills the gap).

The box of a frame therefore follows the arms and the trunk as they move, while a small walking figure,
a bouncing ball or a pendulum elsewhere in the room does not join it. The crop for a model should still
be :meth:`RoiTrack.crop_square` (one square per video), never these boxes' own extent.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np

from stanviewer.core.errors import RoiError
from stanviewer.core.progress import Job, Progress
from stanviewer.core.roi.base import RoiProvider, register
from stanviewer.core.video import VideoReader

__all__ = ["MotionProvider", "analyse_chunk"]

_K3 = np.ones((3, 3), np.uint8)


def _work_size(size: tuple[int, int], work_side: int) -> tuple[tuple[int, int], float]:
    w, h = size
    s = min(1.0, work_side / max(w, h))
    return (max(8, int(round(w * s))), max(8, int(round(h * s)))), s


# --------------------------------------------------------------------------- stage 1: motion
def _phase_shift(ref_fft: np.ndarray, img: np.ndarray, window: np.ndarray, radius: int) -> tuple[float, float]:
    """Translation (dx, dy) of ``img`` relative to the reference, searched within ``radius`` pixels."""
    h, w = img.shape
    f = np.fft.rfft2((img - img.mean()) * window)
    x = f * ref_fft
    x /= np.abs(x) + 1e-6
    c = np.fft.irfft2(x, s=(h, w))
    c = np.roll(c, (radius, radius), axis=(0, 1))[: 2 * radius + 1, : 2 * radius + 1]
    iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)

    def sub(a: float, b: float, m: float) -> float:
        d = a - 2 * m + b
        return 0.0 if d >= 0 else 0.5 * (a - b) / d

    dy = iy - radius + (sub(c[iy - 1, ix], c[iy + 1, ix], c[iy, ix]) if 0 < iy < 2 * radius else 0.0)
    dx = ix - radius + (sub(c[iy, ix - 1], c[iy, ix + 1], c[iy, ix]) if 0 < ix < 2 * radius else 0.0)
    return float(dx), float(dy)


def motion_masks(
    frames: np.ndarray, scale: float, *, threshold: float, min_diff: float, max_shake: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving pixels of every frame, the (aligned, gain-corrected) reference picture and the shake.

    Args:
        frames: uint8 [T, h, w, 3] RGB at the working resolution.
        scale: working / original resolution (converts ``max_shake`` to working pixels).

    Returns:
        ``(masks uint8 [T, h, w] of 0/1, reference uint8 [h, w, 3], shifts float [T, 2])``: masks are
        in the reference's coordinates; a point at ``p`` there is at ``p + shifts[t]`` in frame t.
    """
    t_n, h, w, _ = frames.shape
    sample = np.unique(np.linspace(0, t_n - 1, min(t_n, 60)).round().astype(int))
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float32)
    ref0 = np.median(gray[sample], axis=0)
    ok = (ref0 > 20) & (ref0 < 235)
    if ok.sum() < 0.05 * ok.size:
        ok[:] = True
    gains = np.median(gray[:, ok] / np.maximum(ref0[ok], 1.0)[None], axis=1)
    gains = np.where(np.isfinite(gains) & (gains > 0.2), gains, 1.0).astype(np.float32)
    radius = max(1, int(math.ceil(max_shake * scale)) + 1)
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    ref_fft = np.conj(np.fft.rfft2((ref0 - ref0.mean()) * window))
    aligned = np.empty((t_n, h, w, 3), np.float32)
    shifts = np.zeros((t_n, 2))
    for t in range(t_n):
        if radius < min(h, w) // 4:
            shifts[t] = _phase_shift(ref_fft, gray[t] / gains[t], window, radius)
        dx, dy = shifts[t]
        m = np.float32([[1, 0, -dx], [0, 1, -dy]])
        aligned[t] = cv2.warpAffine(frames[t], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    ref = np.median(aligned[sample] / gains[sample, None, None, None], axis=0)
    hi, lo = cv2.dilate(ref, _K3), cv2.erode(ref, _K3)
    diff = np.empty((t_n, h, w), np.float32)
    for t in range(t_n):
        g = gains[t]
        a = aligned[t]
        diff[t] = np.maximum(a - np.minimum(255.0, hi * g), np.minimum(255.0, lo * g) - a).max(axis=2)
    typical = cv2.dilate(np.median(np.maximum(diff[sample], 0), axis=0) * 1.4826, _K3)
    limit = np.maximum(min_diff, threshold * typical)
    masks = np.empty((t_n, h, w), np.uint8)
    for t in range(t_n):
        masks[t] = cv2.morphologyEx((diff[t] > limit).astype(np.uint8), cv2.MORPH_OPEN, _K3)
    return masks, np.clip(ref, 0, 255).astype(np.uint8), shifts


# --------------------------------------------------------------------------- stage 2: the person
def _candidates(motion: np.ndarray, n: int) -> list[tuple[np.ndarray, tuple[int, int, int, int], float]]:
    """The ``n`` strongest blobs of the smoothed motion map: (mask, box x0 y0 x1 y1, energy)."""
    mb = cv2.GaussianBlur(motion.astype(np.float32), (0, 0), 2)
    top = float(mb.max())
    if top <= 0.005:
        return []
    seed = cv2.dilate((mb > max(0.01, 0.3 * top)).astype(np.uint8), np.ones((5, 5), np.uint8))
    k, lab, stats, _ = cv2.connectedComponentsWithStats(seed)
    # squared: a few strongly moving spots (an arm) beat a long faint trail (a ball crossing the room)
    energy = np.bincount(lab.ravel(), weights=(mb * mb).ravel(), minlength=k)[1:]
    out = []
    for i in np.argsort(-energy)[:n]:
        x, y, bw, bh = (int(v) for v in stats[i + 1, :4])
        out.append((lab == i + 1, (x, y, x + bw, y + bh), float(energy[i])))
    return out


def _trim(body: np.ndarray, max_aspect: float) -> np.ndarray:
    """Drop the side columns with the least body in them while the body is wider than allowed."""
    ys, xs = np.nonzero(body)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    height = y1 - y0
    cover = body[y0:y1, x0:x1].sum(axis=0) / height
    left, right = 0, len(cover) - 1
    while right - left + 1 > max_aspect * height and (cover[left] < 0.6 or cover[right] < 0.6):
        if cover[left] <= cover[right]:
            left += 1
        else:
            right -= 1
    out = np.zeros_like(body)
    out[:, x0 + left : x0 + right + 1] = body[:, x0 + left : x0 + right + 1]
    return out


def _grabcut_segments(
    ref: np.ndarray, mask: np.ndarray, rect: tuple[int, int, int, int] | None, iterations: int
) -> tuple[int, np.ndarray] | None:
    """GrabCut from a rectangle (``rect``) or from ``mask``'s labels (``rect`` None), then the connected
    foreground segments after a small opening: ``(count incl. background, labels)``, or None if none."""
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    mode = cv2.GC_INIT_WITH_MASK if rect is None else cv2.GC_INIT_WITH_RECT
    try:
        cv2.grabCut(ref, mask, rect, bgd, fgd, iterations, mode)
    except cv2.error:  # e.g. a rectangle holding a single colour
        return None
    fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
    k, lab = cv2.connectedComponents(cv2.morphologyEx(fg, cv2.MORPH_OPEN, _K3))
    return None if k <= 1 else (k, lab)


def static_body(
    ref: np.ndarray,
    core: np.ndarray,
    box: tuple[int, int, int, int],
    max_aspect: float,
    iterations: int = 5,
    *,
    refine: int = 2,
    band: float = 0.25,
    seed_band: float = 0.1,
    up: float = 0.1,
) -> np.ndarray | None:
    """The person's whole body in the reference picture, grown by GrabCut from a motion blob.

    Args:
        ref: uint8 [h, w, 3] reference picture.
        core: bool [h, w] the motion blob; box: its bounding box.
        refine: passes of :func:`_refine_body` after the first segmentation.
        band, seed_band: its half-widths (fractions of the body height).
        up: how far above the blob the first rectangle starts (fraction of the frame height, at least a
            tenth of the blob's height).

    Returns:
        uint8 [h, w] 0/1 mask, or None when no segment touches the blob.
    """
    h, w = ref.shape[:2]
    x0, y0, x1, y1 = box
    bh = y1 - y0
    pad = int(max(0.5 * bh, 0.15 * h))
    rx0, rx1 = max(1, x0 - pad), min(w - 1, x1 + pad)
    ry0 = max(1, int(y0 - max(0.1 * bh, up * h)))
    if rx1 - rx0 < 4 or h - ry0 < 4:
        return None
    seg = _grabcut_segments(ref, np.zeros((h, w), np.uint8), (rx0, ry0, rx1 - rx0, h - ry0), iterations)
    if seg is None:
        return None
    k, lab = seg
    overlap = np.bincount(lab[core], minlength=k)[1:]
    if overlap.max() == 0:
        return None
    main = (lab == 1 + _likeliest_segment(lab, overlap)).astype(np.uint8)
    near = cv2.dilate(main, np.ones((7, 7), np.uint8)) > 0
    ids = np.unique(lab[near])  # labels > 0 lie inside the foreground
    body = np.isin(lab, ids[ids > 0]).astype(np.uint8)
    first = body
    body = _refine_passes(ref, first, refine, iterations, band, seed_band)
    if refine > 0 and _lost_person(body, first):
        rest = first & (cv2.dilate(body, np.ones((5, 5), np.uint8)) == 0)
        tried = [_body_axis(first)[0]]
        for _ in range(2):
            xc = _other_axis(rest, tried, band) if rest.sum() >= 10 else None
            if xc is None:
                break
            tried.append(xc)
            other = _refine_passes(ref, rest, refine, iterations, band, seed_band, xc)
            if other is rest:  # GrabCut found nothing round that axis
                continue
            if _person_like(other, h) > _person_like(body, h):
                body = other
            if not _lost_person(other, first):
                break
    return _trim(body, max_aspect) if max_aspect > 0 else body


def _refine_passes(
    ref: np.ndarray,
    body: np.ndarray,
    refine: int,
    iterations: int,
    band: float,
    seed_band: float,
    xc: int | None = None,
) -> np.ndarray:
    """``body`` after up to ``refine`` passes of :func:`_refine_body` (the first around column ``xc`` when
    given, else around the body's own axis); the last body found."""
    for _ in range(refine):
        better = _refine_body(ref, body, iterations, band, seed_band, xc)
        if better is None:
            break
        body, xc = better, None
    return body


def _person_like(body: np.ndarray, frame_h: int) -> float:
    """:func:`_plausibility` discounted for a filled block (:func:`_not_a_block`)."""
    return _plausibility(body, frame_h) * _not_a_block(body) if body.any() else 0.0


def _lost_person(body: np.ndarray, first: np.ndarray, block: float = 0.5, kept: float = 0.4) -> bool:
    """Whether the refined ``body`` looks like the refinement went round the wrong axis: it is a filled
    block (:func:`_not_a_block` below ``block``) or less than ``kept`` x as tall as the first segmentation
    ``first`` it started from. When GrabCut's first segment joins the person to a door, cupboard or a
    patch of wall that covers more columns than the person's thin trunk and legs, the body's axis lies on
    that furniture and the refinement keeps it (or an arm of the person beside it). A trunk without its
    legs (about half the height; :func:`_extend_down` finds them later) is not lost: at 0.6 instead of
    ``kept`` an axis on a box beside the legs was tried and won with the box."""
    if not body.any():
        return True
    rows, rows0 = np.nonzero(body.any(axis=1))[0], np.nonzero(first.any(axis=1))[0]
    return _not_a_block(body) < block or rows[-1] + 1 - rows[0] < kept * (rows0[-1] + 1 - rows0[0])


def _other_axis(body: np.ndarray, tried: list[int], band: float) -> int | None:
    """The axis of ``body`` (the column band it covers most, as in :func:`_body_axis`) farther than ``band`` x
    its height from each column in ``tried``; None when no column there holds body."""
    ys = np.nonzero(body.any(axis=1))[0]
    hh = ys[-1] + 1 - ys[0]
    k = max(3, int(0.1 * hh)) | 1
    cols = body.sum(axis=0).astype(np.float32)
    cover = np.convolve(cols, np.ones(k, np.float32), mode="same")
    for xc in tried:
        cover[max(0, int(xc - band * hh)) : int(xc + band * hh) + 1] = 0
    cover[cols == 0] = 0
    return int(np.argmax(cover)) if cover.max() > 0 else None


def _likeliest_segment(lab: np.ndarray, overlap: np.ndarray, least: float = 0.1) -> int:
    """Index (into ``overlap``, label - 1) of the segment that looks most like a person among those
    that overlap the motion blob by at least ``least`` x the largest overlap: the tallest, most upright
    one that is not a filled block. A raised arm often touches a poster or a cupboard, and the patch of
    it that GrabCut keeps can overlap the blob more than the patient's own body does."""
    best, best_score = int(np.argmax(overlap)), 0.0
    for i in np.nonzero(overlap >= max(1, least * overlap.max()))[0]:
        seg = lab == i + 1
        ys, xs = np.nonzero(seg)
        bh, bw = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
        score = bh * min(1.0, bh / (1.5 * bw)) * _not_a_block(seg)
        if score > best_score:
            best, best_score = int(i), score
    return best


def _body_axis(body: np.ndarray, xc: int | None = None) -> tuple[int, int, int]:
    """``(x, top, bottom)``: the body's vertical axis (the column band covered by the most body pixels,
    over a width of a tenth of its height, or column ``xc`` when given) and the body's extent along it."""
    if xc is None:
        ys = np.nonzero(body.any(axis=1))[0]
        k = max(3, int(0.1 * (ys[-1] + 1 - ys[0]))) | 1
        cover = np.convolve(body.sum(axis=0).astype(np.float32), np.ones(k, np.float32), mode="same")
        xc = int(np.argmax(cover))
    rows = np.nonzero(body[:, max(0, xc - 2) : xc + 3].any(axis=1))[0]
    return xc, int(rows[0]), int(rows[-1]) + 1


def _refine_body(
    ref: np.ndarray, body: np.ndarray, iterations: int, band: float, seed_band: float, axis: int | None = None
) -> np.ndarray | None:
    """Segment the body again in a band around its own vertical axis, so that furniture next to it is cut.

    The first segmentation's rectangle is sized from the motion blob and often holds a whole cupboard or
    window touching the person, whose colours then never appear in the background model. Here everything
    farther than ``band`` x the body height from the body's axis is certain background, so such a
    piece of furniture, cut by the band's edge, teaches GrabCut its own colours as background; only the
    previous body's pixels within ``seed_band`` of the axis (trunk, head, legs) start as probable body.

    Returns:
        uint8 [h, w] 0/1 mask (the segment on the axis and pieces within two pixels), or None.
    """
    h, w = ref.shape[:2]
    if not body.any():
        return None
    xc, top, bottom = _body_axis(body, axis)
    hh = bottom - top
    if hh < 8:
        return None
    mask = np.full((h, w), cv2.GC_BGD, np.uint8)
    y0 = max(0, int(top - 0.1 * hh))
    mask[y0:, max(0, int(xc - band * hh)) : min(w, int(xc + band * hh) + 1)] = cv2.GC_PR_BGD
    s0, s1 = max(0, int(xc - seed_band * hh)), min(w, int(xc + seed_band * hh) + 1)
    seeds = mask[y0:, s0:s1]
    seeds[body[y0:, s0:s1] > 0] = cv2.GC_PR_FGD
    if int((mask == cv2.GC_PR_FGD).sum()) < 10:
        return None
    seg = _grabcut_segments(ref, mask, None, iterations)
    if seg is None:
        return None
    k, lab = seg
    on_axis = np.bincount(lab[:, max(0, xc - 2) : xc + 3].ravel(), minlength=k)[1:]
    if on_axis.max() == 0:
        return None
    main = (lab == 1 + int(np.argmax(on_axis))).astype(np.uint8)
    near = cv2.dilate(main, np.ones((5, 5), np.uint8)) > 0
    ids = np.unique(lab[near])  # labels > 0 lie inside the foreground
    return np.isin(lab, ids[ids > 0]).astype(np.uint8)


def _drop_side_blocks(
    body: np.ndarray,
    band: float,
    min_side: float,
    fill: float,
    thin: float = 0.0,
    straight: float = 0.97,
    sliver: float = 0.0,
) -> np.ndarray:
    """Remove filled blocks (a poster, window or cupboard that GrabCut joined to the body) from the sides.

    The pieces of ``body`` farther than ``band`` x its height from its vertical axis are split into
    connected parts; a part whose bounding box is at least ``min_side`` x the height on both sides and
    that fills at least ``fill`` of it is such a block and goes. Limbs beside the trunk (an arm at rest,
    a leg, an arm held out) are thin or leave most of their box empty and stay. So does the strip of a
    box behind the legs that sticks out beside them, unless it fills at least ``straight`` of its
    bounding box and is at least ``thin`` x the height on both sides: a box's edges are straight and
    upright, a limb's slant and end round (``thin`` 0: no such strips go). A level sliver thinner than
    that (the lower edge of a cabinet behind the hips, a few pixels high) goes when it reaches at least
    ``sliver`` x the height sideways and fills ``straight`` of its box; an upright sliver stays (a limb
    cut lengthwise by the band's edge) (``sliver`` 0: none go)."""
    if not body.any():
        return body
    xc, top, bottom = _body_axis(body)
    hh = bottom - top
    side = body.copy()
    side[:, max(0, int(xc - band * hh)) : min(body.shape[1], int(xc + band * hh) + 1)] = 0
    k, lab, stats, _ = cv2.connectedComponentsWithStats(side)
    out = body.copy()
    for i in range(1, k):
        _, _, bw, bh, area = (int(v) for v in stats[i])
        block = min(bw, bh) >= min_side * hh and area >= fill * bw * bh
        strip = thin > 0 and min(bw, bh) >= thin * hh and area >= straight * bw * bh
        level = sliver > 0 and bw >= sliver * hh and bw > bh and area >= straight * bw * bh
        if block or strip or level:
            out[lab == i] = 0
    return out


def _drop_top_block(
    body: np.ndarray,
    wide: float = 0.12,
    fill: float = 0.85,
    head: float = 0.04,
    broad: float = 0.0,
    narrowing: float = 0.9,
) -> np.ndarray:
    """Remove a filled block sitting on the head (a window or poster above it, inside the axis band).

    From the top, rows at least ``wide`` x the body height wide and at least ``fill`` filled are a block
    when (within the upper 35% of the body) they are followed by ``head`` x the height of rows at most
    0.6 times as wide: a head. Without such a narrower head below, nothing is removed. A block wider
    than ``broad`` x the height (no head is; 0: no such test) ends at its first row narrower than
    ``narrowing`` x its median width so far: a poster's rows and then the shoulders' under it (narrower
    than the poster, wider than a head) must not count as one block that cuts the body at the chest."""
    rows = np.nonzero(body.any(axis=1))[0]
    if len(rows) == 0:
        return body
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    hh = bottom - top
    nh = max(2, int(round(head * hh)))
    stop = min(bottom, int(top + 0.35 * hh) + nh + 2)
    ext = np.zeros(stop - top)
    cnt = body[top:stop].sum(axis=1)
    for i, y in enumerate(range(top, stop)):
        xs = np.nonzero(body[y])[0]
        ext[i] = xs[-1] + 1 - xs[0] if len(xs) else 0
    n = 0
    while n < 0.35 * hh and ext[n] >= wide * hh and cnt[n] >= fill * ext[n]:
        if broad > 0 and n > 0:
            med = float(np.median(ext[:n]))
            if med > broad * hh and ext[n] < narrowing * med:
                break
        n += 1
    below = ext[n : n + nh]
    if n < 0.03 * hh or len(below) < nh or not (below > 0).all() or below.max() > 0.6 * np.median(ext[:n]):
        return body
    out = body.copy()
    out[: top + n] = 0
    return out


def _row_contrast(ref: np.ndarray, y0: int, y1: int, c0: int, c1: int, side: int, min_dist: float) -> np.ndarray | None:
    """bool [y1 - y0, c1 - c0]: which pixels of rows ``y0:y1``, columns ``c0:c1`` of ``ref`` differ from their
    own row of wall or floor: farther than ``min_dist`` (and than three robust standard deviations of the
    strips' own colours) from the median colour of their row in the strips of ``side`` pixels left and
    right of the columns, from both of them where both exist (a cupboard on one side must not make the
    wall on the other look different). None when there is no strip (the columns span the picture)."""
    w = ref.shape[1]
    img = ref[y0:y1].astype(np.float32)
    dist = np.full((y1 - y0, c1 - c0), np.inf, np.float32)
    spread = []
    for a, b in ((max(0, c0 - side), c0), (c1, min(w, c1 + side))):
        if b - a < 2:
            continue
        med = np.median(img[:, a:b], axis=1, keepdims=True)
        spread.append(np.linalg.norm(img[:, a:b] - med, axis=2).ravel())
        dist = np.minimum(dist, np.linalg.norm(img[:, c0:c1] - med, axis=2))
    if not spread:
        return None
    return dist > max(min_dist, 3 * 1.4826 * float(np.median(np.concatenate(spread))))


def _row_unlike(ref: np.ndarray, y0: int, y1: int, c0: int, c1: int, side: int, min_dist: float) -> np.ndarray | None:
    """bool [y1 - y0, c1 - c0]: which pixels of rows ``y0:y1``, columns ``c0:c1`` of ``ref`` look like no pixel of
    the wall beside them: farther than ``min_dist`` from every pixel of the strips of ``side`` pixels left
    and right of the columns in their own row and the rows next to it. Unlike :func:`_row_contrast`
    (distance to the strips' median colour) this keeps a striped or patterned wall, whose colours
    spread widely, from hiding a head in front of it: every stripe's colour is somewhere in the strips.
    None when there is no strip (the columns span the picture)."""
    h, w = ref.shape[:2]
    img = ref.astype(np.float32)
    strips = [(a, b) for a, b in ((max(0, c0 - side), c0), (c1, min(w, c1 + side))) if b - a >= 2]
    if not strips:
        return None
    out = np.zeros((y1 - y0, c1 - c0), bool)
    for y in range(y0, y1):
        ya, yb = max(0, y - 1), min(h, y + 2)
        wall = np.concatenate([img[ya:yb, a:b].reshape(-1, 3) for a, b in strips])
        d = np.linalg.norm(img[y, c0:c1, None, :] - wall[None], axis=2).min(axis=1)
        out[y - y0] = d > min_dist
    return out


def _extend_down(
    ref: np.ndarray, body: np.ndarray, below: float, pad: float = 0.15, side: float = 0.3, min_dist: float = 20.0
) -> np.ndarray:
    """Add what stands under the body and differs from its own row of wall or floor (legs GrabCut lost).

    GrabCut models colours over the whole picture: grey legs in front of a wall and a floor whose
    colours lie on either side of theirs are taken for background, and the body ends at the shirt.
    Row by row, the legs still differ from the wall or floor right beside them. Below the body's
    bottom (down to ``below`` x its height), in the columns of its lowest fifth widened by ``pad`` x
    its height, a pixel differs when its colour is farther than ``min_dist`` (and than three robust
    standard deviations of the side strips' own colours) from the median colour of its row in the
    strips of ``side`` x the height left and right of those columns, from both of them where both
    exist (a cupboard on one side must not make the wall on the other look different). Such pixels
    join the body row by row downwards, each within a pixel sideways of those joined on the row above
    (legs go down; a cupboard's edge or the floor line next to the feet must not widen the body), over
    gaps of one row at most; the floor under the feet is like its row and stops them.

    Returns:
        uint8 [h, w] 0/1 mask: ``body`` with the joined parts.
    """
    h, w = body.shape
    ys = np.nonzero(body.any(axis=1))[0]
    if below <= 0 or len(ys) == 0:
        return body
    top, bottom = int(ys[0]), int(ys[-1]) + 1
    hh = bottom - top
    y0, y1 = max(0, bottom - 2), min(h, int(bottom + below * hh))
    if hh < 8 or y1 - y0 < 3:
        return body
    cols = np.nonzero(body[max(top, bottom - max(2, hh // 5)) : bottom].any(axis=0))[0]
    p, sw = int(round(pad * hh)), max(3, int(round(side * hh)))
    c0, c1 = max(0, int(cols[0]) - p), min(w, int(cols[-1]) + 1 + p)
    differs = _row_contrast(ref, y0, y1, c0, c1, sw, min_dist)
    if differs is None:
        return body
    out = body.copy()
    prev = body[max(top, bottom - 3) : bottom, c0:c1].any(axis=0)
    gap = 0
    for y in range(bottom, y1):
        row = differs[y - y0] & np.convolve(prev, np.ones(3), mode="same").astype(bool)
        if row.any():
            out[y, c0:c1] |= row.astype(np.uint8)
            prev, gap = row, 0
        else:
            gap += 1
            if gap > 1:
                break
    return out


def _extend_up(
    ref: np.ndarray,
    body: np.ndarray,
    above: float,
    head: float = 0.2,
    side: float = 0.3,
    min_dist: float = 20.0,
    slope: float = 0.06,
    line: float = 0.0,
    line_width: float = 0.04,
) -> np.ndarray:
    """Add a head that GrabCut cut off at the neck or the hair line: what sits on the body's top and
    differs from its own row of wall.

    GrabCut drops a face or hair whose colours it has filed under the wall's, and the body then ends at
    the shoulders (a box 15 % too low). Above the body's top (up to ``above`` x its height), in the
    columns of its top two rows widened by half a head (``head`` x its height) on each side, pixels that
    look like no pixel of the wall beside them (:func:`_row_unlike`, strips of ``side`` x the height;
    a striped wall's spread of colours hides nothing) join the body row by row upwards: the first row
    anywhere over the body's top (the head sits between the shoulders, across a gap at the neck), each
    next one within a pixel sideways of those joined on the row below, over gaps of one row (a hat's
    brim, a face like the wall). A head ends: above it the wall comes back. So the part is kept only
    when it is at most ``head`` x the height wide, after at most ``slope`` x the height of wider rows
    that narrow upwards (the shoulders' slope, when the body ends below them), and is followed by rows
    of wall (3 % of the height, at least 2) before ``above`` x the height or the picture's top; a
    poster, window or door over the person goes on or is wider, and then nothing is added. A body that
    already has its head gains nothing (wall above it). Nor does a line: a part that climbs at least
    ``line`` x the height with a median row width under ``line_width`` x the height is the edge of a
    poster or door over a head already found, not a head (``line`` 0: no such test).

    Returns:
        uint8 [h, w] 0/1 mask: ``body`` with the head, or ``body`` itself.
    """
    w = body.shape[1]
    ys = np.nonzero(body.any(axis=1))[0]
    if above <= 0 or len(ys) == 0:
        return body
    top, bottom = int(ys[0]), int(ys[-1]) + 1
    hh = bottom - top
    y0 = max(0, int(top - above * hh))
    if hh < 8 or top - y0 < 2:
        return body
    cols = np.nonzero(body[top : top + 2].any(axis=0))[0]
    p = max(1, int(round(0.5 * head * hh)))
    c0, c1 = max(0, int(cols[0]) - p), min(w, int(cols[-1]) + 1 + p)
    differs = _row_unlike(ref, y0, top, c0, c1, max(3, int(round(side * hh))), min_dist)
    if differs is None:
        return body
    out = body.copy()
    prev = np.zeros(c1 - c0, bool)  # the head may sit anywhere over the shoulders (a neck gap between them)
    prev[int(cols[0]) - c0 : int(cols[-1]) + 1 - c0] = True
    clear = max(2, int(round(0.03 * hh)))
    gap = False
    width = np.inf  # rows wider than a head are shoulders while they narrow, for ``slope`` x the height
    widths: list[int] = []

    def head_like(y_end: int) -> bool:
        climbed = top - y_end
        return not (line > 0 and climbed >= line * hh and float(np.median(widths)) < line_width * hh)

    for y in range(top - 1, y0 - 1, -1):
        near = np.convolve(prev, np.ones(3), mode="same").astype(bool)
        row = differs[y - y0] & near
        if not row.any() and not gap and y > y0 and (differs[y - 1 - y0] & near).any():
            gap = True  # one row like the wall (a hat's brim, the eyes) inside the head
            continue
        gap = False
        if not row.any():  # wall: the head ended here if wall goes on for ``clear`` rows
            above_rows = differs[max(0, y - y0 - clear + 1) : y - y0 + 1] & near
            ended = y - y0 + 1 >= clear and not above_rows.any() and width <= head * hh
            return out if ended and head_like(y + 1) else body
        xs = np.nonzero(row)[0]
        wide = xs[-1] + 1 - xs[0]
        if wide > head * hh and (wide > width or width <= head * hh or top - y > slope * hh):
            return body
        width = wide
        widths.append(int(wide))
        out[y, c0:c1] |= row.astype(np.uint8)
        prev = row
    return body


def _leg_only(body: np.ndarray, frame_h: int, thin: float = 0.15, short: float = 0.5) -> bool:
    """Whether ``body`` (non-empty) looks like a single leg rather than a person: narrower than ``thin`` x
    its height and shorter than ``short`` x the frame. GrabCut leaves this when its rectangle starts
    in the middle of the shirt (a patient who moves only a hand at hip height): the shirt's colour then
    lies on both sides of the rectangle's edge and is taken for background, and with it goes the rest
    of the upper body."""
    ys, xs = np.nonzero(body)
    bh, bw = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
    return bool(bw < thin * bh and bh < short * frame_h)


def _below_motion(
    body: np.ndarray, box: tuple[int, int, int, int], frame_h: int, low: float, short: float = 0.6
) -> bool:
    """Whether ``body`` (non-empty) starts more than ``low`` x its motion blob's height (``box``) under the
    blob's top while shorter than ``short`` x the frame: a hand moving over the shirt gives a blob whose
    rectangle starts mid-shirt, and GrabCut keeps a leg and the hanging arm, too wide for
    :func:`_leg_only` (``low`` 0: never)."""
    if low <= 0:
        return False
    ys = np.nonzero(body.any(axis=1))[0]
    bh = int(ys[-1]) + 1 - int(ys[0])
    return bool(bh < short * frame_h and int(ys[0]) - box[1] > low * max(1, box[3] - box[1]))


def _motion_on_body(
    body: np.ndarray, box: tuple[int, int, int, int], most: float = 0.7, fade: float = 0.2, stand: float = 0.0
) -> float:
    """Weight of a candidate (1 or less) by where its motion blob (``box``) lies against its body (non-empty):
    1 while at most ``most`` of the blob's height lies above the body's top, falling to 0 at ``most +
    fade``. A patient's arm sweeps from the shoulder, so even an arm raised over the head leaves a good
    part of its blob beside the body (at most 0.6 above its top in the development sets); a pendulum or
    lamp swinging over a cupboard or door grows a body of furniture that hangs below its blob. A blob
    more than ``stand`` x as high as wide keeps weight 1 (0: no such test): a pendulum's blob is a flat
    arc, a hand raised and lowered over the head stands."""
    if stand > 0 and box[3] - box[1] > stand * (box[2] - box[0]):
        return 1.0
    ys = np.nonzero(body.any(axis=1))[0]
    above = (int(ys[0]) - box[1]) / max(1, box[3] - box[1])
    return float(np.clip((most + fade - above) / fade, 0.0, 1.0))


def _reach_gate(body: np.ndarray, reach: float) -> np.ndarray:
    """uint8 0/1: where the moving pixels of a frame may join ``body`` (non-empty): within ``reach`` x its
    height sideways of the upper body (from 0.35 of the height above its top down to 0.6 of the height),
    and within a tenth of its height around the rest of it."""
    h, w = body.shape
    ys, xs = np.nonzero(body)
    bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    bh = by1 - by0
    r = reach * bh
    gate = np.zeros((h, w), np.uint8)
    gate[int(max(0, by0 - 0.35 * bh)) : int(by0 + 0.6 * bh), int(max(0, bx0 - r)) : int(min(w, bx1 + r))] = 1
    gate[int(by0) : int(min(h, by1 + 0.05 * bh)), int(max(0, bx0 - 0.1 * bh)) : int(min(w, bx1 + 0.1 * bh))] = 1
    return gate


def _majority(masks: list[np.ndarray]) -> np.ndarray:
    """uint8 0/1: the pixels set in more than half of ``masks`` (GrabCut runs from different random starts)."""
    votes = np.sum([m > 0 for m in masks], axis=0)
    return (2 * votes > len(masks)).astype(np.uint8)


def _plausibility(body: np.ndarray | None, frame_h: int) -> float:
    """1 for a body at least 40% of the frame high and 1.5 times higher than wide; less otherwise."""
    if body is None or not body.any():
        return 0.0
    ys, xs = np.nonzero(body)
    bh, bw = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
    return float(min(1.0, bh / (0.4 * frame_h)) * min(1.0, bh / (1.5 * bw)))


def _person_score(body: np.ndarray | None, frame_h: int, energy: float) -> float:
    """How much a candidate looks like the patient: its body's height (as a fraction of the frame; the
    patient is the main subject of the picture, so taller wins), its upright shape, and the square root of
    its motion energy (a pendulum or ball that never stops must not outweigh a patient who moves seldom)."""
    if body is None or not body.any():
        return 0.0
    ys, xs = np.nonzero(body)
    bh, bw = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
    shape = min(1.0, bh / (1.5 * bw)) * _not_a_block(body)
    return float(bh / frame_h * shape * math.sqrt(max(energy, 0.0)))


def _not_a_block(body: np.ndarray, full: float = 0.95, soft: float = 0.2) -> float:
    """1 for a segment that fills at most ``full - soft`` of its bounding box, falling to 0 at ``full``.

    A person's silhouette (head, narrow neck, arms apart from the trunk, two legs) leaves much of its
    bounding box empty; a cupboard, window or poster that GrabCut grew from a nearby motion blob fills
    its box almost completely."""
    ys, xs = np.nonzero(body)
    if len(ys) == 0:
        return 0.0
    area = (ys.max() + 1 - ys.min()) * (xs.max() + 1 - xs.min())
    return float(np.clip((full - len(ys) / area) / soft, 0.0, 1.0))


def analyse_chunk(
    frames: np.ndarray,
    scale: float,
    *,
    threshold: float = 4.0,
    min_diff: float = 12.0,
    max_shake: float = 8.0,
    reach: float = 0.45,
    max_aspect: float = 0.5,
    candidates: int = 3,
    refine: int = 2,
    band: float = 0.25,
    seed_band: float = 0.1,
    votes: int = 3,
    side_band: float = 0.1,
    block_side: float = 0.08,
    block_fill: float = 0.8,
    block_strip: float = 0.05,
    below: float = 1.5,
    above: float = 0.3,
    retry_up: float = 0.35,
    low: float = 0.25,
    sliver: float = 0.08,
    top_broad: float = 0.25,
    stand: float = 1.5,
    line: float = 0.1,
) -> tuple[np.ndarray, np.ndarray]:
    """Person boxes of a run of frames from a fixed camera (module docstring).

    Args:
        frames: uint8 [T, h, w, 3] RGB at the working resolution.
        scale: working / original resolution.
        side_band, block_side, block_fill: removal of filled blocks from the body (module docstring;
            ``side_band`` 0 turns it off).
        block_strip: the narrowest strip of a box beside the body that goes (x its height; the
            synthetic limbs are 0.049 of it, and slant or end round; 0 turns it off, see
            :func:`_drop_side_blocks`).
        below: how far under the body (x its height) legs lost by GrabCut are looked for
            (:func:`_extend_down`; 0 turns it off).
        above: how far over the body (x its height) a head lost by GrabCut is looked for
            (:func:`_extend_up`; 0 turns it off).
        retry_up: a candidate whose body looks like a single leg (:func:`_leg_only`) is segmented again
            from a rectangle starting ``retry_up`` x the frame height above its blob, and the new body
            is kept when it scores higher (0 turns it off).
        low: so is a body that starts more than ``low`` x its blob's height under the blob's top
            (:func:`_below_motion`; 0 turns it off).
        sliver: level slivers beside the body at least this long (x its height) go
            (:func:`_drop_side_blocks`; 0 turns it off).
        top_broad: a block on the head wider than this (x the height) ends where its rows narrow
            (:func:`_drop_top_block`; 0 turns it off).
        stand: a blob more than this many times as high as wide is not discounted for lying above its
            body (:func:`_motion_on_body`; 0 turns it off).
        line: a part over the body climbing at least this far (x the height) as a thin line is not a
            head (:func:`_extend_up`; 0 turns it off).

    Returns:
        ``(boxes float [T, 4] x0 y0 x1 y1 in working pixels with NaN rows, confidence float [T])``.
    """
    t_n, h = frames.shape[:2]
    boxes = np.full((t_n, 4), np.nan)
    conf = np.zeros(t_n)
    if t_n < 2:
        return boxes, conf
    masks, ref, shifts = motion_masks(frames, scale, threshold=threshold, min_diff=min_diff, max_shake=max_shake)
    motion = masks.mean(axis=0, dtype=np.float32)
    found = []

    def segment(core: np.ndarray, cbox: tuple[int, int, int, int], energy: float, up: float) -> tuple[float, Any]:
        """Mean score and majority body (None if no run found one) of ``votes`` GrabCut runs."""
        bodies, scores = [], []
        for seed in range(max(1, votes)):
            cv2.setRNGSeed(seed)  # GrabCut's k-means starts from OpenCV's global generator
            body = static_body(ref, core, cbox, max_aspect, refine=refine, band=band, seed_band=seed_band, up=up)
            if body is not None:
                bodies.append(body)
            scores.append(_person_score(body, h, energy))
        return float(np.mean(scores)), (_majority(bodies) if bodies else None)

    for core, cbox, energy in _candidates(motion, candidates):
        score, body = segment(core, cbox, energy, 0.1)
        if body is not None and body.any():
            score *= _motion_on_body(body, cbox, stand=stand)
        retry = body is not None and body.any() and (_leg_only(body, h) or _below_motion(body, cbox, h, low))
        if retry_up > 0 and retry:
            score2, body2 = segment(core, cbox, energy, retry_up)
            if body2 is not None and body2.any():
                score2 *= _motion_on_body(body2, cbox, stand=stand)
            if score2 > score and body2 is not None:
                score, body = score2, body2
        if body is not None and body.any():
            found.append((score, body))
    if not found:
        return boxes, conf
    body = max(found, key=lambda f: f[0])[1]
    if side_band > 0:
        body = _drop_side_blocks(body, side_band, block_side, block_fill, block_strip, sliver=sliver)
        body = _drop_top_block(body, broad=top_broad)
    body = _extend_down(ref, body, below)
    body = _extend_up(ref, body, above, line=line)
    plaus = _plausibility(body, h)
    gate = _reach_gate(body, reach)
    for t in range(t_n):
        m = (masks[t] & gate) | body
        _, lab = cv2.connectedComponents(cv2.dilate(m, _K3))
        keep = np.unique(lab[body > 0])
        sel = np.isin(lab, keep[keep > 0]) & (m > 0)
        ys, xs = np.nonzero(sel)
        dx, dy = shifts[t]  # back from the reference's coordinates to the (shaken) frame's
        boxes[t] = (xs.min() + dx, ys.min() + dy, xs.max() + 1 + dx, ys.max() + 1 + dy)
        conf[t] = plaus
    return boxes, conf


@register("motion")
class MotionProvider(RoiProvider):
    """Fixed-camera person finder from motion and colour (module docstring); no extra dependency."""

    #: 2: the body is segmented again around its own axis (``refine``); candidates scored by height
    #: 3: filled blocks are not people; the segment touching the blob that looks most like a person wins;
    #: ``votes`` GrabCut runs from fixed random starts, majority body (deterministic)
    #: 4: filled blocks beside the body's axis band (``side_band``) or on top of its head are removed
    #: 5: legs that GrabCut lost against the wall or floor are found under the body (``below``)
    #: 6: a head that GrabCut lost against the wall is found over the body (``above``)
    #: 7: a body like a single leg is segmented again from a higher rectangle (``retry_up``)
    #: 8: a candidate whose motion lies mostly above its body (a pendulum over furniture) scores less
    #: 9: a refinement that kept a block or a piece tries the body's next axes; heads over the shoulders and
    #: on striped walls (``_row_unlike``)
    #: 10: straight strips of boxes or posters beside the body are removed (``block_strip``)
    #: 11: a body under its own motion is retried higher (``low``), level slivers beside it go (``sliver``),
    #: a broad block on the head ends where its rows narrow (``top_broad``), a standing blob over the head
    #: is not discounted (``stand``), a thin line is not a head (``line``)
    version: ClassVar[int] = 11
    defaults: ClassVar[dict[str, Any]] = {
        "work_side": 160,
        "chunk": 900,
        "threshold": 4.0,
        "min_diff": 12.0,
        "max_shake": 8.0,
        "reach": 0.45,
        "max_aspect": 0.5,
        "candidates": 3,
        "refine": 2,
        "band": 0.25,
        "seed_band": 0.1,
        "votes": 3,
        "side_band": 0.1,
        "block_side": 0.08,
        "block_fill": 0.8,
        "block_strip": 0.05,
        "below": 1.5,
        "above": 0.3,
        "retry_up": 0.35,
        "low": 0.25,
        "sliver": 0.08,
        "top_broad": 0.25,
        "stand": 1.5,
        "line": 0.1,
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if int(self.params["work_side"]) < 32:
            raise RoiError("motion parameter work_side must be at least 32 pixels")
        if int(self.params["chunk"]) < 16:
            raise RoiError("motion parameter chunk must be at least 16 frames")

    def raw(self, reader: VideoReader) -> Job[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        p = self.params
        n = reader.frame_count
        (ww, wh), scale = _work_size(reader.size, int(p["work_side"]))
        chunk = int(p["chunk"])
        starts = list(range(0, n, chunk))
        if len(starts) > 1 and n - starts[-1] < chunk // 3:  # no tiny last chunk: merge it
            starts.pop()
        ends = [*starts[1:], n]
        boxes = np.full((n, 4), np.nan)
        conf = np.zeros(n)
        kw = {k: p[k] for k in ("threshold", "min_diff", "max_shake", "reach", "max_aspect")}
        for a, b in zip(starts, ends):
            buf = np.empty((b - a, wh, ww, 3), np.uint8)
            for i, frame in reader.iter_frames(a, b):
                buf[i - a] = cv2.resize(frame, (ww, wh), interpolation=cv2.INTER_AREA)
                if (i - a) % 50 == 0:
                    yield Progress(i, n, "motion: reading frames")
            yield Progress(a + (b - a) // 2, n, "motion: finding the person")
            cb, cc = analyse_chunk(
                buf,
                scale,
                candidates=int(p["candidates"]),
                refine=int(p["refine"]),
                band=float(p["band"]),
                seed_band=float(p["seed_band"]),
                votes=int(p["votes"]),
                side_band=float(p["side_band"]),
                block_side=float(p["block_side"]),
                block_fill=float(p["block_fill"]),
                block_strip=float(p["block_strip"]),
                below=float(p["below"]),
                above=float(p["above"]),
                retry_up=float(p["retry_up"]),
                low=float(p["low"]),
                sliver=float(p["sliver"]),
                top_broad=float(p["top_broad"]),
                stand=float(p["stand"]),
                line=float(p["line"]),
                **kw,
            )
            w, h = reader.size
            boxes[a:b] = cb * (w / ww, h / wh, w / ww, h / wh)
            conf[a:b] = cc
        yield Progress(n, n, "motion: done")
        return boxes, conf, None
