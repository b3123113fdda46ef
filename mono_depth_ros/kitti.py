"""KITTI calibration, Velodyne scans and LiDAR -> camera depth projection (ROS-agnostic).

Used by training/ (ground truth for the Eigen split), the bag tools (kitti2bag, LiDAR ground truth)
and tests.  Conventions follow the KITTI devkit:

* raw drives: ``<date>/calib_cam_to_cam.txt`` (K_xx, D_xx, R_rect_00, P_rect_0x, S_rect_0x, ...) and
  ``<date>/calib_velo_to_cam.txt`` (R, T: Velodyne -> camera 0, unrectified);
* object benchmark: ``calib/<id>.txt`` with P0..P3, R0_rect, Tr_velo_to_cam.

A Velodyne point X (homogeneous) lands in rectified camera ``cam`` at
``P_rect_0cam @ R_rect_00 @ T_velo_to_cam @ X``; its depth is the third coordinate (the distance
along the rectified camera's optical axis, plus P's tiny t_z term as monodepth2/BTS compute it).
Pixel (u, v) = (x / z, y / z) with pixel centres at integer coordinates (the convention of P); a
point goes to pixel ``(round(u), round(v))`` and the nearest point wins -- this reproduces the
derived maps in ../shared/data/kitti_object_lidar/proj_depth_velodyne exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np


class CalibrationError(ValueError):
    """A calibration file is missing or lacks a required entry."""


def read_calib_file(path: "str | Path") -> Dict[str, np.ndarray]:
    """Parse a KITTI ``key: v1 v2 ...`` calibration file; non-numeric entries are skipped."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist")
    out: Dict[str, np.ndarray] = {}
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            if ":" not in line:
                continue
            key, _, value = line.partition(":")
            try:
                out[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
            except ValueError:
                continue  # e.g. calib_time: 09-Jan-2012 13:57:47
    return out


def _need(calib: Dict[str, np.ndarray], key: str, size: int, path: "str | Path") -> np.ndarray:
    if key not in calib:
        raise CalibrationError(f"{path}: missing entry {key!r}")
    v = calib[key]
    if v.size != size:
        raise CalibrationError(f"{path}: entry {key!r} has {v.size} values, expected {size}")
    return v


@dataclass(frozen=True)
class KittiCalibration:
    """What is needed to put Velodyne points and images of one camera together."""

    P_rect: np.ndarray          # 3x4 projection of the rectified camera
    R_rect: np.ndarray          # 4x4 rectifying rotation (R_rect_00 / R0_rect), homogeneous
    T_velo_to_cam: np.ndarray   # 4x4 Velodyne -> camera 0 (unrectified)
    image_size: Optional[Tuple[int, int]] = None  # (width, height) of the rectified image, if known
    camera: int = 2

    @property
    def velo_to_rect(self) -> np.ndarray:
        """4x4 Velodyne -> rectified camera-0 frame (the optical frame shared by P_rect)."""
        return self.R_rect @ self.T_velo_to_cam

    @property
    def velo_to_image(self) -> np.ndarray:
        """3x4 Velodyne -> homogeneous pixel coordinates of this camera."""
        return self.P_rect @ self.velo_to_rect

    @property
    def K(self) -> np.ndarray:
        return self.P_rect[:, :3].copy()

    @property
    def velo_to_camera_optical(self) -> np.ndarray:
        """4x4 Velodyne -> this camera's own rectified optical frame (P_rect's baseline applied).

        P_rect = K [I | t] with t = K^-1 P[:, 3]; the camera's optical frame is the rectified
        camera-0 frame shifted by t, so X_cam = [I | t] velo_to_rect X and K X_cam = P_rect velo_to_rect X.
        """
        t = np.linalg.solve(self.K, self.P_rect[:, 3])
        shift = np.eye(4)
        shift[:3, 3] = t
        return shift @ self.velo_to_rect


def _homogeneous(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = R.reshape(3, 3)
    M[:3, 3] = T.reshape(3)
    return M


def load_raw_calibration(calib_dir: "str | Path", camera: int = 2) -> KittiCalibration:
    """Calibration of a KITTI raw date folder (``calib_cam_to_cam.txt`` + ``calib_velo_to_cam.txt``)."""
    calib_dir = Path(calib_dir)
    c2c_path = calib_dir / "calib_cam_to_cam.txt"
    v2c_path = calib_dir / "calib_velo_to_cam.txt"
    c2c = read_calib_file(c2c_path)
    v2c = read_calib_file(v2c_path)
    P = _need(c2c, f"P_rect_{camera:02d}", 12, c2c_path).reshape(3, 4)
    R_rect = np.eye(4)
    R_rect[:3, :3] = _need(c2c, "R_rect_00", 9, c2c_path).reshape(3, 3)
    T = _homogeneous(_need(v2c, "R", 9, v2c_path), _need(v2c, "T", 3, v2c_path))
    size = None
    key = f"S_rect_{camera:02d}"
    if key in c2c and c2c[key].size == 2:
        size = (int(round(c2c[key][0])), int(round(c2c[key][1])))
    return KittiCalibration(P, R_rect, T, size, camera)


def load_object_calibration(path: "str | Path", camera: int = 2) -> KittiCalibration:
    """Calibration of the KITTI object benchmark (``calib/<id>.txt``: P0..P3, R0_rect, Tr_velo_to_cam)."""
    c = read_calib_file(path)
    P = _need(c, f"P{camera}", 12, path).reshape(3, 4)
    R_rect = np.eye(4)
    R_rect[:3, :3] = _need(c, "R0_rect", 9, path).reshape(3, 3)
    T = np.eye(4)
    T[:3, :4] = _need(c, "Tr_velo_to_cam", 12, path).reshape(3, 4)
    return KittiCalibration(P, R_rect, T, None, camera)


def load_velodyne(path: "str | Path") -> np.ndarray:
    """A Velodyne scan (.bin, float32 N x 4: x, y, z in metres, reflectance)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Velodyne scan {path} does not exist")
    data = np.fromfile(str(path), dtype=np.float32)
    if data.size % 4:
        raise ValueError(f"Velodyne scan {path} has {data.size} floats, not a multiple of 4 (truncated?)")
    return data.reshape(-1, 4)


def project_points_to_depth(points: np.ndarray, P: np.ndarray, width: int, height: int,
                            min_depth: float = 1e-3) -> np.ndarray:
    """Project 3-D points (N x 3, in the frame P expects) into a sparse depth map.

    ``P`` is 3x4 (or a 3x3 K for points already in the camera's optical frame). Depth = the third
    homogeneous coordinate. Pixel centres are at integer coordinates (the convention of P and of
    ROS CameraInfo), so a point goes to pixel ``(round(u), round(v))``. Points behind the camera or
    outside the image are dropped; where several points hit a pixel the nearest wins.
    Returns (height, width) float32, 0 where there is no point.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 3:
        raise ValueError(f"points must be N x 3 (or N x 4), got {pts.shape}")
    P = np.asarray(P, dtype=np.float64)
    if P.shape == (3, 3):
        P = np.hstack([P, np.zeros((3, 1))])
    if P.shape != (3, 4):
        raise ValueError(f"P must be 3x4 or 3x3, got {P.shape}")
    proj = pts[:, :3] @ P[:, :3].T + P[:, 3]
    z = proj[:, 2]
    front = z > min_depth
    proj, z = proj[front], z[front]
    u = np.round(proj[:, 0] / z).astype(np.int64)
    v = np.round(proj[:, 1] / z).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, z = u[inside], v[inside], z[inside]
    depth = np.zeros((height, width), dtype=np.float32)
    if z.size:
        # nearest wins: write far-to-near so the nearest point is written last
        order = np.argsort(-z, kind="stable")
        depth[v[order], u[order]] = z[order]
    return depth


def velodyne_to_depth(scan: np.ndarray, calib: KittiCalibration, width: int, height: int) -> np.ndarray:
    """Ground-truth depth of a Velodyne scan in ``calib``'s rectified camera image."""
    pts = np.asarray(scan)[:, :3]
    pts = pts[pts[:, 0] > 0]  # in front of the Velodyne (as the devkit/monodepth2 do)
    hom = np.hstack([pts, np.ones((pts.shape[0], 1))])
    return project_points_to_depth((hom @ calib.velo_to_rect.T)[:, :3], calib.P_rect, width, height)


def read_depth_png(path: "str | Path") -> np.ndarray:
    """KITTI depth PNG (uint16, metres = value / 256, 0 = none) -> float32 metres (0 = none)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FileNotFoundError(f"cannot read depth PNG {path}")
    if img.dtype != np.uint16:
        raise ValueError(f"{path}: expected a 16-bit depth PNG, got {img.dtype}")
    return img.astype(np.float32) / 256.0
