"""Street scenes seen by KITTI's colour camera: the ``"street"`` kind of :mod:`mono_depth_ros.synthetic`.

The camera is KITTI's left colour camera (cam 2): 1242 x 375 pixels with one of the two rectified P2
calibrations of KITTI's recording days (:data:`KITTI_CALIBS`: the calibration files of the real frames in
``../shared/data`` -- camera geometry only, no image content), 1.65 m above a flat road (KITTI's
published camera height) with small height, pitch and roll jitter, driving in a lane along world +x.

A scene is a straight road (world x) with lane markings (or none, on narrow residential streets), curbs,
sidewalks, front yards, building facades at varied setbacks, fences and hedges, parked cars and vans along
the curbs, moving cars in the lanes (they move in :func:`~mono_depth_ros.synthetic.render_sequence`),
poles, signs, trees, cyclists; sky beyond 80 m is invalid depth.  Appearance varies per scene: sun
direction and cast shadows, overcast days, exposure, white balance, gamma, vignetting, a slight optical
blur and sensor noise; surfaces are textured (asphalt patches and tyre tracks, bricks, windows,
foliage), so depth cannot be read off flat colours or exact edges.

Everything is drawn from one ``numpy.random.Generator``: same seed, same scene.  Nothing here renders;
the ray caster in :mod:`mono_depth_ros.synthetic.render` does (vectorised numpy).
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

import numpy as np

from .camera import KITTI_CALIBS, KITTI_CAMERA_HEIGHT, CameraPose, Vec3
from .materials import _hsv, _shade, _surface
from .scene import DEFAULT_FAR, DEFAULT_HFOV_DEG, Box, Light, Material, Plane, Road, Scene


#: Street types, drawn once per scene: probability ``p``; per side the probability of a row of buildings
#: (``row``; else a wall or open land), the range every facade's setback behind the sidewalk lies in (``setback``,
#: metres; a plaza has no curb or sidewalk: behind the carriageway), building heights (``height``, m), and the
#: probabilities of a parking strip (``park``) and of an avenue of street trees (``avenue``).
STREET_TYPES: Dict[str, Dict[str, Any]] = {
    "city": {"p": 0.40, "row": 0.95, "setback": (0.0, 2.5), "height": (8.0, 24.0), "park": 0.8, "avenue": 0.45},
    "residential": {"p": 0.30, "row": 0.85, "setback": (1.5, 9.0), "height": (5.0, 14.0), "park": 0.6,
                    "avenue": 0.5},
    "suburban": {"p": 0.18, "row": 0.6, "setback": (3.0, 16.0), "height": (3.5, 9.0), "park": 0.35, "avenue": 0.35},
    "plaza": {"p": 0.12, "row": 0.95, "setback": (6.0, 30.0), "height": (8.0, 25.0), "park": 0.15, "avenue": 0.3},
}
_X_MIN, _X_MAX = -30.0, 200.0          # extent of the street's long boxes (curbs, sidewalks, verges)


def _street_type(rng: np.random.Generator) -> str:
    names = list(STREET_TYPES)
    p = np.array([STREET_TYPES[n]["p"] for n in names])
    return names[int(np.searchsorted(np.cumsum(p) / p.sum(), rng.random(), side="right"))]


def _street_scene(rng: np.random.Generator) -> Scene:
    """A random street (see the module docstring); every draw comes from ``rng``, in a fixed order."""
    kind = _street_type(rng)
    st = STREET_TYPES[kind]
    road, ground = _street_road(rng, plaza=kind == "plaza")
    hw = road.half_width
    boxes: List[Box] = []
    movers: Dict[int, Tuple[float, float]] = {}
    cam_y, park, cam = _street_camera(rng, road, st["park"])
    concrete = _hsv(rng, (0.05, 0.15), (0.0, 0.1), (0.5, 0.8))
    # the street may end at a row of facades across it (a T-junction, a bend): side rows stop there
    x_end = float(rng.uniform(45.0, 200.0)) if kind != "plaza" and rng.random() < 0.35 else math.inf
    sides: Dict[float, Dict[str, Any]] = {}
    for sgn in (-1.0, 1.0):
        sides[sgn] = _street_side(rng, boxes, sgn, hw, park, concrete, kind, x_end)
    if x_end < math.inf:
        _cross_facades(rng, boxes, x_end, st["height"])

    # ---- vehicles: parked rows along the curbs, moving ones in the lanes
    _parked_cars(rng, boxes, hw, park, cam_y, x_end)
    _moving_cars(rng, boxes, movers, road, cam_y, x_end)
    scene = _street_look(rng, ground, boxes, cam, road)
    scene.movers = movers
    scene.info = {"street_type": kind, "sides": sides}
    return scene


def _street_look(rng: np.random.Generator, ground: Plane, boxes: List[Box], cam: CameraPose, road: Road) -> Scene:
    """Light (sun with shadows, or overcast), sky, and the camera's response: exposure, white balance, ..."""
    overcast = rng.random() < 0.3
    sun_el, sun_az = float(rng.uniform(0.35, 1.2)), float(rng.uniform(-math.pi, math.pi))
    light = Light(ambient=float(rng.uniform(0.55, 0.8) if overcast else rng.uniform(0.3, 0.5)),
                  direction=(math.cos(sun_el) * math.cos(sun_az), math.cos(sun_el) * math.sin(sun_az), math.sin(sun_el)),
                  directional=float(rng.uniform(0.1, 0.25) if overcast else rng.uniform(0.5, 0.8)))
    horizon = _hsv(rng, (0.5, 0.62), (0.0, 0.15), (0.7, 1.0))
    zenith = _hsv(rng, (0.55, 0.64), (0.0, 0.1) if overcast else (0.15, 0.65), (0.6, 1.0))
    wb = tuple(float(v) for v in np.exp(rng.normal(0.0, 0.07, 3)))
    return Scene("street", [ground], boxes, cam, light, far=DEFAULT_FAR["street"], sky_horizon=horizon,
                 sky_zenith=zenith, fog_distance=float(rng.uniform(200.0, 800.0)),
                 exposure=float(math.exp(rng.uniform(math.log(0.7), math.log(1.7)))),
                 noise_sigma=float(rng.uniform(1.0, 4.0)), grain_cell=float(rng.uniform(0.05, 0.15)), road=road,
                 hfov_deg=DEFAULT_HFOV_DEG["street"], calib=KITTI_CALIBS[int(rng.random() < 0.3)],
                 shadows=not overcast, white_balance=(wb[0], wb[1], wb[2]), gamma=float(rng.uniform(0.7, 1.25)),
                 vignette=float(rng.uniform(0.0, 0.35)), blur=float(rng.uniform(0.3, 1.0)))


