"""The ROS-agnostic inference pipeline: image -> depth in metres (+ intrinsics, for point clouds).

    decode (ROS encodings -> RGB)  ->  Preprocessor (the evaluation transform, from the model's
    profile)  ->  backend (log depth, or depth / inverse depth for foreign models)  ->  metres
    (exp, x model scale x user scale)  ->  resample to the output  ->  range [min, max] (else NaN)

Geometry (pixel-centre convention throughout; see camera.py and preprocess.py).  The network
output map spans ``Profile.output_region()`` of the network input uniformly, and the input is a
resize + centre crop of the camera image, so output pixel (i, j) looks along camera pixel

    u = ax * i + bx,   v = ay * j + by          (Profile.output_map composed with InputTransform)

* ``output="network"``: the depth image is the output map itself; its intrinsics are the camera's
  through that map: fx' = fx / ax, cx' = (cx - bx) / ax (CameraIntrinsics.affine).  ``rgb`` is
  the camera image sampled at the same pixel centres (bilinear).
* ``output="camera"``: the depth image has the camera's size and intrinsics; camera pixels whose
  centres lie inside the region the output map covers get the bilinear interpolation of the map
  at i = (u - bx) / ax (separable, exact float weights; the outermost half output pixel is
  replicated), the other pixels are NaN.  ``rgb`` is the camera image.

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

import numpy as np

from .backends import Backend, create_backend
from .camera import CameraIntrinsics
from .encodings import decode_to_rgb
from .model_spec import DEMO_MODEL, ModelFileError, ModelSpec, load_spec
from .preprocess import InputTransform, Preprocessor
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

    src_w: int
    src_h: int
    transform: InputTransform
    ax: float
    bx: float
    ay: float
    by: float
    u0: int   # camera pixels u0..u1-1, v0..v1-1 are covered by the output map
    u1: int
    v0: int
    v1: int
    # camera-mode separable bilinear sampling of the output map
    i0: np.ndarray
    wx: np.ndarray
    j0: np.ndarray
    wy: np.ndarray
    bufs: Dict[str, np.ndarray] = field(default_factory=dict)


def _sampling(lo: int, hi: int, a: float, b: float, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices k0 and weights w (k0 + w = clamp((u - b) / a, 0, n - 1)) for camera pixels u in [lo, hi)."""
    f = (np.arange(lo, hi, dtype=np.float64) - b) / a
    np.clip(f, 0.0, n - 1, out=f)
    k0 = np.floor(f).astype(np.intp)
    if n > 1:
        np.minimum(k0, n - 2, out=k0)
    w = (f - k0).astype(np.float32)
    return k0, w


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
        self._warned_size: set = set()
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
        if g is not None and (g.src_w, g.src_h) == (width, height):
            return g
        t = self._pre.transform_for(width, height)
        ow, oh = self.backend.output_size
        m = self.profile.output_map(ow, oh, whole_input=self.spec.foreign)
        # output pixel i (centre) -> input pixel coordinate x (Profile.output_map) -> camera u (affine):
        # the composition, read off at output pixels 0 and 1
        ij = np.array([0.0, 1.0])
        u_a, v_a = t.input_to_camera(m[0, 0] * ij + m[0, 2], m[1, 1] * ij + m[1, 2])
        ax, bx = float(u_a[1] - u_a[0]), float(u_a[0])
        ay, by = float(v_a[1] - v_a[0]), float(v_a[0])
        # camera pixels whose centres lie inside the covered region [edge of pixel -1/2, edge of pixel n-1/2]
        eps = 1e-6
        u0 = max(0, math.ceil(ax * -0.5 + bx - eps))
        u1 = min(width, math.floor(ax * (ow - 0.5) + bx + eps) + 1)
        v0 = max(0, math.ceil(ay * -0.5 + by - eps))
        v1 = min(height, math.floor(ay * (oh - 0.5) + by + eps) + 1)
        i0, wx = _sampling(u0, u1, ax, bx, ow)
        j0, wy = _sampling(v0, v1, ay, by, oh)
        g = _Geometry(width, height, t, ax, bx, ay, by, u0, u1, v0, v1, i0, wx, j0, wy[:, None])
        nv, nu = v1 - v0, u1 - u0
        if self._output == "camera":
            g.bufs["depth"] = np.full((height, width), np.nan, dtype=np.float32)
            g.bufs["A"] = np.empty((nv, nu), dtype=np.float32)
            g.bufs["B"] = np.empty((nv, nu), dtype=np.float32)
            g.bufs["mask"] = np.empty((nv, nu), dtype=bool)
            g.bufs["mask2"] = np.empty((nv, nu), dtype=bool)
        else:
            g.bufs["depth"] = np.empty((oh, ow), dtype=np.float32)
            g.bufs["rgb"] = np.empty((oh, ow, 3), dtype=np.uint8)
            g.bufs["mask"] = np.empty((oh, ow), dtype=bool)
            g.bufs["mask2"] = np.empty((oh, ow), dtype=bool)
        self._geom = g
        return g

    def camera_region(self, width: int, height: int) -> Tuple[int, int, int, int]:
        """(u0, v0, u1, v1): the camera pixels [u0, u1) x [v0, v1) that get depth in camera mode."""
        g = self._geometry(int(width), int(height))
        return g.u0, g.v0, g.u1, g.v1

    def output_to_camera(self, i: np.ndarray, j: np.ndarray, width: int, height: int) -> Tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates (u, v) of network-output pixel coordinates (i, j)."""
        g = self._geometry(int(width), int(height))
        return g.ax * np.asarray(i, dtype=np.float64) + g.bx, g.ay * np.asarray(j, dtype=np.float64) + g.by

    def output_intrinsics(self, intrinsics: CameraIntrinsics) -> CameraIntrinsics:
        """Intrinsics of the depth image for a camera with ``intrinsics`` (in the current output mode)."""
        g = self._geometry(intrinsics.width, intrinsics.height)
        if self._output == "camera":
            return intrinsics
        ow, oh = self.backend.output_size
        return intrinsics.affine(g.ax, g.bx, g.ay, g.by, ow, oh)

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
        if self._output == "network":
            depth = b["depth"]
            np.copyto(depth, net)
            self._clamp(depth, b["mask"], b["mask2"])
            ow, oh = self.backend.output_size
            import cv2

            M = np.array([[g.ax, 0.0, g.bx], [0.0, g.ay, g.by]], dtype=np.float64)
            out_rgb = cv2.warpAffine(rgb, M, (ow, oh), dst=b["rgb"], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REPLICATE)
            out_intr = self._intrinsics_for(intrinsics, w, h)
            if out_intr is not None:
                out_intr = out_intr.affine(g.ax, g.bx, g.ay, g.by, ow, oh)
        else:
            depth = b["depth"]
            region = depth[g.v0:g.v1, g.u0:g.u1]
            if region.size:
                # horizontal pass on the small map, then the vertical pass into the region
                a = np.take(net, g.i0, axis=1)
                if net.shape[1] > 1:
                    d = np.take(net, g.i0 + 1, axis=1)
                    d -= a
                    d *= g.wx
                    a += d
                tmp = a
                A, B = b["A"], b["B"]
                np.take(tmp, g.j0, axis=0, out=A, mode="clip")
                if tmp.shape[0] > 1:
                    diff = tmp[1:] - tmp[:-1]
                    np.take(diff, g.j0, axis=0, out=B, mode="clip")
                    np.multiply(B, g.wy, out=B)
                    np.add(A, B, out=region)
                else:
                    np.copyto(region, A)
                self._clamp(region, b["mask"], b["mask2"])
            out_rgb = rgb
            out_intr = self._intrinsics_for(intrinsics, w, h)
        t3 = time.perf_counter()
        return DepthResult(depth=depth, intrinsics=out_intr, rgb=out_rgb, log_depth=raw, metric=self.metric,
                           timings={"decode": 0.0, "preprocess": t1 - t0, "infer": t2 - t1, "postprocess": t3 - t2,
                                    "total": t3 - t0})

    def _intrinsics_for(self, intrinsics: Optional[CameraIntrinsics], w: int, h: int) -> Optional[CameraIntrinsics]:
        if intrinsics is None:
            return None
        if (intrinsics.width, intrinsics.height) != (w, h):
            if abs(intrinsics.width / w - intrinsics.height / h) > 0.01 * intrinsics.width / w:
                raise ValueError(f"camera intrinsics are for {intrinsics.width}x{intrinsics.height}, the image is "
                                 f"{w}x{h} with another aspect ratio: wrong camera_info?")
            key = (intrinsics.width, intrinsics.height, w, h)
            if key not in self._warned_size:
                self._warned_size.add(key)
                log.warning("camera intrinsics are for %dx%d but the image is %dx%d: scaling them (binning?)",
                            intrinsics.width, intrinsics.height, w, h)
            intrinsics = intrinsics.scaled_to(w, h)
        return intrinsics

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


