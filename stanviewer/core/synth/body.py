"""A person-like figure doing a shoulder exercise, with or without trunk compensation.

The figure is a 3-D stick body with thickness (head, neck, trunk, two arms, two legs) posed from a few
angles, projected orthographically from the front, the side or an oblique angle, and drawn with
OpenCV. World axes: X to the subject's left-right, Y up, Z forward (towards a frontal camera); lengths
in "body units" where the standing height is about 1.75.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

JOINTS = (
    "head",
    "neck",
    "shoulder_l",
    "shoulder_r",
    "elbow_l",
    "elbow_r",
    "wrist_l",
    "wrist_r",
    "pelvis",
    "hip_l",
    "hip_r",
    "knee_l",
    "knee_r",
    "ankle_l",
    "ankle_r",
    "toe_l",
    "toe_r",
)
J = {name: i for i, name in enumerate(JOINTS)}

SKIN_TONES = [
    (255, 224, 196),
    (241, 194, 160),
    (224, 172, 130),
    (198, 134, 96),
    (160, 102, 66),
    (110, 70, 45),
    (233, 185, 150),
    (250, 210, 180),
]


@dataclass
class Body:
    """Proportions and colours of one subject (body units; colours RGB)."""

    trunk: float = 0.55
    neck: float = 0.08
    head_r: float = 0.11
    shoulder_half: float = 0.2
    hip_half: float = 0.12
    upper_arm: float = 0.3
    forearm: float = 0.28
    thigh: float = 0.45
    shin: float = 0.43
    foot: float = 0.14
    limb_w: float = 0.085  # limb thickness
    trunk_depth: float = 0.22
    skin: tuple[int, int, int] = (224, 172, 130)
    shirt: tuple[int, int, int] = (40, 90, 160)
    trousers: tuple[int, int, int] = (50, 50, 60)
    hair: tuple[int, int, int] = (40, 30, 20)
    long_sleeves: bool = False

    @property
    def leg(self) -> float:
        return self.thigh + self.shin

    @classmethod
    def random(cls, rng: np.random.Generator) -> Body:
        s = rng.uniform(0.9, 1.1)  # overall build
        w = rng.uniform(0.85, 1.25)  # width / body thickness

        def col() -> tuple[int, int, int]:
            hsv = np.uint8([[[rng.integers(0, 180), rng.integers(40, 230), rng.integers(50, 230)]]])
            r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
            return int(r), int(g), int(b)

        return cls(
            trunk=0.55 * s * rng.uniform(0.92, 1.08),
            neck=0.08 * s,
            head_r=0.11 * s * rng.uniform(0.92, 1.08),
            shoulder_half=0.2 * s * w * rng.uniform(0.95, 1.05),
            hip_half=0.12 * s * w,
            upper_arm=0.3 * s * rng.uniform(0.93, 1.07),
            forearm=0.28 * s * rng.uniform(0.93, 1.07),
            thigh=0.45 * s * rng.uniform(0.95, 1.05),
            shin=0.43 * s * rng.uniform(0.95, 1.05),
            foot=0.14 * s,
            limb_w=0.085 * s * w,
            trunk_depth=0.22 * s * w,
            skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
            shirt=col(),
            trousers=col(),
            hair=tuple(int(c) for c in rng.integers(10, 120, 3)),  # type: ignore[arg-type]
            long_sleeves=bool(rng.random() < 0.5),
        )


@dataclass
class Pose:
    """Angles of one frame (degrees) and shoulder elevations (body units)."""

    lean_lateral: float = 0.0  # + towards the subject's X+ side
    lean_forward: float = 0.0  # + forward (Z+), - backward
    rotation: float = 0.0  # axial trunk rotation about the trunk axis
    hike_l: float = 0.0
    hike_r: float = 0.0
    arm_l: tuple[float, float] = (0.0, 0.0)  # (flexion, abduction) of the left arm, relative to the trunk
    arm_r: tuple[float, float] = (0.0, 0.0)
    elbow_bend: float = 10.0
    head_tilt: float = 0.0
    extra: dict = field(default_factory=dict)


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _arm_dir(flex: float, abd: float, side: float) -> np.ndarray:
    """Unit direction of an arm raised by flexion (forward-up) and abduction (sideways-up)."""
    f, a = math.radians(flex), math.radians(abd)
    d = np.array([side * math.sin(a) * math.cos(f), -math.cos(a) * math.cos(f), math.sin(f)])
    return d / np.linalg.norm(d)


def joints_3d(body: Body, pose: Pose) -> np.ndarray:
    """World positions of :data:`JOINTS` (float [17, 3]); feet on Y = 0."""
    P = np.zeros((len(JOINTS), 3))
    pelvis = np.array([0.0, body.leg + 0.03, 0.0])
    R = (
        _rot_z(math.radians(pose.lean_lateral))
        @ _rot_x(math.radians(pose.lean_forward))
        @ _rot_y(math.radians(pose.rotation))
    )
    up, right, fwd = R @ np.array([0, 1.0, 0]), R @ np.array([1.0, 0, 0]), R @ np.array([0, 0, 1.0])
    neck = pelvis + up * body.trunk
    P[J["pelvis"]] = pelvis
    P[J["neck"]] = neck
    tilt = _rot_z(math.radians(pose.head_tilt)) @ up
    P[J["head"]] = neck + tilt * (body.neck + body.head_r)
    for side, name, hike, arm in ((1.0, "l", pose.hike_l, pose.arm_l), (-1.0, "r", pose.hike_r, pose.arm_r)):
        sh = neck + right * side * body.shoulder_half - up * 0.03 + up * hike
        d_local = _arm_dir(arm[0], arm[1], side)
        d = R @ d_local
        elbow = sh + d * body.upper_arm
        bend = math.radians(pose.elbow_bend)
        fore = R @ _arm_dir(arm[0] + math.degrees(bend), arm[1], side)
        wrist = elbow + fore * body.forearm
        P[J[f"shoulder_{name}"]], P[J[f"elbow_{name}"]], P[J[f"wrist_{name}"]] = sh, elbow, wrist
        hip = pelvis + np.array([side * body.hip_half, -0.02, 0.0])
        knee = hip + np.array([side * 0.01, -body.thigh, 0.0])
        ankle = knee + np.array([0.0, -body.shin, 0.0])
        P[J[f"hip_{name}"]], P[J[f"knee_{name}"]], P[J[f"ankle_{name}"]] = hip, knee, ankle
        P[J[f"toe_{name}"]] = ankle + np.array([0.0, -0.02, body.foot])
    del fwd
    return P


@dataclass
class Camera:
    """Orthographic camera: ``yaw`` 0 = frontal, 90 = from the subject's side; scale in px per unit."""

    yaw: float
    scale: float
    cx: float  # image x of the body's vertical axis
    floor_y: float  # image y of the floor line under the feet

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Image coordinates [N, 2] and depth towards the camera [N]."""
        R = _rot_y(math.radians(-self.yaw))
        q = pts @ R.T
        xy = np.stack([self.cx + q[:, 0] * self.scale, self.floor_y - q[:, 1] * self.scale], axis=1)
        return xy, q[:, 2]


def _shade(color: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(max(0, min(255, c * f))) for c in color)  # type: ignore[return-value]


SHIFT = 4  # sub-pixel drawing precision for cv2 (coordinates * 16)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * (1 << SHIFT))), int(round(p[1] * (1 << SHIFT)))


def draw_body(img: np.ndarray, body: Body, pose: Pose, cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Draw the figure into ``img`` (RGB uint8, in place).

    Returns:
        joints: image coordinates of :data:`JOINTS` [17, 2].
        box: tight bounding box ``[x0, y0, x1, y1]`` of everything drawn (float, unclipped).
    """
    P3 = joints_3d(body, pose)
    xy, depth = cam.project(P3)
    s = cam.scale
    lw = max(2, int(round(body.limb_w * s)))
    parts: list[tuple[float, str, tuple]] = []

    def seg(a: str, b: str, color: tuple[int, int, int], width: int) -> None:
        parts.append((float(depth[J[a]] + depth[J[b]]) / 2, "seg", (J[a], J[b], color, width)))

    sleeve = body.shirt if body.long_sleeves else body.skin
    for n in ("l", "r"):
        seg(f"hip_{n}", f"knee_{n}", body.trousers, int(lw * 1.35))
        seg(f"knee_{n}", f"ankle_{n}", body.trousers, int(lw * 1.2))
        seg(f"ankle_{n}", f"toe_{n}", _shade(body.trousers, 0.5), max(2, int(lw * 0.8)))
        seg(f"shoulder_{n}", f"elbow_{n}", body.shirt, lw)
        seg(f"elbow_{n}", f"wrist_{n}", sleeve, max(2, int(lw * 0.85)))
    trunk_depth = float(np.mean(depth[[J["neck"], J["pelvis"]]]))
    parts.append((trunk_depth, "trunk", ()))
    parts.append((float(depth[J["head"]]) + 0.01, "head", ()))
    parts.sort(key=lambda t: t[0])
    near = float(depth.max())
    far = float(depth.min())
    span = max(1e-6, near - far)
    extents: list[tuple[np.ndarray, float]] = []  # (points, half width) of every drawn primitive, for the box
    for d, kind, args in parts:
        f = 0.8 + 0.2 * (d - far) / span  # farther parts slightly darker
        if kind == "seg":
            a, b, color, width = args
            cv2.line(img, _pt(xy[a]), _pt(xy[b]), _shade(color, f), width, cv2.LINE_AA, SHIFT)
            extents.append((xy[[a, b]], width / 2))
        elif kind == "trunk":
            poly = np.array([_pt(xy[J[k]]) for k in ("shoulder_l", "shoulder_r", "hip_r", "hip_l")], np.int32)
            cv2.fillConvexPoly(img, poly, _shade(body.shirt, f), cv2.LINE_AA, SHIFT)
            extents.append((xy[[J[k] for k in ("shoulder_l", "shoulder_r", "hip_r", "hip_l")]], 0.5))
            width = max(3, int(round(body.trunk_depth * s * abs(math.sin(math.radians(cam.yaw))) + lw)))
            top = xy[J["neck"]] * 0.85 + xy[J["pelvis"]] * 0.15
            cv2.line(img, _pt(top), _pt(xy[J["pelvis"]]), _shade(body.shirt, f), width, cv2.LINE_AA, SHIFT)
            cv2.line(
                img, _pt(xy[J["shoulder_l"]]), _pt(xy[J["shoulder_r"]]), _shade(body.shirt, f), lw, cv2.LINE_AA, SHIFT
            )
            neck_top = xy[J["head"]] * 0.4 + xy[J["neck"]] * 0.6
            cv2.line(img, _pt(xy[J["neck"]]), _pt(neck_top), body.skin, max(2, int(lw * 0.8)), cv2.LINE_AA, SHIFT)
            extents.append((np.stack([top, xy[J["pelvis"]]]), width / 2))
            extents.append((xy[[J["shoulder_l"], J["shoulder_r"]]], lw / 2))
            extents.append((np.stack([xy[J["neck"]], neck_top]), max(2, int(lw * 0.8)) / 2))
        else:
            r = max(2, int(round(body.head_r * s)))
            c = _pt(xy[J["head"]])
            cv2.circle(img, c, r << SHIFT, body.skin, -1, cv2.LINE_AA, SHIFT)
            cv2.ellipse(img, c, (r << SHIFT, r << SHIFT), 0, 180, 360, body.hair, -1, cv2.LINE_AA, SHIFT)
            extents.append((xy[[J["head"]]], float(r)))
    # The box is the union of what was drawn: every line's end points grown by half its thickness (cv2 draws
    # round caps) plus one pixel of anti-aliasing, the trunk polygon and the head disc. A point drawn at x
    # lights pixel x, which covers [x, x + 1) in box coordinates: hence the half-pixel shift.
    aa = 1.0
    lo = np.min([p.min(axis=0) - hw - aa for p, hw in extents], axis=0) + 0.5
    hi = np.max([p.max(axis=0) + hw + aa for p, hw in extents], axis=0) + 0.5
    box = np.array([lo[0], lo[1], hi[0], hi[1]], dtype=np.float64)
    return xy, box
