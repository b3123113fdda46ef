"""Datasets, the base layer: :class:`Frame`, the :class:`FrameSource` interface, image / split-file readers,
depth masking, and the CachedSource / Subset wrappers (see the package docstring)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mono_depth_ros.profiles import Profile

REPO = Path(__file__).resolve().parents[2]


class DatasetError(ValueError):
    """A dataset path is missing, a split is empty, or a file does not have the expected format."""


@dataclass
class Frame:
    rgb: np.ndarray        # (H, W, 3) uint8 RGB
    depth: np.ndarray      # (H, W) float32 metres, 0 = no depth
    valid: np.ndarray      # (H, W) bool
    name: str


def _read_rgb(path: "str | Path") -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_png16(path: "str | Path", scale: float) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DatasetError(f"cannot read depth image {path} (missing or not an image)")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel 16-bit depth PNG, got {img.dtype} {img.shape}")
    return img.astype(np.float32) / np.float32(scale)


def _need_dir(path: "str | Path", what: str) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not p.is_dir():
        raise DatasetError(f"{what}: directory {p} does not exist")
    return p


def _need_file(path: "str | Path", what: str) -> Path:
    p = Path(os.path.expandvars(os.path.expanduser(str(path))))
    if not p.is_file():
        raise DatasetError(f"{what}: file {p} does not exist")
    return p


def _read_list(path: Path, what: str) -> List[List[str]]:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not rows:
        raise DatasetError(f"{what}: split file {path} lists no frames")
    return rows


def mask_depth(depth: np.ndarray, min_depth: float, max_depth: float, mask_min_max: bool = False,
               valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Valid pixels: finite depth in (min_depth, max_depth]; optionally not the image's min or max."""
    with np.errstate(invalid="ignore"):
        v = np.isfinite(depth) & (depth > 0) & (depth > min_depth) & (depth <= max_depth)
    if valid is not None:
        v &= valid
    if mask_min_max and v.any():
        lo, hi = depth[v].min(), depth[v].max()
        v &= (depth > lo) & (depth < hi)
    return v


class FrameSource:
    """A map-style collection of frames. ``sparse``: the depth is sparse (LiDAR)."""

    kind = "frames"
    sparse = False
    mask_min_max = False

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, i: int) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], str]:
        """(rgb, depth, valid-or-None, name) of frame i at the source resolution."""
        raise NotImplementedError

    def frame(self, i: int, profile: Optional[Profile] = None, mask_min_max: Optional[bool] = None) -> Frame:
        if not 0 <= i < len(self):
            raise IndexError(f"frame {i} out of range for {self.kind} with {len(self)} frames")
        rgb, depth, valid, name = self.load(i)
        lo, hi = (profile.min_depth, profile.max_depth) if profile is not None else (0.0, np.inf)
        mm = self.mask_min_max if mask_min_max is None else mask_min_max
        v = mask_depth(depth, lo, hi, mm, valid)
        return Frame(rgb, np.where(v, depth, 0).astype(np.float32), v, name)

    def names(self) -> List[str]:
        return [self.name(i) for i in range(len(self))]

    def name(self, i: int) -> str:
        return str(i)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} frames)"


class CachedSource(FrameSource):
    """Keeps decoded frames in memory (for the small sample sets and overfitting runs)."""

    def __init__(self, source: FrameSource):
        self.source = source
        self.kind = source.kind
        self.sparse = source.sparse
        self.mask_min_max = source.mask_min_max
        self._cache: Dict[int, Tuple] = {}

    def __len__(self) -> int:
        return len(self.source)

    def name(self, i: int) -> str:
        return self.source.name(i)

    def load(self, i):
        if i not in self._cache:
            self._cache[i] = self.source.load(i)
        return self._cache[i]


class Subset(FrameSource):
    def __init__(self, source: FrameSource, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)
        self.kind, self.sparse, self.mask_min_max = source.kind, source.sparse, source.mask_min_max
        if not self.indices:
            raise DatasetError(f"empty subset of {source!r}")

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, i: int) -> str:
        return self.source.name(self.indices[i])

    def load(self, i):
        return self.source.load(self.indices[i])
