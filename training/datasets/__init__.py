"""Datasets: NYU Depth v2 (labelled .mat, raw "sync" layout), KITTI (raw drives + Eigen split files +
official ground truth; object-benchmark frames), and the project's synthetic scenes.

Every dataset is a *frame source* returning :class:`Frame` objects (RGB and depth of one shot, at
the source resolution, together: never two separately shuffled loaders).  :class:`DepthDataset`
turns a source into training / evaluation samples through :class:`training.augment.JointTransform`
(the paper's augmentation, or the evaluation transform of ``mono_depth_ros.preprocess``).

Depth is float32 metres with 0 = invalid, plus a ``valid`` mask that also drops depth outside the
profile's range and, for NYU training, each image's minimum and maximum depth (as the paper does).

Modules: ``base`` (Frame, FrameSource, readers, masking, the CachedSource / Subset wrappers), ``nyu``,
``kitti``, ``synthetic`` (the sources), ``registry`` (SOURCES, build_source: a config spec to a source),
``sampling`` (DepthDataset, StreamBatchSampler), ``workers`` (loader-worker thread pools).  Everything is
re-exported here: ``from training.datasets import X`` is the public way in.
"""
from __future__ import annotations

from .base import (REPO, CachedSource, DatasetError, Frame, FrameSource, Subset, _need_dir, _need_file,
                   _read_list, _read_png16, _read_rgb, mask_depth)
from .kitti import KittiItem, KittiObject, KittiRaw, parse_kitti_list
from .nyu import NyuLabeledMat, NyuSync, nyu_split_indices
from .registry import SOURCES, build_source
from .sampling import DepthDataset, StreamBatchSampler
from .synthetic import SyntheticScenes
from .workers import THREAD_ENV, fork_safe_threads, limit_threads, worker_init

__all__ = ["REPO", "CachedSource", "DatasetError", "DepthDataset", "Frame", "FrameSource", "KittiItem",
           "KittiObject", "KittiRaw", "NyuLabeledMat", "NyuSync", "SOURCES", "StreamBatchSampler", "Subset",
           "SyntheticScenes", "THREAD_ENV", "build_source", "fork_safe_threads", "limit_threads", "mask_depth",
           "nyu_split_indices", "parse_kitti_list", "worker_init", "_need_dir", "_need_file", "_read_list",
           "_read_png16", "_read_rgb"]
