"""Frames, camera trajectories, sequences and the indexable :class:`SyntheticDataset`."""
from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np

from .camera import KITTI_CALIBS, CameraPose, PinholeIntrinsics, kitti_intrinsics_scaled, make_intrinsics
from .render import SyntheticFrame, cast_rays, render
from .scene import DEFAULT_FAR, DEFAULT_HFOV_DEG, KINDS, _KIND_IDS, Scene
from .scenes import _rng_for, random_scene


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
