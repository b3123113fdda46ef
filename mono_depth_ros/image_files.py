"""Image files as camera input: the size and pixel type from the header (before decoding), and a reader that
refuses what is not a camera image.

* :func:`read_header` parses the first bytes of PNG, JPEG, BMP and PNM (PPM/PGM/PBM) files: (width, height,
  channels, bits per sample) without decoding the pixels, so an oversized image (see :data:`DEFAULT_MAX_PIXELS`)
  is refused before any memory is spent on it, and a 16-bit single-channel PNG (a depth map, as NYU/KITTI
  ground truth is stored) is recognised without reading it. Other formats (TIFF, WebP) return None: they are
  checked after decoding.
* :func:`read_camera_image` decodes an 8-bit (or 16-bit colour) camera image to RGB uint8 and refuses
  single-channel 16-bit / float images with one line (:class:`NotACameraImage`).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

# The largest image `mono-depth predict` (and the demo) take by default: 50 megapixels (e.g. 8192 x 6144).
# Peak memory of predict grows by about 25 bytes per camera pixel (RGB, depth, resampling buffers, PNG/NPY
# encoding) and about 150 with a point cloud (--fx/--camera-info: the PLY's buffers): measured 2026-12-02 on the
# project's 2-core machine (shared), 640x480 vs 4000x3000 PNG, max RSS 0.39 / 0.67 GB (no cloud) and 2.15 GB
# (cloud). So ~1.3 GB (7.5 GB with a cloud) above the baseline at the limit; `--max-pixels 0` lifts it.
DEFAULT_MAX_PIXELS = 50_000_000


class NotACameraImage(ValueError):
    """The file is an image, but not a camera image (a depth map, a float image)."""


@dataclass(frozen=True)
class ImageHeader:
    width: int
    height: int
    channels: int      # 1 grey, 2 grey + alpha, 3 colour, 4 colour + alpha
    bits: int          # bits per sample

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def depth_map_like(self) -> bool:
        """Single channel (optionally + alpha) with more than 8 bits: a depth / disparity map, not a camera."""
        return self.channels in (1, 2) and self.bits > 8


def _png(b: bytes) -> Optional[ImageHeader]:
    if len(b) < 33 or b[12:16] != b"IHDR":
        return None
    w, h, bits, ctype = struct.unpack(">IIBB", b[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(ctype)
    if channels is None:
        return None
    return ImageHeader(w, h, channels, 8 if ctype == 3 else bits)


def _jpeg(f, b: bytes) -> Optional[ImageHeader]:
    f.seek(2)
    while True:
        m = f.read(1)
        if m != b"\xff":  # every marker starts with 0xFF: anything else is no JPEG header (stop, do not walk on)
            return None
        while m == b"\xff":
            m = f.read(1)
        if not m:
            return None
        marker = m[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue
        ln = f.read(2)
        if len(ln) < 2:
            return None
        n = struct.unpack(">H", ln)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            seg = f.read(6)
            if len(seg) < 6:
                return None
            bits, h, w, comps = struct.unpack(">BHHB", seg)
            return ImageHeader(w, h, comps, bits)
        if n < 2:
            return None
        f.seek(n - 2, 1)


def _pnm(b: bytes) -> Optional[ImageHeader]:
    kind = b[1:2]
    toks = []
    i = 2
    while len(toks) < (2 if kind in (b"1", b"4") else 3) and i < len(b):
        c = b[i:i + 1]
        if c == b"#":
            while i < len(b) and b[i:i + 1] not in (b"\n", b"\r"):
                i += 1
        elif c.isspace():
            i += 1
        else:
            j = i
            while j < len(b) and not b[j:j + 1].isspace() and b[j:j + 1] != b"#":
                j += 1
            toks.append(b[i:j])
            i = j
    try:
        vals = [int(t) for t in toks]
    except ValueError:
        return None
    if len(vals) < 2:
        return None
    maxval = vals[2] if len(vals) > 2 else 1
    channels = 3 if kind in (b"3", b"6") else 1
    return ImageHeader(vals[0], vals[1], channels, 16 if maxval > 255 else 8)


def _parse(f) -> Optional[ImageHeader]:
    """The header of the image file-like ``f`` (read from its start), or None."""
    b = f.read(64)
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        return _png(b)
    if b[:2] == b"\xff\xd8":
        return _jpeg(f, b)
    if b[:2] == b"BM" and len(b) >= 30:
        w, h = struct.unpack("<ii", b[18:26])
        bpp = struct.unpack("<H", b[28:30])[0]
        return ImageHeader(abs(w), abs(h), 4 if bpp == 32 else 3 if bpp >= 16 else 1, 8)
    if len(b) > 2 and b[:1] == b"P" and b[1:2] in b"123456":
        b += f.read(448)
        return _pnm(b)
    return None


class _BufferReader:
    """read/seek over an in-memory buffer (bytes, array.array, a numpy uint8 array) without copying it."""

    def __init__(self, data: Any) -> None:
        self._mv = memoryview(data).cast("B")
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._mv) if n < 0 else min(self._pos + n, len(self._mv))
        out = bytes(self._mv[self._pos:end])
        self._pos = max(end, self._pos)
        return out

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, len(self._mv))[whence]
        self._pos = max(base + offset, 0)
        return self._pos


def read_header(path: "str | Path") -> Optional[ImageHeader]:
    """(width, height, channels, bits) from the file's header; None for formats not parsed here or a header
    that does not parse (the decoder then decides)."""
    try:
        with open(path, "rb") as f:
            return _parse(f)
    except (OSError, struct.error):
        return None


def read_header_bytes(data: Any) -> Optional[ImageHeader]:
    """:func:`read_header` of an encoded image in memory (e.g. a sensor_msgs/CompressedImage's ``data``),
    reading only the header bytes; None when it does not parse."""
    try:
        return _parse(_BufferReader(data))
    except (struct.error, TypeError, ValueError):
        return None


def looks_truncated(path: "str | Path") -> bool:
    """True when a PNG lacks its IEND chunk or a JPEG its end-of-image marker (a cut-off copy or download):
    refused with one line instead of letting the decoder print its own complaints to stderr."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256))
            tail = f.read()
    except OSError:
        return False
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return b"IEND" not in tail
    if head[:2] == b"\xff\xd8":
        return b"\xff\xd9" not in tail
    return False


def too_large_message(path: "str | Path", width: int, height: int, max_pixels: int, flag: str = "--max-pixels") -> str:
    mp = width * height / 1e6
    return (f"{path} is {width}x{height} ({mp:.0f} MP), above the limit of {max_pixels / 1e6:g} MP ({flag}): "
            f"processing it needs about {25 * width * height / 1e9:.1f} GB of memory ({150 * width * height / 1e9:.0f} "
            f"GB with a point cloud); pass {flag} 0 to allow any size, or downscale it")


def to_rgb(img: np.ndarray, path: "str | Path") -> np.ndarray:
    """A decoded ``cv2.IMREAD_UNCHANGED`` image -> RGB uint8; NotACameraImage for depth maps / float images."""
    if img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 2)):
        if img.dtype != np.uint8:
            raise NotACameraImage(f"{path} is a single-channel {img.dtype} image (a depth map?), not a camera image")
        grey = img if img.ndim == 2 else img[:, :, 0]
        return cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2RGB)
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise NotACameraImage(f"{path} is a {img.dtype} image, not an 8-bit camera image")
    code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(img, code)


def read_camera_image(path: "str | Path", max_pixels: int = DEFAULT_MAX_PIXELS, flag: str = "--max-pixels"
                      ) -> np.ndarray:
    """RGB uint8 of a camera image file. ValueError (one line) for a missing, unreadable or oversized file
    (checked from the header before decoding where the format allows) and NotACameraImage for a depth map."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    hdr = read_header(p)
    if hdr is not None:
        if hdr.depth_map_like:
            raise NotACameraImage(f"{p} is a single-channel {hdr.bits}-bit image (a depth map?), not a camera image")
        if max_pixels and hdr.pixels > max_pixels:
            raise ValueError(too_large_message(p, hdr.width, hdr.height, max_pixels, flag))
    if looks_truncated(p):
        raise ValueError(f"{p}: the file is truncated (no end-of-image marker); cannot read image")
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{p}: cannot read image (corrupt, truncated or unsupported format)")
    if max_pixels and img.shape[0] * img.shape[1] > max_pixels:
        raise ValueError(too_large_message(p, img.shape[1], img.shape[0], max_pixels, flag))
    return to_rgb(img, p)
