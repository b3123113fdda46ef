"""The ROS-agnostic inference pipeline: image -> depth in metres (+ intrinsics, for point clouds).

    decode (ROS encodings -> RGB)  ->  Preprocessor (the evaluation transform, from the model's
    profile)  ->  backend (log depth, or depth / inverse depth for foreign models)  ->  metres
    (exp, x model scale x user scale)  ->  resample to the output  ->  range [min, max] (else NaN)

Geometry: :mod:`mono_depth_ros.geometry` (pixel-centre convention throughout).  The network
output map spans ``Profile.output_region()`` of the network input uniformly, and the input is a
resize + centre crop of the camera image, so output pixel (i, j) looks along camera pixel

    u = ax * i + bx,   v = ay * j + by          (geometry.output_geometry: OutputGeometry)

* ``output="network"``: the depth image is the output map itself; its intrinsics are the camera's
  through that map: fx' = fx / ax, cx' = (cx - bx) / ax (OutputGeometry.output_intrinsics).  ``rgb``
  is the camera image sampled at the same pixel centres (bilinear).
* ``output="camera"``: the depth image has the camera's size and intrinsics; camera pixels whose
  centres lie inside the region the output map covers (OutputGeometry.camera_window) get the
  bilinear interpolation of the map at i = (u - bx) / ax (geometry.CameraResampler: separable,
  exact float weights; the outermost half output pixel is replicated), the other pixels are NaN.
  ``rgb`` is the camera image.

Intrinsics of another image size follow the one policy (camera.fit_intrinsics): scaled when the
aspect ratio matches (binning; logged once), refused otherwise (IntrinsicsSizeError, a ValueError).

Either way a point cloud from (depth, intrinsics) is geometrically right.  All per-frame buffers
are allocated once per frame size and reused: copy ``DepthResult.depth`` to keep it.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from .backends import Backend, create_backend
from .camera import CameraIntrinsics, IntrinsicsFitter
from .encodings import decode_to_rgb
from .geometry import CameraResampler, OutputGeometry, output_geometry
from .model_spec import DEMO_MODEL, ModelFileError, ModelSpec, load_spec
from .preprocess import Preprocessor
from .profiles import Profile

log = logging.getLogger("mono_depth_ros")

OUTPUT_MODES = ("camera", "network")


@dataclass
class DepthResult:
    depth: np.ndarray                       # (H, W) float32 metres, NaN = invalid; reused buffer
    intrinsics: Optional[CameraIntrinsics]  # of the depth image (None if no camera intrinsics given)
    rgb: np.ndarray                         # (H, W, 3) uint8 aligned pixel-for-pixel with depth
    log_depth: np.ndarray                   # raw network output (h, w) float32 (reused buffer)
    metric: bool                            # False when the model gives relative depth
    timings: Dict[str, float] = field(default_factory=dict)  # seconds: decode, preprocess, infer, postprocess


@dataclass
class _Geometry:
    """Everything that depends only on the camera frame size (and the output mode)."""

    map: OutputGeometry                        # the one geometry (mono_depth_ros.geometry)
    resampler: Optional[CameraResampler]       # camera mode: the output map onto the camera grid
    bufs: Dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def size(self) -> Tuple[int, int]:
        return self.map.src_w, self.map.src_h


class DepthPipeline:
    """Model file in, ``infer_rgb(rgb, intrinsics) -> DepthResult`` out, on any backend.

    ``model``: a .pt checkpoint, an .onnx (our export or a foreign model with a YAML sidecar), a
    TensorRT .engine, or a ModelSpec; None -> the shipped demo model.  ``backend``: "auto",
    "torch", "onnxruntime", "tensorrt", or a ready :class:`Backend` (then ``model`` may be None).
    """

    def __init__(self, model: "str | Path | ModelSpec | None" = None, backend: "str | Backend" = "auto",
                 device: Optional[str] = None, precision: str = "fp32", output: str = "camera",
                 min_depth: Optional[float] = None, max_depth: Optional[float] = None, scale: float = 1.0,
                 threads: Optional[int] = None, cache_dir: "str | Path | None" = None):
        if isinstance(backend, Backend):
            self.backend = backend
            self.spec = backend.spec if model is None else (model if isinstance(model, ModelSpec) else load_spec(model))
        else:
            if model is None:
                if not DEMO_MODEL.is_file():
                    raise ModelFileError(f"no model given and the demo model {DEMO_MODEL} is not installed; "
                                         "pass a model file (.pt, .onnx or .engine)")
                model = DEMO_MODEL
            self.spec = model if isinstance(model, ModelSpec) else load_spec(model)
            self.backend = create_backend(self.spec, backend, device=device, precision=precision, threads=threads,
                                          cache_dir=cache_dir)
        self.profile: Profile = self.spec.profile
        self.metric: bool = bool(self.spec.metric)
        self._pre = Preprocessor(self.profile)
        self._geom: Optional[_Geometry] = None
        self._output = "camera"
        self.set_output(output)
        self.min_depth = self.max_depth = 0.0
        self.set_range(min_depth, max_depth)
        self.scale = 1.0
        self.set_scale(scale)
        self._rgb_buf: Optional[np.ndarray] = None
        self._fit_intrinsics = IntrinsicsFitter(log.warning)
        ow, oh = self.backend.output_size
        self._raw = np.empty((oh, ow), dtype=np.float32)
        self._net = np.empty((oh, ow), dtype=np.float32)
        if not self.metric:
            log.warning("depth from %s is RELATIVE, not metric (scale factor %.4g)", self.spec.path.name,
                        self.scale * self.spec.scale)

    # ---- properties and runtime settings --------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def output(self) -> str:
        return self._output

    def output_size(self, width: int, height: int) -> Tuple[int, int]:
        """(w, h) of the depth image for a ``width`` x ``height`` camera image."""
        if self._output == "camera":
            return int(width), int(height)
        return self.backend.output_size

    def set_range(self, min_depth: Optional[float] = None, max_depth: Optional[float] = None) -> None:
        """Valid depth range in metres (None: the model's); depths outside it become NaN."""
        lo = self.profile.min_depth if min_depth is None else float(min_depth)
        hi = self.profile.max_depth if max_depth is None else float(max_depth)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"depth range must satisfy 0 <= min_depth < max_depth, got [{lo}, {hi}]")
        self.min_depth, self.max_depth = lo, hi

    def set_scale(self, scale: float) -> None:
        """A fixed factor applied to the model's metres (metric correction, or relative -> metres)."""
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self.scale = scale

    def set_output(self, output: str) -> None:
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {OUTPUT_MODES}, got {output!r}")
        if output != self._output:
            self._geom = None
        self._output = output

    # ---- geometry ------------------------------------------------------------------------
    def _geometry(self, width: int, height: int) -> _Geometry:
        g = self._geom
        if g is not None and g.size == (width, height):
            return g
        m = output_geometry(self.profile, width, height, self.backend.output_size, whole_input=self.spec.foreign)
        if self._output == "camera":
            r = CameraResampler(m)
            nv, nu = r.region.shape
            g = _Geometry(m, r, {"mask": np.empty((nv, nu), dtype=bool), "mask2": np.empty((nv, nu), dtype=bool)})
        else:
            ow, oh = m.out_w, m.out_h
            g = _Geometry(m, None, {"depth": np.empty((oh, ow), dtype=np.float32),
                                    "rgb": np.empty((oh, ow, 3), dtype=np.uint8),
                                    "mask": np.empty((oh, ow), dtype=bool), "mask2": np.empty((oh, ow), dtype=bool)})
        self._geom = g
        return g

    def camera_region(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """(u0, v0, u1, v1): the camera pixels [u0, u1) x [v0, v1) that get depth in camera mode
        (``OutputGeometry.camera_window``)."""
        return self._geometry(int(width), int(height)).map.camera_window()

    def geometry(self, width: int, height: int) -> OutputGeometry:
        """The output map of this pipeline's model on a ``width`` x ``height`` camera image."""
        return self._geometry(int(width), int(height)).map

    def output_to_camera(self, i: np.ndarray, j: np.ndarray, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates (u, v) of network-output pixel coordinates (i, j)."""
        return self.geometry(width, height).output_to_camera(i, j)

    def output_intrinsics(self, intrinsics: CameraIntrinsics) -> CameraIntrinsics:
        """Intrinsics of the depth image for a camera with ``intrinsics`` (in the current output mode)."""
        m = self.geometry(intrinsics.width, intrinsics.height)
        return intrinsics if self._output == "camera" else m.output_intrinsics(intrinsics)

    # ---- inference -------------------------------------------------------------------------
    def _to_metres(self, raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        k = self.scale * self.spec.scale
        kind = self.spec.output
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if kind == "log_depth":
                np.exp(raw, out=out)
                if k != 1.0:
                    out *= np.float32(k)
            elif kind == "depth":
                np.multiply(raw, np.float32(k), out=out)
            else:  # inverse depth: non-positive -> inf / negative -> out of range -> NaN
                np.divide(np.float32(k), raw, out=out)
        return out

    def _clamp(self, d: np.ndarray, mask: np.ndarray, mask2: np.ndarray) -> None:
        """NaN outside [min_depth, max_depth] (and NaN/inf stay invalid), in place."""
        np.less(d, np.float32(self.min_depth), out=mask)
        np.logical_or(mask, np.greater(d, np.float32(self.max_depth), out=mask2), out=mask)
        np.copyto(d, np.float32(np.nan), where=mask)
        if self.min_depth <= 0:
            np.copyto(d, np.float32(np.nan), where=np.less_equal(d, 0, out=mask))

    def infer_rgb(self, rgb: np.ndarray, intrinsics: Optional[CameraIntrinsics] = None) -> DepthResult:
        """Depth of one RGB uint8 (H, W, 3) image; ``intrinsics`` of that image (None: no intrinsics)."""
        t0 = time.perf_counter()
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
        h, w = rgb.shape[:2]
        g = self._geometry(w, h)
        x, _ = self._pre(rgb)
        t1 = time.perf_counter()
        y = self.backend.run(x)
        t2 = time.perf_counter()
        raw = self._raw
        if y.shape[2:] != raw.shape:
            raise RuntimeError(f"backend output {y.shape} does not match its declared size {raw.shape}")
        np.copyto(raw, y[0, 0])
        net = self._to_metres(raw, self._net)
        b = g.bufs
        out_intr = self._intrinsics_for(intrinsics, w, h)
        if g.resampler is None:   # output "network": the output map itself
            depth = b["depth"]
            np.copyto(depth, net)
            self._clamp(depth, b["mask"], b["mask2"])
            m = g.map
            M = m.matrix()[:2]
            out_rgb = cv2.warpAffine(rgb, M, (m.out_w, m.out_h), dst=b["rgb"],
                                     flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
            if out_intr is not None:
                out_intr = m.output_intrinsics(out_intr)
        else:                     # output "camera": the output map resampled onto the camera grid
            depth = g.resampler(net)
            region = g.resampler.region
            if region.size:
                self._clamp(region, b["mask"], b["mask2"])
            out_rgb = rgb
        t3 = time.perf_counter()
        return DepthResult(depth=depth, intrinsics=out_intr, rgb=out_rgb, log_depth=raw, metric=self.metric,
                           timings={"decode": 0.0, "preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2,
                                    "total": t3 - t0})

    def _intrinsics_for(self, intrinsics: Optional[CameraIntrinsics], w: int, h: int) -> Optional[CameraIntrinsics]:
        """``intrinsics`` for the w x h image: the one policy (camera.fit_intrinsics: scaled for binning,
        logged once; another aspect ratio is an IntrinsicsSizeError)."""
        return None if intrinsics is None else self._fit_intrinsics(intrinsics, w, h)

    def infer(self, data: "bytes | np.ndarray", width: int, height: int, encoding: str, step: Optional[int] = None,
              intrinsics: Optional[CameraIntrinsics] = None, is_bigendian: bool = False) -> DepthResult:
        """Decode a ROS image buffer (see encodings.py) and run :meth:`infer_rgb` on it."""
        t0 = time.perf_counter()
        self._rgb_buf = decode_to_rgb(data, width, height, encoding, step=step, is_bigendian=is_bigendian,
                                      out=self._rgb_buf)
        t1 = time.perf_counter()
        res = self.infer_rgb(self._rgb_buf, intrinsics)
        res.timings["decode"] = t1 - t0
        res.timings["total"] += t1 - t0
        return res

    def close(self) -> None:
        self.backend.close()
        self._geom = None

    def __enter__(self) -> "DepthPipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


