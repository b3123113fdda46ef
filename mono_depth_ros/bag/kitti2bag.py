"""KITTI raw drive -> ROS 2 bag (rosbag2 directory, MCAP storage), without a ROS install.

Input: a ``*_sync`` drive folder as KITTI distributes it::

    2011_09_26/                       <- calibration of the day
        calib_cam_to_cam.txt  calib_velo_to_cam.txt  [calib_imu_to_velo.txt]
        2011_09_26_drive_0001_sync/   <- DRIVE_DIR
            image_02/timestamps.txt  image_02/data/0000000000.png ...
            velodyne_points/timestamps.txt  velodyne_points/data/0000000000.bin ...

Output topics (frame ids follow REP 103 / REP 105; the images are KITTI's rectified ones):

=============================================  ==============================  ===============================
topic                                          type                            frame_id
=============================================  ==============================  ===============================
``/kitti/camera_color_left/image_raw``         sensor_msgs/Image (rgb8)        camera_color_left_optical_frame
``/kitti/camera_color_left/camera_info``       sensor_msgs/CameraInfo          camera_color_left_optical_frame
``/kitti/velodyne_points``                     sensor_msgs/PointCloud2         velo_link
                                               (x, y, z, intensity float32)
``/tf_static``                                 tf2_msgs/TFMessage (latched)    --
=============================================  ==============================  ===============================

TF tree: ``base_link -> imu_link -> velo_link -> camera_color_left -> camera_color_left_optical_frame``
(``base_link -> imu_link`` is the identity: KITTI's OXTS IMU is the vehicle reference; without
calib_imu_to_velo.txt the tree is ``base_link -> velo_link`` (identity) -> ...). ``camera_color_left``
is a body-style frame (x forward, y left, z up) at the rectified camera's centre and
``..._optical_frame`` the optical one (z forward, x right, y down), as REP 103 asks for cameras.
The velo -> optical transform is exactly the one of the devkit (``P_rect_02 · R_rect_00 ·
T_velo_to_cam``, factored as ``K · [I | t]``: see :attr:`mono_depth_ros.kitti.KittiCalibration.velo_to_camera_optical`),
so the CameraInfo's P is ``[K | 0]`` (the camera's own frame; KITTI's baseline to camera 0 is in the tf,
not in P), R = I and D = 0 (the images are rectified).

Stamps: each message's header stamp (and its log time) comes from the drive's ``timestamps.txt``
of its sensor (``YYYY-MM-DD HH:MM:SS.nnnnnnnnn``, read as UTC, nanoseconds kept exactly).
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from .. import kitti
from ..text import plural
from .io import CAMERA_INFO, IMAGE, POINTCLOUD2, TF_MESSAGE, BagWriter, check_output_bag, qos_profile
from .tf import OPTICAL_IN_BODY, invert, make_transform, nearest_rotation

CAMERA_NAMES = {0: "camera_gray_left", 1: "camera_gray_right", 2: "camera_color_left", 3: "camera_color_right"}
VELO_FRAME = "velo_link"
IMU_FRAME = "imu_link"
BASE_FRAME = "base_link"
VELO_TOPIC = "/kitti/velodyne_points"


class KittiDriveError(ValueError):
    """A KITTI drive folder is incomplete or inconsistent (message names the file)."""


_TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?$")


def parse_timestamp(line: str) -> int:
    """KITTI ``YYYY-MM-DD HH:MM:SS.nnnnnnnnn`` (UTC) -> integer nanoseconds since the epoch."""
    m = _TS_RE.match(line.strip())
    if not m:
        raise ValueError(f"not a KITTI timestamp: {line.strip()!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * 1_000_000_000 + int(frac)


def read_timestamps(path: Path) -> List[int]:
    if not path.is_file():
        raise KittiDriveError(f"timestamps file {path} does not exist")
    out = []
    with open(path, "r", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(parse_timestamp(line))
            except ValueError as exc:
                raise KittiDriveError(f"{path}:{i}: {exc}") from None
    if not out:
        raise KittiDriveError(f"timestamps file {path} is empty")
    return out


@dataclass
class KittiDrive:
    """The files of one raw drive for one camera (+ Velodyne)."""

    drive_dir: Path
    calib_dir: Path
    camera: int
    image_files: List[Path]
    image_stamps: List[int]
    velo_files: List[Path]
    velo_stamps: List[int]
    calib: kitti.KittiCalibration
    T_velo_imu: Optional[np.ndarray]

    @property
    def camera_name(self) -> str:
        return CAMERA_NAMES[self.camera]

    @property
    def optical_frame(self) -> str:
        return f"{self.camera_name}_optical_frame"

    @property
    def image_topic(self) -> str:
        return f"/kitti/{self.camera_name}/image_raw"

    @property
    def camera_info_topic(self) -> str:
        return f"/kitti/{self.camera_name}/camera_info"

    def __len__(self) -> int:
        return len(self.image_files)

    def velo_to_optical(self) -> np.ndarray:
        """4x4 velo_link -> camera optical frame, its rotation made exactly orthonormal."""
        M = self.calib.velo_to_camera_optical.copy()
        M[:3, :3] = nearest_rotation(M[:3, :3])
        return M

    def static_transforms(self) -> List[Tuple[str, str, np.ndarray]]:
        """(parent, child, T_parent_child) of the tf tree described in the module docstring."""
        T_body_opt = make_transform(OPTICAL_IN_BODY, (0, 0, 0))
        if not np.isfinite(self.calib.T_velo_to_cam).all():   # camera-only calibration (no LiDAR extrinsics)
            return [(self.camera_name, self.optical_frame, T_body_opt)]
        T_opt_velo = self.velo_to_optical()
        T_body_velo = T_body_opt @ T_opt_velo
        out = []
        if self.T_velo_imu is not None:
            out.append((BASE_FRAME, IMU_FRAME, np.eye(4)))
            T = self.T_velo_imu.copy()
            T[:3, :3] = nearest_rotation(T[:3, :3])
            out.append((IMU_FRAME, VELO_FRAME, invert(T)))
        else:
            out.append((BASE_FRAME, VELO_FRAME, np.eye(4)))
        out.append((VELO_FRAME, self.camera_name, invert(T_body_velo)))
        out.append((self.camera_name, self.optical_frame, T_body_opt))
        return out


def _data_files(folder: Path, suffix: str, n_stamps: int, stamps_path: Path) -> List[Path]:
    data = folder / "data"
    if not data.is_dir():
        raise KittiDriveError(f"data folder {data} does not exist")
    files = sorted(data.glob(f"*{suffix}"))
    if not files:
        raise KittiDriveError(f"no {suffix} files in {data}")
    expected = [data / f"{i:010d}{suffix}" for i in range(n_stamps)]
    missing = [p for p in expected if not p.is_file()]
    if missing:
        raise KittiDriveError(f"{plural(len(missing), 'file')} listed by {stamps_path} ({plural(n_stamps, 'line')}) "
                              f"{'is' if len(missing) == 1 else 'are'} missing, first {missing[0]}")
    if len(files) != n_stamps:
        raise KittiDriveError(f"{data} has {plural(len(files), suffix + ' file')} but {stamps_path} has "
                              f"{plural(n_stamps, 'timestamp')}")
    return expected


def find_calib_dir(drive_dir: Path) -> Path:
    for d in (drive_dir.parent, drive_dir):
        if (d / "calib_cam_to_cam.txt").is_file():
            return d
    raise KittiDriveError(f"calib_cam_to_cam.txt not found next to {drive_dir} (expected in {drive_dir.parent}, "
                          "the date folder, as KITTI distributes it)")


def _camera_only_calibration(cdir: Path, camera: int) -> kitti.KittiCalibration:
    """calib_cam_to_cam.txt alone (``--no-velodyne`` without calib_velo_to_cam.txt): T_velo_to_cam is unknown
    (NaN), and the tf tree is only the camera's body -> optical frame."""
    path = cdir / "calib_cam_to_cam.txt"
    c = kitti.read_calib_file(path)
    for key, n in ((f"P_rect_{camera:02d}", 12), ("R_rect_00", 9)):
        if key not in c or c[key].size != n:
            raise kitti.CalibrationError(f"{path}: missing entry {key!r} (or not {n} values)")
    R = np.eye(4)
    R[:3, :3] = c["R_rect_00"].reshape(3, 3)
    key = f"S_rect_{camera:02d}"
    size = (int(round(c[key][0])), int(round(c[key][1]))) if key in c and c[key].size == 2 else None
    return kitti.KittiCalibration(c[f"P_rect_{camera:02d}"].reshape(3, 4), R, np.full((4, 4), np.nan), size, camera)


