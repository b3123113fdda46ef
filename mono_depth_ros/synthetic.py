"""Procedural RGB-D scenes with exact ground-truth depth: a small vectorised numpy ray caster.

Deterministic, dependency-free (numpy only; torch is never imported) and fast enough to be a
training set, a test input with exact ground truth, and a camera stream (see docs/synthetic.md).

Conventions
-----------
* World frame: metres, REP 103 body convention, **x forward, y left, z up**; the ground/floor is z = 0.
* Camera frame: REP 103 *optical* frame, **x right, y down, z forward**.  A :class:`CameraPose` is a
  position plus yaw/pitch/roll of the camera *body* (FLU) frame: yaw about z (positive turns left),
  pitch about y (**positive looks down**), roll about x.  ``pose.rotation()`` is R_world_optical.
* Pinhole intrinsics, pixel-centre convention: pixel (u, v) (integers) has its centre at u, v; the ray
  through it is ((u - cx) / fx, (v - cy) / fy, 1) in the optical frame.  The default principal point
  is the image centre ((W - 1) / 2, (H - 1) / 2); the default focal length comes from a horizontal
  field of view (fx = fy = (W / 2) / tan(hfov / 2)).
* Depth: float32 metres **along the optical Z axis** (not the ray length).  Pixels with no surface,
  or whose surface lies beyond the scene's far limit (outdoor sky, 80 m), are **NaN** (REP 118, the
  same as the pipeline's output) and ``frame.invalid`` is True there.  Valid depth is always finite
  and > 0.  ``SyntheticDataset(invalid_value=0.0)`` gives 0 instead, for code that wants that.
* Primitives: infinite planes (vectorised over all planes at once), oriented boxes seen from outside
  (furniture, buildings, cars) and "rooms" (boxes seen from inside).  Boxes are culled in screen space
  (the bounding rectangle of their near-clipped projected corners, computed for all boxes at once)
  and ray-cast over that rectangle only; every per-pixel step is a whole-array numpy operation.

Typical use::

    frame = render_frame("indoor", seed=3, width=304, height=228)
    frame.rgb, frame.depth, frame.invalid, frame.K, frame.pose
    ds = SyntheticDataset("outdoor", n=1000, seed=0, width=576, height=172)
    rgb, depth, valid = ds[17]
    frames = render_sequence("outdoor", seed=1, n_frames=20)
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .camera import CameraIntrinsics

Vec3 = Tuple[float, float, float]

KINDS: Tuple[str, ...] = ("indoor", "outdoor", "street")
_KIND_IDS = {"indoor": 1, "outdoor": 2, "street": 3}
#: Horizontal field of view of the default camera: a Kinect (NYU) and KITTI's colour camera ("street":
#: KITTI's real calibration instead, see mono_depth_ros.street; 81.4 deg is its fx = 721.54 at 1242 px).
DEFAULT_HFOV_DEG: Dict[str, float] = {"indoor": 62.0, "outdoor": 81.0, "street": 81.4}
#: Far limit (metres): surfaces beyond it are invalid depth (NYU's 10 m, KITTI's 80 m).
DEFAULT_FAR: Dict[str, float] = {"indoor": 10.0, "outdoor": 80.0, "street": 80.0}
TEXTURES: Tuple[str, ...] = ("flat", "checker", "stripes", "noise", "planks", "windows", "road",
                             "asphalt", "asphalt_plain", "bricks", "foliage")
_TEX_ID = {name: i for i, name in enumerate(TEXTURES)}
_EPS = 1e-4  # minimum ray parameter (metres along optical Z) of a hit

# Body (FLU) axes of the optical frame: columns are optical x (right), y (down), z (forward).
_R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# camera
# ---------------------------------------------------------------------------------------------
def _rot_zyx(yaw: Any, pitch: Any, roll: Any) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll); scalars -> (3, 3), arrays of shape S -> S + (3, 3)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    r = np.stack([cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr,
                  sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr,
                  -sp, cp * sr, cp * cr], axis=-1)
    return r.reshape(np.shape(yaw) + (3, 3))


class PinholeIntrinsics(CameraIntrinsics):
    """The pipeline's :class:`~mono_depth_ros.camera.CameraIntrinsics` plus the horizontal field of view;
    every function here accepts either, or any object with the six attributes."""

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))


def make_intrinsics(width: int = 320, height: int = 240, fx: Optional[float] = None, fy: Optional[float] = None,
                    cx: Optional[float] = None, cy: Optional[float] = None, hfov_deg: float = 62.0
                    ) -> PinholeIntrinsics:
    """Intrinsics for a width x height image; fx from ``hfov_deg`` unless given, fy = fx unless given,
    principal point at the image centre ((W - 1) / 2, (H - 1) / 2) unless given."""
    if fx is None:
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(f"hfov_deg must be in (0, 180), got {hfov_deg}")
        fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    intr = PinholeIntrinsics(int(width), int(height), float(fx), float(fx if fy is None else fy),
                             float((width - 1) / 2.0 if cx is None else cx),
                             float((height - 1) / 2.0 if cy is None else cy))
    intr.validate()
    return intr


def _as_intrinsics(obj: Any) -> PinholeIntrinsics:
    if isinstance(obj, PinholeIntrinsics):
        return obj
    intr = PinholeIntrinsics(int(obj.width), int(obj.height), float(obj.fx), float(obj.fy), float(obj.cx),
                             float(obj.cy))
    intr.validate()
    return intr


@dataclass(frozen=True)
class CameraPose:
    """Camera position in the world (x forward, y left, z up; metres) and body yaw/pitch/roll
    (radians; yaw positive = turn left, **pitch positive = look down**, roll about the forward axis)."""

    position: Vec3 = (0.0, 0.0, 1.5)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """R_world_optical (3x3): columns are the optical x (right), y (down), z (forward) axes in the world."""
        return _rot_zyx(self.yaw, self.pitch, self.roll) @ _R_BODY_OPTICAL

    def matrix(self) -> np.ndarray:
        """T_world_optical (4x4): maps points in the optical frame to the world."""
        t = np.eye(4)
        t[:3, :3] = self.rotation()
        t[:3, 3] = self.position
        return t

    def forward(self) -> np.ndarray:
        """Unit viewing direction (optical +Z) in the world."""
        return self.rotation()[:, 2]


# ---------------------------------------------------------------------------------------------
# scene description
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Material:
    """Albedo: ``color`` and ``color2`` (RGB in [0, 1]) mixed by a procedural ``texture`` evaluated at
    the hit point's surface coordinates (so it moves with the geometry): one of :data:`TEXTURES`.
    ``scale`` is the texture's cell size in metres; ``grain`` the amplitude of fine brightness noise."""

    color: Vec3 = (0.6, 0.6, 0.6)
    color2: Vec3 = (0.3, 0.3, 0.3)
    texture: str = "flat"
    scale: float = 0.5
    grain: float = 0.15

    def __post_init__(self) -> None:
        if self.texture not in _TEX_ID:
            raise ValueError(f"unknown texture {self.texture!r}; known: {', '.join(TEXTURES)}")
        if not self.scale > 0:
            raise ValueError("texture scale must be > 0")


@dataclass(frozen=True)
class Plane:
    """The infinite plane {p : normal . p = offset} (world frame); the normal need not be unit."""

    normal: Vec3
    offset: float
    material: Material = Material()
    label: str = "plane"


#: Face order of a box: -x, +x, -y, +y, -z, +z (in the box's local frame).
BOX_FACES: Tuple[str, ...] = ("-x", "+x", "-y", "+y", "-z", "+z")


