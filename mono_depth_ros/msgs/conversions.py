"""ROS message <-> numpy conversions, written against the message *fields* only.

They work on rclpy messages (``sensor_msgs.msg.Image`` ...) and on rosbags typestore messages
(``typestore.types['sensor_msgs/msg/Image']``) alike, so the node and the bag tools share them.
Reading needs nothing but the fields; building a message needs the message classes, passed as a
:class:`MessageTypes` (``MessageTypes.from_rclpy()`` or ``MessageTypes.from_typestore(ts)``),
which also knows how each flavour wants its array fields:

* rclpy (rosidl_generator_py): ``uint8[]``/``float64[]`` take an ``array.array`` (a numpy array is
  refused: it is not a ``collections.abc.Sequence``), ``float64[9]`` a float64 numpy array, and
  integer/bool fields plain Python ``int``/``bool`` (numpy scalars are refused);
* rosbags: dataclasses whose every field is required; arrays are numpy arrays.

Copies (rclpy).  Jazzy's generated ``uint8[]`` setter copies whatever it is given
(``self._data = array.array('B', value)``: a memcpy for ``array.array('B')``/``bytes``/``bytearray``,
an element-by-element loop for anything else, numpy included) *unless* the message was made with
``check_fields=True``, in which case an ``array.array('B')`` is stored as is; ``__init__(data=...)``
copies once more (``array.array('B', kwargs['data'])`` and then the setter).  Humble's setter stores an
``array.array`` as is.  So messages with a ``uint8[]`` payload are built without ``data``, with
``check_fields=True`` where the class has it, and get ``data`` assigned afterwards: one memcpy in all,
from the pipeline's buffer into a new ``array.array`` (:func:`_u8_array`).  (rclpy's ``publish`` then
copies into the C message and the RMW serialises it: those are rclpy's, not ours.)

Conventions (REP 118, REP 103): depth images are 32FC1 metres with NaN = invalid, or 16UC1
millimetres with 0 = invalid; clouds are in the image's optical frame.
"""
from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..camera import CameraIntrinsics
from ..encodings import ImageDecodeError, decode_to_rgb

__all__ = [
    "MessageTypes", "ImageDecodeError", "stamp_to_ns", "make_header", "copy_header",
    "check_image_msg", "image_msg_to_rgb", "compressed_msg_to_rgb", "array_to_image_msg", "rgb_to_image_msg",
    "depth_array", "depth_to_image_fields", "depth_to_image_msg", "image_msg_to_depth",
    "camera_info_to_intrinsics", "intrinsics_to_camera_info", "point_fields",
    "cloud_to_pointcloud2", "pointcloud2_to_array", "DepthTraits", "DEPTH_TRAITS",
]



@dataclass(frozen=True)
class DepthTraits:
    """One REP 118 depth encoding, as depth_image_proc's ``depth_traits.hpp``: pixel dtype, metres per
    unit, and the value that marks an invalid pixel."""

    dtype: str          # little-endian numpy dtype of a pixel
    metres_per_unit: float
    invalid: float


DEPTH_TRAITS: Dict[str, DepthTraits] = {
    "32FC1": DepthTraits("<f4", 1.0, float("nan")),
    "16UC1": DepthTraits("<u2", 1e-3, 0),  # 0 also for depths beyond 65.535 m (REP 118: 0 = invalid)
}

POINTFIELD_FLOAT32 = 7  # sensor_msgs/PointField FLOAT32
_PF_NUMPY = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