def load_drive(drive_dir: "str | Path", camera: int = 2, velodyne: bool = True,
               calib_dir: "str | Path | None" = None) -> KittiDrive:
    drive_dir = Path(drive_dir)
    if drive_dir.exists() and not drive_dir.is_dir():
        raise KittiDriveError(f"{drive_dir} is a file, not a KITTI drive folder (e.g. 2011_09_26/"
                              "2011_09_26_drive_0002_sync)")
    if not drive_dir.is_dir():
        raise KittiDriveError(f"drive folder {drive_dir} does not exist")
    if camera not in CAMERA_NAMES:
        raise KittiDriveError(f"camera must be one of {sorted(CAMERA_NAMES)}, got {camera}")
    cdir = Path(calib_dir) if calib_dir is not None else find_calib_dir(drive_dir)
    try:
        if not velodyne and not (cdir / "calib_velo_to_cam.txt").is_file():
            calib = _camera_only_calibration(cdir, camera)   # camera only: no LiDAR extrinsics needed
        else:
            calib = kitti.load_raw_calibration(cdir, camera=camera)
    except kitti.CalibrationError as exc:
        raise KittiDriveError(str(exc)) from None
    T_velo_imu = None
    imu_path = cdir / "calib_imu_to_velo.txt"
    if imu_path.is_file():
        c = kitti.read_calib_file(imu_path)
        if "R" in c and "T" in c and c["R"].size == 9 and c["T"].size == 3:
            T_velo_imu = make_transform(c["R"].reshape(3, 3), c["T"])
    img_dir = drive_dir / f"image_{camera:02d}"
    img_ts_path = img_dir / "timestamps.txt"
    img_stamps = read_timestamps(img_ts_path)
    img_files = _data_files(img_dir, ".png", len(img_stamps), img_ts_path)
    velo_files: List[Path] = []
    velo_stamps: List[int] = []
    if velodyne:
        vdir = drive_dir / "velodyne_points"
        v_ts_path = vdir / "timestamps.txt"
        velo_stamps = read_timestamps(v_ts_path)
        velo_files = _data_files(vdir, ".bin", len(velo_stamps), v_ts_path)
    return KittiDrive(drive_dir, cdir, camera, img_files, img_stamps, velo_files, velo_stamps, calib, T_velo_imu)


