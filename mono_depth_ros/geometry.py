"""The one camera <-> network geometry: the input transform and the output map, as affine maps.

Pixel-centre convention throughout (see camera.py): integer coordinates are pixel centres, a resize
by ``s`` maps ``u`` to ``(u + 0.5) s - 0.5``.  Every map here is a 3x3 matrix on homogeneous pixel
coordinates ``(u, v, 1)``.

Input transform (:class:`InputTransform`, from :func:`compute_transform`; the evaluation transform):
  1. uniform resize by s = max(resize_w / W, resize_h / H) (the paper's 640x480 -> 320x240 for NYU,
     KITTI halved), never below the input size, so the aspect ratio is kept and fx, fy scale alike
     (:meth:`InputTransform.resize_matrix`);
  2. centre crop to the profile's input_w x input_h (:meth:`InputTransform.crop_matrix`).
  camera pixel -> input pixel: :meth:`InputTransform.matrix` = crop @ resize.

Output map (:class:`OutputGeometry`, from :func:`output_geometry`): the network's output grid spans
``Profile.output_region()`` of the input uniformly (``Profile.output_map``: output -> input; for a
foreign model, the whole input), so output pixel (i, j) looks along camera pixel

    u = ax i + bx,   v = ay j + by       (OutputGeometry.matrix(): output -> camera)

One function each for what the rest of the project needs:

* :meth:`OutputGeometry.output_intrinsics`: intrinsics of the output grid (fx' = fx / ax,
  cx' = (cx - bx) / ax);
* :meth:`OutputGeometry.camera_window`: the crop window, the camera pixels ``[u0, u1) x [v0, v1)``
  whose centres lie in the area the output map covers (the outer half output pixel included);
* :func:`resample_to_camera` (:class:`CameraResampler` with reused buffers): a network-output depth
  map onto the camera's pixel grid, separable bilinear with exact float weights (the outermost half
  output pixel replicated), NaN outside the crop window unless ``fill_outside``.

The pipeline, training's augmentation (ground-truth maps) and evaluation, and the bag resampler all
use these; nothing else computes the mapping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .camera import CameraIntrinsics
from .profiles import Profile


# ---- the input transform ------------------------------------------------------------------------
@dataclass(frozen=True)
class InputTransform:
    """How a src_w x src_h camera image maps to the network input (resize, then crop)."""

    src_w: int
    src_h: int
    scale: float          # uniform resize factor
    resized_w: int
    resized_h: int
    crop_x0: int          # crop offset in the resized image
    crop_y0: int
    input_w: int
    input_h: int

    def resize_matrix(self) -> np.ndarray:
        """Camera pixel -> resized-image pixel (before cropping)."""
        sx, sy = self.resized_w / self.src_w, self.resized_h / self.src_h
        return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])

    def crop_matrix(self) -> np.ndarray:
        """Resized-image pixel -> input pixel (the centre crop)."""
        return np.array([[1.0, 0, -self.crop_x0], [0, 1.0, -self.crop_y0], [0, 0, 1.0]])

    def matrix(self) -> np.ndarray:
        """Camera pixel -> network-input pixel."""
        return self.crop_matrix() @ self.resize_matrix()

    def camera_to_input(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        sx = self.resized_w / self.src_w
        sy = self.resized_h / self.src_h
        return (u + 0.5) * sx - 0.5 - self.crop_x0, (v + 0.5) * sy - 0.5 - self.crop_y0

    def input_to_camera(self, x: np.ndarray, y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        sx = self.resized_w / self.src_w
        sy = self.resized_h / self.src_h
        return (x + 0.5 + self.crop_x0) / sx - 0.5, (y + 0.5 + self.crop_y0) / sy - 0.5


def compute_transform(src_w: int, src_h: int, profile: Profile) -> InputTransform:
    """The evaluation transform of a ``src_w`` x ``src_h`` camera image for ``profile``."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError(f"image size must be positive, got {src_w}x{src_h}")
    rw = profile.resize_w or profile.input_w
    rh = profile.resize_h or profile.input_h
    # Never resize below the input size: the crop must fit.
    s = max(rw / src_w, rh / src_h, profile.input_w / src_w, profile.input_h / src_h)
    resized_w = max(int(round(src_w * s)), profile.input_w)
    resized_h = max(int(round(src_h * s)), profile.input_h)
    x0 = (resized_w - profile.input_w) // 2
    y0 = (resized_h - profile.input_h) // 2
    return InputTransform(src_w, src_h, s, resized_w, resized_h, x0, y0, profile.input_w, profile.input_h)


