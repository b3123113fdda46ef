"""The evaluation transform: camera RGB -> normalised network input, and its geometry.

This is *the* preprocessing: training's evaluation mode, the CLI, the bag tools and the ROS node
all call it, so a model sees the same thing everywhere.  Everything comes from the Profile
(stored in every model file), never from duplicated constants.

Geometry (:mod:`mono_depth_ros.geometry`, pixel-centre convention, u + 0.5 scales):
  1. uniform resize by s = max(resize_w / W, resize_h / H) (the paper's 640x480 -> 320x240 for NYU,
     KITTI halved), so the aspect ratio is kept and fx, fy scale alike;
  2. centre crop to the profile's input_w x input_h.
A camera pixel (u, v) lands at input pixel ((u + 0.5) * s - 0.5 - x0, (v + 0.5) * s - 0.5 - y0)
(``InputTransform.matrix()``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

from .geometry import InputTransform, compute_transform  # noqa: F401  (the transform lives in geometry.py)
from .profiles import Profile


def resized(img: np.ndarray, t: InputTransform, interpolation: Optional[int] = None) -> np.ndarray:
    """An (H, W[, C]) image resized with transform ``t`` (step 1, before the crop; area filter when
    shrinking, bilinear when enlarging, unless ``interpolation``)."""
    if img.shape[0] != t.src_h or img.shape[1] != t.src_w:
        raise ValueError(f"image is {img.shape[1]}x{img.shape[0]}, transform expects {t.src_w}x{t.src_h}")
    if (t.resized_w, t.resized_h) == (t.src_w, t.src_h):
        return img
    interp = interpolation if interpolation is not None else (cv2.INTER_AREA if t.scale < 1 else cv2.INTER_LINEAR)
    return cv2.resize(img, (t.resized_w, t.resized_h), interpolation=interp)


def crop_resized(img: np.ndarray, t: InputTransform, interpolation: Optional[int] = None) -> np.ndarray:
    """Resize + crop an (H, W[, C]) image with transform ``t`` (no normalisation)."""
    img = resized(img, t, interpolation)
    return img[t.crop_y0:t.crop_y0 + t.input_h, t.crop_x0:t.crop_x0 + t.input_w]


class Preprocessor:
    """RGB uint8 (H, W, 3) -> normalised float32 (1, 3, input_h, input_w), reusing its buffers."""

    def __init__(self, profile: Profile):
        self.profile = profile
        mean = np.asarray(profile.mean, dtype=np.float32) * 255.0
        std = np.asarray(profile.std, dtype=np.float32) * 255.0
        # x_norm = x * a + b with a = 1 / (255 std), b = -mean / std
        self._a = (1.0 / std).astype(np.float32)
        self._b = (-mean / std).astype(np.float32)
        self._out = np.empty((1, 3, profile.input_h, profile.input_w), dtype=np.float32)
        self._transform: Optional[InputTransform] = None

    def transform_for(self, width: int, height: int) -> InputTransform:
        t = self._transform
        if t is None or (t.src_w, t.src_h) != (width, height):
            t = self._transform = compute_transform(width, height, self.profile)
        return t

    def __call__(self, rgb: np.ndarray, out: Optional[np.ndarray] = None) -> Tuple[np.ndarray, InputTransform]:
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB image (H, W, 3), got shape {rgb.shape}")
        if rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB, got {rgb.dtype}")
        t = self.transform_for(rgb.shape[1], rgb.shape[0])
        crop = crop_resized(rgb, t)
        dst = self._out if out is None else out
        # HWC uint8 -> CHW float32, normalised, without temporaries per channel.
        for c in range(3):
            np.multiply(crop[:, :, c], self._a[c], out=dst[0, c], casting="unsafe")
            dst[0, c] += self._b[c]
        return dst, t


def preprocess(rgb: np.ndarray, profile: Profile) -> Tuple[np.ndarray, InputTransform]:
    """One-off convenience wrapper around :class:`Preprocessor` (returns a fresh array)."""
    x, t = Preprocessor(profile)(rgb)
    return x.copy(), t