@dataclass(frozen=True)
class Box:
    """An oriented box: ``center`` (world), full ``size`` along its local x, y, z, rotated by
    yaw/pitch/roll (same convention as the camera body).  ``material`` is one Material or six, in
    :data:`BOX_FACES` order.  ``inside=True`` makes it a room: seen from inside (the camera must be
    within it), its faces facing inwards."""

    center: Vec3
    size: Vec3
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    material: Union[Material, Tuple[Material, ...]] = Material()
    inside: bool = False
    label: str = "box"

    def rotation(self) -> np.ndarray:
        return _rot_zyx(self.yaw, self.pitch, self.roll)

    def face_materials(self) -> Tuple[Material, ...]:
        if isinstance(self.material, Material):
            return (self.material,) * 6
        mats = tuple(self.material)
        if len(mats) != 6:
            raise ValueError(f"a box needs 1 or 6 materials, got {len(mats)}")
        return mats

    def contains(self, point: Sequence[float], margin: float = 0.0) -> bool:
        local = self.rotation().T @ (np.asarray(point, float) - np.asarray(self.center, float))
        return bool(np.all(np.abs(local) <= np.asarray(self.size) / 2.0 + margin))


def Room(center: Vec3, size: Vec3, material: Union[Material, Tuple[Material, ...]] = Material(),
         yaw: float = 0.0, label: str = "room") -> Box:
    """A box seen from inside: walls (faces -x, +x, -y, +y), floor (-z) and ceiling (+z)."""
    return Box(center=center, size=size, yaw=yaw, material=material, inside=True, label=label)


@dataclass(frozen=True)
class Light:
    """Lambertian lighting: ``ambient`` + ``directional`` * max(0, n . direction) (direction points
    *towards* the light, world frame) + an optional point light at ``position`` with strength
    ``point`` and distance falloff 1 / (1 + (d / falloff)^2)."""

    ambient: float = 0.35
    direction: Vec3 = (0.3, 0.2, 0.9)
    directional: float = 0.6
    position: Optional[Vec3] = None
    point: float = 0.0
    falloff: float = 3.0


@dataclass(frozen=True)
class Road:
    """Lane markings of the ``road`` texture (a ground plane; road along world x, centred on y = 0)."""

    n_lanes: int = 2
    lane_width: float = 3.5
    line_width: float = 0.15
    dash_length: float = 3.0
    dash_period: float = 9.0

    @property
    def half_width(self) -> float:
        return self.n_lanes * self.lane_width / 2.0


@dataclass
class Scene:
    """Primitives, the camera, lighting and appearance of one procedural scene."""

    kind: str
    planes: List[Plane]
    boxes: List[Box]
    camera: CameraPose
    light: Light = Light()
    far: float = 10.0
    sky_horizon: Vec3 = (0.75, 0.8, 0.85)
    sky_zenith: Vec3 = (0.35, 0.5, 0.8)
    fog_distance: Optional[float] = None   # colour -> sky_horizon by 1 - exp(-Z / fog_distance)
    exposure: float = 1.0
    noise_sigma: float = 1.5               # image noise, 8-bit levels (standard deviation)
    grain_cell: float = 0.05               # cell size (m) of the fine brightness grain
    road: Road = Road()
    hfov_deg: float = 62.0                 # default camera's horizontal field of view
    seed: Tuple[int, ...] = ()             # what generated it (for reproducible trajectories)
    # reference calibration (width, height, fx, fy, cx, cy) of the default camera, scaled to any image
    # size; None: a pinhole from hfov_deg with the principal point at the centre
    calib: Optional[Tuple[int, int, float, float, float, float]] = None
    shadows: bool = False                  # cast shadows of boxes (directional light only)
    white_balance: Vec3 = (1.0, 1.0, 1.0)  # per-channel gain
    gamma: float = 1.0                     # out = 255 (in / 255) ** gamma
    vignette: float = 0.0                  # brightness falls by this fraction at the image corners
    blur: float = 0.0                      # 0..1: mix with a 3x3 binomial blur (optics, no exact edges)
    movers: Dict[int, Tuple[float, float]] = field(default_factory=dict)  # box index -> (vx, vy) m/s
    _compiled: Optional["_Compiled"] = field(default=None, repr=False, compare=False)
    _compiled_key: Optional[Tuple[Any, ...]] = field(default=None, repr=False, compare=False)

    def default_intrinsics(self, width: int = 320, height: int = 240) -> PinholeIntrinsics:
        if self.calib is not None:
            from .street import kitti_intrinsics_scaled

            fx, fy, cx, cy = kitti_intrinsics_scaled(width, height, self.calib)
            return make_intrinsics(width, height, fx, fy, cx, cy)
        return make_intrinsics(width, height, hfov_deg=self.hfov_deg)

    def at_time(self, t: float) -> "Scene":
        """The scene with its moving boxes (``movers``) advanced by ``t`` seconds (self if none move)."""
        if not self.movers or t == 0:
            return self
        boxes = list(self.boxes)
        for k, (vx, vy) in self.movers.items():
            b = boxes[k]
            boxes[k] = replace(b, center=(b.center[0] + vx * t, b.center[1] + vy * t, b.center[2]))
        return replace(self, boxes=boxes, _compiled=None, _compiled_key=None)

    def static(self) -> "Scene":
        """The scene without its moving boxes."""
        if not self.movers:
            return self
        boxes = [b for k, b in enumerate(self.boxes) if k not in self.movers]
        return replace(self, boxes=boxes, movers={}, _compiled=None, _compiled_key=None)

    def _key(self) -> Tuple[Any, ...]:
        # primitives, lights and materials are immutable (frozen) values; tuple == checks identity first
        return (tuple(self.planes), tuple(self.boxes), self.light, self.exposure)

    def compiled(self) -> "_Compiled":
        """The renderer's per-face tables; rebuilt when primitives, light or exposure have changed."""
        key = self._key()
        if self._compiled is None or self._compiled_key != key:
            self._compiled = _compile(self)
            self._compiled_key = key
        return self._compiled

    def face_planes(self) -> np.ndarray:
        """(F, 4) float64: for every face id, its plane (n, d) with unit n: n . p = d on the face."""
        c = self.compiled()
        return np.concatenate([c.face_n, c.face_d[:, None]], axis=1)[:-1]

    def face_labels(self) -> List[str]:
        return list(self.compiled().face_label)

    def face_primitives(self) -> np.ndarray:
        """(F,) int: the primitive of every face id: i < len(planes) is planes[i], else boxes[i - len(planes)]."""
        return self.compiled().face_prim.copy()


