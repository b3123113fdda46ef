"""Random draws shared by the procedural scene builders (colours, textured materials, footprints)."""
from __future__ import annotations

import colorsys
import math
from typing import Sequence, Tuple

import numpy as np

from .camera import Vec3
from .scene import Box, Material


def _hsv(rng: np.random.Generator, h: Tuple[float, float], s: Tuple[float, float], v: Tuple[float, float]) -> Vec3:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(*h) % 1.0, rng.uniform(*s), rng.uniform(*v))
    return (float(r), float(g), float(b))


def _shade(c: Vec3, k: float) -> Vec3:
    return (min(1.0, c[0] * k), min(1.0, c[1] * k), min(1.0, c[2] * k))


def _surface(rng: np.random.Generator, choices: Sequence[str], hue=(0.0, 1.0), sat=(0.05, 0.5), val=(0.35, 0.9),
             scale=(0.1, 0.6), contrast=(0.55, 0.85)) -> Material:
    tex = str(rng.choice(list(choices)))
    c1 = _hsv(rng, hue, sat, val)
    c2 = _shade(c1, rng.uniform(*contrast)) if rng.random() < 0.7 else _hsv(rng, hue, sat, val)
    return Material(c1, c2, tex, float(rng.uniform(*scale)), float(rng.uniform(0.08, 0.3)))


def _footprint_distance(box: Box, xy: Sequence[float]) -> float:
    """Horizontal distance from a point to a (yaw-only) box's footprint."""
    cyaw, syaw = math.cos(box.yaw), math.sin(box.yaw)
    dx, dy = xy[0] - box.center[0], xy[1] - box.center[1]
    lx, ly = cyaw * dx + syaw * dy, -syaw * dx + cyaw * dy
    ex = max(abs(lx) - box.size[0] / 2, 0.0)
    ey = max(abs(ly) - box.size[1] / 2, 0.0)
    return math.hypot(ex, ey)
