"""Message fields <-> numpy for the bag tools and the evaluator (rosbags and rclpy messages alike).

Reading: :func:`pointcloud2_xyz`, :func:`image_to_array`, :func:`depth_image_to_metres`,
:func:`camera_info_K`; building from a rosbags typestore: :class:`MessageFactory` (images, camera_info,
PointCloud2, tf).  Errors are :class:`MessageError` (a ``ValueError``; ``bag.io.BagError`` is the same class).
"""
from __future__ import annotations

from typing import Any, List, Literal, Optional, Sequence, Tuple

import numpy as np

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"


class MessageError(ValueError):
    """A message (or a bag holding it) cannot be read or written as asked (names the bag / topic)."""


BagError = MessageError


def get_typestore(name: str = "humble"):
    """A rosbags typestore with the standard ROS 2 message types (Humble's definitions by default;
    sensor_msgs / tf2_msgs / geometry_msgs are identical in Humble, Iron and Jazzy)."""
    from rosbags.typesys import Stores, get_typestore as _get

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY, "iron": Stores.ROS2_IRON}
    try:
        return _get(stores[name])
    except KeyError:
        raise MessageError(f"unknown typestore {name!r}; known: {', '.join(stores)}") from None


# PointField datatypes -> numpy dtypes (sensor_msgs/PointField constants)
POINTFIELD_DTYPES = {1: np.int8, 2: np.uint8, 3: np.int16, 4: np.uint16, 5: np.int32, 6: np.uint32,
                     7: np.float32, 8: np.float64}


# ---- time ---------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_sec_nsec(ns: int) -> Tuple[int, int]:
    return int(ns // 1_000_000_000), int(ns % 1_000_000_000)


# ---- message field helpers (work on rosbags and rclpy messages alike) -------------------------
def pointcloud2_xyz(msg: Any, topic: str = "point cloud") -> np.ndarray:
    """(N, 3) float64 x, y, z of a PointCloud2 (any point_step / row padding / endianness);
    non-finite points dropped."""
    fields = {f.name: f for f in msg.fields}
    missing = [n for n in "xyz" if n not in fields]
    if missing:
        raise BagError(f"{topic}: PointCloud2 has no field(s) {', '.join(missing)} (fields: {', '.join(fields)})")
    n = int(msg.width) * int(msg.height)
    if n == 0:
        return np.zeros((0, 3), dtype=np.float64)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), dtype=np.uint8)
    ps, rs = int(msg.point_step), int(msg.row_step)
    if data.size < rs * (int(msg.height) - 1) + ps * int(msg.width):
        raise BagError(f"{topic}: PointCloud2 data has {data.size} bytes, too few for {msg.width}x{msg.height} "
                       f"points of {ps} bytes (truncated?)")
    order: Literal[">", "<"] = ">" if msg.is_bigendian else "<"
    names: List[str] = []
    formats: List[np.dtype] = []
    offsets: List[int] = []
    for name in "xyz":
        f = fields[name]
        if f.datatype not in POINTFIELD_DTYPES:
            raise BagError(f"{topic}: field {name} has unknown datatype {f.datatype}")
        names.append(name)
        formats.append(np.dtype(POINTFIELD_DTYPES[f.datatype]).newbyteorder(order))
        offsets.append(int(f.offset))
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": ps})
    rows = []
    for r in range(int(msg.height)):
        rows.append(np.frombuffer(data, dtype=dt, count=int(msg.width), offset=r * rs))
    arr = np.concatenate(rows) if len(rows) > 1 else rows[0]
    xyz = np.stack([arr["x"].astype(np.float64), arr["y"].astype(np.float64), arr["z"].astype(np.float64)], axis=1)
    return xyz[np.isfinite(xyz).all(axis=1)]


