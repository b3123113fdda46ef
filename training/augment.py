"""Joint RGB + depth augmentation of Eigen et al. (2014), and the evaluation transform for ground truth.

Geometry (all in pixel-centre coordinates, integer = pixel centre, as OpenCV and ``P`` use them):

* The evaluation transform is :func:`mono_depth_ros.geometry.compute_transform`: uniform resize
  to the profile's ``resize_w x resize_h`` (NYU 640x480 -> 320x240, KITTI halved), centre crop to
  the input.  Evaluation mode here *is* that transform (the RGB goes through
  :func:`mono_depth_ros.preprocess.crop_resized`, the same code the pipeline and the node run).
* Training (the paper's augmentation, applied jointly): the same base resize (area filter), then one
  ``cv2.warpAffine`` doing scale ``s`` (about the origin), rotation (about the scaled image's
  centre), random crop to the input and horizontal flip.  Depth is divided by ``s``; colour is
  multiplied per channel by ``c`` (RGB only, clipped to 255).
* Ground truth goes straight from the source resolution to the network's output map over
  ``Profile.output_region()`` with the same affine map: nearest neighbour for dense depth, or the
  masked mean of the valid source pixels falling in each output pixel for sparse (LiDAR) depth, so
  values are never interpolated across invalid pixels.  The maps (resize, crop, input -> output)
  are :mod:`mono_depth_ros.geometry`'s; only the random scale/rotation/crop/flip is defined here.

All random parameters of one sample come from one ``numpy.random.Generator``, so a sample is a
pure function of (frame, seed): results do not depend on the number of loader workers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from mono_depth_ros.geometry import InputTransform, compute_transform, input_to_output_matrix
from mono_depth_ros.preprocess import crop_resized, resized
from mono_depth_ros.profiles import Profile


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the paper's augmentation (NYU defaults). ``enabled=False``: evaluation transform."""

    enabled: bool = True
    scale: Tuple[float, float] = (1.0, 1.5)     # s, depth divided by s
    rotation: float = 5.0                        # degrees, uniform in [-r, r]
    color: Tuple[float, float] = (0.8, 1.2)      # per-channel multiplier c
    flip: float = 0.5                            # probability of a horizontal flip
    crop: str = "random"                         # "random" | "center"

    @classmethod
    def from_dict(cls, d: Optional[Dict[str, Any]], preset: Optional[str] = None) -> "AugmentConfig":
        base = PRESETS[preset] if preset else cls()
        if not d:
            return base
        if "preset" in d:
            base = PRESETS[d["preset"]]
        kw = asdict(base)
        for k, v in d.items():
            if k == "preset":
                continue
            if k not in kw:
                raise ValueError(f"unknown augmentation option {k!r}; known: {sorted(kw)}")
            kw[k] = tuple(v) if isinstance(v, list) else v
        cfg = cls(**kw)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if not (0 < self.scale[0] <= self.scale[1]):
            raise ValueError(f"augmentation scale range {self.scale} must satisfy 0 < lo <= hi")
        if self.scale[0] < 1.0 and self.crop == "random":
            raise ValueError("scale < 1 would leave the random crop partly outside the image")
        if not 0 <= self.flip <= 1:
            raise ValueError(f"flip probability {self.flip} not in [0, 1]")
        if self.crop not in ("random", "center"):
            raise ValueError(f"crop must be 'random' or 'center', got {self.crop!r}")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


PRESETS: Dict[str, AugmentConfig] = {
    "nyu": AugmentConfig(),
    "kitti": AugmentConfig(scale=(1.0, 1.2), rotation=0.0),
    "none": AugmentConfig(enabled=False),
}


@dataclass
class AugmentParams:
    scale: float = 1.0
    angle: float = 0.0                 # degrees
    crop_x: float = 0.0                # crop offset in the scaled base image (pixels)
    crop_y: float = 0.0
    flip: bool = False
    color: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))


