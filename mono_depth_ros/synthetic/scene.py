"""Scene description (planes, boxes, rooms, lights, roads, :class:`Scene`) and its compilation into the
flat per-face tables the renderer gathers from."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .camera import CameraPose, PinholeIntrinsics, Vec3, _rot_zyx, kitti_intrinsics_scaled, make_intrinsics

KINDS: Tuple[str, ...] = ("indoor", "outdoor", "street")
_KIND_IDS = {"indoor": 1, "outdoor": 2, "street": 3}
#: Horizontal field of view of the default camera: a Kinect (NYU) and KITTI's colour camera ("street":
#: KITTI's real calibration instead, see mono_depth_ros.street; 81.4 deg is its fx = 721.54 at 1242 px).
DEFAULT_HFOV_DEG: Dict[str, float] = {"indoor": 62.0, "outdoor": 81.0, "street": 81.4}
#: Far limit (metres): surfaces beyond it are invalid depth (NYU's 10 m, KITTI's 80 m).
DEFAULT_FAR: Dict[str, float] = {"indoor": 10.0, "outdoor": 80.0, "street": 80.0}
TEXTURES: Tuple[str, ...] = ("flat", "checker", "stripes", "noise", "planks", "windows", "road",
                             "asphalt", "asphalt_plain", "bricks", "foliage", "facade")
_TEX_ID = {name: i for i, name in enumerate(TEXTURES)}
_EPS = 1e-4  # minimum ray parameter (metres along optical Z) of a hit


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
    info: Dict[str, Any] = field(default_factory=dict)  # what the builder drew (e.g. the street's layout)
    _compiled: Optional["_Compiled"] = field(default=None, repr=False, compare=False)
    _compiled_key: Optional[Tuple[Any, ...]] = field(default=None, repr=False, compare=False)

    def default_intrinsics(self, width: int = 320, height: int = 240) -> PinholeIntrinsics:
        if self.calib is not None:
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
