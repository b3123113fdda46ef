"""The renderer: a vectorised numpy ray caster (planes all at once, boxes over their screen rectangles),
procedural textures, lighting, shadows and the camera's image formation."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Tuple, Union

import numpy as np

from ..camera import CameraIntrinsics
from .camera import CameraPose, PinholeIntrinsics, _as_intrinsics
from .scene import _EDGES, _EPS, _TEX_ID, Road, Scene, _Compiled

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

    # the intrinsics' fields, read through the frame
    width = property(lambda self: self.intrinsics.width)
    height = property(lambda self: self.intrinsics.height)
    fx = property(lambda self: self.intrinsics.fx)
    fy = property(lambda self: self.intrinsics.fy)
    cx = property(lambda self: self.intrinsics.cx)
    cy = property(lambda self: self.intrinsics.cy)

    def depth_or(self, value: float = 0.0) -> np.ndarray:
        """A copy of the depth with invalid pixels set to ``value`` (e.g. 0 for a 16-bit PNG)."""
        d = self.depth.copy()
        d[self.invalid] = value
        return d

    def camera_intrinsics(self) -> Any:
        """The intrinsics as ``mono_depth_ros.camera.CameraIntrinsics``."""
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


def _lane_marks(u: np.ndarray, v: np.ndarray, road: Any) -> np.ndarray:
    """Lane markings of a road along world x (u) centred on y = 0 (v): dashed inner lines and solid edges."""
    hw, lw = road.half_width, road.line_width / 2.0
    rel = (v + hw) / road.lane_width
    lane = np.round(rel)
    near_line = np.abs(rel - lane) * road.lane_width < lw
    inner = (lane >= 1) & (lane <= road.n_lanes - 1)
    fx = u / road.dash_period
    dash = (fx - np.floor(fx)) * road.dash_period < road.dash_length
    edge = np.abs(np.abs(v) - (hw - 0.3)) < lw
    return (near_line & inner & dash) | edge


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
        mark = _lane_marks(u, v, road)
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
        worn = _hash01(np.floor(u * 2).astype(np.int32), np.floor(v * 4).astype(np.int32), 5) * 0.35
        mark = _lane_marks(u, v, road)
        return np.where(mark, np.float32(1.0) - worn, speck - 0.12 * patch - 0.06 * track)
    if tex == _TEX_ID["bricks"]:   # running bond: rows scale / 3 high, bricks scale long, mortar = color2
        su, sv = u * inv_s, v * (inv_s * 3.0)
        row = np.floor(sv).astype(np.int32)
        su = su + 0.5 * (row & 1)
        col = np.floor(su).astype(np.int32)
        mortar = ((su - col) < 0.06) | ((sv - row) < 0.12)
        return np.where(mortar, np.float32(1.0), 0.35 * _hash01(col, row, f))
    if tex == _TEX_ID["facade"]:
        return _facade_mix(u, v, inv_s, f)
    if tex == _TEX_ID["foliage"]:  # three octaves of value noise (leaves, lawn)
        out = np.zeros(u.shape, np.float32)
        for k, w in ((1, 0.45), (3, 0.35), (9, 0.2)):
            out += w * _hash01(np.floor(u * inv_s * k).astype(np.int32), np.floor(v * inv_s * k).astype(np.int32),
                               f + 31 * k)
        return out
    return np.zeros(u.shape, np.float32)


def _facade_mix(u: np.ndarray, v: np.ndarray, inv_s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """A facade (u along the wall, v up; cell = scale wide, 1.3 scale high): framed windows whose glass tone
    varies per window (dark, reflecting, lit; color2 is the glass), a floor band, a weathered wall."""
    f32 = np.float32
    su, sv = u * inv_s, v * (inv_s / f32(1.3))
    iu, iv = np.floor(su).astype(np.int32), np.floor(sv).astype(np.int32)
    fu, fv = su - iu, sv - iv
    above = v > 1.0
    glass = (fu > 0.22) & (fu < 0.78) & (fv > 0.28) & (fv < 0.82) & above
    frame = (fu > 0.16) & (fu < 0.84) & (fv > 0.22) & (fv < 0.88) & above & ~glass
    wall = f32(0.2) * _hash01(iu >> 1, iv >> 1, f + 5) + f32(0.08) * _hash01(
        np.floor(u * 4).astype(np.int32), np.floor(v * 4).astype(np.int32), f + 9)
    tone = f32(0.5) + f32(0.5) * _hash01(iu, iv, f + 3)
    return np.where(glass, tone, np.where(frame | (fv < 0.06), f32(0.35), wall)).astype(f32)


def render(scene: Scene, pose: Optional[CameraPose] = None, intrinsics: Any = None, *, noise_seed: int = 0,
           cull: bool = True) -> SyntheticFrame:
    """Ray-cast ``scene`` from ``pose`` (default: ``scene.camera``) with ``intrinsics`` (default:
    320x240 at ``scene.hfov_deg``).  ``noise_seed`` picks the image-noise pattern (the geometry and the
    depth do not depend on it).  ``cull=False`` ray-casts every box over the whole image (for
    benchmarking the screen-space culling; same result)."""
    pose = scene.camera if pose is None else pose
    intr = scene.default_intrinsics() if intrinsics is None else _as_intrinsics(intrinsics)
    xs, ys, inv_norm = _ray_grid(intr.width, intr.height, intr.fx, intr.fy, intr.cx, intr.cy)
    c = scene.compiled()
    r = pose.rotation()
    o = np.asarray(pose.position, float)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        zbuf, fid = _cast(c, r, o, intr, xs, ys, cull)
        # -- depth and validity
        hitmask = fid >= 0
        invalid = ~(hitmask & (zbuf <= scene.far))
        depth = np.where(invalid, np.float32(np.nan), zbuf)
        tz, dw, p, u, v = _surface_points(c, r, o, xs, ys[:, None], zbuf, fid, hitmask)
        mix = _albedo_mix(c, scene.road, fid, u, v)
        bright = _brightness(scene, c, fid, p, u, v)
        rgb = _colour(scene, c, fid, hitmask, mix, bright, tz, dw[2], inv_norm, xs, ys, noise_seed)

    return SyntheticFrame(rgb=rgb, depth=depth, invalid=invalid, intrinsics=intr, pose=pose, face_id=fid,
                          far=scene.far, kind=scene.kind)


def _cast(c: _Compiled, r: np.ndarray, o: np.ndarray, intr: PinholeIntrinsics, xs: np.ndarray, ys: np.ndarray,
          cull: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Z buffer (float32, inf where nothing is hit) and face ids (-1 there) of every pixel."""
    w, h = intr.width, intr.height
    yc = ys[:, None]
    zbuf = np.full((h, w), np.inf, np.float32)
    fid = np.full((h, w), -1, np.int32)
    if len(c.plane_n):
        _cast_planes(c, r, o, xs, yc, zbuf, fid)
    # boxes: slab test in each box's frame, over its screen rectangle only
    rects = _box_rects(c, r, o, intr) if cull else np.tile([0, w, 0, h], (len(c.box_c), 1))
    for j in range(len(c.box_c)):
        x0, x1, y0, y1 = (int(v) for v in rects[j])
        if x1 <= x0 or y1 <= y0:
            continue
        _cast_box(c, j, r, o, xs[x0:x1], yc[y0:y1], zbuf[y0:y1, x0:x1], fid[y0:y1, x0:x1])
    return zbuf, fid