# ---------------------------------------------------------------------------------------------
# compilation: flat per-face tables the renderer gathers from
# ---------------------------------------------------------------------------------------------
@dataclass
class _Compiled:
    plane_n: np.ndarray      # (P, 3) f64 unit normals
    plane_d: np.ndarray      # (P,)
    plane_face: np.ndarray   # (P,) face id
    box_c: np.ndarray        # (M, 3)
    box_r: np.ndarray        # (M, 3, 3) local -> world
    box_h: np.ndarray        # (M, 3) half sizes
    box_inside: np.ndarray   # (M,) bool
    box_face0: np.ndarray    # (M,) first face id
    box_corners: np.ndarray  # (M, 8, 3) world
    # per face (F + 1 rows: the last is a dummy for "no hit", gathered with index -1)
    face_n: np.ndarray       # (F+1, 3) unit normal facing the visible side
    face_d: np.ndarray       # (F+1,)
    face_tu: np.ndarray      # (F+1, 4): u = tu[:3] . p + tu[3]
    face_tv: np.ndarray      # (F+1, 4)
    face_col: np.ndarray     # (F+1, 3) f32, 0..255 with exposure
    face_col2: np.ndarray    # (F+1, 3) f32
    face_tex: np.ndarray     # (F+1,) int8
    face_inv_scale: np.ndarray  # (F+1,) f32
    face_grain: np.ndarray   # (F+1,) f32
    face_const_shade: np.ndarray  # (F+1,) f32 ambient + directional
    face_sun: np.ndarray     # (F+1,) f32 the directional part of face_const_shade (removed in shadow)
    face_label: List[str]
    face_prim: np.ndarray    # (F,) primitive index (planes first, then boxes)
    tables: Dict[str, np.ndarray] = field(default_factory=dict)  # contiguous float32 columns of the above

    def __post_init__(self) -> None:
        f32 = np.float32
        t = self.tables
        for i in range(4):
            t[f"tu{i}"] = np.ascontiguousarray(self.face_tu[:, i], f32)
            t[f"tv{i}"] = np.ascontiguousarray(self.face_tv[:, i], f32)
        for i in range(3):
            t[f"n{i}"] = np.ascontiguousarray(self.face_n[:, i], f32)
            t[f"col{i}"] = np.ascontiguousarray(self.face_col[:, i], f32)
            t[f"dcol{i}"] = np.ascontiguousarray(self.face_col2[:, i] - self.face_col[:, i], f32)
        t["shade"], t["grain"] = self.face_const_shade.astype(f32), self.face_grain.astype(f32)
        t["sun"] = self.face_sun.astype(f32)
        t["inv_scale"] = self.face_inv_scale.astype(f32)


_CORNER_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_EDGES = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)
                   if np.sum(_CORNER_SIGNS[i] != _CORNER_SIGNS[j]) == 1])  # 12 box edges
_TANGENTS = ((1, 2), (0, 2), (0, 1))  # surface (u, v) axes of the faces normal to x, y, z