def _street_road(rng: np.random.Generator, plaza: bool = False) -> Tuple[Road, Plane]:
    """The road (lanes, markings or none) and its ground plane: asphalt, or paving on a plaza."""
    r = rng.random()
    n_lanes = 1 if r < 0.25 else 2 if r < 0.75 else int(rng.integers(3, 5))
    lane_w = float(rng.uniform(2.9, 3.7)) if n_lanes > 1 else float(rng.uniform(4.8, 6.5))
    road = Road(n_lanes=n_lanes, lane_width=lane_w, line_width=float(rng.uniform(0.1, 0.18)),
                dash_length=float(rng.uniform(2.0, 4.0)), dash_period=float(rng.uniform(8.0, 14.0)))
    markings = n_lanes > 1 and rng.random() < 0.8 and not plaza
    asphalt = _hsv(rng, (0.0, 1.0), (0.0, 0.07), (0.18, 0.5))
    mark_col = _hsv(rng, (0.1, 0.16), (0.0, 0.25), (0.75, 0.95)) if markings else _shade(asphalt, 0.75)
    mat = Material(asphalt, mark_col, "asphalt" if markings else "asphalt_plain", float(rng.uniform(1.5, 5.0)),
                   float(rng.uniform(0.1, 0.35)))
    if plaza:   # paving stones, slabs
        mat = _surface(rng, ["checker", "bricks", "noise"], sat=(0.0, 0.2), val=(0.3, 0.75), scale=(0.3, 1.5),
                       contrast=(0.7, 0.92))
    return road, Plane((0.0, 0.0, 1.0), 0.0, mat, label="road")


