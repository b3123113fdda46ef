"""The project's synthetic scenes as a frame source."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import DatasetError, FrameSource

class SyntheticScenes(FrameSource):
    """The project's synthetic RGB-D scenes (``mono_depth_ros.synthetic.SyntheticDataset``): exact dense depth,
    deterministic by index."""

    kind = "synthetic"

    def __init__(self, kind: str = "indoor", n: int = 1000, seed: int = 0, width: int = 320, height: int = 240,
                 sparse: bool = False, **kwargs: Any):
        try:
            from mono_depth_ros.synthetic import SyntheticDataset
        except ImportError as exc:
            raise DatasetError(f"synthetic scenes need mono_depth_ros.synthetic ({exc})") from exc
        self.ds = SyntheticDataset(kind, n, seed, width, height, **kwargs)
        self.scene_kind = kind
        self.sparse = sparse
        if len(self.ds) == 0:
            raise DatasetError(f"synthetic dataset {kind!r} with n={n} is empty")

    def __len__(self) -> int:
        return len(self.ds)

    def name(self, i: int) -> str:
        return f"{self.scene_kind}_{i:06d}"

    def load(self, i):
        item = self.ds[i]
        if isinstance(item, dict):
            rgb, depth, valid = item["rgb"], item["depth"], item.get("valid")
        elif hasattr(item, "rgb"):
            rgb, depth, valid = item.rgb, item.depth, getattr(item, "valid", None)
        else:
            rgb, depth, valid = item[0], item[1], (item[2] if len(item) > 2 else None)
        depth = np.asarray(depth, np.float32)
        return np.asarray(rgb, np.uint8), depth, None if valid is None else np.asarray(valid, bool), self.name(i)