def _plane_axes(n: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    if abs(n[2]) > 0.9:  # horizontal plane: u along world x, v along world y
        u = np.array([1.0, 0.0, 0.0]) - n[0] * n
    else:                # vertical-ish plane: u horizontal, v up
        u = np.cross([0.0, 0.0, 1.0], n)
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    if abs(n[2]) <= 0.9 and v[2] < 0:
        v = -v
    return u, v


_FACE_AXIS = np.array([0, 0, 1, 1, 2, 2])
_FACE_SIGN = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
_FACE_TU = np.array([_TANGENTS[k][0] for k in _FACE_AXIS])
_FACE_TV = np.array([_TANGENTS[k][1] for k in _FACE_AXIS])


def _compile(scene: Scene) -> _Compiled:
    """Flatten the scene into per-face tables (vectorised over boxes; only materials are read in Python)."""
    light = scene.light
    ldir = np.asarray(light.direction, float)
    ldir = ldir / (np.linalg.norm(ldir) or 1.0)
    n_pl, n_bx = len(scene.planes), len(scene.boxes)
    # -- planes
    pn = np.zeros((n_pl, 3))
    pd = np.zeros(n_pl)
    p_tu, p_tv = np.zeros((n_pl, 4)), np.zeros((n_pl, 4))
    for i, pl in enumerate(scene.planes):
        n = np.asarray(pl.normal, float)
        norm = np.linalg.norm(n)
        if not norm > 0:
            raise ValueError(f"plane {i} has a zero normal")
        pn[i], pd[i] = n / norm, float(pl.offset) / norm
        u, v = _plane_axes(pn[i])
        p_tu[i, :3], p_tv[i, :3] = u, v
    # -- boxes (M, ...) and their faces (M, 6, ...)
    bc = np.array([b.center for b in scene.boxes], float).reshape(-1, 3)
    bh = np.array([b.size for b in scene.boxes], float).reshape(-1, 3) / 2.0
    br = _rot_zyx(*np.array([(b.yaw, b.pitch, b.roll) for b in scene.boxes], float).reshape(-1, 3).T)
    bi = np.array([b.inside for b in scene.boxes], bool)
    bad = np.flatnonzero(~np.all(bh > 0, axis=1))
    if len(bad):
        b = scene.boxes[int(bad[0])]
        raise ValueError(f"box {int(bad[0])} ({b.label}) has a non-positive size {b.size}")
    axis = np.transpose(br[:, :, _FACE_AXIS], (0, 2, 1))                 # (M, 6, 3) world axis of each face
    flip = np.where(bi, -1.0, 1.0)[:, None, None]
    fn = _FACE_SIGN[None, :, None] * axis * flip                          # normals towards the visible side
    fcen = bc[:, None, :] + (_FACE_SIGN * bh[:, _FACE_AXIS])[..., None] * axis
    fd = np.einsum("mfi,mfi->mf", fn, fcen)
    ta = np.transpose(br[:, :, _FACE_TU], (0, 2, 1))
    tb = np.transpose(br[:, :, _FACE_TV], (0, 2, 1))
    ftu = np.concatenate([ta, (bh[:, _FACE_TU] - np.einsum("mfi,mi->mf", ta, bc))[..., None]], axis=2)
    ftv = np.concatenate([tb, (bh[:, _FACE_TV] - np.einsum("mfi,mi->mf", tb, bc))[..., None]], axis=2)
    corners = bc[:, None, :] + np.einsum("ck,mk,mjk->mcj", _CORNER_SIGNS, bh, br)
    # -- face tables: planes first, then 6 faces per box, then one dummy row (index -1 = no hit)
    f = n_pl + 6 * n_bx
    face_n = np.concatenate([pn, fn.reshape(-1, 3), np.zeros((1, 3))])
    face_d = np.concatenate([pd, fd.reshape(-1), np.zeros(1)])
    face_tu = np.concatenate([p_tu, ftu.reshape(-1, 4), np.zeros((1, 4))])
    face_tv = np.concatenate([p_tv, ftv.reshape(-1, 4), np.zeros((1, 4))])
    mats: List[Material] = [pl.material for pl in scene.planes]
    labels = [pl.label for pl in scene.planes]
    for b in scene.boxes:
        mats.extend(b.face_materials())
        labels.extend(f"{b.label}{name}" for name in BOX_FACES)
    gain = 255.0 * scene.exposure
    col = np.zeros((f + 1, 3), np.float32)
    col2 = np.zeros((f + 1, 3), np.float32)
    if f:
        col[:f] = np.array([m.color for m in mats]) * gain
        col2[:f] = np.array([m.color2 for m in mats]) * gain
    tex = np.array([_TEX_ID[m.texture] for m in mats] + [0], np.int8)
    inv_scale = np.array([1.0 / m.scale for m in mats] + [1.0], np.float32)
    grain = np.array([m.grain for m in mats] + [0.0], np.float32)
    sun = (light.directional * np.maximum(face_n @ ldir, 0.0)).astype(np.float32)
    sun[-1] = 0.0
    shade = (light.ambient + sun).astype(np.float32)
    shade[-1] = 0.0
    return _Compiled(
        plane_n=pn, plane_d=pd, plane_face=np.arange(n_pl, dtype=np.int32),
        box_c=bc, box_r=br, box_h=bh, box_inside=bi, box_face0=(n_pl + 6 * np.arange(n_bx)).astype(np.int32),
        box_corners=corners, face_n=face_n, face_d=face_d, face_tu=face_tu, face_tv=face_tv, face_col=col,
        face_col2=col2, face_tex=tex, face_inv_scale=inv_scale, face_grain=grain, face_const_shade=shade, face_sun=sun,
        face_label=labels,
        face_prim=np.concatenate([np.arange(n_pl), n_pl + np.repeat(np.arange(n_bx), 6)]).astype(np.int32))


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------
@dataclass
class SyntheticFrame:
    """One rendered frame.  ``depth`` is NaN exactly where ``invalid`` is True (sky, nothing hit,
    or beyond ``far``); elsewhere it is the exact Z (optical axis) distance in metres."""

    rgb: np.ndarray            # (H, W, 3) uint8 RGB
    depth: np.ndarray          # (H, W) float32 metres along optical Z; NaN = invalid
    invalid: np.ndarray        # (H, W) bool
    intrinsics: PinholeIntrinsics
    pose: CameraPose           # camera pose in the scene's world frame
    face_id: np.ndarray        # (H, W) int32: face hit (index into scene.face_planes()), -1 = none
    far: float
    kind: str = ""
    seed: Optional[int] = None
    index: Optional[int] = None

    @property
    def valid(self) -> np.ndarray:
        return ~self.invalid

    @property
    def K(self) -> np.ndarray:
        return self.intrinsics.K()

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height

    @property
    def fx(self) -> float:
        return self.intrinsics.fx

    @property
    def fy(self) -> float:
        return self.intrinsics.fy

    @property
    def cx(self) -> float:
        return self.intrinsics.cx

    @property
    def cy(self) -> float:
        return self.intrinsics.cy

    def depth_or(self, value: float = 0.0) -> np.ndarray:
        """A copy of the depth with invalid pixels set to ``value`` (e.g. 0 for a 16-bit PNG)."""
        d = self.depth.copy()
        d[self.invalid] = value
        return d

    def camera_intrinsics(self) -> Any:
        """The intrinsics as ``mono_depth_ros.camera.CameraIntrinsics`` (imported lazily)."""
        from .camera import CameraIntrinsics

        i = self.intrinsics
        return CameraIntrinsics(width=i.width, height=i.height, fx=i.fx, fy=i.fy, cx=i.cx, cy=i.cy)


@lru_cache(maxsize=16)
def _ray_grid(width: int, height: int, fx: float, fy: float, cx: float, cy: float
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-resolution ray directions (x, y, 1): x (W,) and y (H,) float32, and 1 / |(x, y, 1)| (H, W)."""
    x = ((np.arange(width) - cx) / fx).astype(np.float32)
    y = ((np.arange(height) - cy) / fy).astype(np.float32)
    inv_norm = (1.0 / np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + 1.0)).astype(np.float32)
    for a in (x, y, inv_norm):
        a.setflags(write=False)
    return x, y, inv_norm


@lru_cache(maxsize=4)
def _noise_tile(width: int, height: int) -> np.ndarray:
    t = np.random.default_rng(20140601).standard_normal((3, height + 32, width + 32), dtype=np.float32)
    t.setflags(write=False)
    return t


def _box_rects(c: _Compiled, r_wc: np.ndarray, origin: np.ndarray, intr: PinholeIntrinsics,
               near: float = 1e-3) -> np.ndarray:
    """(M, 4) int pixel rectangles [x0, x1, y0, y1) that contain every box's visible projection
    (all boxes at once: corners and near-plane edge crossings, projected)."""
    m = len(c.box_c)
    w, h = intr.width, intr.height
    out = np.zeros((m, 4), np.int64)
    if m == 0:
        return out
    cam = (c.box_corners - origin) @ r_wc            # (M, 8, 3) optical frame
    z = cam[..., 2]
    a, b = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]
    za, zb = a[..., 2], b[..., 2]
    crosses = (za - near) * (zb - near) < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(crosses, (near - za) / (zb - za), 0.0)
    p = a + s[..., None] * (b - a)
    pts = np.concatenate([cam, p], axis=1)            # (M, 20, 3)
    ok = np.concatenate([z >= near, crosses], axis=1)
    pz = np.where(ok, pts[..., 2], 1.0)
    u = np.where(ok, intr.fx * pts[..., 0] / pz + intr.cx, np.nan)
    v = np.where(ok, intr.fy * pts[..., 1] / pz + intr.cy, np.nan)
    any_ok = ok.any(axis=1)
    with np.errstate(invalid="ignore"):
        umin = np.where(any_ok, np.nanmin(np.where(ok, u, np.inf), axis=1), 0)
        umax = np.where(any_ok, np.nanmax(np.where(ok, u, -np.inf), axis=1), -1)
        vmin = np.where(any_ok, np.nanmin(np.where(ok, v, np.inf), axis=1), 0)
        vmax = np.where(any_ok, np.nanmax(np.where(ok, v, -np.inf), axis=1), -1)
    out[:, 0] = np.clip(np.floor(umin) - 1, 0, w)
    out[:, 1] = np.clip(np.ceil(umax) + 2, 0, w)
    out[:, 2] = np.clip(np.floor(vmin) - 1, 0, h)
    out[:, 3] = np.clip(np.ceil(vmax) + 2, 0, h)
    out[~any_ok] = 0
    out[c.box_inside] = (0, w, 0, h)                  # rooms surround the camera
    return out


def _hash01(i: np.ndarray, j: np.ndarray, k: Union[np.ndarray, int]) -> np.ndarray:
    """Deterministic integer hash of three int32 arrays -> float32 in [0, 1)."""
    h = i * np.int32(374761393) + j * np.int32(668265263) + np.asarray(k, np.int32) * np.int32(1274126177)
    h = (h ^ (h >> 13)) * np.int32(1103515245)
    h = h ^ (h >> 16)
    return (h & 0xFFFF).astype(np.float32) * np.float32(1.0 / 65536.0)


def _pattern(tex: int, u: np.ndarray, v: np.ndarray, inv_s: np.ndarray, f: np.ndarray, road: Road) -> np.ndarray:
    """Mix factor in [0, 1] between a face's color (0) and color2 (1) for texture ``tex``."""
    if tex == _TEX_ID["checker"]:
        i = np.floor(u * inv_s).astype(np.int32) + np.floor(v * inv_s).astype(np.int32)
        return (i & 1).astype(np.float32)
    if tex == _TEX_ID["stripes"]:
        return (np.floor(u * inv_s).astype(np.int32) & 1).astype(np.float32)
    if tex == _TEX_ID["noise"]:
        iu, iv = np.floor(u * inv_s).astype(np.int32), np.floor(v * inv_s).astype(np.int32)
        return 0.6 * _hash01(iu, iv, f) + 0.4 * _hash01(iu >> 2, iv >> 2, f + 7)
    if tex == _TEX_ID["planks"]:   # boards along u: per-board tone, dark seams
        sv = v * inv_s
        board = np.floor(sv).astype(np.int32)
        seam = (sv - board) < 0.07
        tone = 0.45 * _hash01(board, np.floor(u * (inv_s * 0.25)).astype(np.int32), f)
        return np.where(seam, np.float32(1.0), tone)
    if tex == _TEX_ID["windows"]:  # facade: window grid (u along the wall, v up; cell = scale x 1.3 scale)
        su, sv = u * inv_s, v * (inv_s / 1.3)
        fu, fv = su - np.floor(su), sv - np.floor(sv)
        win = (fu > 0.25) & (fu < 0.75) & (fv > 0.3) & (fv < 0.8) & (v > 1.0)
        return win.astype(np.float32)
    if tex == _TEX_ID["road"]:     # u = world x (along the road), v = world y (across)
        hw, lw = road.half_width, road.line_width / 2.0
        rel = (v + hw) / road.lane_width
        lane = np.round(rel)
        near_line = np.abs(rel - lane) * road.lane_width < lw
        inner = (lane >= 1) & (lane <= road.n_lanes - 1)
        fx = u / road.dash_period
        dash = (fx - np.floor(fx)) * road.dash_period < road.dash_length
        edge = np.abs(np.abs(v) - (hw - 0.3)) < lw
        mark = (near_line & inner & dash) | edge
        speck = _hash01(np.floor(u * 8).astype(np.int32), np.floor(v * 8).astype(np.int32), 3) * 0.12
        return np.where(mark, np.float32(1.0), speck)
    if tex == _TEX_ID["asphalt"] or tex == _TEX_ID["asphalt_plain"]:
        # u = world x (along the road), v = world y; color2 = markings (asphalt) or a darker patch tone
        iu, iv = np.floor(u * inv_s).astype(np.int32), np.floor(v * (inv_s * 1.7)).astype(np.int32)
        patch = 0.5 * _hash01(iu, iv, 11) * (_hash01(iu, iv, 12) < 0.35)       # repairs, stains (blocks)
        speck = _hash01(np.floor(u * 10).astype(np.int32), np.floor(v * 10).astype(np.int32), 3) * 0.1
        lane_rel = (v + road.half_width) / road.lane_width
        off = np.abs((lane_rel - np.floor(lane_rel)) - 0.5) * road.lane_width   # m from the lane centre
        track = (np.abs(off - 0.8) < 0.3).astype(np.float32)                     # tyre tracks
        if tex == _TEX_ID["asphalt_plain"]:
            return np.minimum(patch + speck + 0.25 * track, np.float32(1.0))
        hw, lw = road.half_width, road.line_width / 2.0
        rel = (v + hw) / road.lane_width
        lane = np.round(rel)
        near_line = np.abs(rel - lane) * road.lane_width < lw
        inner = (lane >= 1) & (lane <= road.n_lanes - 1)
        fx = u / road.dash_period
        dash = (fx - np.floor(fx)) * road.dash_period < road.dash_length
        edge = np.abs(np.abs(v) - (hw - 0.3)) < lw
        worn = _hash01(np.floor(u * 2).astype(np.int32), np.floor(v * 4).astype(np.int32), 5) * 0.35
        mark = (near_line & inner & dash) | edge
        return np.where(mark, np.float32(1.0) - worn, speck - 0.12 * patch - 0.06 * track)
    if tex == _TEX_ID["bricks"]:   # running bond: rows scale / 3 high, bricks scale long, mortar = color2
        su, sv = u * inv_s, v * (inv_s * 3.0)
        row = np.floor(sv).astype(np.int32)
        su = su + 0.5 * (row & 1)
        col = np.floor(su).astype(np.int32)
        mortar = ((su - col) < 0.06) | ((sv - row) < 0.12)
        return np.where(mortar, np.float32(1.0), 0.35 * _hash01(col, row, f))
    if tex == _TEX_ID["foliage"]:  # three octaves of value noise (leaves, lawn)
        out = np.zeros(u.shape, np.float32)
        for k, w in ((1, 0.45), (3, 0.35), (9, 0.2)):
            out += w * _hash01(np.floor(u * inv_s * k).astype(np.int32), np.floor(v * inv_s * k).astype(np.int32),
                               f + 31 * k)
        return out
    return np.zeros(u.shape, np.float32)


def render(scene: Scene, pose: Optional[CameraPose] = None, intrinsics: Any = None, *, noise_seed: int = 0,
           cull: bool = True) -> SyntheticFrame:
    """Ray-cast ``scene`` from ``pose`` (default: ``scene.camera``) with ``intrinsics`` (default:
    320x240 at ``scene.hfov_deg``).  ``noise_seed`` picks the image-noise pattern (the geometry and the
    depth do not depend on it).  ``cull=False`` ray-casts every box over the whole image (for
    benchmarking the screen-space culling; same result)."""
    pose = scene.camera if pose is None else pose
    intr = scene.default_intrinsics() if intrinsics is None else _as_intrinsics(intrinsics)
    w, h = intr.width, intr.height
    xs, ys, inv_norm = _ray_grid(w, h, intr.fx, intr.fy, intr.cx, intr.cy)
    yc = ys[:, None]
    c = scene.compiled()
    r = pose.rotation()
    o = np.asarray(pose.position, float)
    zbuf = np.full((h, w), np.inf, np.float32)
    fid = np.full((h, w), -1, np.int32)
    f32 = np.float32

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # -- planes, all at once: t = (d - n.o) / (n . R d_c), d_c = (x, y, 1) so t is the Z depth
        if len(c.plane_n):
            nc = (c.plane_n @ r).astype(f32)                              # (P, 3) normals in optical frame
            num = (c.plane_d - c.plane_n @ o).astype(f32)[:, None, None]
            den = nc[:, 0, None, None] * xs + nc[:, 1, None, None] * yc + nc[:, 2, None, None]
            t = num / den
            t = np.where(t > _EPS, t, f32(np.inf))
            if len(t) == 1:
                k, tmin = np.zeros((h, w), np.int32), t[0]
            else:
                k = np.argmin(t, axis=0).astype(np.int32)
                tmin = np.take_along_axis(t, k[None], axis=0)[0]
            hit = tmin < zbuf
            np.copyto(zbuf, tmin, where=hit)
            np.copyto(fid, c.plane_face[k], where=hit)

        # -- boxes: slab test in each box's frame, over its screen rectangle only
        rects = _box_rects(c, r, o, intr) if cull else np.tile([0, w, 0, h], (len(c.box_c), 1))
        for j in range(len(c.box_c)):
            x0, x1, y0, y1 = (int(v) for v in rects[j])
            if x1 <= x0 or y1 <= y0:
                continue
            rb = c.box_r[j]
            a = rb.T @ r                                  # optical ray -> box frame
            ol = rb.T @ (o - c.box_c[j])
            hb = c.box_h[j]
            inside = bool(c.box_inside[j])
            xr, yr = xs[x0:x1], yc[y0:y1]
            zr, fr = zbuf[y0:y1, x0:x1], fid[y0:y1, x0:x1]
            slabs = []
            for ax in range(3):
                inv = 1.0 / ((float(a[ax, 0]) * xr + float(a[ax, 1]) * yr) + float(a[ax, 2]))
                ta = (float(-hb[ax] - ol[ax])) * inv
                tb = (float(hb[ax] - ol[ax])) * inv
                # face index 2 * ax + side; side 1 = the +h face (exit through it if inv > 0, enter if < 0)
                if inside:   # exit point: nearest far slab
                    slabs.append((np.maximum(ta, tb), np.minimum(ta, tb), (inv > 0).view(np.int8) + np.int8(2 * ax)))
                else:        # entry point: farthest near slab
                    slabs.append((np.minimum(ta, tb), np.maximum(ta, tb), (inv < 0).view(np.int8) + np.int8(2 * ax)))
            tsel, tother, face = slabs[0]
            for tk, tk_other, fk in slabs[1:]:
                better = (tk < tsel) if inside else (tk > tsel)
                np.copyto(tsel, tk, where=better)
                np.copyto(face, fk, where=better)
                if inside:
                    np.maximum(tother, tk_other, out=tother)
                else:
                    np.minimum(tother, tk_other, out=tother)
            if inside:
                hit = (tother <= tsel) & (tsel > _EPS) & (tsel < zr)
            else:
                hit = (tsel <= tother) & (tsel > _EPS) & (tsel < zr)
            np.copyto(zr, tsel, where=hit)
            np.copyto(fr, np.add(face, np.int32(c.box_face0[j]), dtype=np.int32), where=hit)

        # -- depth and validity
        hitmask = fid >= 0
        invalid = ~(hitmask & (zbuf <= scene.far))
        depth = np.where(invalid, f32(np.nan), zbuf)

        # -- surface points and texture coordinates (planar float32 layout; 1-D np.take gathers)
        tab = c.tables
        take = np.take
        tz = np.where(hitmask, zbuf, f32(0.0))
        rf = r.astype(f32)
        dw = [(rf[i, 0] * xs + rf[i, 1] * yc) + rf[i, 2] for i in range(3)]   # world ray (x, y, 1)
        p = [f32(o[i]) + tz * dw[i] for i in range(3)]                          # world hit points
        u = take(tab["tu3"], fid) + take(tab["tu0"], fid) * p[0] + take(tab["tu1"], fid) * p[1] \
            + take(tab["tu2"], fid) * p[2]
        v = take(tab["tv3"], fid) + take(tab["tv0"], fid) * p[0] + take(tab["tv1"], fid) * p[1] \
            + take(tab["tv2"], fid) * p[2]

        # -- albedo mix factor: procedural texture, per texture kind present
        counts = np.bincount(fid.ravel() + 1, minlength=len(c.face_tex))[1:]
        present = np.unique(c.face_tex[np.flatnonzero(counts)])
        mix: Optional[np.ndarray] = None
        for tex in present:
            if tex == _TEX_ID["flat"]:
                continue
            if mix is None:
                mix = np.zeros((h, w), f32)
            m = take(c.face_tex, fid) == tex
            fm = fid[m]
            mix[m] = _pattern(int(tex), u[m], v[m], take(tab["inv_scale"], fm), fm, scene.road)
        gs = f32(1.0 / scene.grain_cell)
        grain = _hash01(np.floor(u * gs).astype(np.int32), np.floor(v * gs).astype(np.int32), fid)
        shade = take(tab["shade"], fid)
        if scene.shadows and scene.light.directional > 0 and len(c.box_c):
            sun = take(tab["sun"], fid)
            lit = np.flatnonzero(sun > 0)
            if len(lit):
                pts = np.stack([q.ravel()[lit] for q in p], axis=1)
                shadowed = lit[_shadowed(c, pts, np.asarray(scene.light.direction, float))]
                shade.ravel()[shadowed] -= sun.ravel()[shadowed]
        bright = shade * (f32(1.0) + take(tab["grain"], fid) * (grain - f32(0.5)))

        # -- point light (Lambert, falloff), per pixel
        lt = scene.light
        if lt.position is not None and lt.point > 0:
            lv = [f32(lt.position[i]) - p[i] for i in range(3)]
            d2 = lv[0] * lv[0] + lv[1] * lv[1] + lv[2] * lv[2]
            ndl = take(tab["n0"], fid) * lv[0] + take(tab["n1"], fid) * lv[1] + take(tab["n2"], fid) * lv[2]
            inv_d = f32(1.0) / np.sqrt(np.maximum(d2, f32(1e-6)))
            bright += f32(lt.point) * np.maximum(ndl, f32(0.0)) * inv_d / (f32(1.0) + d2 * f32(1.0 / lt.falloff ** 2))

        # -- colour per channel: albedo * brightness, fog towards the horizon, sky, noise, 8-bit
        gain = f32(255.0 * scene.exposure)
        horizon = [f32(q) * gain for q in scene.sky_horizon]
        zenith = [f32(q) * gain for q in scene.sky_zenith]
        keep = np.exp(tz * f32(-1.0 / scene.fog_distance)) if scene.fog_distance else None
        sky_mask = ~hitmask if not hitmask.all() else None
        elev = np.clip(dw[2] * inv_norm * f32(2.5), f32(0.0), f32(1.0)) if sky_mask is not None else None
        tile = None
        if scene.noise_sigma > 0:
            oy, ox = (int(q) for q in np.random.default_rng(noise_seed).integers(0, 32, size=2))
            tile = _noise_tile(w, h)[:, oy:oy + h, ox:ox + w]
        vig = None
        if scene.vignette > 0:
            rr = (xs / max(abs(float(xs[0])), abs(float(xs[-1]))))[None, :] ** 2 \
                + (ys / max(abs(float(ys[0])), abs(float(ys[-1]))))[:, None] ** 2
            vig = (f32(1.0) - f32(scene.vignette / 2.0) * rr).astype(f32)
        rgb = np.empty((h, w, 3), np.uint8)
        for ch in range(3):
            col = take(tab[f"col{ch}"], fid)
            if mix is not None:
                col += mix * take(tab[f"dcol{ch}"], fid)
            col *= bright
            if keep is not None:
                col -= horizon[ch]
                col *= keep
                col += horizon[ch]
            if sky_mask is not None and elev is not None:
                np.copyto(col, horizon[ch] + elev * (zenith[ch] - horizon[ch]), where=sky_mask)
            if scene.white_balance[ch] != 1.0:
                col *= f32(scene.white_balance[ch])
            if vig is not None:
                col *= vig
            if scene.gamma != 1.0:
                np.clip(col, f32(0.0), f32(255.0), out=col)
                col = (f32(255.0) * (col * f32(1.0 / 255.0)) ** f32(scene.gamma)).astype(f32)
            if scene.blur > 0:
                col = _blur_mix(col, f32(scene.blur))
            if tile is not None:
                col += f32(scene.noise_sigma) * tile[ch]
            col += f32(0.5)
            np.clip(col, f32(0.0), f32(255.0), out=col)
            rgb[..., ch] = col

    return SyntheticFrame(rgb=rgb, depth=depth, invalid=invalid, intrinsics=intr, pose=pose, face_id=fid,
                          far=scene.far, kind=scene.kind)


def _blur_mix(img: np.ndarray, a: np.float32) -> np.ndarray:
    """(1 - a) img + a binomial_3x3(img) (edges replicated); float32, whole-array operations."""
    pad = np.pad(img, 1, mode="edge")
    hz = pad[:, :-2] + 2 * pad[:, 1:-1] + pad[:, 2:]
    b = (hz[:-2] + 2 * hz[1:-1] + hz[2:]) * np.float32(1.0 / 16.0)
    return img * (np.float32(1.0) - a) + b * a


def _shadowed(c: _Compiled, pts: np.ndarray, light_dir: np.ndarray) -> np.ndarray:
    """Indices of the world points ``pts`` (N, 3) whose ray towards the light (``light_dir``, pointing at
    the light) hits a box.  Culled per box: a point can only be shadowed by a box if it lies in the
    box's shadow volume down to the ground (z = 0), whose x/y bounds are computed for all boxes at once;
    the points are sorted by x so that each box tests a contiguous slice."""
    ldir = light_dir / (np.linalg.norm(light_dir) or 1.0)
    if ldir[2] <= 1e-3 or not len(pts):
        return np.zeros(0, np.int64)
    corners = c.box_corners                                         # (M, 8, 3)
    ground = corners - (np.maximum(corners[..., 2:3], 0.0) / ldir[2]) * ldir
    allp = np.concatenate([corners, ground], axis=1)
    lo, hi = allp.min(axis=1), allp.max(axis=1)                     # (M, 3)
    order = np.argsort(pts[:, 0], kind="stable")
    ps = pts[order]
    xs = ps[:, 0]
    x0 = np.searchsorted(xs, lo[:, 0] - 1e-3, side="left")
    x1 = np.searchsorted(xs, hi[:, 0] + 1e-3, side="right")
    hit = np.zeros(len(ps), bool)
    for j in range(len(c.box_c)):
        a, b = int(x0[j]), int(x1[j])
        if b <= a or c.box_inside[j]:
            continue
        q = ps[a:b]
        sel = np.flatnonzero((q[:, 1] >= lo[j, 1] - 1e-3) & (q[:, 1] <= hi[j, 1] + 1e-3) & (q[:, 2] <= hi[j, 2])
                             & ~hit[a:b])
        if not len(sel):
            continue
        rb = c.box_r[j]
        ol = (q[sel] - c.box_c[j]) @ rb                             # points in the box frame
        dl = rb.T @ ldir
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (-c.box_h[j] - ol) / dl
            tb = (c.box_h[j] - ol) / dl
        tnear = np.nanmax(np.minimum(ta, tb), axis=1)
        tfar = np.nanmin(np.maximum(ta, tb), axis=1)
        sh = (tnear <= tfar) & (tfar > 0.02)
        hit[a + sel[sh]] = True
    return order[hit]


def cast_rays(scene: Scene, origins: np.ndarray, directions: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Generic ray casting (any origins, any directions; vectorised over rays *and* primitives).

    Returns (t, face): the ray parameter of the nearest hit (distance in units of ``directions``),
    inf where nothing is hit, and the face id (-1 for none).  Used for collision checks of
    trajectories, and as an independent check of :func:`render`."""
    o = np.atleast_2d(np.asarray(origins, float))
    d = np.atleast_2d(np.asarray(directions, float))
    o, d = np.broadcast_arrays(o, d)
    n = len(d)
    c = scene.compiled()
    best = np.full(n, np.inf)
    face = np.full(n, -1, np.int64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if len(c.plane_n):
            t = (c.plane_d[None] - o @ c.plane_n.T) / (d @ c.plane_n.T)      # (N, P)
            t = np.where(t > _EPS, t, np.inf)
            k = np.argmin(t, axis=1)
            best = t[np.arange(n), k]
            face = np.where(np.isfinite(best), c.plane_face[k], -1)
        if len(c.box_c):
            ol = np.einsum("nmj,mjk->nmk", o[:, None, :] - c.box_c[None], c.box_r)   # (N, M, 3)
            dl = np.einsum("nj,mjk->nmk", d, c.box_r)
            ta = (-c.box_h[None] - ol) / dl
            tb = (c.box_h[None] - ol) / dl
            tlo, thi = np.minimum(ta, tb), np.maximum(ta, tb)
            tnear, tfar = tlo.max(axis=2), thi.min(axis=2)
            ins = c.box_inside[None, :]
            t = np.where(ins, tfar, tnear)
            ok = (tnear <= tfar) & (t > _EPS)
            t = np.where(ok, t, np.inf)
            ax = np.where(ins, np.argmin(thi, axis=2), np.argmax(tlo, axis=2))          # (N, M)
            dsel = np.take_along_axis(dl, ax[..., None], axis=2)[..., 0]
            side = np.where(ins, dsel > 0, dsel < 0).astype(np.int64)
            bf = c.box_face0[None, :] + 2 * ax + side
            m = np.argmin(t, axis=1)
            tb_best = t[np.arange(n), m]
            closer = tb_best < best
            best = np.where(closer, tb_best, best)
            face = np.where(closer, bf[np.arange(n), m], face)
    return best, face


# ---------------------------------------------------------------------------------------------
# procedural scenes
# ---------------------------------------------------------------------------------------------
def _rng_for(kind: str, seed: int, index: int) -> np.random.Generator:
    if kind not in _KIND_IDS:
        raise ValueError(f"unknown scene kind {kind!r}; known: {', '.join(KINDS)}")
    if int(seed) < 0 or int(index) < 0:
        raise ValueError("seed and index must be >= 0")
    return np.random.default_rng([_KIND_IDS[kind], int(seed), int(index)])


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

    def place(size: Vec3, against_wall: bool) -> Optional[Tuple[float, float, float]]:
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

    n_items = int(rng.integers(3, 10))
    for _ in range(n_items):
        kind = str(rng.choice(["table", "cabinet", "sofa", "chair", "shelf", "crate"]))
        mat = _surface(rng, ["flat", "planks", "noise", "checker", "stripes"], scale=(0.05, 0.3))
        if kind == "table":
            sx, sy, top = rng.uniform(0.8, 2.0), rng.uniform(0.6, 1.1), rng.uniform(0.68, 0.8)
            pos = place((sx, sy, top), False)
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
        pos = place(size, wall_side)
        if pos is None:
            continue
        x, y, yaw = pos
        boxes.append(Box((x, y, size[2] / 2), size, yaw=yaw, material=mat, label=kind))

    # wall decor: paintings, windows, doors (thin boxes on the walls)
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

    lamp_xy = (rng.uniform(0.3, 0.7) * length, rng.uniform(-0.5, 0.5) * width)
    boxes.append(Box((lamp_xy[0], lamp_xy[1], height - 0.04), (0.5, 0.5, 0.08),
                     material=Material((0.97, 0.95, 0.85), (0.9, 0.9, 0.9), "flat", 1.0, 0.0), label="lamp"))
    light = Light(ambient=rng.uniform(0.25, 0.4), direction=(rng.uniform(-1, 1), rng.uniform(-1, 1), 1.5),
                  directional=rng.uniform(0.15, 0.3), position=(lamp_xy[0], lamp_xy[1], height - 0.25),
                  point=rng.uniform(1.2, 2.2), falloff=rng.uniform(2.5, 4.5))
    return Scene("indoor", [], boxes, cam, light, far=DEFAULT_FAR["indoor"], sky_horizon=(0.1, 0.1, 0.1),
                 sky_zenith=(0.1, 0.1, 0.1), exposure=float(rng.uniform(0.85, 1.15)),
                 noise_sigma=float(rng.uniform(0.8, 3.0)), grain_cell=0.03, hfov_deg=DEFAULT_HFOV_DEG["indoor"])


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

    # cars (body + cabin + wheel block); none in the camera's lane within 12 m
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
        from .street import _street_scene

        return _street_scene(rng)
    return _indoor_scene(rng) if kind == "indoor" else _outdoor_scene(rng)


# ---------------------------------------------------------------------------------------------
# frames, sequences, dataset
# ---------------------------------------------------------------------------------------------
def _make_scene(kind: str, seed: int, index: int) -> Tuple[Scene, int]:
    rng = _rng_for(kind, seed, index)
    scene = random_scene(kind, rng)
    scene.seed = (_KIND_IDS[kind], int(seed), int(index))
    return scene, int(rng.integers(0, 2 ** 31 - 1))


def _frame_intrinsics(scene: Scene, width: int, height: int, fx: Optional[float], fy: Optional[float],
                      cx: Optional[float], cy: Optional[float], hfov_deg: Optional[float]) -> PinholeIntrinsics:
    if scene.calib is not None and fx is None and fy is None and cx is None and cy is None and hfov_deg is None:
        return scene.default_intrinsics(width, height)
    return make_intrinsics(width, height, fx, fy, cx, cy, scene.hfov_deg if hfov_deg is None else hfov_deg)


def render_frame(kind: str = "indoor", seed: int = 0, width: int = 320, height: int = 240,
                 fx: Optional[float] = None, fy: Optional[float] = None, cx: Optional[float] = None,
                 cy: Optional[float] = None, hfov_deg: Optional[float] = None, index: int = 0) -> SyntheticFrame:
    """Frame ``index`` of seed ``seed``: a fresh random scene seen from its camera.  Same arguments,
    same frame (bit for bit).  Intrinsics: as :func:`make_intrinsics`, hfov by default 62 deg indoor,
    81 deg outdoor."""
    scene, noise_seed = _make_scene(kind, seed, index)
    intr = _frame_intrinsics(scene, width, height, fx, fy, cx, cy, hfov_deg)
    frame = render(scene, scene.camera, intr, noise_seed=noise_seed)
    frame.seed, frame.index = int(seed), int(index)
    return frame


def free_distance(scene: Scene, position: Any, heading: Any, radius: float = 0.3) -> float:
    """Distance one can move from ``position`` along the horizontal ``heading`` before a body of
    ``radius`` (probed at the position's height and 0.3 m above the floor, centre and both sides)
    touches anything."""
    hd = np.asarray(heading, float).copy()
    hd[2] = 0.0
    hd /= np.linalg.norm(hd)
    side = np.array([-hd[1], hd[0], 0.0])
    pos = np.asarray(position, float)
    origins = []
    for z in (pos[2], 0.3):
        for s in (-radius, 0.0, radius):
            origins.append(np.array([pos[0], pos[1], z]) + s * side)
    t, _ = cast_rays(scene, np.array(origins), np.tile(hd, (len(origins), 1)))
    return float(t.min())


def camera_trajectory(scene: Scene, n_frames: int, *, fps: float = 10.0, speed: Optional[float] = None,
                      yaw_rate: Optional[float] = None, start: Optional[CameraPose] = None) -> List[CameraPose]:
    """A smooth camera path through ``scene`` of ``n_frames`` poses at ``fps``: moving forward at
    ``speed`` (m/s; default 0.5 indoor, 8 outdoor) along the heading, turning at up to ``yaw_rate``
    (rad/s, a smooth sinusoid; default from the scene's seed, |rate| <= 0.25 indoor, 0.02 outdoor), with
    a slight bob/pitch sway indoor.  The camera slows to a stop rather than move within 0.5 m (indoor)
    / 3 m (outdoor) of any surface.  Deterministic: same scene and arguments, same poses."""
    if n_frames < 1:
        raise ValueError("n_frames must be >= 1")
    start = scene.camera if start is None else start
    indoor = scene.kind == "indoor"
    street = scene.kind == "street"   # drives along the road (+x), camera yaw fixed to the rig's
    scene = scene.static()            # moving cars are not obstacles (they keep their distance)
    rng = np.random.default_rng(list(scene.seed) + [97])
    if speed is None:
        speed = 0.5 if indoor else 8.0
    if yaw_rate is None:
        yaw_rate = float(rng.uniform(-0.25, 0.25) if indoor else 0.0 if street else rng.uniform(-0.02, 0.02))
    margin, radius = (0.5, 0.25) if indoor else (3.0, 1.0)
    phase = float(rng.uniform(0, 2 * math.pi))
    dt = 1.0 / fps
    pos = np.asarray(start.position, float).copy()
    poses = []
    for i in range(n_frames):
        t = i * dt
        yaw = start.yaw + yaw_rate * t * (1.0 - 0.3 * math.cos(0.7 * t + phase))
        # bob / pitch sway, zero at t = 0 so that the first pose is ``start`` exactly
        bob = 0.01 * (math.sin(2 * math.pi * 0.8 * t + phase) - math.sin(phase)) if indoor else 0.0
        sway = (0.01 * (math.sin(2 * math.pi * 0.3 * t + phase) - math.sin(phase)) if indoor
                else 0.002 * math.sin(2 * math.pi * 0.5 * t))
        poses.append(CameraPose((float(pos[0]), float(pos[1]), float(pos[2] + bob)), yaw=float(yaw),
                                pitch=float(start.pitch + sway), roll=float(start.roll)))
        heading = np.array([1.0, 0.0, 0.0]) if street else np.array([math.cos(yaw), math.sin(yaw), 0.0])
        step = speed * dt
        free = free_distance(scene, pos, heading, radius)
        step = max(0.0, min(step, free - margin))
        pos = pos + step * heading
    return poses


def render_sequence(kind: str = "indoor", seed: int = 0, n_frames: int = 20, width: int = 320, height: int = 240,
                    fps: float = 10.0, hfov_deg: Optional[float] = None, **trajectory_kw: Any) -> List[SyntheticFrame]:
    """A camera stream: ``n_frames`` frames of one scene (the scene of ``render_frame(kind, seed)``)
    along :func:`camera_trajectory`.  Frame 0 equals ``render_frame(kind, seed, width, height)``."""
    scene, noise_seed = _make_scene(kind, seed, 0)
    intr = _frame_intrinsics(scene, width, height, None, None, None, None, hfov_deg)
    frames = []
    for i, pose in enumerate(camera_trajectory(scene, n_frames, fps=fps, **trajectory_kw)):
        f = render(scene.at_time(i / fps), pose, intr, noise_seed=noise_seed + i)
        f.seed, f.index = int(seed), i
        frames.append(f)
    return frames


class SyntheticDataset:
    """Map-style dataset of independent random frames: ``ds[i]`` -> (rgb (H, W, 3) uint8,
    depth (H, W) float32 metres, valid (H, W) bool).  Invalid depth is ``invalid_value`` (NaN by
    default).  Frame i of a given (kind, seed, size, intrinsics) is always the same: it is
    ``render_frame(kind, seed, width, height, ..., index=i)``.  Different seeds give disjoint scene sets
    (use one seed for training and another for held-out evaluation).  No torch import: wrap it."""

    def __init__(self, kind: str = "indoor", n: int = 1000, seed: int = 0, width: int = 320, height: int = 240,
                 *, fx: Optional[float] = None, fy: Optional[float] = None, cx: Optional[float] = None,
                 cy: Optional[float] = None, hfov_deg: Optional[float] = None, invalid_value: float = float("nan")):
        if kind not in _KIND_IDS:
            raise ValueError(f"unknown scene kind {kind!r}; known: {', '.join(KINDS)}")
        if n < 0:
            raise ValueError("n must be >= 0")
        self.kind, self.n, self.seed = kind, int(n), int(seed)
        self.width, self.height = int(width), int(height)
        self._intr_kw = dict(fx=fx, fy=fy, cx=cx, cy=cy, hfov_deg=hfov_deg)
        self.invalid_value = float(invalid_value)
        self.far = DEFAULT_FAR[kind]
        if kind == "street" and fx is None and fy is None and cx is None and cy is None and hfov_deg is None:
            from .street import KITTI_CALIBS, kitti_intrinsics_scaled

            # nominal: KITTI's 2011_09_26 calibration; each frame carries its own (frame(i).intrinsics)
            self.intrinsics = make_intrinsics(self.width, self.height,
                                              *kitti_intrinsics_scaled(self.width, self.height, KITTI_CALIBS[0]))
        else:
            self.intrinsics = make_intrinsics(self.width, self.height, fx, fy, cx, cy,
                                              DEFAULT_HFOV_DEG[kind] if hfov_deg is None else hfov_deg)

    def __len__(self) -> int:
        return self.n

    def _index(self, i: int) -> int:
        i = int(i)
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a dataset of {self.n} frames")
        return i

    def frame(self, i: int) -> SyntheticFrame:
        """The full :class:`SyntheticFrame` of item ``i`` (with intrinsics, pose, face ids)."""
        return render_frame(self.kind, self.seed, self.width, self.height, index=self._index(i),
                            **self._intr_kw)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        f = self.frame(i)
        depth = f.depth
        if not math.isnan(self.invalid_value):
            depth = f.depth_or(self.invalid_value)
        return f.rgb, depth, f.valid

    def __repr__(self) -> str:
        return (f"SyntheticDataset(kind={self.kind!r}, n={self.n}, seed={self.seed}, "
                f"width={self.width}, height={self.height})")