def _street_camera(rng: np.random.Generator, road: Road, p_park: float
                   ) -> Tuple[float, Dict[float, float], CameraPose]:
    """(camera y, parking strip width per side, camera pose)."""
    n_lanes, hw = road.n_lanes, road.half_width
    # ---- camera: right-hand traffic, a lane on the right half (y < 0), KITTI's rig height
    lanes_right = max(1, n_lanes // 2)
    lane = int(rng.integers(0, lanes_right)) if n_lanes > 1 else 0
    cam_y = (-hw + (lane + 0.5) * road.lane_width) if n_lanes > 1 else float(rng.uniform(-0.6, 0.1))
    cam_y += float(rng.normal(0.0, 0.15))
    # a parking strip beyond the lanes on either side (parked cars stand there, not in a lane)
    park = {s: (float(rng.uniform(2.0, 2.6)) if rng.random() < p_park else 0.0) for s in (-1.0, 1.0)}
    cam = CameraPose((0.0, cam_y, KITTI_CAMERA_HEIGHT + float(rng.normal(0.0, 0.03))),
                     yaw=float(rng.normal(0.0, 0.04)), pitch=float(rng.normal(0.0, 0.012)),
                     roll=float(rng.normal(0.0, 0.008)))
    return cam_y, park, cam


def _street_side(rng: np.random.Generator, boxes: List[Box], sgn: float, hw: float, park: Dict[float, float],
                 concrete: Vec3, kind: str, x_end: float) -> Dict[str, Any]:
    """Curb, sidewalk, verge, buildings, trees and street furniture on one side (``sgn``), appended to ``boxes``;
    returns the side's layout (``y_edge``: where the setback starts, ``setback``: the range it was drawn in)."""
    xc, xl = (_X_MIN + _X_MAX) / 2, _X_MAX - _X_MIN
    curb_h, curb_w = float(rng.uniform(0.08, 0.18)), float(rng.uniform(0.15, 0.3))
    sw = float(rng.uniform(1.2, 4.0)) if rng.random() < 0.85 else 0.0
    y_edge = hw + park[sgn]
    if kind == "plaza":      # open paving up to the buildings: no curb, sidewalk or lawn
        curb_w, sw = 0.0, 0.0
    else:
        boxes.append(Box((xc, sgn * (y_edge + curb_w / 2), curb_h / 2), (xl, curb_w, curb_h),
                         material=Material(concrete, _shade(concrete, 0.8), "noise", 0.2, 0.25), label="curb"))
        y_edge += curb_w
        if sw > 0:
            paving = _surface(rng, ["checker", "noise", "bricks", "asphalt_plain"], sat=(0.0, 0.15), val=(0.35, 0.75),
                              scale=(0.3, 1.0), contrast=(0.75, 0.92))
            boxes.append(Box((xc, sgn * (y_edge + sw / 2), curb_h / 2 - 0.01), (xl, sw, curb_h - 0.02),
                             material=paving, label="sidewalk"))
            y_edge += sw
        lawn = _surface(rng, ["noise", "foliage"], hue=(0.12, 0.33), sat=(0.2, 0.7), val=(0.2, 0.55),
                        scale=(0.1, 0.6))
        boxes.append(Box((xc, sgn * (y_edge + 30.0), 0.02), (xl, 60.0, 0.04), material=lawn, label="verge"))
    st = STREET_TYPES[kind]
    has_row = rng.random() < st["row"]
    if has_row:
        _street_buildings(rng, boxes, sgn, y_edge, kind, x_end)
    elif rng.random() < 0.6:   # a long wall or fence, trees behind
        fh = float(rng.uniform(1.0, 3.0))
        boxes.append(Box((xc, sgn * (y_edge + 0.5), fh / 2), (xl, 0.25, fh),
                         material=_surface(rng, ["bricks", "noise", "stripes"], sat=(0.0, 0.4), scale=(0.2, 0.6)),
                         label="wall"))
    if rng.random() < st["avenue"]:
        _avenue(rng, boxes, sgn * (hw + park[sgn] + curb_w + min(1.0, max(sw - 0.6, 0.5))), x_end)
    _street_furniture(rng, boxes, sgn, hw, park, curb_w, sw)
    return {"y_edge": y_edge, "setback": st["setback"], "buildings": has_row}


def _facade_pool(rng: np.random.Generator, kind: str) -> List[Material]:
    big = kind in ("city", "plaza")
    return [_surface(rng, ["facade", "facade", "windows", "bricks", "noise", "flat"] if big else
                     ["facade", "windows", "bricks", "noise", "planks", "flat"],
                     sat=(0.02, 0.5), val=(0.25, 0.95), scale=(1.4, 3.5), contrast=(0.2, 0.65)) for _ in range(4)]


def _street_buildings(rng: np.random.Generator, boxes: List[Box], sgn: float, y_edge: float, kind: str,
                      x_end: float) -> None:
    """A row of buildings along one side: every facade's setback in the type's range (a side's common setback
    with per-building jitter), occasional open lots; hedges, fences and bushes in front yards."""
    st = STREET_TYPES[kind]
    lo, hi = st["setback"]
    base = float(rng.uniform(lo, hi))
    pool = _facade_pool(rng, kind)
    x = float(rng.uniform(-25.0, 5.0))
    while x < min(140.0, x_end - 12.0):
        length = float(rng.uniform(6.0, 30.0))
        if rng.random() < 0.1:                    # an open lot (a gap in the row)
            x += float(rng.uniform(10.0, 30.0))
            continue
        setback = float(np.clip(base + rng.normal(0.0, 0.15 * (hi - lo)), lo, hi))
        tall = float(rng.uniform(*st["height"]))
        _building(rng, boxes, x, sgn, y_edge + setback, length, tall, pool[int(rng.integers(0, len(pool)))], kind)
        if setback > 2.0:
            _front_yard(rng, boxes, x, length, sgn, y_edge, setback)
        gap = float(rng.uniform(0.0, 2.0)) if rng.random() < (0.8 if kind == "city" else 0.5) else \
            float(rng.uniform(3.0, 15.0))
        x += length + gap


def _building(rng: np.random.Generator, boxes: List[Box], x: float, sgn: float, y_front: float, length: float,
              tall: float, facade: Material, kind: str) -> None:
    """One building whose facade faces the street at ``|y| = y_front``: body, and maybe a shop front on the
    ground floor, a cornice and balconies (boxes proud of the facade)."""
    depth = float(rng.uniform(8.0, 18.0))
    roof = Material(_hsv(rng, (0.0, 0.1), (0.1, 0.5), (0.2, 0.5)), (0.2, 0.2, 0.2), "stripes", 0.4, 0.2)
    boxes.append(Box((x + length / 2, sgn * (y_front + depth / 2), tall / 2), (length, depth, tall),
                     yaw=float(rng.normal(0, 0.01)), material=(facade,) * 5 + (roof,), label="building"))
    if kind == "city" and rng.random() < 0.6 and tall > 6.0:      # shop windows on the ground floor
        gh = float(rng.uniform(3.0, 4.5))
        shop = _surface(rng, ["windows", "stripes", "flat"], sat=(0.0, 0.6), val=(0.05, 0.6), scale=(1.5, 4.0))
        boxes.append(Box((x + length / 2, sgn * (y_front + 0.35), gh / 2), (length * 0.97, 1.2, gh),
                         material=shop, label="shopfront"))
    if rng.random() < 0.4:                                        # a cornice under the roof
        trim = _surface(rng, ["flat", "noise"], sat=(0.0, 0.2), val=(0.4, 0.95), scale=(0.2, 0.5))
        boxes.append(Box((x + length / 2, sgn * (y_front + 0.5), tall - 0.3), (length + 0.3, 1.6, 0.5),
                         material=trim, label="cornice"))
    if kind in ("city", "residential") and rng.random() < 0.25 and tall > 7.0:   # balconies, floor by floor
        rail = _surface(rng, ["stripes", "flat"], sat=(0.0, 0.4), val=(0.2, 0.9), scale=(0.1, 0.3))
        bl = length * float(rng.uniform(0.3, 0.8))
        for k in range(1, min(5, int(tall / 3.0))):
            boxes.append(Box((x + length / 2, sgn * (y_front - 0.5), 3.0 * k + 0.5), (bl, 1.0, 1.0),
                             material=rail, label="balcony"))


def _front_yard(rng: np.random.Generator, boxes: List[Box], x: float, length: float, sgn: float, y_edge: float,
                setback: float) -> None:
    """A fence or a hedge along the sidewalk, and bushes in the yard."""
    if rng.random() < 0.5:
        fh = float(rng.uniform(0.6, 1.8))
        hedge = rng.random() < 0.5
        mat = (_surface(rng, ["foliage"], hue=(0.18, 0.35), sat=(0.35, 0.8), val=(0.15, 0.45),
                        scale=(0.08, 0.25), contrast=(0.3, 0.6)) if hedge else
               _surface(rng, ["stripes", "planks", "flat"], sat=(0.0, 0.4), scale=(0.1, 0.3)))
        boxes.append(Box((x + length / 2, sgn * (y_edge + 0.4), fh / 2), (length, 0.5 if hedge else 0.08, fh),
                         material=mat, label="hedge" if hedge else "fence"))
    if rng.random() < 0.5:
        leaves = _surface(rng, ["foliage"], hue=(0.15, 0.38), sat=(0.3, 0.85), val=(0.1, 0.45),
                          scale=(0.06, 0.2), contrast=(0.3, 0.6))
        for _ in range(int(rng.integers(1, 5))):
            s = float(rng.uniform(0.6, min(2.5, setback - 0.5)))
            by = y_edge + float(rng.uniform(0.8, setback - 0.3))
            boxes.append(Box((x + float(rng.uniform(0, length)), sgn * by, s * 0.4), (s, s, s * 0.9),
                             yaw=float(rng.uniform(0, math.pi)), material=leaves, label="bush"))


def _cross_facades(rng: np.random.Generator, boxes: List[Box], x0: float, heights: Tuple[float, float]) -> None:
    """Buildings across the far end of the street, facing the camera (beyond 80 m: colour only, no depth)."""
    pool = _facade_pool(rng, "city")
    y = -60.0
    while y < 60.0:
        width = float(rng.uniform(8.0, 30.0))
        tall = float(rng.uniform(*heights))
        boxes.append(Box((x0 + 6.0 + float(rng.uniform(0.0, 4.0)), y + width / 2, tall / 2), (12.0, width, tall),
                         material=pool[int(rng.integers(0, len(pool)))], label="cross_building"))
        y += width + float(rng.uniform(0.0, 3.0))


def _crown_z(z: float, size: Tuple[float, float, float], pitch: float, roll: float, floor: float = 2.2) -> float:
    """The centre height of a tilted crown block: ``z``, raised so its lowest corner stays >= ``floor`` m above
    the road (crowns hang over parked cars and the lanes, never into the camera's path)."""
    half_z = 0.5 * (abs(math.sin(pitch)) * size[0] + abs(math.cos(pitch) * math.sin(roll)) * size[1]
                    + abs(math.cos(pitch) * math.cos(roll)) * size[2])
    return max(z, floor + half_z)


def _avenue(rng: np.random.Generator, boxes: List[Box], ty: float, x_end: float) -> None:
    """A row of street trees at ``y = ty`` along the road: trunks and wide crowns that overhang the road."""
    sgn = 1.0 if ty > 0 else -1.0
    foliage = [_surface(rng, ["foliage"], hue=(0.12, 0.36), sat=(0.25, 0.85), val=(0.08, 0.45),
                        scale=(0.1, 0.4), contrast=(0.25, 0.6)) for _ in range(2)]
    bark = Material((0.3, 0.24, 0.17), (0.2, 0.16, 0.1), "stripes", 0.05, 0.3)
    crown = float(rng.uniform(2.0, 5.0))               # crown radius of this avenue's trees (m)
    x = float(rng.uniform(-10.0, 2.0))
    spacing = float(rng.uniform(max(6.0, 1.6 * crown), 16.0))
    while x < min(90.0, x_end - 5.0):
        if rng.random() < 0.9:
            r = crown * float(rng.uniform(0.75, 1.2))
            trunk_h = float(rng.uniform(2.5, 4.5))
            tw = float(rng.uniform(0.2, 0.5))
            boxes.append(Box((x, ty, trunk_h / 2 + 0.3), (tw, tw, trunk_h + 0.6), material=bark, label="trunk"))
            leaves = foliage[int(rng.integers(0, 2))]
            for _ in range(int(rng.integers(3, 6))):          # a crown of 3-5 tilted blocks, leaning over the road
                off = rng.normal(0.0, 0.35 * r, 3)
                size = (r * float(rng.uniform(0.8, 1.3)), r * float(rng.uniform(0.7, 1.2)), r * float(rng.uniform(0.5, 0.9)))
                yaw, pitch, roll = float(rng.uniform(0, math.pi)), float(rng.normal(0, 0.12)), float(rng.normal(0, 0.12))
                z = _crown_z(trunk_h + 0.5 * size[2] + abs(off[2]) * 0.5, size, pitch, roll)
                boxes.append(Box((x + off[0], ty - sgn * abs(off[1]) * 0.8, z), size, yaw=yaw, pitch=pitch, roll=roll,
                                 material=leaves, label="canopy"))
        x += spacing * float(rng.uniform(0.85, 1.15))


def _street_furniture(rng: np.random.Generator, boxes: List[Box], sgn: float, hw: float,
                      park: Dict[float, float], curb_w: float, sw: float) -> None:
    """Trees, poles, signs, cyclists and pedestrians on one side (``sgn``), appended to ``boxes``."""
    for _ in range(int(rng.integers(2, 14))):
        tx = float(rng.uniform(-5.0, 100.0))
        ty = sgn * (hw + park[sgn] + curb_w + rng.uniform(0.4, max(0.5, sw - 0.3) if sw > 0 else 1.5))
        u = rng.random()
        if u < 0.5:
            trunk_h = float(rng.uniform(2.2, 3.8))
            tw = float(rng.uniform(0.2, 0.5))
            boxes.append(Box((tx, ty, trunk_h / 2), (tw, tw, trunk_h),
                             material=Material((0.33, 0.25, 0.17), (0.22, 0.17, 0.1), "stripes", 0.05, 0.3),
                             label="trunk"))
            foliage = _surface(rng, ["foliage"], hue=(0.14, 0.36), sat=(0.3, 0.8), val=(0.12, 0.5),
                               scale=(0.1, 0.35), contrast=(0.3, 0.6))
            cs = float(rng.uniform(2.0, 5.0))
            for k in range(int(rng.integers(1, 4))):      # an irregular crown of 1-3 blocks
                s = cs * float(rng.uniform(0.6, 1.0))
                off = rng.normal(0.0, 0.25 * cs, 2)
                size = (s, s * float(rng.uniform(0.7, 1.2)), s * float(rng.uniform(0.7, 1.2)))
                yaw, pitch, roll = float(rng.uniform(0, math.pi)), float(rng.normal(0, 0.2)), float(rng.normal(0, 0.2))
                z = _crown_z(trunk_h + size[2] / 2 - 0.3 + abs(off[0]) * 0.3, size, pitch, roll)
                boxes.append(Box((tx + off[0], ty + off[1], z), size, yaw=yaw, pitch=pitch, roll=roll,
                                 material=foliage, label="canopy"))
        elif u < 0.85:
            ph = float(rng.uniform(3.0, 9.0))
            pole = _surface(rng, ["flat", "noise"], sat=(0, 0.1), val=(0.3, 0.8), scale=(0.1, 0.3))
            pw = float(rng.uniform(0.1, 0.3))
            boxes.append(Box((tx, ty, ph / 2), (pw, pw, ph), material=pole, label="pole"))
            if rng.random() < 0.4:   # a sign or a lamp arm
                sign = _surface(rng, ["flat", "stripes"], sat=(0.5, 1.0), val=(0.5, 1.0), scale=(0.1, 0.3))
                ss = float(rng.uniform(0.5, 1.0))
                boxes.append(Box((tx, ty - sgn * ss / 2, ph - ss), (0.05, ss, ss), material=sign, label="sign"))
        else:                   # a cyclist or a pedestrian on the sidewalk
            ph = float(rng.uniform(1.5, 1.9))
            clothes = _hsv(rng, (0, 1), (0.1, 0.8), (0.1, 0.8))
            boxes.append(Box((tx, ty, ph / 2), (float(rng.uniform(0.3, 1.7)), 0.45, ph),
                             material=Material(clothes, _shade(clothes, 0.6), "stripes", 0.3, 0.2),
                             label="person"))


def _car(rng: np.random.Generator, boxes: List[Box], x: float, y: float, yaw: float, van: bool) -> int:
    """A car or van (wheels, body, nose/tail, cabin) appended to ``boxes``; the index of its first box."""
    length = float(rng.uniform(4.8, 6.5) if van else rng.uniform(3.7, 4.9))
    width = float(rng.uniform(1.65, 2.05))
    body_h = float(rng.uniform(1.5, 2.1) if van else rng.uniform(0.5, 0.75))
    paint = _hsv(rng, (0, 1), (0.0, 0.9), (0.1, 0.95)) if rng.random() < 0.6 else _hsv(rng, (0, 1), (0, 0.05), (0.05, 0.9))
    body = Material(paint, _shade(paint, 0.65), "stripes" if rng.random() < 0.3 else "flat",
                    float(rng.uniform(0.3, 1.2)), 0.06)
    cyaw, syaw = math.cos(yaw), math.sin(yaw)
    first = len(boxes)
    clearance = float(rng.uniform(0.25, 0.4))
    boxes.append(Box((x, y, clearance / 2 + 0.02), (length * 0.92, width * 0.96, clearance + 0.04), yaw=yaw,
                     material=Material((0.05, 0.05, 0.05), (0.12, 0.12, 0.12), "noise", 0.2, 0.1), label="wheels"))
    boxes.append(Box((x, y, clearance + body_h / 2), (length, width, body_h), yaw=yaw, material=body, label="car"))
    # a rounded nose/tail: a lower, shorter block in front of and behind the body
    for end in (-1.0, 1.0):
        el = float(rng.uniform(0.2, 0.4))
        boxes.append(Box((x + cyaw * end * (length / 2 + el / 2 - 0.05), y + syaw * end * (length / 2 + el / 2 - 0.05),
                          clearance + body_h * 0.4), (el, width * 0.94, body_h * 0.7), yaw=yaw, material=body,
                         label="car"))
    if not van:
        cl, ch = length * float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.38, 0.55))
        off = float(rng.uniform(-0.15, 0.05)) * length
        glass = Material(_hsv(rng, (0.5, 0.7), (0.05, 0.3), (0.05, 0.3)), paint, "stripes", float(cl / 3), 0.05)
        boxes.append(Box((x + cyaw * off, y + syaw * off, clearance + body_h + ch / 2), (cl, width * 0.86, ch),
                         yaw=yaw, material=glass, label="cabin"))
    return first

