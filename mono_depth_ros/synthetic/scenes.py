"""Procedural scenes: the indoor room and outdoor road builders and :func:`random_scene` (all kinds;
the street kind lives in :mod:`mono_depth_ros.synthetic.street`)."""
from __future__ import annotations

import math
from typing import List, Optional, Tuple, Union

import numpy as np

from .camera import CameraPose, Vec3
from .materials import _footprint_distance, _hsv, _shade, _surface
from .scene import DEFAULT_FAR, DEFAULT_HFOV_DEG, KINDS, _KIND_IDS, Box, Light, Material, Plane, Road, Room, Scene
from .street import _street_scene


def _rng_for(kind: str, seed: int, index: int) -> np.random.Generator:
    if kind not in _KIND_IDS:
        raise ValueError(f"unknown scene kind {kind!r}; known: {', '.join(KINDS)}")
    if int(seed) < 0 or int(index) < 0:
        raise ValueError("seed and index must be >= 0")
    return np.random.default_rng([_KIND_IDS[kind], int(seed), int(index)])


def _indoor_scene(rng: np.random.Generator) -> Scene:
    length, width, height = rng.uniform(4.0, 9.0), rng.uniform(3.0, 7.0), rng.uniform(2.4, 3.2)
    half_w = width / 2.0
    wall = _surface(rng, ["flat", "flat", "stripes", "noise", "checker"], scale=(0.08, 0.4), val=(0.5, 0.95))
    accent = _surface(rng, ["flat", "stripes", "noise", "checker"], scale=(0.08, 0.4)) if rng.random() < 0.4 else wall
    floor = _surface(rng, ["checker", "planks", "planks", "noise"], hue=(0.02, 0.15), sat=(0.1, 0.6),
                     val=(0.25, 0.8), scale=(0.12, 0.6))
    ceiling = Material(_hsv(rng, (0, 1), (0.0, 0.08), (0.8, 0.97)), (0.7, 0.7, 0.7), "flat", 1.0, 0.05)
    walls = [wall, wall, wall, wall]
    walls[int(rng.integers(0, 4))] = accent
    boxes: List[Box] = [Room((length / 2, 0.0, height / 2), (length, width, height),
                             tuple(walls) + (floor, ceiling))]

    cam_xy = (rng.uniform(0.3, 0.3 * length), rng.uniform(-0.6, 0.6) * (half_w - 0.4))
    cam = CameraPose((cam_xy[0], cam_xy[1], rng.uniform(1.0, 1.7)), yaw=rng.uniform(-0.55, 0.55),
                     pitch=rng.uniform(-0.05, 0.35), roll=rng.normal(0.0, 0.02))

    _indoor_furniture(rng, boxes, length, half_w, cam_xy)
    _indoor_decor(rng, boxes, length, width, height, half_w)

    lamp_xy = (rng.uniform(0.3, 0.7) * length, rng.uniform(-0.5, 0.5) * width)
    boxes.append(Box((lamp_xy[0], lamp_xy[1], height - 0.04), (0.5, 0.5, 0.08),
                     material=Material((0.97, 0.95, 0.85), (0.9, 0.9, 0.9), "flat", 1.0, 0.0), label="lamp"))
    light = Light(ambient=rng.uniform(0.25, 0.4), direction=(rng.uniform(-1, 1), rng.uniform(-1, 1), 1.5),
                  directional=rng.uniform(0.15, 0.3), position=(lamp_xy[0], lamp_xy[1], height - 0.25),
                  point=rng.uniform(1.2, 2.2), falloff=rng.uniform(2.5, 4.5))
    return Scene("indoor", [], boxes, cam, light, far=DEFAULT_FAR["indoor"], sky_horizon=(0.1, 0.1, 0.1),
                 sky_zenith=(0.1, 0.1, 0.1), exposure=float(rng.uniform(0.85, 1.15)),
                 noise_sigma=float(rng.uniform(0.8, 3.0)), grain_cell=0.03, hfov_deg=DEFAULT_HFOV_DEG["indoor"])


def _place(rng: np.random.Generator, length: float, half_w: float, cam_xy: Tuple[float, float], size: Vec3,
           against_wall: bool) -> Optional[Tuple[float, float, float]]:
    """A spot (x, y, yaw) for an item of ``size`` in the room (against a wall or free-standing) at least
    0.8 m from the camera; None after 12 tries."""
    for _ in range(12):
        if against_wall:
            side = int(rng.integers(0, 3))   # front, left or right wall
            yaw = (0.0, math.pi / 2, -math.pi / 2)[side] + rng.normal(0, 0.03)
            if side == 0:
                x, y = length - size[1] / 2 - 0.02, rng.uniform(-half_w + size[0] / 2, half_w - size[0] / 2)
            else:
                sgn = 1.0 if side == 1 else -1.0
                x, y = rng.uniform(size[0] / 2, length - size[0] / 2), sgn * (half_w - size[1] / 2 - 0.02)
            yaw_use = yaw
        else:
            x, y = rng.uniform(0.5, length - 0.5), rng.uniform(-half_w + 0.5, half_w - 0.5)
            yaw_use = rng.uniform(-math.pi, math.pi) if rng.random() < 0.5 else rng.normal(0, 0.05)
        probe = Box((x, y, 0.0), size, yaw=yaw_use)
        if _footprint_distance(probe, cam_xy) > 0.8:
            return x, y, yaw_use
    return None