def input_to_output_matrix(profile: Profile) -> np.ndarray:
    """Network-input pixel -> output-map pixel over ``profile.output_region()`` (the inverse of
    ``Profile.output_map()``, in closed form): where ground truth lands on the output grid."""
    x0, y0, x1, y1 = profile.output_region()
    kx, ky = profile.output_w / (x1 - x0), profile.output_h / (y1 - y0)
    return np.array([[kx, 0, (0.5 - x0) * kx - 0.5], [0, ky, (0.5 - y0) * ky - 0.5], [0, 0, 1.0]])


def camera_to_output_matrix(t: InputTransform, profile: Profile) -> np.ndarray:
    """Camera pixel -> output-map pixel through the evaluation transform ``t``."""
    return input_to_output_matrix(profile) @ t.matrix()


# ---- the output map -------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutputGeometry:
    """The output grid (out_w x out_h) of a network on a src_w x src_h camera image."""

    src_w: int
    src_h: int
    out_w: int
    out_h: int
    ax: float            # output pixel (i, j) looks along camera pixel (ax i + bx, ay j + by)
    bx: float
    ay: float
    by: float
    transform: Optional[InputTransform] = None

    def matrix(self) -> np.ndarray:
        """Output pixel -> camera pixel."""
        return np.array([[self.ax, 0.0, self.bx], [0.0, self.ay, self.by], [0.0, 0.0, 1.0]])

    def output_to_camera(self, i: np.ndarray, j: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Camera pixel coordinates (u, v) of output pixel coordinates (i, j)."""
        return self.ax * np.asarray(i, dtype=np.float64) + self.bx, self.ay * np.asarray(j, dtype=np.float64) + self.by

    def camera_to_output(self, u: np.ndarray, v: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Output pixel coordinates (i, j) of camera pixel coordinates (u, v)."""
        return (np.asarray(u, dtype=np.float64) - self.bx) / self.ax, (np.asarray(v, dtype=np.float64) - self.by) / self.ay

    def output_intrinsics(self, camera: CameraIntrinsics) -> CameraIntrinsics:
        """Intrinsics of the output grid for a camera with intrinsics ``camera`` (of this image size)."""
        return camera.affine(self.ax, self.bx, self.ay, self.by, self.out_w, self.out_h)

    def camera_window(self) -> Tuple[int, int, int, int]:
        """The crop window ``(u0, v0, u1, v1)``: camera pixels [u0, u1) x [v0, v1) whose centres lie inside
        the area the output map covers (from the outer edge of output pixel 0 to that of pixel n - 1)."""
        eps = 1e-6
        u0 = max(0, math.ceil(self.ax * -0.5 + self.bx - eps))
        u1 = min(self.src_w, math.floor(self.ax * (self.out_w - 0.5) + self.bx + eps) + 1)
        v0 = max(0, math.ceil(self.ay * -0.5 + self.by - eps))
        v1 = min(self.src_h, math.floor(self.ay * (self.out_h - 0.5) + self.by + eps) + 1)
        return u0, v0, u1, v1

    @classmethod
    def from_intrinsics(cls, camera: CameraIntrinsics, output: CameraIntrinsics) -> "OutputGeometry":
        """The map between a camera and a depth image of it whose intrinsics are ``output`` (the inverse of
        :meth:`output_intrinsics`): for a depth image that arrives with its intrinsics only."""
        ax, ay = camera.fx / output.fx, camera.fy / output.fy
        return cls(camera.width, camera.height, output.width, output.height, ax, camera.cx - ax * output.cx,
                   ay, camera.cy - ay * output.cy)


def output_geometry(profile: Profile, width: int, height: int, out_size: Optional[Tuple[int, int]] = None,
                    whole_input: bool = False) -> OutputGeometry:
    """The output map of ``profile`` on a ``width`` x ``height`` camera image.

    ``out_size``: (w, h) of the output grid (default the profile's; a backend may report another);
    ``whole_input``: the grid spans the whole network input (foreign models) instead of
    ``Profile.output_region()``."""
    t = compute_transform(int(width), int(height), profile)
    ow, oh = (profile.output_w, profile.output_h) if out_size is None else (int(out_size[0]), int(out_size[1]))
    m = profile.output_map(ow, oh, whole_input=whole_input)
    # output pixel i (centre) -> input pixel coordinate x (Profile.output_map) -> camera u (affine):
    # the composition, read off at output pixels 0 and 1
    ij = np.array([0.0, 1.0])
    u_a, v_a = t.input_to_camera(m[0, 0] * ij + m[0, 2], m[1, 1] * ij + m[1, 2])
    return OutputGeometry(int(width), int(height), ow, oh, float(u_a[1] - u_a[0]), float(u_a[0]),
                          float(v_a[1] - v_a[0]), float(v_a[0]), t)


# ---- resampling the output map onto the camera grid -----------------------------------------------
def _sampling(lo: int, hi: int, a: float, b: float, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Indices k0 and weights w (k0 + w = clamp((u - b) / a, 0, n - 1)) for camera pixels u in [lo, hi)."""
    f = (np.arange(lo, hi, dtype=np.float64) - b) / a
    np.clip(f, 0.0, n - 1, out=f)
    k0 = np.floor(f).astype(np.intp)
    if n > 1:
        np.minimum(k0, n - 2, out=k0)
    w = (f - k0).astype(np.float32)
    return k0, w


class CameraResampler:
    """Output-map depth (out_h, out_w) -> camera grid (src_h, src_w), buffers reused from call to call.

    Bilinear (separable, exact float weights: horizontal pass on the small map, then the vertical pass
    into the window), the outermost half output pixel replicated; pixels outside
    :meth:`OutputGeometry.camera_window` stay NaN (``fill_outside``: the whole image, the border
    repeated).  :meth:`__call__` returns the camera-size buffer; copy it to keep it."""

    def __init__(self, geometry: OutputGeometry, fill_outside: bool = False):
        g = self.geometry = geometry
        self.window = (0, 0, g.src_w, g.src_h) if fill_outside else g.camera_window()
        u0, v0, u1, v1 = self.window
        self.i0, self.wx = _sampling(u0, u1, g.ax, g.bx, g.out_w)
        j0, wy = _sampling(v0, v1, g.ay, g.by, g.out_h)
        self.j0, self.wy = j0, wy[:, None]
        nv, nu = max(v1 - v0, 0), max(u1 - u0, 0)
        self.depth = np.full((g.src_h, g.src_w), np.nan, dtype=np.float32)
        self._a = np.empty((nv, nu), dtype=np.float32)
        self._b = np.empty((nv, nu), dtype=np.float32)

    @property
    def region(self) -> np.ndarray:
        """The window of :attr:`depth` that :meth:`__call__` writes (a view)."""
        u0, v0, u1, v1 = self.window
        return self.depth[v0:v1, u0:u1]

    def __call__(self, net: np.ndarray) -> np.ndarray:
        g = self.geometry
        if net.shape != (g.out_h, g.out_w):
            raise ValueError(f"output map is {net.shape[1]}x{net.shape[0]}, the geometry's is {g.out_w}x{g.out_h}")
        region = self.region
        if not region.size:
            return self.depth
        a = np.take(net, self.i0, axis=1)
        if net.shape[1] > 1:
            d = np.take(net, self.i0 + 1, axis=1)
            d -= a
            d *= self.wx
            a += d
        A, B = self._a, self._b
        np.take(a, self.j0, axis=0, out=A, mode="clip")
        if a.shape[0] > 1:
            diff = a[1:] - a[:-1]
            np.take(diff, self.j0, axis=0, out=B, mode="clip")
            np.multiply(B, self.wy, out=B)
            np.add(A, B, out=region)
        else:
            np.copyto(region, A)
        return self.depth


def resample_to_camera(depth: np.ndarray, geometry: OutputGeometry, fill_outside: bool = False) -> np.ndarray:
    """A network-output depth map (out_h, out_w) on the camera's pixel grid (src_h, src_w), float32, NaN
    outside the crop window unless ``fill_outside`` (see :class:`CameraResampler`); a new array."""
    return CameraResampler(geometry, fill_outside)(np.asarray(depth, dtype=np.float32))