def _parked_cars(rng: np.random.Generator, boxes: List[Box], hw: float, park: Dict[float, float],
                 cam_y: float, x_end: float = math.inf) -> None:
    """Rows of parked cars along the curbs with a parking strip, none next to the camera."""
    for sgn in (-1.0, 1.0):
        if park[sgn] > 0:                            # a row of parked cars along this curb
            density = float(rng.uniform(0.3, 0.95))
            x = float(rng.uniform(-8.0, 6.0))
            y = sgn * (hw + park[sgn] - 1.05)
            while x < min(90.0, x_end - 5.0):
                van = rng.random() < 0.15
                if rng.random() < density and not (abs(y - cam_y) < 2.3 and -6.0 < x < 10.0):
                    _car(rng, boxes, x, y + float(rng.normal(0, 0.1)), float(rng.normal(0.0, 0.03)) + (0.0 if rng.random() < 0.8 else math.pi), van)
                x += float(rng.uniform(5.0, 8.5))


def _moving_cars(rng: np.random.Generator, boxes: List[Box], movers: Dict[int, Tuple[float, float]], road: Road,
                 cam_y: float, x_end: float = math.inf) -> None:
    """Moving cars in the lanes (oncoming on the left half); their boxes and velocities go to ``movers``."""
    n_lanes, hw = road.n_lanes, road.half_width
    lane_ys = [-hw + (i + 0.5) * road.lane_width for i in range(n_lanes)] if n_lanes > 1 else [cam_y]
    for _ in range(int(rng.integers(0, 7))):
        i = int(rng.integers(0, len(lane_ys)))
        y = lane_ys[i]
        same_lane = abs(y - cam_y) < 1.8
        oncoming = (n_lanes > 1 and y > 0) or (n_lanes == 1 and rng.random() < 0.4 and not same_lane)
        x = float(rng.uniform(15.0 if same_lane else 4.0, max(20.0, min(80.0, x_end - 10.0))))
        if n_lanes == 1 and oncoming:
            y = cam_y + 2.2
        first = _car(rng, boxes, x, y + float(rng.normal(0, 0.15)), float(rng.normal(0.0, 0.02)) + (math.pi if oncoming else 0.0),
                    rng.random() < 0.15)
        speed = float(rng.uniform(8.5, 14.0) if same_lane else rng.uniform(4.0, 14.0)) * (-1.0 if oncoming else 1.0)
        for k in range(first, len(boxes)):
            movers[k] = (speed, 0.0)