def _indoor_furniture(rng: np.random.Generator, boxes: List[Box], length: float, half_w: float,
                      cam_xy: Tuple[float, float]) -> None:
    """Tables (with legs), cabinets, sofas, chairs, shelves and crates, appended to ``boxes``."""
    n_items = int(rng.integers(3, 10))
    for _ in range(n_items):
        kind = str(rng.choice(["table", "cabinet", "sofa", "chair", "shelf", "crate"]))
        mat = _surface(rng, ["flat", "planks", "noise", "checker", "stripes"], scale=(0.05, 0.3))
        if kind == "table":
            sx, sy, top = rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.1), rng.uniform(0.68, 0.8)
            pos = _place(rng, length, half_w, cam_xy, (sx, sy, top), False)
            if pos is None:
                continue
            x, y, yaw = pos
            boxes.append(Box((x, y, top - 0.025), (sx, sy, 0.05), yaw=yaw, material=mat, label="table"))
            cyaw, syaw = math.cos(yaw), math.sin(yaw)
            for lx in (-sx / 2 + 0.05, sx / 2 - 0.05):
                for ly in (-sy / 2 + 0.05, sy / 2 - 0.05):
                    boxes.append(Box((x + cyaw * lx - syaw * ly, y + syaw * lx + cyaw * ly, (top - 0.05) / 2),
                                     (0.06, 0.06, top - 0.05), yaw=yaw, material=mat, label="leg"))
            continue
        size, wall_side = {
            "cabinet": ((rng.uniform(0.6, 1.8), rng.uniform(0.4, 0.6), rng.uniform(0.8, 2.1)), True),
            "sofa": ((rng.uniform(1.5, 2.4), rng.uniform(0.8, 1.0), rng.uniform(0.4, 0.9)), rng.random() < 0.6),
            "chair": ((rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.45, 1.0)), False),
            "shelf": ((rng.uniform(0.6, 1.2), rng.uniform(0.25, 0.4), rng.uniform(1.5, 2.3)), True),
            "crate": ((rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.8)), False),
        }[kind]
        pos = _place(rng, length, half_w, cam_xy, size, wall_side)
        if pos is None:
            continue
        x, y, yaw = pos
        boxes.append(Box((x, y, size[2] / 2), size, yaw=yaw, material=mat, label=kind))


def _indoor_decor(rng: np.random.Generator, boxes: List[Box], length: float, width: float, height: float,
                  half_w: float) -> None:
    """Wall decor: paintings, windows, doors (thin boxes on the walls), appended to ``boxes``."""
    for _ in range(int(rng.integers(1, 5))):
        deco = str(rng.choice(["painting", "window", "door"]))
        side = int(rng.integers(0, 4))
        if deco == "door":
            sw, sh, z0 = rng.uniform(0.8, 1.0), rng.uniform(1.95, 2.1), 0.0
        elif deco == "window":
            sw, sh, z0 = rng.uniform(0.8, 2.0), rng.uniform(0.9, 1.4), rng.uniform(0.8, 1.0)
        else:
            sw, sh, z0 = rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.9), rng.uniform(1.2, 1.6)
        sh = min(sh, height - z0 - 0.1)
        mat = (Material(_hsv(rng, (0.5, 0.65), (0.1, 0.4), (0.75, 1.0)), (0.3, 0.3, 0.35), "checker",
                        float(rng.uniform(0.3, 0.6)), 0.05) if deco == "window" else
               _surface(rng, ["flat", "noise", "checker", "stripes", "planks"], sat=(0.1, 0.9), scale=(0.03, 0.25)))
        thick = 0.04
        if side < 2:   # walls at x = 0 (back) / x = length (front), spanning y
            span = width - sw - 0.2
            if span <= 0:
                continue
            y = rng.uniform(-span / 2, span / 2)
            x = thick / 2 if side == 0 else length - thick / 2
            boxes.append(Box((x, y, z0 + sh / 2), (thick, sw, sh), material=mat, label=deco))
        else:          # walls at y = -half_w / +half_w, spanning x
            span = length - sw - 0.2
            if span <= 0:
                continue
            x = rng.uniform(0.1 + sw / 2, length - 0.1 - sw / 2)
            y = (-half_w + thick / 2) if side == 2 else (half_w - thick / 2)
            boxes.append(Box((x, y, z0 + sh / 2), (sw, thick, sh), material=mat, label=deco))


