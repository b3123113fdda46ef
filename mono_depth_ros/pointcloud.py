"""Depth image + intrinsics -> point cloud buffers ready for sensor_msgs/PointCloud2 (no ROS imports).

Back-projection (as depth_image_proc): X = (u - cx) Z / fx, Y = (v - cy) Z / fy, Z = depth, in the
camera optical frame (z forward, x right, y down).  Pixels with NaN, non-positive or infinite depth
are invalid.

Layouts (little-endian, the PCL / rviz convention):

* xyz:    point_step 16: x @ 0, y @ 4, z @ 8 (float32), 4 bytes padding (PCL PointXYZ);
* xyzrgb: point_step 32: x @ 0, y @ 4, z @ 8, padding @ 12, rgb @ 16, 12 bytes padding
  (PCL PointXYZRGB); ``rgb`` is a float32 whose bits are the uint32 0x00RRGGBB.

Organised clouds are (height x width) of the (strided) depth image with NaN x, y, z for invalid
pixels and ``is_dense = False``; unorganised clouds keep only valid points (height 1,
``is_dense = True``).  ``Cloud.data.tobytes()`` (or the buffer itself) is PointCloud2.data, with
``row_step = point_step * width``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .camera import CameraIntrinsics

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32

XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 16],
                         "itemsize": 32})
XYZ_FIELDS: List[Tuple[str, int, int]] = [("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32)]
XYZRGB_FIELDS: List[Tuple[str, int, int]] = XYZ_FIELDS + [("rgb", 16, FLOAT32)]


@dataclass
class Cloud:
    data: np.ndarray                     # structured (XYZ_DTYPE | XYZRGB_DTYPE), 1-D of width * height points
    width: int
    height: int
    point_step: int
    fields: List[Tuple[str, int, int]]   # (name, offset, datatype=7 FLOAT32), count 1 each
    is_dense: bool

    @property
    def row_step(self) -> int:
        return self.point_step * self.width

    @property
    def has_rgb(self) -> bool:
        return self.point_step == 32

    def __len__(self) -> int:
        return self.width * self.height

    def tobytes(self) -> bytes:
        return self.data.tobytes()

    def xyz(self) -> np.ndarray:
        """(N, 3) float32 copy of the coordinates (NaN rows for invalid organised points)."""
        return np.stack([self.data["x"], self.data["y"], self.data["z"]], axis=-1)

    def rgb(self) -> np.ndarray:
        """(N, 3) uint8 colours unpacked from the packed float (requires an xyzrgb cloud)."""
        if not self.has_rgb:
            raise ValueError("cloud has no rgb field")
        raw = self.data.view(np.uint8).reshape(-1, 32)
        return raw[:, [18, 17, 16]].copy()


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) float32 whose bits are 0x00RRGGBB (the PCL/rviz packing)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    u = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2].astype(np.uint32)
    return u.view(np.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    u = np.asarray(packed, dtype=np.float32).view(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=-1).astype(np.uint8)


def _check(depth: np.ndarray, intrinsics: CameraIntrinsics, stride: int) -> None:
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if (intrinsics.width, intrinsics.height) != (depth.shape[1], depth.shape[0]):
        raise ValueError(f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the depth image is "
                         f"{depth.shape[1]}x{depth.shape[0]}; scale them (CameraIntrinsics.scaled_to) first")
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")


class CloudBuilder:
    """Builds clouds into buffers it reuses across frames of the same size (copy ``data`` to keep it).

    Bounded: it holds the buffers of one geometry only (the last frame's size, stride, colour and
    intrinsics).  A frame of another geometry replaces them, so one huge frame does not stay in memory
    after the camera goes back to its usual size, and nothing grows beyond the largest frame built.
    """

    def __init__(self) -> None:
        self._key: Optional[tuple] = None
        self._st: Optional[dict] = None

    @property
    def nbytes(self) -> int:
        """Bytes of the reusable buffers held now."""
        if self._st is None:
            return 0
        return sum(v.nbytes for v in self._st.values() if isinstance(v, np.ndarray))

    def clear(self) -> None:
        """Release the buffers (the next build allocates them again)."""
        self._key = self._st = None

    def _state(self, h: int, w: int, intr: CameraIntrinsics, stride: int, with_rgb: bool) -> dict:
        key = (h, w, stride, with_rgb, intr.fx, intr.fy, intr.cx, intr.cy)
        st = self._st
        if st is None or key != self._key:
            self._key = self._st = st = None  # drop the old buffers before allocating the new ones
            us = np.arange(0, w, stride, dtype=np.float32)
            vs = np.arange(0, h, stride, dtype=np.float32)
            hs, ws = len(vs), len(us)
            dtype = XYZRGB_DTYPE if with_rgb else XYZ_DTYPE
            data = np.zeros(hs * ws, dtype=dtype)  # padding bytes stay zero
            st = {
                "ax": ((us - np.float32(intr.cx)) / np.float32(intr.fx)).astype(np.float32)[None, :],
                "ay": ((vs - np.float32(intr.cy)) / np.float32(intr.fy)).astype(np.float32)[:, None],
                "data": data, "hs": hs, "ws": ws,
                "mask": np.empty((hs, ws), dtype=bool),
                "mask2": np.empty((hs, ws), dtype=bool),
                "flat": None,
            }
            self._key, self._st = key, st
        return st

    def build(self, depth: np.ndarray, intrinsics: CameraIntrinsics, rgb: Optional[np.ndarray] = None,
              organized: bool = True, stride: int = 1) -> Cloud:
        """Back-project ``depth`` (H, W) metres with ``intrinsics`` (of that image); ``rgb`` (H, W, 3)
        uint8 aligned with it adds colour.  ``stride`` keeps every stride-th pixel in u and v."""
        _check(depth, intrinsics, stride)
        stride = int(stride)
        h, w = depth.shape
        if rgb is not None and (rgb.shape[:2] != depth.shape or rgb.ndim != 3 or rgb.shape[2] < 3):
            raise ValueError(f"rgb {rgb.shape} must be (H, W, 3) aligned with depth {depth.shape}")
        st = self._state(h, w, intrinsics, stride, rgb is not None)
        data, hs, ws = st["data"], st["hs"], st["ws"]
        grid = data.reshape(hs, ws)
        z = depth[::stride, ::stride] if stride > 1 else depth
        zf = grid["z"]
        np.copyto(zf, z, casting="same_kind")
        # invalid: NaN, inf, <= 0  ->  NaN
        mask = st["mask"]
        np.less_equal(zf, 0, out=mask)
        np.logical_or(mask, np.isnan(zf, out=st["mask2"]), out=mask)
        np.logical_or(mask, np.isinf(zf, out=st["mask2"]), out=mask)
        np.copyto(zf, np.float32(np.nan), where=mask)
        np.multiply(zf, st["ax"], out=grid["x"])
        np.multiply(zf, st["ay"], out=grid["y"])
        fields = XYZ_FIELDS
        step = 16
        if rgb is not None:
            c = rgb[::stride, ::stride, :3] if stride > 1 or rgb.shape[2] != 3 else rgb
            bgra = st.get("bgra")
            if bgra is None:
                bgra = st["bgra"] = np.empty((hs, ws, 4), dtype=np.uint8)
            # bytes B, G, R, A = little-endian uint32 0xAARRGGBB; clear A -> 0x00RRGGBB
            cv2.cvtColor(np.ascontiguousarray(c), cv2.COLOR_RGB2BGRA, dst=bgra)
            np.bitwise_and(bgra.view(np.uint32)[:, :, 0], np.uint32(0x00FFFFFF),
                           out=data.view(np.uint32).reshape(hs, ws, 8)[:, :, 4])
            fields = XYZRGB_FIELDS
            step = 32
        if organized:
            return Cloud(data=data, width=ws, height=hs, point_step=step, fields=list(fields), is_dense=False)
        idx = np.flatnonzero(~mask.reshape(-1))
        n = len(idx)
        flat = st["flat"]
        if flat is None:
            flat = st["flat"] = np.zeros(hs * ws, dtype=data.dtype)
        words = data.itemsize // 8  # gather whole points as uint64 words (fast path for structured rows)
        np.take(data.view(np.uint64).reshape(-1, words), idx, axis=0,
                out=flat.view(np.uint64).reshape(-1, words)[:n])
        out = flat[:n]
        return Cloud(data=out, width=n, height=1, point_step=step, fields=list(fields), is_dense=True)


def depth_to_xyz(depth: np.ndarray, intrinsics: CameraIntrinsics, stride: int = 1) -> np.ndarray:
    """(H', W', 3) float32 camera-frame points of a depth image, NaN where the depth is invalid."""
    _check(depth, intrinsics, stride)
    z = np.asarray(depth[::stride, ::stride], dtype=np.float32).copy()
    z[~(np.isfinite(z) & (z > 0))] = np.nan
    h, w = depth.shape
    us = np.arange(0, w, stride, dtype=np.float32)
    vs = np.arange(0, h, stride, dtype=np.float32)
    out = np.empty(z.shape + (3,), dtype=np.float32)
    np.multiply(z, ((us - np.float32(intrinsics.cx)) / np.float32(intrinsics.fx))[None, :], out=out[..., 0])
    np.multiply(z, ((vs - np.float32(intrinsics.cy)) / np.float32(intrinsics.fy))[:, None], out=out[..., 1])
    out[..., 2] = z
    return out


def write_ply(path: "str | Path", cloud: Cloud) -> None:
    """Write the valid points of ``cloud`` as a binary little-endian PLY (x y z float [+ red green blue uchar])."""
    d = cloud.data
    valid = np.isfinite(d["z"])
    pts = d[valid]
    n = len(pts)
    header = ["ply", "format binary_little_endian 1.0", "comment mono_depth_ros depth cloud (camera optical frame)",
              f"element vertex {n}", "property float x", "property float y", "property float z"]
    if cloud.has_rgb:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        rec = np.empty(n, dtype=np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"),
                                          ("b", "u1")]))
        raw = pts.view(np.uint8).reshape(n, 32) if n else np.zeros((0, 32), np.uint8)
        rec["r"], rec["g"], rec["b"] = raw[:, 18], raw[:, 17], raw[:, 16]
    else:
        rec = np.empty(n, dtype=np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")]))
    rec["x"], rec["y"], rec["z"] = pts["x"], pts["y"], pts["z"]
    header.append("end_header")
    blob = ("\n".join(header) + "\n").encode("ascii") + rec.tobytes()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)  # atomic: readers never see half a file


def read_ply(path: "str | Path") -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a PLY written by :func:`write_ply`: (N, 3) float32 xyz and (N, 3) uint8 rgb or None."""
    blob = Path(path).read_bytes()
    end = blob.index(b"end_header\n") + len(b"end_header\n")
    header = blob[:end].decode("ascii").splitlines()
    n = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    has_rgb = any(line.endswith(" red") for line in header)
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("r", "u1"), ("g", "u1"), ("b", "u1")]
                                                                 if has_rgb else []))
    rec = np.frombuffer(blob, dtype=dt, count=n, offset=end)
    xyz = np.stack([rec["x"], rec["y"], rec["z"]], axis=-1)
    rgb = np.stack([rec["r"], rec["g"], rec["b"]], axis=-1) if has_rgb else None
    return xyz, rgb

