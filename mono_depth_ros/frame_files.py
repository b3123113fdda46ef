"""One frame's output files, as ``mono-depth predict`` and the demo write them.

* ``depth.npy``: float32 metres, NaN = invalid (the network's output as is);
* ``depth.png``: uint16 millimetres, 0 = invalid: the same pixels as a 16UC1 depth image
  (:func:`mono_depth_ros.msgs.conversions.depth_array`, REP 118), so NaN, depth <= 0 and depth beyond
  65.535 m (which 16 bits cannot hold) are all 0.  One rule for messages and files: a value clipped to
  65535 would claim a depth of 65.535 m that the model did not give;
* ``color.png``: the colourised depth (RGB, written as a PNG);
* ``.ply``: the valid points of the cloud (:func:`mono_depth_ros.pointcloud.write_ply`).

Each path may be a temporary one (predict writes into temporary names and renames them last).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from . import pointcloud  # (pointcloud.write_ply looked up at call time: tests patch it)
from .msgs.conversions import depth_array


def depth_png_bytes(depth: np.ndarray) -> bytes:
    """(H, W) metres, NaN = invalid -> a 16-bit PNG of millimetres, 0 = invalid (16UC1's pixels)."""
    ok, png = cv2.imencode(".png", depth_array(depth, "16UC1"))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def rgb_png_bytes(rgb: np.ndarray, in_place: bool = False) -> bytes:
    """(H, W, 3) uint8 RGB -> PNG bytes (``in_place``: ``rgb`` may be turned into BGR, saving a copy)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb if in_place else None)
    ok, png = cv2.imencode(".png", bgr)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return png.tobytes()


def write_frame_files(depth: np.ndarray, npy: Optional[Path] = None, png: Optional[Path] = None,
                      color: Optional[np.ndarray] = None, color_png: Optional[Path] = None,
                      cloud: Any = None, ply: Optional[Path] = None, color_in_place: bool = False) -> None:
    """Write the files of one frame that are given a path (see the module doc for their formats)."""
    if npy is not None:
        with open(npy, "wb") as f:
            np.save(f, depth)
    if png is not None:
        Path(png).write_bytes(depth_png_bytes(depth))
    if color is not None and color_png is not None:
        Path(color_png).write_bytes(rgb_png_bytes(color, in_place=color_in_place))
    if cloud is not None and ply is not None:
        pointcloud.write_ply(ply, cloud)
