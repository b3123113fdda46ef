"""Cameras of the synthetic scenes: pinhole intrinsics, poses (REP 103 body/optical frames) and KITTI's
real colour-camera calibrations (the ``"street"`` kind).  Conventions: see :mod:`mono_depth_ros.synthetic`."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Tuple

import numpy as np

from ..camera import CameraIntrinsics

Vec3 = Tuple[float, float, float]

# Body (FLU) axes of the optical frame: columns are optical x (right), y (down), z (forward).
_R_BODY_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

#: KITTI's left colour camera (P2 of the rectified calibration): (width, height, fx, fy, cx, cy).
#: 2011_09_26 (cvml_000114, kov_000002, mmdet3d_000008 and the raw-layout drive in ../shared/data) and
#: 2011_09_29 / 2011_10_03-type days (kov_000000: fx 707.0493).  Values copied from those calib files.
KITTI_CALIBS: Tuple[Tuple[int, int, float, float, float, float], ...] = (
    (1242, 375, 721.5377, 721.5377, 609.5593, 172.854),
    (1242, 375, 707.0493, 707.0493, 604.0814, 180.5066),
)
KITTI_SIZE = (1242, 375)
#: KITTI's colour cameras are 1.65 m above the road (Geiger et al., IJRR 2013, fig. 3).
KITTI_CAMERA_HEIGHT = 1.65


def kitti_intrinsics_scaled(width: int, height: int, calib: Tuple[int, int, float, float, float, float]
                            ) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of ``calib`` for an image resized to ``width x height`` (pixel-centre convention)."""
    w0, h0, fx, fy, cx, cy = calib
    sx, sy = width / w0, height / h0
    return fx * sx, fy * sy, (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5


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
