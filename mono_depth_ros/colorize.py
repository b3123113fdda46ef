"""Colourised depth for viewing: near = warm (red), far = cool (blue), invalid (NaN) = black."""
from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np

_CMAPS: Dict[str, str] = {"turbo": "COLORMAP_TURBO", "jet": "COLORMAP_JET", "viridis": "COLORMAP_VIRIDIS",
                          "inferno": "COLORMAP_INFERNO", "magma": "COLORMAP_MAGMA", "plasma": "COLORMAP_PLASMA"}
_LUTS: Dict[str, np.ndarray] = {}


def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of an OpenCV colour map (index 255 = hot end)."""
    lut = _LUTS.get(cmap)
    if lut is None:
        try:
            code = getattr(cv2, _CMAPS[cmap])
        except KeyError:
            raise ValueError(f"unknown colour map {cmap!r}; choose one of {', '.join(_CMAPS)}") from None
        bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), code).reshape(256, 3)
        lut = _LUTS[cmap] = np.ascontiguousarray(bgr[:, ::-1])  # BGR -> RGB
    return lut


def colorize_depth(depth: np.ndarray, min_depth: float, max_depth: float, cmap: str = "turbo",
                   out: Optional[np.ndarray] = None, inverse: bool = False) -> np.ndarray:
    """(H, W) metres -> (H, W, 3) uint8 RGB. Depth is mapped linearly (``inverse``: in 1/depth,
    which spreads near ranges) from ``max_depth`` (cool end) to ``min_depth`` (warm end) and clipped;
    NaN, infinite and non-positive depths are black.

    Per pixel: a few float32 passes quantise depth to a uint8 index (0 = invalid, 1..255 = the colour
    map), then one table lookup gathers a 4-byte RGBX word per pixel and OpenCV drops the X byte into
    ``out`` (reused when it has the right shape)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    if not (max_depth > min_depth >= 0):
        raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")

    lut = _lut_rgbx(cmap)
    h, w = depth.shape
    if out is None or out.shape != (h, w, 3) or out.dtype != np.uint8 or not out.flags.c_contiguous:
        out = np.empty((h, w, 3), dtype=np.uint8)
    d = np.asarray(depth, dtype=np.float32)
    t = np.empty((h, w), dtype=np.float32)
    valid = np.empty((h, w), dtype=bool)
    tmp = np.empty((h, w), dtype=bool)
    # Index 0 of the table is black (invalid); valid depths map to 1..255.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if inverse:
            lo, hi = 1.0 / max_depth, 1.0 / max(min_depth, 1e-6)
            np.divide(np.float32(1.0), d, out=t)
            np.subtract(t, np.float32(lo), out=t)
            np.multiply(t, np.float32(254.0 / (hi - lo)), out=t)
        else:
            np.subtract(np.float32(max_depth), d, out=t)
            np.multiply(t, np.float32(254.0 / (max_depth - min_depth)), out=t)
        np.clip(t, 0, 254, out=t)
        np.add(t, np.float32(1.5), out=t)
        np.greater(d, 0, out=valid)              # False for NaN and non-positive depth
        np.less(d, np.float32(np.inf), out=tmp)  # False for NaN and +inf
        np.logical_and(valid, tmp, out=valid)
        np.logical_not(valid, out=tmp)
        np.copyto(t, 0, where=tmp)
    idx = np.empty((h, w), dtype=np.uint8)
    np.copyto(idx, t, casting="unsafe")          # floor: 1.5..255.5 -> 1..255
    rgbx = np.take(lut, idx)                     # (H, W) uint32: bytes R, G, B, 0
    cv2.cvtColor(rgbx.view(np.uint8).reshape(h, w, 4), cv2.COLOR_RGBA2RGB, dst=out)
    return out


def _lut_rgbx(cmap: str) -> np.ndarray:
    """(256,) uint32 table whose bytes are R, G, B, 0 (index 0 black, 1..255 the colour map)."""
    key = cmap + ":rgbx"
    lut = _LUTS.get(key)
    if lut is None:
        rgbx = np.zeros((256, 4), dtype=np.uint8)
        rgbx[:, :3] = _lut_black(cmap).reshape(256, 3)
        lut = _LUTS[key] = rgbx.view(np.uint32).reshape(256)
    return lut


def _lut_black(cmap: str) -> np.ndarray:
    """(256, 1, 3) table for cv2.LUT: entry 0 black, entries 1..255 the colour map's 0..255."""
    key = cmap + ":black"
    lut = _LUTS.get(key)
    if lut is None:
        base = _lut(cmap)
        lut = np.zeros((256, 1, 3), dtype=np.uint8)
        src = np.round(np.linspace(0, 255, 255)).astype(np.int64)
        lut[1:, 0] = base[src]
        _LUTS[key] = lut
    return lut