def _outdoor_scene(rng: np.random.Generator) -> Scene:
    road = Road(n_lanes=int(rng.integers(2, 5)), lane_width=float(rng.uniform(3.0, 3.7)),
                line_width=float(rng.uniform(0.12, 0.18)), dash_length=float(rng.uniform(2.0, 4.0)),
                dash_period=float(rng.uniform(8.0, 14.0)))
    hw = road.half_width
    asphalt = _hsv(rng, (0.55, 0.7), (0.0, 0.08), (0.22, 0.42))
    ground = Plane((0.0, 0.0, 1.0), 0.0, Material(asphalt, (0.92, 0.92, 0.88), "road", 1.0,
                                                  float(rng.uniform(0.1, 0.3))), label="road")
    boxes: List[Box] = []
    x_min, x_max = -40.0, 220.0
    lane = int(rng.integers(0, road.n_lanes))
    cam_y = -hw + (lane + 0.5) * road.lane_width + rng.normal(0.0, 0.25)
    cam = CameraPose((0.0, cam_y, rng.uniform(1.4, 1.9)), yaw=rng.normal(0.0, 0.08),
                     pitch=rng.uniform(-0.03, 0.07), roll=rng.normal(0.0, 0.015))


    for sgn in (-1.0, 1.0):
        _outdoor_roadside(rng, boxes, sgn, hw, x_min, x_max)
    _outdoor_cars(rng, boxes, road, hw, cam_y)

    sun_el, sun_az = rng.uniform(0.3, 1.2), rng.uniform(-math.pi, math.pi)
    light = Light(ambient=rng.uniform(0.35, 0.55),
                  direction=(math.cos(sun_el) * math.cos(sun_az), math.cos(sun_el) * math.sin(sun_az), math.sin(sun_el)),
                  directional=rng.uniform(0.4, 0.7))
    horizon = _hsv(rng, (0.5, 0.62), (0.02, 0.2), (0.75, 0.95))
    zenith = _hsv(rng, (0.55, 0.64), (0.3, 0.7), (0.6, 0.9))
    return Scene("outdoor", [ground], boxes, cam, light, far=DEFAULT_FAR["outdoor"], sky_horizon=horizon,
                 sky_zenith=zenith, fog_distance=float(rng.uniform(150.0, 450.0)),
                 exposure=float(rng.uniform(0.85, 1.15)), noise_sigma=float(rng.uniform(0.8, 3.0)),
                 grain_cell=0.12, road=road, hfov_deg=DEFAULT_HFOV_DEG["outdoor"])



def _outdoor_roadside(rng: np.random.Generator, boxes: List[Box], sgn: float, hw: float, x_min: float,
                      x_max: float) -> None:
    """Sidewalk, verge, buildings, trees and poles on one side (``sgn``) of the road, appended to ``boxes``."""
    sw = rng.uniform(1.5, 4.0)
    curb = rng.uniform(0.1, 0.2)
    paving = _surface(rng, ["checker", "noise"], sat=(0.0, 0.15), val=(0.45, 0.75), scale=(0.4, 1.0))
    boxes.append(Box(((x_min + x_max) / 2, sgn * (hw + sw / 2), curb / 2), (x_max - x_min, sw, curb),
                     material=paving, label="sidewalk"))
    verge = 40.0
    lawn = _surface(rng, ["noise"], hue=(0.2, 0.33), sat=(0.3, 0.7), val=(0.25, 0.55), scale=(0.2, 0.8))
    boxes.append(Box(((x_min + x_max) / 2, sgn * (hw + sw + verge / 2), 0.03), (x_max - x_min, verge, 0.06),
                     material=lawn, label="verge"))
    # buildings
    if rng.random() < 0.85:
        x = rng.uniform(-30.0, 5.0)
        while x < 130.0:
            length, depth, tall = rng.uniform(8.0, 30.0), rng.uniform(8.0, 20.0), rng.uniform(4.0, 25.0)
            setback = rng.uniform(0.0, 5.0)
            facade = _surface(rng, ["windows", "windows", "flat", "noise", "stripes"], sat=(0.05, 0.45),
                              val=(0.35, 0.9), scale=(1.8, 3.5), contrast=(0.25, 0.5))
            yc = sgn * (hw + sw + setback + depth / 2)
            boxes.append(Box((x + length / 2, yc, tall / 2), (length, depth, tall), yaw=rng.normal(0, 0.02),
                             material=facade, label="building"))
            x += length + (rng.uniform(0.0, 4.0) if rng.random() < 0.6 else rng.uniform(6.0, 25.0))
    # trees and poles on the sidewalk
    for _ in range(int(rng.integers(0, 8))):
        tx = rng.uniform(-5.0, 90.0)
        ty = sgn * (hw + rng.uniform(0.5, max(0.6, sw - 0.4)))
        if rng.random() < 0.5:
            trunk_h = rng.uniform(1.8, 3.0)
            boxes.append(Box((tx, ty, trunk_h / 2), (0.3, 0.3, trunk_h),
                             material=Material((0.35, 0.25, 0.15), (0.25, 0.18, 0.1), "stripes", 0.05, 0.2),
                             label="trunk"))
            cs = rng.uniform(1.8, 4.0)
            boxes.append(Box((tx, ty, trunk_h + cs / 2 - 0.2), (cs, cs, cs * rng.uniform(0.8, 1.3)),
                             yaw=rng.uniform(0, math.pi),
                             material=_surface(rng, ["noise"], hue=(0.18, 0.35), sat=(0.4, 0.8),
                                               val=(0.2, 0.5), scale=(0.15, 0.4), contrast=(0.4, 0.7)),
                             label="canopy"))
        else:
            ph = rng.uniform(3.5, 8.0)
            boxes.append(Box((tx, ty, ph / 2), (0.15, 0.15, ph), material=_surface(rng, ["flat"], sat=(0, 0.1)),
                             label="pole"))


