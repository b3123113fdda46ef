"""KITTI sources: raw drives (Eigen split files, official ground truth) and object-benchmark frames."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .base import DatasetError, FrameSource, _need_dir, _need_file, _read_list, _read_rgb


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


