"""Datasets: NYU Depth v2 (labelled .mat, raw "sync" layout), KITTI (raw drives + Eigen split files +
official ground truth; object-benchmark frames), and the project's synthetic scenes.

Every dataset is a *frame source* returning :class:`Frame` objects (RGB and depth of one shot, at
the source resolution, together: never two separately shuffled loaders).  :class:`DepthDataset`
turns a source into training / evaluation samples through :class:`training.augment.JointTransform`
(the paper's augmentation, or the evaluation transform of ``mono_depth_ros.preprocess``).

Depth is float32 metres with 0 = invalid, plus a ``valid`` mask that also drops depth outside the
profile's range and, for NYU training, each image's minimum and maximum depth (as the paper does).
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from mono_depth_ros.profiles import Profile

from .augment import AugmentConfig, JointTransform

REPO = Path(__file__).resolve().parents[1]


class DatasetError(ValueError):
    """A dataset path is missing, a split is empty, or a file does not have the expected format."""


@dataclass
class Frame:
    rgb: np.ndarray        # (H, W, 3) uint8 RGB
    depth: np.ndarray      # (H, W) float32 metres, 0 = no depth
    valid: np.ndarray      # (H, W) bool
    name: str


def _read_rgb(path: "str | Path") -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read image {path} (missing or not an image)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _read_png16(path: "str | Path", scale: float) -> np.ndarray:
    import cv2

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


# ---- NYU Depth v2 --------------------------------------------------------------------------------
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


# ---- KITTI ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KittiItem:
    date: str
    drive: str           # e.g. 2011_09_26_drive_0002_sync
    frame: int
    camera: int          # 2 (left) or 3 (right)
    gt_path: Optional[str] = None  # relative official-GT path from a BTS-style list

    @property
    def name(self) -> str:
        return f"{self.drive}/image_0{self.camera}/{self.frame:010d}"


_KITTI_RGB = re.compile(r"(\d{4}_\d{2}_\d{2})/(\d{4}_\d{2}_\d{2}_drive_\d+_sync)/image_0([23])/data/(\d+)\.\w+$")


def parse_kitti_list(path: "str | Path", both_cameras: bool = False) -> List[KittiItem]:
    """Eigen split files: monodepth2 style '<date>/<drive>_sync <frame> l|r' or BTS style
    '<date>/<drive>_sync/image_02/data/<frame>.png <gt png|None> <focal>'."""
    p = _need_file(path, "KITTI split")
    items: List[KittiItem] = []
    for row in _read_list(p, "KITTI split"):
        m = _KITTI_RGB.search(row[0])
        if m:
            gt = row[1] if len(row) > 1 and row[1] != "None" else None
            items.append(KittiItem(m.group(1), m.group(2), int(m.group(4)), int(m.group(3)), gt))
            continue
        parts = row[0].strip("/").split("/")
        if len(parts) == 2 and len(row) >= 2 and row[1].isdigit():
            sides = [row[2]] if len(row) > 2 else (["l", "r"] if both_cameras else ["l"])
            for side in sides:
                if side not in ("l", "r"):
                    raise DatasetError(f"KITTI split {p}: side {side!r} is not l or r in {' '.join(row)!r}")
                items.append(KittiItem(parts[0], parts[1], int(row[1]), 2 if side == "l" else 3))
            continue
        raise DatasetError(f"KITTI split {p}: cannot parse {' '.join(row)!r} (expected '<date>/<drive>_sync <frame> l' "
                           "or '<date>/<drive>_sync/image_02/data/<frame>.png <gt> <focal>')")
    return items


class KittiRaw(FrameSource):
    """KITTI raw drives: ``<root>/<date>/<date>_drive_NNNN_sync/image_0{2,3}/data/*.png`` +
    ``velodyne_points/data/*.bin`` + ``<root>/<date>/calib_{cam_to_cam,velo_to_cam}.txt``.

    Ground truth ``gt``: "velodyne" (the scan projected into the rectified camera, nearest point
    wins: mono_depth_ros.kitti), "official" (KITTI depth-prediction maps
    ``<gt_root>/[train|val/]<drive>/proj_depth/groundtruth/image_0X/<frame>.png``, uint16 / 256), or
    "auto" (official where it exists, else velodyne).  Frames come from ``list`` (an Eigen split
    file) or, without one, from every drive under the root (``exclude_list``: drop the drives of
    e.g. the Eigen test split, as the paper's train/test scene split does).
    """

    kind = "kitti_raw"
    sparse = True

    def __init__(self, root: "str | Path", list: "str | Path | None" = None, gt: str = "velodyne",
                 gt_root: "str | Path | None" = None, cameras: Sequence[str] = ("l",),
                 exclude_list: "str | Path | None" = None, both_cameras: bool = False,
                 velodyne_cache: "str | Path | None" = None):
        self.root = _need_dir(root, "KITTI raw root (<date>/<date>_drive_NNNN_sync/image_02/data)")
        # projected scans saved as uint16 PNG (m * 256) under <cache>/<drive>/proj_depth/velodyne_raw/image_0X/
        # the first time they are computed: later epochs decode a PNG instead of projecting 120k points
        self.velodyne_cache = None if velodyne_cache is None else Path(os.path.expanduser(str(velodyne_cache)))
        if gt not in ("velodyne", "official", "auto"):
            raise DatasetError(f"KITTI ground truth must be velodyne, official or auto, got {gt!r}")
        self.gt = gt
        self.gt_root = None if gt_root is None else _need_dir(gt_root, "KITTI official ground-truth root")
        if gt == "official" and self.gt_root is None:
            raise DatasetError("KITTI gt 'official' needs gt_root (the data_depth_annotated folder)")
        if list is not None:
            items = parse_kitti_list(list, both_cameras)
            where = f"split {list}"
        else:
            cams = [2 if c in ("l", 2, "2") else 3 for c in cameras]
            excluded = {it.drive for it in parse_kitti_list(exclude_list)} if exclude_list else set()
            items = []
            for cam in cams:
                for f in sorted(self.root.glob(f"*/*_sync/image_0{cam}/data/*.png")):
                    drive = f.parents[2].name
                    if drive not in excluded:
                        items.append(KittiItem(f.parents[3].name, drive, int(f.stem), cam))
            where = f"{self.root}/<date>/<drive>_sync/image_0X/data/*.png" + (
                f" minus the drives of {exclude_list}" if exclude_list else "")
        if not items:
            raise DatasetError(f"KITTI raw: no frames found ({where})")
        self.items = items
        first = self.image_path(items[0])
        if not first.is_file():
            raise DatasetError(f"KITTI raw: {first} (first frame of {where}) does not exist")
        self._calib: Dict[Tuple[str, int], Any] = {}

    def __len__(self) -> int:
        return len(self.items)

    def name(self, i: int) -> str:
        return self.items[i].name

    def image_path(self, it: KittiItem) -> Path:
        return self.root / it.date / it.drive / f"image_0{it.camera}" / "data" / f"{it.frame:010d}.png"

    def velodyne_path(self, it: KittiItem) -> Path:
        return self.root / it.date / it.drive / "velodyne_points" / "data" / f"{it.frame:010d}.bin"

    def official_gt_path(self, it: KittiItem) -> Optional[Path]:
        if self.gt_root is None:
            return None
        rels = [it.gt_path] if it.gt_path else []
        rels.append(f"{it.drive}/proj_depth/groundtruth/image_0{it.camera}/{it.frame:010d}.png")
        for rel in rels:
            for sub in ("", "train", "val"):
                p = self.gt_root / sub / rel if sub else self.gt_root / rel
                if p.is_file():
                    return p
        return None

    def calibration(self, it: KittiItem):
        from mono_depth_ros import kitti

        key = (it.date, it.camera)
        if key not in self._calib:
            self._calib[key] = kitti.load_raw_calibration(self.root / it.date, camera=it.camera)
        return self._calib[key]

    def _velodyne_depth(self, it: KittiItem, w: int, h: int) -> np.ndarray:
        from mono_depth_ros import kitti

        cache = None
        if self.velodyne_cache is not None:
            cache = self.velodyne_cache / it.drive / "proj_depth" / "velodyne_raw" / f"image_0{it.camera}" / f"{it.frame:010d}.png"
            if cache.is_file():
                return kitti.read_depth_png(cache)
        depth = kitti.velodyne_to_depth(kitti.load_velodyne(self.velodyne_path(it)), self.calibration(it), w, h)
        if cache is not None:
            import cv2

            from mono_depth_ros.checkpoint import atomic_write_bytes

            ok, buf = cv2.imencode(".png", np.clip(np.round(depth * 256.0), 0, 65535).astype(np.uint16))
            if ok:
                try:
                    atomic_write_bytes(cache, buf.tobytes(), overwrite=True)
                except OSError:
                    pass  # a read-only cache folder only costs speed
        return depth

    def load(self, i):
        from mono_depth_ros import kitti

        it = self.items[i]
        rgb = _read_rgb(self.image_path(it))
        h, w = rgb.shape[:2]
        off = self.official_gt_path(it) if self.gt in ("official", "auto") else None
        if off is not None:
            depth = kitti.read_depth_png(off)
        elif self.gt == "official":
            raise DatasetError(f"KITTI official ground truth for {it.name} not found under {self.gt_root}")
        else:
            depth = self._velodyne_depth(it, w, h)
        if depth.shape != (h, w):
            raise DatasetError(f"KITTI {it.name}: ground truth {depth.shape[::-1]} does not match the image {w}x{h}")
        return rgb, depth, None, it.name


class KittiObject(FrameSource):
    """KITTI object-benchmark layout: ``image_2/<id>.png``, ``velodyne/<id>.bin``, ``calib/<id>.txt`` and
    optionally ``proj_depth_velodyne/<id>.png`` (uint16 / 256). ``gt``: "auto" (the PNG if present,
    else the projected scan), "png" or "velodyne"."""

    kind = "kitti_object"
    sparse = True

    def __init__(self, root: "str | Path", ids: Optional[Sequence[str]] = None, gt: str = "auto"):
        self.root = _need_dir(root, "KITTI object root (image_2/, velodyne/, calib/)")
        found = sorted(p.stem for p in (self.root / "image_2").glob("*.png"))
        self.ids = [str(i) for i in ids] if ids is not None else found
        if not self.ids:
            raise DatasetError(f"KITTI object: no frames in {self.root / 'image_2'}/*.png")
        missing = [i for i in self.ids if i not in found]
        if missing:
            raise DatasetError(f"KITTI object: {self.root / 'image_2' / (missing[0] + '.png')} does not exist")
        if gt not in ("auto", "png", "velodyne"):
            raise DatasetError(f"KITTI object gt must be auto, png or velodyne, got {gt!r}")
        self.gt = gt

    def __len__(self) -> int:
        return len(self.ids)

    def name(self, i: int) -> str:
        return self.ids[i]

    def load(self, i):
        from mono_depth_ros import kitti

        k = self.ids[i]
        rgb = _read_rgb(self.root / "image_2" / f"{k}.png")
        png = self.root / "proj_depth_velodyne" / f"{k}.png"
        if self.gt == "png" or (self.gt == "auto" and png.is_file()):
            depth = kitti.read_depth_png(png)
        else:
            calib = kitti.load_object_calibration(self.root / "calib" / f"{k}.txt")
            depth = kitti.velodyne_to_depth(kitti.load_velodyne(self.root / "velodyne" / f"{k}.bin"), calib,
                                            rgb.shape[1], rgb.shape[0])
        return rgb, depth, None, k


# ---- synthetic scenes ----------------------------------------------------------------------------
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


# ---- torch datasets and sampling -----------------------------------------------------------------
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


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def limit_threads(n: int = 1) -> Dict[str, Any]:
    """Caps every thread pool of this process at ``n``: OpenCV, torch (intra-op), and, through
    threadpoolctl, the BLAS / OpenMP pools numpy already loaded (OpenBLAS: the LiDAR projection's
    matmul would otherwise use every core in every worker); the environment variables cover pools
    created later.  Returns what was limited (for tests and the benchmark)."""
    import cv2
    import torch

    for k in THREAD_ENV:
        os.environ[k] = str(n)
    if cv2.getNumThreads() != n:    # see fork_safe_threads: a forked child must not resize OpenCV's pool
        cv2.setNumThreads(n)
    torch.set_num_threads(n)
    done: Dict[str, Any] = {"cv2": cv2.getNumThreads(), "torch": torch.get_num_threads()}
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:       # a training install has it (setup.py extra "training"); env vars only then
        done["threadpoolctl"] = None
        return done
    threadpool_limits(n)
    done["threadpoolctl"] = {f"{d['internal_api']}:{os.path.basename(d.get('filepath', ''))}": d["num_threads"]
                             for d in threadpool_info()}
    return done


@contextlib.contextmanager
def fork_safe_threads(n: int = 1) -> Iterator[None]:
    """Wrap the start of forked workers (``iter(DataLoader)``, a fork Pool) in this.

    With torch loaded, ``cv2.setNumThreads`` in a forked child hangs once the parent has used OpenCV's
    pthreads pool (OpenCV 4.x; the child waits for pool threads that were not forked).  So the parent's
    pool is set to ``n`` threads while the children fork (they inherit it and :func:`limit_threads`
    leaves it alone) and restored afterwards."""
    import cv2

    old = cv2.getNumThreads()
    if old != n:
        cv2.setNumThreads(n)
    try:
        yield
    finally:
        if old != n:
            cv2.setNumThreads(old)


def worker_init(_worker_id: int) -> None:
    """Loader workers: every thread pool at one thread (the workers are the parallelism)."""
    limit_threads(1)
