"""NYU Depth v2 sources: the labelled .mat (v7.3/HDF5) and the raw "sync" layout."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .base import DatasetError, FrameSource, _need_dir, _need_file, _read_list, _read_png16, _read_rgb

_NYU_INDEX = re.compile(r"(?:rgb|sync_depth|depth)_(\d+)\.\w+$")


def nyu_split_indices(path: "str | Path", index_base: int = 0) -> List[int]:
    """0-based labelled-set indices from a split file: BTS-style lines ('bathroom/rgb_00045.jpg ...',
    NNNNN = 0-based index) or one integer per line (``index_base`` 1 for MATLAB's testNdxs)."""
    p = _need_file(path, "NYU split")
    out = []
    for row in _read_list(p, "NYU split"):
        m = _NYU_INDEX.search(row[0])
        if m:
            out.append(int(m.group(1)))
        elif row[0].isdigit():
            out.append(int(row[0]) - index_base)
        else:
            raise DatasetError(f"NYU split {p}: cannot read an image index from {' '.join(row)!r} "
                               "(expected '<scene>/rgb_NNNNN.jpg ...' or an integer)")
    return out


class NyuLabeledMat(FrameSource):
    """``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5), read with h5py.

    MATLAB stores arrays column-major, so h5py sees 'images' as (N, 3, W, H) uint8 and 'depths'
    as (N, W, H) float: each frame is transposed back to (H, W, 3) / (H, W).  ``split``: "test"
    (the official 654 images, indices from ``split_file``), "train" (the other 795) or "all".
    ``depth_key``: "depths" (in-painted, dense) or "rawDepths".
    """

    kind = "nyu_mat"

    def __init__(self, path: "str | Path", split: str = "test", split_file: "str | Path | None" = None,
                 depth_key: str = "depths", index_base: int = 0, mask_min_max: bool = False,
                 indices: Optional[Sequence[int]] = None):
        self.path = _need_file(path, "NYU labelled set (nyu_depth_v2_labeled.mat)")
        self.depth_key = depth_key
        self.mask_min_max = mask_min_max
        import h5py

        try:
            with h5py.File(self.path, "r") as f:
                for key in ("images", depth_key):
                    if key not in f:
                        raise DatasetError(f"{self.path}: no dataset {key!r} (expected the NYU labelled .mat with "
                                           f"'images' (N,3,W,H) uint8 and '{depth_key}' (N,W,H))")
                n, c = f["images"].shape[:2]
                if c != 3 or f[depth_key].shape[0] != n or f[depth_key].shape[1:] != f["images"].shape[2:]:
                    raise DatasetError(f"{self.path}: images {f['images'].shape} / {depth_key} "
                                       f"{f[depth_key].shape} are not the NYU layout (N,3,W,H) / (N,W,H)")
        except OSError as exc:
            raise DatasetError(f"{self.path} is not a MATLAB v7.3 (HDF5) file: {exc}") from exc
        self.total = int(n)
        if indices is not None:
            idx = list(indices)
        elif split == "all":
            idx = list(range(self.total))
        elif split in ("test", "train"):
            if split_file is None:
                raise DatasetError("NYU labelled set: split 'test'/'train' needs split_file (the official test list, "
                                   "e.g. nyudepthv2_test_files_with_gt_bts.txt, 654 lines)")
            test = nyu_split_indices(split_file, index_base)
            idx = sorted(test) if split == "test" else sorted(set(range(self.total)) - set(test))
        else:
            raise DatasetError(f"NYU labelled set: split must be test, train or all, got {split!r}")
        bad = [i for i in idx if not 0 <= i < self.total]
        if bad:
            raise DatasetError(f"NYU labelled set {self.path} has {self.total} images; split index {bad[0]} is outside")
        if not idx:
            raise DatasetError(f"NYU labelled set {self.path}: split {split!r} is empty")
        self.indices = idx
        self._file = None
        self._pid = None

    def _h5(self):
        if self._file is None or self._pid != os.getpid():  # one handle per (worker) process
            import h5py

            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getstate__(self):
        d = dict(self.__dict__)
        d["_file"] = None
        return d

    def __len__(self) -> int:
        return len(self.indices)

    def name(self, i: int) -> str:
        return f"{self.indices[i]:05d}"

    def load(self, i):
        f = self._h5()
        k = self.indices[i]
        rgb = np.ascontiguousarray(f["images"][k].transpose(2, 1, 0))
        depth = np.ascontiguousarray(f[self.depth_key][k].T).astype(np.float32)
        return rgb, depth, None, self.name(i)


class NyuSync(FrameSource):
    """NYU raw sequences in the "sync" layout: ``<root>/<scene>/rgb_NNNNN.jpg`` + ``sync_depth_NNNNN.png``
    (uint16 millimetres, 0 = none).  ``list``: a file of lines '<rgb> <depth> [focal]' relative to the
    root (the BTS train/test lists); without one, every rgb_*.jpg with its sync_depth_*.png is used.
    """

    kind = "nyu_sync"

    def __init__(self, root: "str | Path", list: "str | Path | None" = None, depth_scale: float = 1000.0,
                 mask_min_max: bool = True):
        self.root = _need_dir(root, "NYU sync dataset root (scene folders of rgb_NNNNN.jpg + sync_depth_NNNNN.png)")
        self.depth_scale = depth_scale
        self.mask_min_max = mask_min_max
        pairs: List[Tuple[Path, Path]] = []
        if list is not None:
            lp = _need_file(list, "NYU sync file list")
            for row in _read_list(lp, "NYU sync file list"):
                if len(row) < 2 or row[1] == "None":
                    continue
                pairs.append((self.root / row[0].lstrip("/"), self.root / row[1].lstrip("/")))
            missing = [p for pair in pairs[:1] for p in pair if not p.is_file()]
            if missing:
                raise DatasetError(f"NYU sync dataset: {missing[0]} (from {lp}) does not exist under {self.root}")
            where = f"list {lp}"
        else:
            for rgb in sorted(self.root.glob("**/rgb_*.jpg")):
                d = rgb.with_name("sync_depth_" + rgb.name[4:-4] + ".png")
                if d.is_file():
                    pairs.append((rgb, d))
            where = f"{self.root}/<scene>/rgb_NNNNN.jpg with sync_depth_NNNNN.png"
        if not pairs:
            raise DatasetError(f"NYU sync dataset: no frames found ({where})")
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, i: int) -> str:
        return str(self.pairs[i][0].relative_to(self.root)) if self.pairs[i][0].is_relative_to(self.root) \
            else self.pairs[i][0].name

    def load(self, i):
        rgb_p, d_p = self.pairs[i]
        return _read_rgb(rgb_p), _read_png16(d_p, self.depth_scale), None, self.name(i)


