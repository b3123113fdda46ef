"""Torch datasets and sampling: samples of a frame source, the seeded stream sampler."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from mono_depth_ros.profiles import Profile

from ..augment import AugmentConfig, JointTransform
from .base import CachedSource, DatasetError, FrameSource

class DepthDataset:
    """Map-style torch dataset of training / evaluation samples.

    Index with an int (evaluation transform, or augmentation seeded by the index) or with
    ``(frame_index, seed_tuple)`` as :class:`StreamBatchSampler` yields (augmentation drawn from
    ``numpy.random.default_rng(seed_tuple)``).  Items: image (3, H, W) float32, depth (1, h, w)
    float32 metres (0 = invalid), valid (1, h, w) bool, index.
    """

    def __init__(self, source: FrameSource, profile: Profile, augment: Optional[AugmentConfig] = None,
                 gt_resample: Optional[str] = None, seed: int = 0, keep_rgb: bool = False,
                 mask_min_max: Optional[bool] = None):
        self.source = source
        self.profile = profile
        self.seed = seed
        self.mask_min_max = mask_min_max
        resample = gt_resample or ("masked_mean" if source.sparse else "nearest")
        self.transform = JointTransform(profile, augment, resample, keep_rgb=keep_rgb)
        # without augmentation a sample of an in-memory source never changes: keep it
        self._memo: Optional[Dict[int, Dict[str, Any]]] = \
            {} if self.transform.augment is None and isinstance(source, CachedSource) else None

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, key):
        import torch

        if isinstance(key, (tuple, list)):
            idx, seed = int(key[0]), key[1]
        else:
            idx, seed = int(key), (self.seed, int(key))
        if self._memo is not None and idx in self._memo:
            return dict(self._memo[idx])
        fr = self.source.frame(idx, self.profile, self.mask_min_max)
        rng = np.random.default_rng(list(seed) if isinstance(seed, (tuple, list)) else seed)
        s = self.transform(fr.rgb, fr.depth, fr.valid, rng if self.transform.augment is not None else None)
        out = {"image": torch.from_numpy(s.image), "depth": torch.from_numpy(s.depth)[None],
               "valid": torch.from_numpy(s.valid)[None], "index": idx}
        if s.rgb is not None:
            out["rgb"] = torch.from_numpy(s.rgb)
        if self._memo is not None:
            self._memo[idx] = dict(out)
        return out


class StreamBatchSampler:
    """Batches of an endless, seeded stream of (frame, seed) draws, partitioned over ranks.

    Global sample k (counted from the start of a stage) is frame ``perm_e[k mod N]`` of epoch
    ``e = k // N`` (``perm_e`` a permutation seeded by (seed, stage, e)), augmented with the seed
    (seed, stage, k).  Global batch b holds samples [bB, (b+1)B); rank r of W gets the contiguous
    slice [bB + rB/W, bB + (r+1)B/W).  So a run is a pure function of (seed, step): a resumed run, a
    run with any number of loader workers, and a W-process DDP run with the same global batch all
    see the same samples.  This is the distributed sampler of the training loop.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, stage: int = 0, start_batch: int = 0,
                 num_batches: Optional[int] = None, rank: int = 0, world_size: int = 1):
        if n <= 0:
            raise DatasetError("cannot sample from an empty dataset")
        if batch_size % world_size:
            raise ValueError(f"global batch {batch_size} is not divisible by the {world_size} processes")
        self.n, self.batch_size, self.seed, self.stage = n, batch_size, seed, stage
        self.start_batch, self.num_batches = start_batch, num_batches
        self.rank, self.world_size = rank, world_size
        self._perm: Dict[int, np.ndarray] = {}

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm:
            if len(self._perm) > 4:
                self._perm.clear()
            self._perm[epoch] = np.random.default_rng([self.seed, self.stage, epoch, 7]).permutation(self.n)
        return self._perm[epoch]

    def batch(self, b: int) -> List[Tuple[int, Tuple[int, int, int]]]:
        per = self.batch_size // self.world_size
        k0 = b * self.batch_size + self.rank * per
        return [(int(self.permutation(k // self.n)[k % self.n]), (self.seed, self.stage, k)) for k in range(k0, k0 + per)]

    def __iter__(self) -> Iterator[List[Tuple[int, Tuple[int, int, int]]]]:
        b = self.start_batch
        while self.num_batches is None or b < self.start_batch + self.num_batches:
            yield self.batch(b)
            b += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("endless sampler has no length")
        return self.num_batches