def sample_params(cfg: AugmentConfig, rng: np.random.Generator, t: InputTransform) -> AugmentParams:
    """Draw one sample's parameters (a fixed number of draws, in a fixed order)."""
    u = rng.random(8)
    s = cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * u[0]
    angle = (2 * u[1] - 1) * cfg.rotation
    sw, sh = s * t.resized_w, s * t.resized_h
    if cfg.crop == "random":
        cx, cy = u[2] * max(sw - t.input_w, 0.0), u[3] * max(sh - t.input_h, 0.0)
    else:
        cx, cy = max(sw - t.input_w, 0.0) / 2, max(sh - t.input_h, 0.0) / 2
    flip = bool(u[4] < cfg.flip)
    c = (cfg.color[0] + (cfg.color[1] - cfg.color[0]) * u[5:8]).astype(np.float32)
    return AugmentParams(float(s), float(angle), float(cx), float(cy), flip, c)


# ---- affine maps (3x3, pixel-centre coordinates) -----------------------------------------------
def _mat(a: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[:2] = a
    return m


def augment_matrix(t: InputTransform, p: AugmentParams) -> np.ndarray:
    """Resized-image pixel -> input pixel: scale s, rotate about the centre, crop, flip."""
    to_corner = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])
    S = np.diag([p.scale, p.scale, 1.0])
    cx, cy = p.scale * t.resized_w / 2, p.scale * t.resized_h / 2
    a = math.radians(p.angle)
    ca, sa = math.cos(a), math.sin(a)
    R = np.array([[ca, sa, cx - ca * cx - sa * cy], [-sa, ca, cy + sa * cx - ca * cy], [0, 0, 1.0]])
    C = np.array([[1.0, 0, -p.crop_x], [0, 1.0, -p.crop_y], [0, 0, 1.0]])
    F = np.array([[-1.0, 0, t.input_w], [0, 1.0, 0], [0, 0, 1.0]]) if p.flip else np.eye(3)
    return np.linalg.inv(to_corner) @ F @ C @ R @ S @ to_corner


