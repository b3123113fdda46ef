"""Pinhole camera intrinsics and how they change when an image is resized or cropped.

Convention (the one OpenCV's ``cv2.resize`` and ROS ``image_geometry`` use): pixel ``u`` is the
*centre* of the pixel, which spans ``[u - 0.5, u + 0.5)``; a resize by ``s`` maps ``u`` to
``(u + 0.5) * s - 0.5`` and so ``cx' = (cx + 0.5) * s - 0.5``, ``fx' = fx * s``.  A crop starting at
``x0`` maps ``u`` to ``u - x0`` and so ``cx' = cx - x0``.

A point (X, Y, Z) in the camera optical frame (z forward, x right, y down, REP 103) projects to
``u = fx X / Z + cx``, ``v = fy Y / Z + cy``; back-projection of a depth image is the inverse.

Intrinsics of another image size (:func:`fit_intrinsics`, the one policy of the node, the CLI and the
bag tools): a camera_info whose size differs from the image's but whose aspect ratio matches (within
1 %: binning, decimation) is scaled to the image (logged once per size pair by
:class:`IntrinsicsFitter`); another aspect ratio is refused with one line (:class:`IntrinsicsSizeError`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from .yaml_files import read_yaml_mapping


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of a ``width`` x ``height`` image (no distortion: rectified images)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    # ---- transforms -----------------------------------------------------------------
    def scaled_to(self, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics of this image resized to ``width`` x ``height`` (pixel-centre convention)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"target size must be positive, got {width}x{height}")
        sx = width / self.width
        sy = height / self.height
        return CameraIntrinsics(int(width), int(height), self.fx * sx, self.fy * sy,
                                (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5)

    def crop(self, x0: float, y0: float, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics of the ``width`` x ``height`` window whose first pixel is (x0, y0)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"crop size must be positive, got {width}x{height}")
        return CameraIntrinsics(int(width), int(height), self.fx, self.fy, self.cx - x0, self.cy - y0)

    def affine(self, ax: float, bx: float, ay: float, by: float, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics of a ``width`` x ``height`` image whose pixel (i, j) looks along this camera's
        pixel (u, v) = (ax i + bx, ay j + by) (pixel-centre coordinates; any resize + crop is such a map).
        """
        if ax <= 0 or ay <= 0:
            raise ValueError(f"affine scale must be positive, got ({ax}, {ay})")
        return CameraIntrinsics(int(width), int(height), self.fx / ax, self.fy / ay,
                                (self.cx - bx) / ax, (self.cy - by) / ay)

    # ---- views ----------------------------------------------------------------------
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    def P(self) -> np.ndarray:
        """3x4 projection matrix [K | 0] (a monocular camera)."""
        P = np.zeros((3, 4), dtype=np.float64)
        P[:, :3] = self.K()
        return P

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """(..., 3) camera-frame points -> (..., 2) pixel coordinates (u, v)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        z = xyz[..., 2]
        return np.stack([self.fx * xyz[..., 0] / z + self.cx, self.fy * xyz[..., 1] / z + self.cy], axis=-1)

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy}

    def validate(self) -> None:
        """Raise ValueError for a zero size or a NaN/infinite/zero/negative focal length or centre."""
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"camera intrinsics: image size must be positive, got {self.width}x{self.height}")
        for name in ("fx", "fy", "cx", "cy"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
                raise ValueError(f"camera intrinsics: {name}={v!r} is not a finite number")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"camera intrinsics: focal lengths must be positive, got fx={self.fx}, fy={self.fy} "
                             "(an uncalibrated camera publishes zeros: calibrate it or pass --fx/--fy/--cx/--cy)")

    # ---- constructors ---------------------------------------------------------------
    @classmethod
    def from_K(cls, K: "np.ndarray | Sequence[float]", width: int, height: int) -> "CameraIntrinsics":
        K = np.asarray(K, dtype=np.float64).reshape(-1)
        if K.size == 12:  # a 3x4 P
            K = K.reshape(3, 4)[:, :3].reshape(-1)
        if K.size != 9:
            raise ValueError(f"K must have 9 (3x3) or 12 (3x4) values, got {K.size}")
        K = K.reshape(3, 3)
        return cls(int(width), int(height), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))

    @classmethod
    def from_camera_info_fields(cls, k: Sequence[float], p: "Sequence[float] | None", width: int,
                                height: int) -> "CameraIntrinsics":
        """From sensor_msgs/CameraInfo fields: P (the rectified projection) when it is non-zero, else K."""
        pa = np.asarray(p if p is not None else [], dtype=np.float64).reshape(-1)
        if pa.size == 12 and pa[0] != 0 and pa[5] != 0:
            return cls.from_K(pa, width, height)
        return cls.from_K(k, width, height)

    @classmethod
    def from_yaml(cls, path: "str | Path") -> "CameraIntrinsics":
        """From a ROS ``camera_calibration`` YAML file (image_width, image_height, camera_matrix,
        projection_matrix, ...); the projection matrix wins when it is non-zero."""
        path = Path(path)
        d = read_yaml_mapping(path, "camera calibration")

        def matrix(key: str) -> "list[float] | None":
            m = d.get(key)
            if m is None:
                return None
            data = m.get("data") if isinstance(m, Mapping) else m
            if not isinstance(data, (list, tuple)):
                raise ValueError(f"camera calibration {path}: {key} has no data list")
            return [float(v) for v in data]

        try:
            width, height = int(d["image_width"]), int(d["image_height"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"camera calibration {path}: needs image_width and image_height") from None
        k = matrix("camera_matrix")
        p = matrix("projection_matrix")
        if k is None and p is None:
            raise ValueError(f"camera calibration {path}: needs camera_matrix or projection_matrix")
        cam = cls.from_camera_info_fields(k if k is not None else p, p, width, height)  # type: ignore[arg-type]
        cam.validate()
        return cam

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CameraIntrinsics":
        return cls(int(d["width"]), int(d["height"]), float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]))


# ---- intrinsics of another image size: the one policy ---------------------------------------------
ROUNDING_PX = 1.0   # pixels of rounding allowed when one scale factor maps both sides (binning an odd size)


class IntrinsicsSizeError(ValueError):
    """Camera intrinsics for an image of another aspect ratio (a wrong camera_info)."""


def fit_intrinsics(intrinsics: CameraIntrinsics, width: int, height: int
                   ) -> Tuple[CameraIntrinsics, Optional[str]]:
    """``(intrinsics of the width x height image, note)``.

    Same size: ``intrinsics`` unchanged, no note.  Another size that one scale factor explains (the width
    scales exactly and the height to within :data:`ROUNDING_PX` pixel: binning, decimation, a uniform resize;
    e.g. 1242x375 -> 621x188): scaled with :meth:`CameraIntrinsics.scaled_to`, and a one-line note to log.
    Anything else (another aspect ratio, or a crop such as 640x480 intrinsics for a 642x480 image):
    :class:`IntrinsicsSizeError` with one line.
    """
    w, h = int(width), int(height)
    if (intrinsics.width, intrinsics.height) == (w, h):
        return intrinsics, None
    s = w / intrinsics.width
    if abs(intrinsics.height * s - h) > ROUNDING_PX:
        raise IntrinsicsSizeError(f"camera_info is {intrinsics.width}x{intrinsics.height} but the image is {w}x{h} "
                                  "(not one scale factor: another aspect ratio or a crop): wrong camera_info?")
    return intrinsics.scaled_to(w, h), (f"camera_info is {intrinsics.width}x{intrinsics.height} but the image is "
                                        f"{w}x{h}: scaling the intrinsics (binning?)")


class IntrinsicsFitter:
    """:func:`fit_intrinsics` that hands each note to ``warn`` once per (camera_info size, image size)."""

    def __init__(self, warn: Callable[[str], None]):
        self.warn = warn
        self._warned: Set[Tuple[int, int, int, int]] = set()

    def __call__(self, intrinsics: CameraIntrinsics, width: int, height: int) -> CameraIntrinsics:
        fitted, note = fit_intrinsics(intrinsics, width, height)
        if note is not None:
            key = (intrinsics.width, intrinsics.height, int(width), int(height))
            if key not in self._warned:
                self._warned.add(key)
                self.warn(note)
        return fitted
