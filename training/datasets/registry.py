"""Dataset specs (``{type: ..., ...}``) to frame sources."""
from __future__ import annotations

from typing import Any, Dict

from .base import CachedSource, DatasetError, FrameSource, Subset
from .kitti import KittiObject, KittiRaw
from .nyu import NyuLabeledMat, NyuSync
from .synthetic import SyntheticScenes

SOURCES = {"nyu_mat": NyuLabeledMat, "nyu_sync": NyuSync, "kitti_raw": KittiRaw, "kitti_object": KittiObject,
           "synthetic": SyntheticScenes}


def build_source(cfg: Dict[str, Any]) -> FrameSource:
    """A frame source from a config dict ``{type: nyu_mat|nyu_sync|kitti_raw|kitti_object|synthetic, ...}``.
    Extra keys: ``cache`` (keep frames in memory), ``limit`` (first N frames), ``repeat`` (list them N times)."""
    cfg = dict(cfg)
    typ = cfg.pop("type", None)
    if typ not in SOURCES:
        raise DatasetError(f"dataset type {typ!r} unknown; expected one of {', '.join(SOURCES)}")
    cache = bool(cfg.pop("cache", False))
    limit = cfg.pop("limit", None)
    repeat = int(cfg.pop("repeat", 1))
    cfg.pop("gt_resample", None)
    cfg.pop("mask_min_max_eval", None)
    try:
        src = SOURCES[typ](**cfg)
    except TypeError as exc:
        raise DatasetError(f"dataset {typ}: {exc}") from exc
    if limit is not None:
        src = Subset(src, range(min(int(limit), len(src))))
    if cache:
        src = CachedSource(src)
    if repeat > 1:
        src = Subset(src, [i for _ in range(repeat) for i in range(len(src))])
    return src


