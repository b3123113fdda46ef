"""Decode ROS ``sensor_msgs/Image`` pixel buffers to RGB uint8, vectorised (no per-pixel Python).

``decode_to_rgb`` takes the message's ``data`` (bytes, bytearray, memoryview or a numpy array),
``width``, ``height``, ``encoding``, ``step`` (bytes per row, rows may be padded) and
``is_bigendian``, and returns an (H, W, 3) uint8 RGB image, written into ``out`` when given.

Encodings (sensor_msgs/image_encodings.hpp names):

==============  ===========  =======================================================
encoding        bytes/pixel  conversion
==============  ===========  =======================================================
rgb8            3            copy
bgr8            3            channel swap
rgba8, bgra8    4            alpha dropped
mono8           1            grey replicated to R, G, B
mono16          2            top 8 bits (v >> 8; exact for 8-bit data stored as v * 257),
                             byte order from ``is_bigendian``
yuv422, uyvy    2            U Y0 V Y1 (ROS ``yuv422`` is UYVY), OpenCV BT.601
yuv422_yuy2,    2            Y0 U Y1 V, OpenCV BT.601
yuyv
==============  ===========  =======================================================
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import cv2
import numpy as np

SUPPORTED_ENCODINGS: Tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16",
                                        "yuv422", "uyvy", "yuv422_yuy2", "yuyv")

# canonical name, bytes per pixel
_ENC: Dict[str, Tuple[str, int]] = {
    "rgb8": ("rgb8", 3), "bgr8": ("bgr8", 3), "rgba8": ("rgba8", 4), "bgra8": ("bgra8", 4),
    "mono8": ("mono8", 1), "mono16": ("mono16", 2),
    "yuv422": ("uyvy", 2), "uyvy": ("uyvy", 2), "yuv422_yuy2": ("yuyv", 2), "yuyv": ("yuyv", 2),
}

# canonical name -> the cv2 conversion of its (H, W, bytes per pixel) view to RGB (rgb8, mono8 and mono16 are
# special-cased in decode_to_rgb)
_TO_RGB: Dict[str, int] = {
    "bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
    "uyvy": cv2.COLOR_YUV2RGB_UYVY, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}

Buffer = Union[bytes, bytearray, memoryview, np.ndarray]


class ImageDecodeError(ValueError):
    """The image buffer does not match its declared encoding, size or step."""


def bytes_per_pixel(encoding: str) -> int:
    return _lookup(encoding)[1]


def _lookup(encoding: str) -> Tuple[str, int]:
    try:
        return _ENC[str(encoding).strip().lower()]
    except KeyError:
        raise ImageDecodeError(f"unsupported image encoding {encoding!r}; supported: "
                               f"{', '.join(SUPPORTED_ENCODINGS)}") from None


def _as_bytes(data: Buffer) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return data.reshape(-1).view(np.uint8)
    if isinstance(data, (list, tuple)):  # rclpy exposes uint8[] fields as array.array or lists
        return np.asarray(data, dtype=np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)  # bytes, bytearray, memoryview, array.array('B')
    except TypeError:
        raise ImageDecodeError(f"image data must be bytes or a numpy array, got {type(data).__name__}") from None


def image_view(data: Buffer, width: int, height: int, encoding: str, step: Optional[int] = None) -> np.ndarray:
    """Zero-copy (H, W, bytes_per_pixel) uint8 view of a (possibly row-padded) image buffer."""
    _, bpp = _lookup(encoding)
    width, height = int(width), int(height)
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image size must be positive, got {width}x{height}")
    row = width * bpp
    step = row if step is None or int(step) == 0 else int(step)
    if step < row:
        raise ImageDecodeError(f"step {step} is smaller than width * bytes per pixel = {width} * {bpp} = {row} "
                               f"for {encoding}")
    buf = _as_bytes(data)
    need_min = step * (height - 1) + row  # the last row's padding may be absent
    if buf.size < need_min:
        raise ImageDecodeError(f"image data is truncated (or the step is wrong): {buf.size} bytes for {width}x{height} {encoding} "
                               f"with step {step} (needs {step * height})")
    if buf.size > step * height:
        raise ImageDecodeError(f"image data has {buf.size} bytes, more than step * height = {step} * {height} = "
                               f"{step * height} for {width}x{height} {encoding}: wrong step or size?")
    return np.lib.stride_tricks.as_strided(buf, shape=(height, width, bpp), strides=(step, bpp, 1),
                                           writeable=False)


def decode_to_rgb(data: Buffer, width: int, height: int, encoding: str, step: Optional[int] = None,
                  is_bigendian: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Decode an image buffer to (H, W, 3) uint8 RGB (into ``out`` when it has that shape and dtype).

    Raises :class:`ImageDecodeError` for an unknown encoding, a zero size, a step smaller than a
    row, a buffer shorter (truncated) or longer than ``step * height``, or an odd width for YUV 4:2:2.
    """
    canon, bpp = _lookup(encoding)
    width, height = int(width), int(height)
    if canon in ("uyvy", "yuyv") and width % 2:
        raise ImageDecodeError(f"{encoding} (YUV 4:2:2) needs an even width, got {width}")
    if out is None or out.shape != (height, width, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        out = np.empty((height, width, 3), dtype=np.uint8)
    # A 2-D uint16 array of mono16 values is taken as values (native byte order), not bytes.
    if canon == "mono16" and isinstance(data, np.ndarray) and data.dtype.itemsize == 2 and data.ndim == 2:
        if data.shape != (height, width):
            raise ImageDecodeError(f"mono16 array has shape {data.shape}, expected ({height}, {width})")
        hi16 = (data.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
        cv2.cvtColor(hi16, cv2.COLOR_GRAY2RGB, dst=out)
        return out
    view = image_view(data, width, height, encoding, step)
    if canon == "rgb8":
        np.copyto(out, view)
    elif canon == "mono8":
        cv2.cvtColor(view[:, :, 0], cv2.COLOR_GRAY2RGB, dst=out)
    elif canon == "mono16":
        # (H, W, 2) bytes: the high byte is byte 0 for big-endian data, byte 1 for little-endian.
        hi = cv2.extractChannel(view, 0 if is_bigendian else 1)
        cv2.cvtColor(hi, cv2.COLOR_GRAY2RGB, dst=out)
    elif canon in _TO_RGB:
        cv2.cvtColor(view, _TO_RGB[canon], dst=out)
    else:  # pragma: no cover - _ENC and this switch are kept in step
        raise ImageDecodeError(f"unsupported image encoding {encoding!r}")
    return out


def encode_rgb(rgb: np.ndarray, encoding: str, step: Optional[int] = None, is_bigendian: bool = False) -> bytes:
    """The inverse of :func:`decode_to_rgb` (for tests and tools): RGB uint8 -> message ``data`` bytes.

    Rows are padded with zeros to ``step`` when it is larger than a row. mono encodings store
    the BT.601 luma (cv2 RGB2GRAY); mono16 stores it as v * 257.
    """
    canon, bpp = _lookup(encoding)
    h, w = rgb.shape[:2]
    if canon == "rgb8":
        px = rgb
    elif canon == "bgr8":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif canon == "rgba8":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2RGBA)
    elif canon == "bgra8":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    elif canon == "mono8":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    elif canon == "mono16":
        g = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 257
        px = g.astype(">u2" if is_bigendian else "<u2").view(np.uint8).reshape(h, w * 2)
    elif canon == "uyvy":
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY)
    else:
        px = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_YUY2)
    rows = np.ascontiguousarray(px).reshape(h, w * bpp)
    step = w * bpp if step is None else int(step)
    if step > w * bpp:
        padded = np.zeros((h, step), dtype=np.uint8)
        padded[:, :w * bpp] = rows
        rows = padded
    return rows.tobytes()