def _outdoor_cars(rng: np.random.Generator, boxes: List[Box], road: Road, hw: float, cam_y: float) -> None:
    """Cars (body + cabin + wheel block), appended to ``boxes``; none in the camera's lane within 12 m."""
    slots = [(-hw + (i + 0.5) * road.lane_width, False) for i in range(road.n_lanes)] + \
            [(-hw + 1.1, True), (hw - 1.1, True)]
    for _ in range(int(rng.integers(3, 15))):
        y, parked = slots[int(rng.integers(0, len(slots)))]
        x = rng.uniform(-4.0, 70.0)
        if abs(y - cam_y) < 2.0 and -8.0 < x < 12.0:
            continue
        if abs(y - cam_y) >= 2.0 and abs(x) < 4.0 and abs(y - cam_y) < 3.0:
            continue
        y += rng.normal(0.0, 0.15)
        yaw = rng.normal(0.0, 0.04) + (math.pi if rng.random() < 0.5 else 0.0)
        van = rng.random() < 0.2
        length = rng.uniform(5.0, 7.5) if van else rng.uniform(3.8, 4.9)
        width = rng.uniform(1.7, 2.1)
        body_h = rng.uniform(1.6, 2.4) if van else rng.uniform(0.55, 0.8)
        paint = _hsv(rng, (0, 1), (0.0, 0.9), (0.15, 0.95))
        body = Material(paint, _shade(paint, 0.7), "flat", 1.0, 0.05)
        cyaw, syaw = math.cos(yaw), math.sin(yaw)
        boxes.append(Box((x, y, 0.2), (length * 0.9, width * 0.95, 0.4), yaw=yaw,
                         material=Material((0.06, 0.06, 0.06), (0.1, 0.1, 0.1), "flat", 1.0, 0.1), label="wheels"))
        boxes.append(Box((x, y, 0.35 + body_h / 2), (length, width, body_h), yaw=yaw, material=body, label="car"))
        if not van:
            cl, ch = length * rng.uniform(0.45, 0.6), rng.uniform(0.4, 0.55)
            off = rng.uniform(-0.15, 0.05) * length
            glass = Material(_hsv(rng, (0.5, 0.7), (0.1, 0.3), (0.1, 0.3)), paint, "stripes", float(cl / 3), 0.05)
            boxes.append(Box((x + cyaw * off, y + syaw * off, 0.35 + body_h + ch / 2), (cl, width * 0.9, ch),
                             yaw=yaw, material=glass, label="cabin"))


def random_scene(kind: str, rng: Union[np.random.Generator, int, None] = None) -> Scene:
    """A random ``kind`` ("indoor" | "outdoor") scene with its camera, drawn from ``rng`` (a Generator
    or an int seed).  Indoor: a room 4-9 m long, 3-7 m wide, 2.4-3.2 m high, furniture and wall decor,
    a ceiling light; camera 1.0-1.7 m high.  Outdoor: a 2-4 lane road with markings, sidewalks, verges,
    buildings, trees, poles and cars; camera 1.4-1.9 m high in a lane; sky beyond 80 m.  Street: KITTI's
    camera (real calibration, 1.65 m, small jitter) on a street with curbs, parking, facades, parked and
    moving cars, shadows (:mod:`mono_depth_ros.street`)."""
    if kind not in _KIND_IDS:
        raise ValueError(f"unknown scene kind {kind!r}; known: {', '.join(KINDS)}")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    if kind == "street":
        return _street_scene(rng)
    return _indoor_scene(rng) if kind == "indoor" else _outdoor_scene(rng)