def image_to_array(msg: Any, topic: str = "image") -> np.ndarray:
    """A depth / mono / rgb Image as a numpy array (H, W[, C]) of its own dtype (copy; any step)."""
    enc = msg.encoding
    table = {"32FC1": (np.float32, 1), "16UC1": (np.uint16, 1), "mono16": (np.uint16, 1), "mono8": (np.uint8, 1),
             "8UC1": (np.uint8, 1), "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4),
             "bgra8": (np.uint8, 4), "64FC1": (np.float64, 1)}
    if enc not in table:
        raise BagError(f"{topic}: image encoding {enc!r} not supported here (supported: {', '.join(table)})")
    dtype, ch = table[enc]
    dt = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * ch * dt.itemsize
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data.tobytes(), dtype=np.uint8)
    if step < row_bytes or buf.size < step * (h - 1) + row_bytes:
        raise BagError(f"{topic}: image data of {buf.size} bytes is too small for {w}x{h} {enc} (step {step})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row_bytes), strides=(step, 1))
    arr = np.ascontiguousarray(rows).view(dt).reshape((h, w, ch) if ch > 1 else (h, w))
    return arr.astype(dt.newbyteorder("="), copy=False)


def depth_image_to_metres(msg: Any, topic: str = "depth image", scale: Optional[float] = None) -> np.ndarray:
    """A ground-truth depth image -> float32 metres with NaN where invalid (32FC1: metres, REP 118;
    16UC1/mono16: millimetres unless ``scale`` (metres per unit) is given; 0 = invalid)."""
    arr = image_to_array(msg, topic)
    if arr.ndim != 2:
        raise BagError(f"{topic}: a depth image must have one channel, got encoding {msg.encoding}")
    if arr.dtype.kind == "f":
        d = arr.astype(np.float32)
        if scale is not None:
            d = d * np.float32(scale)
    else:
        d = arr.astype(np.float32) * np.float32(1e-3 if scale is None else scale)
        d[arr == 0] = np.nan
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


# ---- message building -------------------------------------------------------------------------
class MessageFactory:
    """Builds messages from a rosbags typestore's classes."""

    def __init__(self, typestore: Any = None):
        self.typestore = typestore if typestore is not None else get_typestore()
        t = self.typestore.types
        self.Time = t["builtin_interfaces/msg/Time"]
        self.Header = t["std_msgs/msg/Header"]
        self.Image = t[IMAGE]
        self.CameraInfo = t[CAMERA_INFO]
        self.RegionOfInterest = t["sensor_msgs/msg/RegionOfInterest"]
        self.PointCloud2 = t[POINTCLOUD2]
        self.PointField = t["sensor_msgs/msg/PointField"]
        self.TFMessage = t[TF_MESSAGE]
        self.TransformStamped = t["geometry_msgs/msg/TransformStamped"]
        self.Transform = t["geometry_msgs/msg/Transform"]
        self.Vector3 = t["geometry_msgs/msg/Vector3"]
        self.Quaternion = t["geometry_msgs/msg/Quaternion"]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        sec, nsec = ns_to_sec_nsec(stamp_ns)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nsec), frame_id=frame_id)

    def image(self, header: Any, array: np.ndarray, encoding: str) -> Any:
        a = np.ascontiguousarray(array)
        h, w = a.shape[:2]
        step = a.strides[0]
        return self.Image(header=header, height=h, width=w, encoding=encoding,
                          is_bigendian=int(a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and not np.little_endian)),
                          step=step, data=np.frombuffer(a.tobytes(), dtype=np.uint8))

    def camera_info(self, header: Any, width: int, height: int, K: np.ndarray, P: Optional[np.ndarray] = None,
                    D: Sequence[float] = (), distortion_model: str = "plumb_bob", R: Optional[np.ndarray] = None) -> Any:
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        if P is None:
            P = np.hstack([K, np.zeros((3, 1))])
        R = np.eye(3) if R is None else np.asarray(R, dtype=np.float64).reshape(3, 3)
        roi = self.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return self.CameraInfo(header=header, height=int(height), width=int(width), distortion_model=distortion_model,
                               d=np.asarray(D, dtype=np.float64), k=K.reshape(9).copy(), r=R.reshape(9).copy(),
                               p=np.asarray(P, dtype=np.float64).reshape(12).copy(), binning_x=0, binning_y=0, roi=roi)

    def pointcloud2(self, header: Any, data: np.ndarray, width: int, height: int,
                    fields: Sequence[Tuple[str, int, int]], point_step: int, is_dense: bool) -> Any:
        pf = [self.PointField(name=n, offset=int(o), datatype=int(dt), count=1) for n, o, dt in fields]
        raw = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
        return self.PointCloud2(header=header, height=int(height), width=int(width), fields=pf, is_bigendian=False,
                                point_step=int(point_step), row_step=int(point_step) * int(width), data=raw,
                                is_dense=bool(is_dense))

    def transform_stamped(self, stamp_ns: int, parent: str, child: str, matrix: np.ndarray) -> Any:
        from ..bag.tf import matrix_to_quaternion

        M = np.asarray(matrix, dtype=np.float64)
        qx, qy, qz, qw = matrix_to_quaternion(M[:3, :3])
        tr = self.Transform(translation=self.Vector3(x=float(M[0, 3]), y=float(M[1, 3]), z=float(M[2, 3])),
                            rotation=self.Quaternion(x=qx, y=qy, z=qz, w=qw))
        return self.TransformStamped(header=self.header(stamp_ns, parent), child_frame_id=child, transform=tr)

    def tf_message(self, transforms: Sequence[Any]) -> Any:
        return self.TFMessage(transforms=list(transforms))


def camera_info_K(k: Sequence[float], p: Sequence[float]) -> np.ndarray:
    """The 3x3 intrinsics of the image as published: P's left 3x3 when P is set (rectified image),
    else K. P's 4th column (a stereo baseline) is ignored: the tf already places the camera."""
    P = np.asarray(p, dtype=np.float64).reshape(3, 4) if len(p) == 12 else np.zeros((3, 4))
    if P[0, 0] > 0 and P[1, 1] > 0:
        return P[:, :3].copy()
    Kx = np.asarray(k, dtype=np.float64).reshape(3, 3)
    if not (Kx[0, 0] > 0 and Kx[1, 1] > 0):
        raise ValueError("camera_info has neither P nor K set (zero focal length)")
    return Kx


