"""Backgrounds (rooms), lighting, background distractors, camera shake and sensor noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from stanviewer.core.synth.body import Body, Camera, Pose, draw_body


def _rand_color(rng: np.random.Generator, lo: int = 60, hi: int = 230) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(lo, hi, 3))  # type: ignore[return-value]


def make_room(rng: np.random.Generator, w: int, h: int, floor_y: float) -> np.ndarray:
    """A static room: textured wall, floor, furniture. RGB uint8 [h, w, 3]."""
    img = np.empty((h, w, 3), np.uint8)
    wall = np.array(_rand_color(rng, 90, 235), np.float32)
    kind = rng.integers(5)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.ones((h, w, 1), np.float32) * wall
    grad = 1.0 + rng.uniform(-0.25, 0.25) * (xx / w - 0.5) + rng.uniform(-0.2, 0.2) * (yy / h - 0.5)
    base *= grad[..., None]
    if kind == 1:  # stripes (wallpaper)
        period = rng.uniform(6, 30)
        base *= (1 + 0.12 * np.sign(np.sin(2 * math.pi * xx / period)))[..., None]
    elif kind == 2:  # tiles
        p = rng.uniform(10, 40)
        grid = ((np.mod(xx, p) < 1.5) | (np.mod(yy, p) < 1.5)).astype(np.float32)
        base *= (1 - 0.25 * grid)[..., None]
    elif kind == 3:  # blotchy texture
        noise = rng.normal(0, 1, (max(2, h // 8), max(2, w // 8))).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        base *= (1 + 0.08 * noise)[..., None]
    elif kind == 4:  # bricks
        bh = rng.uniform(8, 16)
        row = np.floor(yy / bh)
        bw = bh * 2.5
        off = (row % 2) * bw / 2
        mortar = (np.mod(yy, bh) < 1.2) | (np.mod(xx + off, bw) < 1.2)
        base *= (1 - 0.3 * mortar.astype(np.float32))[..., None]
    img[:] = np.clip(base, 0, 255).astype(np.uint8)
    fy = int(min(h - 1, floor_y + rng.uniform(-0.05, 0.08) * h))
    floor = np.array(_rand_color(rng, 50, 200), np.float32)
    img[fy:] = floor.astype(np.uint8)
    if rng.random() < 0.6:  # planks
        for x in np.arange(rng.uniform(0, 30), w, rng.uniform(15, 40)):
            cv2.line(img, (int(x), fy), (int(x + (x - w / 2) * 0.5), h), _shade(floor, 0.8), 1)
    cv2.line(img, (0, fy), (w, fy), _shade(floor, 0.6), max(1, h // 120))
    for _ in range(int(rng.integers(1, 5))):  # furniture, windows, posters, door frames
        fw, fh = rng.uniform(0.08, 0.3) * w, rng.uniform(0.1, 0.5) * h
        x0 = rng.uniform(-0.05, 0.95) * w
        y0 = rng.uniform(0.05, 0.9) * fy - fh * 0.3
        color = _rand_color(rng, 30, 250)
        p0 = (int(x0), int(y0))
        p1 = (int(x0 + fw), int(min(fy + 0.05 * h, y0 + fh)))
        cv2.rectangle(img, p0, p1, color, -1)
        cv2.rectangle(img, p0, p1, _shade(np.array(color, np.float32), 0.6), max(1, h // 150))
        if rng.random() < 0.4:  # window bars / shelves
            cv2.line(img, ((p0[0] + p1[0]) // 2, p0[1]), ((p0[0] + p1[0]) // 2, p1[1]), (240, 240, 240), 1)
            cv2.line(img, (p0[0], (p0[1] + p1[1]) // 2), (p1[0], (p0[1] + p1[1]) // 2), (240, 240, 240), 1)
    return cv2.GaussianBlur(img, (3, 3), 0)


def _shade(c: np.ndarray, f: float) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(c) * f, 0, 255))  # type: ignore[return-value]


@dataclass
class Distractor:
    """Something moving in the background that is not the patient."""

    kind: str  # "ball", "walker", "pendulum", "screen"
    params: dict

    @classmethod
    def random(cls, rng: np.random.Generator, w: int, h: int, floor_y: float) -> Distractor:
        kind = str(rng.choice(["ball", "walker", "pendulum", "screen"]))
        p: dict = {
            "color": _rand_color(rng, 20, 250),
            "speed": rng.uniform(0.05, 0.25),
            "phase": rng.uniform(0, 1),
            "y": rng.uniform(0.1, 0.6) * h,
            "x": rng.uniform(0.05, 0.95) * w,
            "size": rng.uniform(0.03, 0.07) * h,
        }
        if kind == "walker":
            p["body"] = Body.random(rng)
            p["scale"] = rng.uniform(0.18, 0.3) * h / 1.75
            p["floor"] = floor_y - rng.uniform(0.1, 0.25) * h
        return cls(kind, p)

    def draw(self, img: np.ndarray, t: float) -> None:
        p = self.params
        h, w = img.shape[:2]
        if self.kind == "ball":
            ph = (p["phase"] + t * p["speed"] * 2) % 2
            x = w * (ph if ph < 1 else 2 - ph)
            y = p["y"] + abs(math.sin(t * 3 + p["phase"] * 6)) * -0.1 * h
            cv2.circle(img, (int(x), int(y)), int(p["size"]), p["color"], -1, cv2.LINE_AA)
        elif self.kind == "walker":
            ph = (p["phase"] + t * p["speed"]) % 2
            cx = -0.1 * w + 1.2 * w * (ph if ph < 1 else 2 - ph)
            swing = 30 * math.sin(t * 6)
            pose = Pose(arm_l=(swing, 5), arm_r=(-swing, 5))
            draw_body(img, p["body"], pose, Camera(yaw=90, scale=p["scale"], cx=cx, floor_y=p["floor"]))
        elif self.kind == "pendulum":
            ang = 0.6 * math.sin(t * 2 * math.pi * p["speed"] * 3 + p["phase"] * 6)
            x0, y0 = p["x"], 0.02 * h
            L = 0.25 * h
            x1, y1 = x0 + L * math.sin(ang), y0 + L * math.cos(ang)
            cv2.line(img, (int(x0), int(y0)), (int(x1), int(y1)), (60, 60, 60), 1, cv2.LINE_AA)
            cv2.circle(img, (int(x1), int(y1)), int(p["size"] * 0.7), p["color"], -1, cv2.LINE_AA)
        else:  # a screen or window whose brightness changes
            k = 0.5 + 0.5 * math.sin(t * 2 * math.pi * p["speed"] * 4 + p["phase"] * 6)
            s = int(p["size"] * 2)
            color = tuple(int(c * (0.4 + 0.6 * k)) for c in p["color"])
            cv2.rectangle(img, (int(p["x"]), int(p["y"])), (int(p["x"]) + s * 2, int(p["y"]) + s), color, -1)


class Sensor:
    """Lighting drift, camera shake and noise applied to every frame."""

    def __init__(self, rng: np.random.Generator, w: int, h: int, n_frames: int, fps: float) -> None:
        self.w, self.h = w, h
        self.margin = 4
        self.noise_sigma = rng.uniform(1.5, 6.0)
        self.light_amp = rng.uniform(0.0, 0.15)
        self.light_period = rng.uniform(4.0, 20.0)
        self.light_phase = rng.uniform(0, 2 * math.pi)
        self.fps = fps
        shake = rng.uniform(0.0, 1.5)
        steps = rng.normal(0, 1, (n_frames, 2)) * shake * 0.5
        walk = np.cumsum(steps, axis=0)
        walk -= np.linspace(0, 1, n_frames)[:, None] * walk[-1:]  # no long drift
        self.offsets = np.clip(np.round(walk), -self.margin, self.margin).astype(int)
        bank = rng.normal(0, self.noise_sigma, (4, h, w, 3))
        self.noise = np.clip(bank, -127, 127).astype(np.int16)
        self._rng = rng

    def apply(self, canvas: np.ndarray, i: int) -> np.ndarray:
        """Crop the shaken view out of the canvas, relight it and add noise."""
        m = self.margin
        dx, dy = self.offsets[i]
        frame = canvas[m + dy : m + dy + self.h, m + dx : m + dx + self.w]
        gain = 1.0 + self.light_amp * math.sin(2 * math.pi * i / self.fps / self.light_period + self.light_phase)
        noise = self.noise[i % len(self.noise)]
        if i % 2:
            noise = noise[::-1]
        out = frame.astype(np.int16)
        if abs(gain - 1.0) > 1e-3:
            out = (out * gain).astype(np.int16)
        out += noise
        return np.clip(out, 0, 255).astype(np.uint8)
