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

import numpy as np  # noqa: F401  (``synthetic.np``: kept for callers of the old single module)

from .camera import (KITTI_CALIBS, KITTI_CAMERA_HEIGHT, KITTI_SIZE, CameraPose, PinholeIntrinsics, Vec3,
                     kitti_intrinsics_scaled, make_intrinsics)
from .render import SyntheticFrame, cast_rays, render
from .scene import DEFAULT_FAR, DEFAULT_HFOV_DEG, KINDS, TEXTURES, Box, Light, Material, Plane, Road, Room, Scene
from .scenes import random_scene
from .sequences import (SyntheticDataset, _make_scene, camera_trajectory, free_distance, render_frame,
                        render_sequence)

__all__ = ["KINDS", "TEXTURES", "DEFAULT_FAR", "DEFAULT_HFOV_DEG", "Vec3", "PinholeIntrinsics", "CameraPose",
           "make_intrinsics", "Material", "Plane", "Box", "Room", "Light", "Road", "Scene", "SyntheticFrame",
           "render", "cast_rays", "random_scene", "render_frame", "free_distance", "camera_trajectory",
           "render_sequence", "SyntheticDataset", "KITTI_CALIBS", "KITTI_SIZE", "KITTI_CAMERA_HEIGHT",
           "kitti_intrinsics_scaled", "_make_scene"]