def _cast_planes(c: _Compiled, r: np.ndarray, o: np.ndarray, xs: np.ndarray, yc: np.ndarray, zbuf: np.ndarray,
                 fid: np.ndarray) -> None:
    """All planes at once: t = (d - n.o) / (n . R d_c), d_c = (x, y, 1) so t is the Z depth."""
    f32 = np.float32
    nc = (c.plane_n @ r).astype(f32)                              # (P, 3) normals in optical frame
    num = (c.plane_d - c.plane_n @ o).astype(f32)[:, None, None]
    den = nc[:, 0, None, None] * xs + nc[:, 1, None, None] * yc + nc[:, 2, None, None]
    t = num / den
    t = np.where(t > _EPS, t, f32(np.inf))
    if len(t) == 1:
        k, tmin = np.zeros(zbuf.shape, np.int32), t[0]
    else:
        k = np.argmin(t, axis=0).astype(np.int32)
        tmin = np.take_along_axis(t, k[None], axis=0)[0]
    hit = tmin < zbuf
    np.copyto(zbuf, tmin, where=hit)
    np.copyto(fid, c.plane_face[k], where=hit)


def _slab(a: np.ndarray, hb: float, ol: float, ax: int, xr: np.ndarray, yr: np.ndarray, inside: bool
          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(selected t, other t, face) of one slab of a box; ``a`` is the box-frame row of the ray axis ``ax``."""
    inv = 1.0 / ((float(a[0]) * xr + float(a[1]) * yr) + float(a[2]))
    ta = (float(-hb - ol)) * inv
    tb = (float(hb - ol)) * inv
    # face index 2 * ax + side; side 1 = the +h face (exit through it if inv > 0, enter if < 0)
    if inside:   # exit point: nearest far slab
        return np.maximum(ta, tb), np.minimum(ta, tb), (inv > 0).view(np.int8) + np.int8(2 * ax)
    # entry point: farthest near slab
    return np.minimum(ta, tb), np.maximum(ta, tb), (inv < 0).view(np.int8) + np.int8(2 * ax)


def _cast_box(c: _Compiled, j: int, r: np.ndarray, o: np.ndarray, xr: np.ndarray, yr: np.ndarray, zr: np.ndarray,
              fr: np.ndarray) -> None:
    """Box ``j`` over one screen rectangle (``zr``, ``fr``: views of the Z buffer and the face ids)."""
    rb = c.box_r[j]
    a = rb.T @ r                                  # optical ray -> box frame
    ol = rb.T @ (o - c.box_c[j])
    hb = c.box_h[j]
    inside = bool(c.box_inside[j])
    slabs = [_slab(a[ax], hb[ax], ol[ax], ax, xr, yr, inside) for ax in range(3)]
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


def _surface_points(c: _Compiled, r: np.ndarray, o: np.ndarray, xs: np.ndarray, yc: np.ndarray, zbuf: np.ndarray,
                    fid: np.ndarray, hitmask: np.ndarray) -> Tuple[np.ndarray, list, list, np.ndarray, np.ndarray]:
    """(hit Z or 0, world rays, world hit points, texture u, v): planar float32 layout, 1-D np.take gathers."""
    f32 = np.float32
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
    return tz, dw, p, u, v


def _albedo_mix(c: _Compiled, road: Road, fid: np.ndarray, u: np.ndarray, v: np.ndarray) -> Optional[np.ndarray]:
    """Albedo mix factor: the procedural texture, per texture kind present (None: all flat)."""
    counts = np.bincount(fid.ravel() + 1, minlength=len(c.face_tex))[1:]
    present = np.unique(c.face_tex[np.flatnonzero(counts)])
    mix: Optional[np.ndarray] = None
    for tex in present:
        if tex == _TEX_ID["flat"]:
            continue
        if mix is None:
            mix = np.zeros(fid.shape, np.float32)
        m = np.take(c.face_tex, fid) == tex
        fm = fid[m]
        mix[m] = _pattern(int(tex), u[m], v[m], np.take(c.tables["inv_scale"], fm), fm, road)
    return mix


def _brightness(scene: Scene, c: _Compiled, fid: np.ndarray, p: list, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shading x surface grain, sun shadows, plus the point light (Lambert, falloff), per pixel."""
    f32 = np.float32
    tab = c.tables
    take = np.take
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

    lt = scene.light
    if lt.position is not None and lt.point > 0:
        lv = [f32(lt.position[i]) - p[i] for i in range(3)]
        d2 = lv[0] * lv[0] + lv[1] * lv[1] + lv[2] * lv[2]
        ndl = take(tab["n0"], fid) * lv[0] + take(tab["n1"], fid) * lv[1] + take(tab["n2"], fid) * lv[2]
        inv_d = f32(1.0) / np.sqrt(np.maximum(d2, f32(1e-6)))
        bright += f32(lt.point) * np.maximum(ndl, f32(0.0)) * inv_d / (f32(1.0) + d2 * f32(1.0 / lt.falloff ** 2))
    return bright


def _noise_window(scene: Scene, w: int, h: int, noise_seed: int) -> Optional[np.ndarray]:
    """(3, h, w) window of the shared noise tile at an offset drawn from ``noise_seed`` (None: no noise)."""
    if scene.noise_sigma <= 0:
        return None
    oy, ox = (int(q) for q in np.random.default_rng(noise_seed).integers(0, 32, size=2))
    return _noise_tile(w, h)[:, oy:oy + h, ox:ox + w]


def _vignette(scene: Scene, xs: np.ndarray, ys: np.ndarray) -> Optional[np.ndarray]:
    if scene.vignette <= 0:
        return None
    f32 = np.float32
    rr = (xs / max(abs(float(xs[0])), abs(float(xs[-1]))))[None, :] ** 2 \
        + (ys / max(abs(float(ys[0])), abs(float(ys[-1]))))[:, None] ** 2
    return (f32(1.0) - f32(scene.vignette / 2.0) * rr).astype(f32)


def _colour(scene: Scene, c: _Compiled, fid: np.ndarray, hitmask: np.ndarray, mix: Optional[np.ndarray],
            bright: np.ndarray, tz: np.ndarray, ray_z: np.ndarray, inv_norm: np.ndarray, xs: np.ndarray,
            ys: np.ndarray, noise_seed: int) -> np.ndarray:
    """Colour per channel: albedo * brightness, fog towards the horizon, sky, then the camera; 8-bit."""
    f32 = np.float32
    tab = c.tables
    h, w = fid.shape
    gain = f32(255.0 * scene.exposure)
    horizon = [f32(q) * gain for q in scene.sky_horizon]
    zenith = [f32(q) * gain for q in scene.sky_zenith]
    keep = np.exp(tz * f32(-1.0 / scene.fog_distance)) if scene.fog_distance else None
    sky_mask = ~hitmask if not hitmask.all() else None
    elev = np.clip(ray_z * inv_norm * f32(2.5), f32(0.0), f32(1.0)) if sky_mask is not None else None
    tile = _noise_window(scene, w, h, noise_seed)
    vig = _vignette(scene, xs, ys)
    rgb = np.empty((h, w, 3), np.uint8)
    for ch in range(3):
        col = np.take(tab[f"col{ch}"], fid)
        if mix is not None:
            col += mix * np.take(tab[f"dcol{ch}"], fid)
        col *= bright
        if keep is not None:
            col -= horizon[ch]
            col *= keep
            col += horizon[ch]
        if sky_mask is not None and elev is not None:
            np.copyto(col, horizon[ch] + elev * (zenith[ch] - horizon[ch]), where=sky_mask)
        rgb[..., ch] = _camera_response(scene, ch, col, vig, tile)
    return rgb


def _camera_response(scene: Scene, ch: int, col: np.ndarray, vig: Optional[np.ndarray],
                     tile: Optional[np.ndarray]) -> np.ndarray:
    """White balance, vignetting, gamma, optical blur and sensor noise of one channel (float32, 0..255)."""
    f32 = np.float32
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
    return col


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
