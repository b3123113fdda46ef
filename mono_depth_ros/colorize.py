"""Colourised depth for viewing: near = warm (red), far = cool (blue), invalid (NaN) = black."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

_CMAPS: Dict[str, str] = {"turbo": "COLORMAP_TURBO", "jet": "COLORMAP_JET", "viridis": "COLORMAP_VIRIDIS",
                          "inferno": "COLORMAP_INFERNO", "magma": "COLORMAP_MAGMA", "plasma": "COLORMAP_PLASMA"}
_LUTS: Dict[str, np.ndarray] = {}


def _lut(cmap: str) -> np.ndarray:
    """(256, 3) uint8 RGB lookup table of an OpenCV colour map (index 255 = hot end)."""
    lut = _LUTS.get(cmap)
    if lut is None:
        import cv2

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
    NaN, infinite and non-positive depths are black."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got {depth.shape}")
    if not (max_depth > min_depth >= 0):
        raise ValueError(f"need 0 <= min_depth < max_depth, got {min_depth}, {max_depth}")
    lut = _lut_black(cmap)
    h, w = depth.shape
    if out is None or out.shape != (h, w, 3) or out.dtype != np.uint8:
        out = np.empty((h, w, 3), dtype=np.uint8)
    d = np.asarray(depth, dtype=np.float32)
    # Index 0 of the table is black (invalid); valid depths map to 1..255.
    with np.errstate(invalid="ignore", divide="ignore"):
        if inverse:
            lo, hi = 1.0 / max_depth, 1.0 / max(min_depth, 1e-6)
            t = (1.0 / d - lo) * (254.0 / (hi - lo))
        else:
            t = (max_depth - d) * (254.0 / (max_depth - min_depth))
        np.clip(t, 0, 254, out=t)
        t += 1.5
        t[~(d > 0)] = 0          # NaN and non-positive depth
        t[~np.isfinite(d)] = 0   # +inf
    idx = t.astype(np.uint8)
    import cv2

    cv2.LUT(cv2.merge((idx, idx, idx)), lut, dst=out)
    return out


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