# ---------------------------------------------------------------------------------------------
# message classes
# ---------------------------------------------------------------------------------------------
def _u8_numpy(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def _u8_array(a: np.ndarray) -> "array.array[int]":
    """A new ``array.array('B')`` holding the bytes of ``a``: exactly one memcpy (for a contiguous ``a``)."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(a).reshape(-1).view(np.uint8).data)
    return out


def _checked_kwargs(cls: Any) -> Dict[str, Any]:
    """``{'check_fields': True}`` for rosidl classes that have the switch (Jazzy and later): with it the
    ``uint8[]`` setter keeps an ``array.array('B')`` instead of copying it; {} for other classes."""
    return {"check_fields": True} if "_check_fields" in getattr(cls, "__slots__", ()) else {}


@dataclass(frozen=True)
class MessageTypes:
    """The message classes a conversion builds, and how their array fields take values."""

    Time: Any
    Header: Any
    Image: Any
    CameraInfo: Any
    RegionOfInterest: Any
    PointCloud2: Any
    PointField: Any
    uint8_seq: Callable[[np.ndarray], Any]            # uint8[]  (Image.data, PointCloud2.data)
    float64_seq: Callable[[Sequence[float]], Any]     # float64[] (CameraInfo.d)
    float64_array: Callable[[Sequence[float]], Any]   # float64[N] (CameraInfo.k, r, p)
    data_after_init: bool = False                     # rclpy: set uint8[] ``data`` after __init__ (one copy)

    def with_data(self, cls: Any, data: np.ndarray, **fields: Any) -> Any:
        """``cls(**fields, data=<the bytes of data>)`` with one copy of ``data`` (see the module doc)."""
        if not self.data_after_init:
            return cls(data=self.uint8_seq(data), **fields)
        msg = cls(**_checked_kwargs(cls), **fields)
        msg.data = self.uint8_seq(data)
        return msg

    @classmethod
    def from_typestore(cls, typestore: Any) -> "MessageTypes":
        """rosbags: ``MessageTypes.from_typestore(get_typestore(Stores.ROS2_HUMBLE))``."""
        t = typestore.types
        f64 = lambda v: np.asarray(v, dtype=np.float64).reshape(-1)  # noqa: E731
        return cls(t["builtin_interfaces/msg/Time"], t["std_msgs/msg/Header"], t["sensor_msgs/msg/Image"],
                   t["sensor_msgs/msg/CameraInfo"], t["sensor_msgs/msg/RegionOfInterest"],
                   t["sensor_msgs/msg/PointCloud2"], t["sensor_msgs/msg/PointField"],
                   uint8_seq=_u8_numpy, float64_seq=f64, float64_array=f64)

    @classmethod
    def from_rclpy(cls) -> "MessageTypes":
        """The generated ROS 2 Python message classes (needs a sourced ROS 2 environment)."""
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
        from std_msgs.msg import Header

        return cls(Time, Header, Image, CameraInfo, RegionOfInterest, PointCloud2, PointField,
                   uint8_seq=_u8_array,
                   float64_seq=lambda v: array.array("d", [float(x) for x in v]),
                   float64_array=lambda v: np.asarray(v, dtype=np.float64).reshape(-1),
                   data_after_init=True)


# ---------------------------------------------------------------------------------------------
# headers
# ---------------------------------------------------------------------------------------------
def stamp_to_ns(stamp: Any) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def make_header(types: MessageTypes, sec: int, nanosec: int, frame_id: str) -> Any:
    return types.Header(stamp=types.Time(sec=int(sec), nanosec=int(nanosec)), frame_id=str(frame_id))


def copy_header(types: MessageTypes, header: Any, frame_id: Optional[str] = None) -> Any:
    """A new header with ``header``'s stamp and frame_id (``frame_id`` overrides when non-empty)."""
    return make_header(types, header.stamp.sec, header.stamp.nanosec, frame_id or header.frame_id)


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------
def _u8_view(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return np.ascontiguousarray(data).reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):
        return np.asarray(data, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8)  # bytes, bytearray, memoryview, array.array('B')


def check_image_msg(msg: Any) -> None:
    """Raise ImageDecodeError for an empty image or a data buffer shorter than step * height."""
    w, h, step = int(msg.width), int(msg.height), int(msg.step)
    if w <= 0 or h <= 0:
        raise ImageDecodeError(f"empty image ({w}x{h})")
    n = len(msg.data)
    if step <= 0 or n < step * h:
        raise ImageDecodeError(f"image data has {n} bytes but step * height = {step} * {h} = {step * h}")


def image_msg_to_rgb(msg: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
    """sensor_msgs/Image -> (H, W, 3) uint8 RGB (any encoding of ``encodings.SUPPORTED_ENCODINGS``).

    Raises ImageDecodeError (a ValueError) for an unsupported encoding, empty image, or a
    step / size that does not match the data.
    """
    check_image_msg(msg)
    data = _u8_view(msg.data)
    step = int(msg.step)
    if data.size > step * int(msg.height):  # tolerate trailing bytes, as cv_bridge does
        data = data[:step * int(msg.height)]
    return decode_to_rgb(data, int(msg.width), int(msg.height), str(msg.encoding), step=step,
                         is_bigendian=bool(msg.is_bigendian), out=out)


def compressed_msg_to_rgb(msg: Any) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg/png colour) -> (H, W, 3) uint8 RGB."""
    fmt = str(getattr(msg, "format", ""))
    if "compresseddepth" in fmt.lower():
        raise ImageDecodeError(f"compressedDepth images are not camera images (format {fmt!r})")
    buf = _u8_view(msg.data)
    if buf.size == 0:
        raise ImageDecodeError("empty compressed image")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(f"cannot decode compressed image (format {fmt!r}, {buf.size} bytes)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


_ENC_DTYPE = {"rgb8": ("u1", 3), "bgr8": ("u1", 3), "mono8": ("u1", 1), "32FC1": ("<f4", 1), "16UC1": ("<u2", 1)}


def array_to_image_msg(types: MessageTypes, arr: np.ndarray, encoding: str, header: Any) -> Any:
    """(H, W) or (H, W, C) pixel array -> sensor_msgs/Image (little-endian, unpadded rows).

    Supported: rgb8, bgr8, mono8 (uint8), 32FC1 (float32), 16UC1 (uint16).
    """
    if encoding not in _ENC_DTYPE:
        raise ValueError(f"unsupported output encoding {encoding!r}")
    dt, channels = _ENC_DTYPE[encoding]
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] != channels or arr.dtype.kind != np.dtype(dt).kind \
            or arr.dtype.itemsize != np.dtype(dt).itemsize:
        raise ValueError(f"{encoding} needs ({channels} channel(s), {np.dtype(dt)}), got {arr.shape} {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=dt)
    h, w = arr.shape[:2]
    return types.with_data(types.Image, arr, header=header, height=int(h), width=int(w), encoding=encoding,
                           is_bigendian=0, step=int(w * channels * arr.itemsize))


def rgb_to_image_msg(types: MessageTypes, rgb: np.ndarray, header: Any) -> Any:
    """(H, W, 3) uint8 RGB -> sensor_msgs/Image rgb8."""
    return array_to_image_msg(types, rgb, "rgb8", header)


def depth_array(depth: np.ndarray, encoding: str = "32FC1") -> np.ndarray:
    """(H, W) metres (NaN = invalid) -> the pixel array of a REP 118 depth image, little-endian.

    32FC1: float32 metres, NaN kept.  16UC1: uint16 millimetres rounded, 0 = invalid (NaN, <= 0,
    or beyond 65.535 m, which 16 bits cannot hold).
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    if encoding == "32FC1":
        return np.ascontiguousarray(depth, dtype="<f4")
    if encoding == "16UC1":
        mm = np.multiply(depth, 1000.0, dtype=np.float64)
        np.rint(mm, out=mm)
        with np.errstate(invalid="ignore"):
            valid = mm > 0          # False for NaN
            valid &= mm <= 65535    # False for NaN and inf
            arr = mm.astype("<u2")  # invalid pixels cast to an undefined value ...
        arr *= valid                # ... and zeroed here (no boolean-index gather / scatter)
        return arr
    raise ValueError(f"depth encoding must be 32FC1 or 16UC1, got {encoding!r}")


def depth_to_image_fields(depth: np.ndarray, encoding: str = "32FC1") -> Dict[str, Any]:
    """Fields of a depth sensor_msgs/Image (REP 118) from (H, W) metres with NaN = invalid
    (see :func:`depth_array`); ``data`` is a flat little-endian uint8 numpy array (pass it through
    ``MessageTypes.uint8_seq`` for a message)."""
    arr = depth_array(depth, encoding)
    h, w = arr.shape
    return {"height": int(h), "width": int(w), "encoding": encoding, "is_bigendian": 0,
            "step": int(w * arr.itemsize), "data": arr.reshape(-1).view(np.uint8)}


def depth_to_image_msg(types: MessageTypes, depth: np.ndarray, header: Any, encoding: str = "32FC1") -> Any:
    """(H, W) metres, NaN = invalid -> REP 118 depth sensor_msgs/Image (32FC1 or 16UC1)."""
    return array_to_image_msg(types, depth_array(depth, encoding), encoding, header)


def image_msg_to_depth(msg: Any) -> np.ndarray:
    """Depth sensor_msgs/Image (32FC1 m or 16UC1 mm) -> (H, W) float32 metres, NaN = invalid."""
    check_image_msg(msg)
    enc = str(msg.encoding).upper()
    dt: np.dtype
    if enc == "32FC1":
        dt, bpp = np.dtype("f4"), 4
    elif enc in ("16UC1", "MONO16"):
        dt, bpp = np.dtype("u2"), 2
    else:
        raise ImageDecodeError(f"not a depth image encoding: {msg.encoding!r} (expected 32FC1 or 16UC1)")
    w, h, step = int(msg.width), int(msg.height), int(msg.step)
    if step < w * bpp:
        raise ImageDecodeError(f"step {step} < width * {bpp}")
    dt = dt.newbyteorder(">" if msg.is_bigendian else "<")
    rows = _u8_view(msg.data)[:step * h].reshape(h, step)[:, :w * bpp]
    d = np.ascontiguousarray(rows).view(dt).reshape(h, w)
    if bpp == 2:
        out = d.astype(np.float32) / 1000.0
        out[d == 0] = np.nan
        return out
    return d.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# camera info
# ---------------------------------------------------------------------------------------------
def camera_info_to_intrinsics(msg: Any) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> validated CameraIntrinsics (P when non-zero, else K).

    Raises ValueError for zero size or NaN/zero/negative focal lengths.
    """
    k = np.asarray(msg.k, dtype=np.float64).reshape(-1)
    p = np.asarray(msg.p, dtype=np.float64).reshape(-1)
    if k.size != 9:
        raise ValueError(f"CameraInfo.k has {k.size} values, expected 9")
    intr = CameraIntrinsics.from_camera_info_fields(k.tolist(), p.tolist() if p.size == 12 else None,
                                                    int(msg.width), int(msg.height))
    intr.validate()
    return intr


def intrinsics_to_camera_info(types: MessageTypes, intr: CameraIntrinsics, header: Any,
                              source: Any = None) -> Any:
    """CameraInfo describing a depth image with intrinsics ``intr``.

    The depth image is an ideal pinhole image (the cloud ignores distortion), so D = 0 (plumb_bob),
    R = I, K = P[:, :3] = intr.  With ``source`` (the camera's CameraInfo) a stereo baseline term
    P[3] / P[7] is carried over, scaled by the focal-length ratio.  ROI and binning are zero: the
    message describes the whole depth image.
    """
    tx = ty = 0.0
    if source is not None:
        sp = np.asarray(source.p, dtype=np.float64).reshape(-1)
        if sp.size == 12 and sp[0] > 0 and sp[5] > 0:
            tx, ty = float(sp[3] * intr.fx / sp[0]), float(sp[7] * intr.fy / sp[5])
    K = intr.K().reshape(-1)
    P = [intr.fx, 0.0, intr.cx, tx, 0.0, intr.fy, intr.cy, ty, 0.0, 0.0, 1.0, 0.0]
    roi = types.RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types.CameraInfo(header=header, height=int(intr.height), width=int(intr.width),
                            distortion_model="plumb_bob", d=types.float64_seq([0.0] * 5),
                            k=types.float64_array([float(v) for v in K]),
                            r=types.float64_array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
                            p=types.float64_array([float(v) for v in P]),
                            binning_x=0, binning_y=0, roi=roi)


# ---------------------------------------------------------------------------------------------
# point clouds
# ---------------------------------------------------------------------------------------------
def point_fields(types: MessageTypes, fields: Sequence[Tuple[str, int, int]]) -> List[Any]:
    """[(name, offset, datatype)] (pointcloud.Cloud.fields) -> [sensor_msgs/PointField], count 1."""
    return [types.PointField(name=str(n), offset=int(o), datatype=int(dt), count=1) for n, o, dt in fields]


def cloud_to_pointcloud2(types: MessageTypes, cloud: Any, header: Any) -> Any:
    """pointcloud.Cloud -> sensor_msgs/PointCloud2, organised (height > 1) or not, same field layout.

    (sensor_msgs_py.point_cloud2.create_cloud makes unorganised clouds only, hence this.)
    """
    data = np.ascontiguousarray(cloud.data)
    point_step = int(cloud.point_step)
    width, height = int(cloud.width), int(cloud.height)
    if data.dtype.itemsize != point_step:
        raise ValueError(f"cloud data itemsize {data.dtype.itemsize} != point_step {point_step}")
    if data.size != width * height:
        raise ValueError(f"cloud has {data.size} points, expected width * height = {width} * {height}")
    return types.with_data(types.PointCloud2, data, header=header, height=height, width=width,
                           fields=point_fields(types, cloud.fields), is_bigendian=sys.byteorder != "little",
                           point_step=point_step, row_step=point_step * width, is_dense=bool(cloud.is_dense))


def pointcloud2_to_array(msg: Any) -> np.ndarray:
    """sensor_msgs/PointCloud2 -> structured numpy array of shape (height, width)."""
    names, formats, offsets = [], [], []
    order = ">" if msg.is_bigendian else "<"
    for f in msg.fields:
        if int(f.count) != 1:
            raise ValueError(f"field {f.name!r} has count {f.count}; only count 1 is supported")
        names.append(str(f.name))
        formats.append(order + _PF_NUMPY[int(f.datatype)])
        offsets.append(int(f.offset))
    dt = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})
    h, w = int(msg.height), int(msg.width)
    rows = _u8_view(msg.data)[:int(msg.row_step) * h].reshape(h, int(msg.row_step))[:, :w * int(msg.point_step)]
    return np.ascontiguousarray(rows).view(dt).reshape(h, w)