# ---- ground truth resampling -----------------------------------------------------------------
def resample_depth(depth: np.ndarray, valid: np.ndarray, M: np.ndarray, out_w: int, out_h: int,
                   method: str = "nearest") -> Tuple[np.ndarray, np.ndarray]:
    """Depth (H, W) through the 3x3 map ``M`` (source pixel -> destination pixel) to (out_h, out_w).

    ``nearest``: nearest source pixel (dense depth); ``masked_mean``: mean of the valid source pixels
    whose centres land in each destination pixel (sparse depth; nothing is interpolated across
    invalid pixels).  Returns (depth float32 with 0 where invalid, valid bool).
    """
    if method == "nearest":
        src = np.where(valid, depth, 0).astype(np.float32)
        out = cv2.warpAffine(src, M[:2], (out_w, out_h), flags=cv2.INTER_NEAREST,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ok = out > 0
        return np.where(ok, out, 0).astype(np.float32), ok
    if method != "masked_mean":
        raise ValueError(f"GT resampling must be 'nearest' or 'masked_mean', got {method!r}")
    vs, us = np.nonzero(valid)
    z = depth[vs, us].astype(np.float64)
    x = M[0, 0] * us + M[0, 1] * vs + M[0, 2]
    y = M[1, 0] * us + M[1, 1] * vs + M[1, 2]
    xi = np.floor(x + 0.5).astype(np.int64)
    yi = np.floor(y + 0.5).astype(np.int64)
    inside = (xi >= 0) & (xi < out_w) & (yi >= 0) & (yi < out_h)
    idx = yi[inside] * out_w + xi[inside]
    s = np.bincount(idx, weights=z[inside], minlength=out_w * out_h)
    n = np.bincount(idx, minlength=out_w * out_h)
    ok = n > 0
    out = np.zeros(out_w * out_h, np.float32)
    out[ok] = s[ok] / n[ok]
    return out.reshape(out_h, out_w), ok.reshape(out_h, out_w)


class Normalizer:
    """uint8 RGB (H, W, 3) -> normalised float32 (3, H, W), with an optional per-channel colour gain."""

    def __init__(self, profile: Profile):
        mean = np.asarray(profile.mean, np.float32)
        std = np.asarray(profile.std, np.float32)
        self.a = (1.0 / (255.0 * std)).reshape(3, 1, 1).astype(np.float32)
        self.b = (-mean / std).reshape(3, 1, 1).astype(np.float32)

    def __call__(self, rgb: np.ndarray, color: Optional[np.ndarray] = None) -> np.ndarray:
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
        if color is not None:
            x *= color.reshape(3, 1, 1)
            np.minimum(x, 255.0, out=x)
        x *= self.a
        x += self.b
        return x


@dataclass
class Sample:
    image: np.ndarray        # (3, input_h, input_w) float32, normalised
    depth: np.ndarray        # (output_h, output_w) float32 metres, 0 = invalid
    valid: np.ndarray        # (output_h, output_w) bool
    rgb: Optional[np.ndarray] = None  # (input_h, input_w, 3) uint8 as the network saw it (before colour)
    params: Optional[AugmentParams] = None


class JointTransform:
    """Frame (RGB + depth + valid at source resolution) -> network input and output-map target."""

    def __init__(self, profile: Profile, augment: Optional[AugmentConfig] = None, gt_resample: str = "nearest",
                 keep_rgb: bool = False):
        self.profile = profile
        self.augment = augment if augment is not None and augment.enabled else None
        if gt_resample not in ("nearest", "masked_mean"):
            raise ValueError(f"gt_resample must be 'nearest' or 'masked_mean', got {gt_resample!r}")
        self.gt_resample = gt_resample
        self.keep_rgb = keep_rgb
        self.normalize = Normalizer(profile)
        self._out = input_to_output_matrix(profile)

    def __call__(self, rgb: np.ndarray, depth: np.ndarray, valid: np.ndarray,
                 rng: Optional[np.random.Generator] = None, params: Optional[AugmentParams] = None) -> Sample:
        """``params`` fixes the augmentation (tests); otherwise it is drawn from ``rng``."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected RGB uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
        if depth.shape != rgb.shape[:2] or valid.shape != rgb.shape[:2]:
            raise ValueError(f"depth {depth.shape} / valid {valid.shape} must match the RGB size {rgb.shape[:2]}")
        p = self.profile
        t = compute_transform(rgb.shape[1], rgb.shape[0], p)
        if self.augment is None and params is None:
            img = crop_resized(rgb, t)                     # exactly the pipeline's evaluation transform
            M = t.matrix()
            scale = 1.0
            color = None
        else:
            if params is None:
                if rng is None:
                    raise ValueError("training augmentation needs a random generator")
                params = sample_params(self.augment or AugmentConfig(), rng, t)
            base = resized(rgb, t)
            A = augment_matrix(t, params)
            img = cv2.warpAffine(base, A[:2], (p.input_w, p.input_h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            M = A @ t.resize_matrix()
            scale = params.scale
            color = params.color
        d, ok = resample_depth(depth, valid, self._out @ M, p.output_w, p.output_h, self.gt_resample)
        if scale != 1.0:
            d = d / np.float32(scale)
        return Sample(self.normalize(img, color), d.astype(np.float32, copy=False), ok,
                      np.ascontiguousarray(img) if self.keep_rgb else None, params)


def full_input_matrix(t: InputTransform, params: Optional[AugmentParams] = None) -> np.ndarray:
    """Source pixel -> input pixel (evaluation crop when ``params`` is None)."""
    if params is None:
        return t.matrix()
    return augment_matrix(t, params) @ t.resize_matrix()