def read_image(path: Path) -> Tuple[np.ndarray, str]:
    """(array, ROS encoding) of a KITTI PNG: colour -> rgb8, grey -> mono8 (pixels unchanged)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise KittiDriveError(f"cannot read image {path} (missing or corrupt)")
    if img.ndim == 2:
        return img, "mono8"
    if img.shape[2] == 4:
        img = img[:, :, :3]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB), "rgb8"


def velodyne_cloud_fields() -> List[Tuple[str, int, int]]:
    return [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("intensity", 12, 7)]


def _check_frame_range(start: int, max_frames: Optional[int]) -> None:
    if max_frames is not None and max_frames < 1:
        raise KittiDriveError(f"--max-frames must be >= 1, got {max_frames}")
    if start < 0:
        raise KittiDriveError(f"--start must be >= 0 (the first frame's index), got {start}")


def convert(drive_dir: "str | Path", out: "str | Path", camera: int = 2, velodyne: bool = True,
            overwrite: bool = False, storage: str = "mcap", start: int = 0, max_frames: Optional[int] = None,
            calib_dir: "str | Path | None" = None, progress: bool = False,
            on_frame: Optional[Callable[[int], None]] = None) -> dict:
    """Write the drive to the rosbag2 directory ``out``; returns a summary dict (topics, counts).

    ``out`` may not be, contain or lie inside the drive folder or the calibration folder; an existing
    ``out`` is replaced only with ``overwrite`` and only if it is a bag (:func:`.io.check_output_bag`)."""
    _check_frame_range(start, max_frames)   # before anything is read
    drive = load_drive(drive_dir, camera=camera, velodyne=velodyne, calib_dir=calib_dir)
    protect = [("drive folder", drive.drive_dir), ("calibration folder", drive.calib_dir)]
    check_output_bag(out, overwrite, protect)  # before reading any data
    n = len(drive)
    stop = n if max_frames is None else min(n, start + max_frames)
    if not 0 <= start < n:
        raise KittiDriveError(f"--start {start} is outside the drive's {plural(n, 'frame')} (0-{n - 1})")
    calib = drive.calib
    events: List[Tuple[int, int, int]] = []  # (stamp, kind 0=image 1=velo, index)
    for i in range(start, stop):
        events.append((drive.image_stamps[i], 0, i))
    if velodyne:
        vstop = min(len(drive.velo_files), stop)
        for i in range(start, vstop):
            events.append((drive.velo_stamps[i], 1, i))
    events.sort()

    # image size from the first image (checked against S_rect when known)
    first, enc = read_image(drive.image_files[start])
    h, w = first.shape[:2]
    if calib.image_size is not None and calib.image_size != (w, h):
        raise KittiDriveError(f"{drive.image_files[start]} is {w}x{h} but calib_cam_to_cam.txt says "
                              f"S_rect_{camera:02d} = {calib.image_size[0]}x{calib.image_size[1]}")
    K = calib.K
    t0 = min(e[0] for e in events)

    with BagWriter(out, overwrite=overwrite, storage=storage, protect=protect) as bag:
        f = bag.factory
        bag.add_topic("/tf_static", TF_MESSAGE, qos=qos_profile(transient_local=True, depth=1))
        bag.add_topic(drive.image_topic, IMAGE)
        bag.add_topic(drive.camera_info_topic, CAMERA_INFO)
        if velodyne:
            bag.add_topic(VELO_TOPIC, POINTCLOUD2)
        tfs = [f.transform_stamped(t0, p, c, M) for p, c, M in drive.static_transforms()]
        bag.write("/tf_static", t0, f.tf_message(tfs))
        it: Any = events
        if progress:
            it = tqdm(events, desc="kitti2bag", unit="msg")
        for stamp, kind, i in it:
            if kind == 0:
                img, enc_i = (first, enc) if i == start else read_image(drive.image_files[i])
                if img.shape[:2] != (h, w):
                    raise KittiDriveError(f"{drive.image_files[i]} is {img.shape[1]}x{img.shape[0]}, "
                                          f"the drive's first image is {w}x{h}")
                hdr = f.header(stamp, drive.optical_frame)
                bag.write(drive.image_topic, stamp, f.image(hdr, img, enc_i))
                bag.write(drive.camera_info_topic, stamp, f.camera_info(hdr, w, h, K))
                if on_frame is not None:
                    on_frame(i)
            else:
                try:
                    scan = kitti.load_velodyne(drive.velo_files[i])
                except ValueError as exc:
                    raise KittiDriveError(str(exc)) from None
                hdr = f.header(stamp, VELO_FRAME)
                scan = np.ascontiguousarray(scan, dtype="<f4")
                bag.write(VELO_TOPIC, stamp, f.pointcloud2(hdr, scan, scan.shape[0], 1, velodyne_cloud_fields(),
                                                          16, bool(np.isfinite(scan).all())))
        counts = dict(bag.counts)
    return {"bag": str(out), "frames": stop - start, "image_size": (w, h), "topics": counts,
            "frame_ids": {"camera": drive.optical_frame, "lidar": VELO_FRAME},
            "tf": [(p, c) for p, c, _ in drive.static_transforms()]}
