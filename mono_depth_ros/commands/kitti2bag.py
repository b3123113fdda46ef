"""``mono-depth kitti2bag``: a KITTI raw drive -> ROS 2 bag (rosbag2 directory, MCAP), no ROS needed."""
from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "kitti2bag", help="convert a KITTI raw drive into a ROS 2 bag (camera, camera_info, Velodyne, /tf_static)",
        description="Convert a KITTI raw *_sync drive folder (with the calib_*.txt files of its date folder next to "
                    "it) into a rosbag2 directory (MCAP storage, metadata.yaml) that `ros2 bag play` takes directly: "
                    "/kitti/camera_color_left/image_raw (rgb8, rectified), .../camera_info, /kitti/velodyne_points "
                    "(x, y, z, intensity) and a latched /tf_static (base_link -> imu_link -> velo_link -> "
                    "camera_color_left -> camera_color_left_optical_frame). Stamps from the timestamps.txt files.")
    p.add_argument("drive", metavar="DRIVE_DIR", help="e.g. 2011_09_26/2011_09_26_drive_0002_sync")
    p.add_argument("--out", required=True, metavar="BAG", help="output rosbag2 directory (created)")
    p.add_argument("--camera", type=int, choices=[0, 1, 2, 3], default=2,
                   help="KITTI camera: 2 = left colour (default), 3 = right colour, 0/1 = grey")
    p.add_argument("--calib-dir", help="folder with calib_cam_to_cam.txt etc. (default: the drive's parent)")
    p.add_argument("--no-velodyne", action="store_true", help="camera only")
    p.add_argument("--start", type=int, default=0, help="first frame index")
    p.add_argument("--max-frames", type=int, help="at most this many frames")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    p.add_argument("--overwrite", action="store_true",
                   help="replace BAG if it exists and is a rosbag2; never a non-bag path, the drive or its "
                        "calibration folder (nor a folder holding them)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from ..bag.kitti2bag import convert
    from ..cli import plural

    res = convert(args.drive, args.out, camera=args.camera, velodyne=not args.no_velodyne, overwrite=args.overwrite,
                  storage=args.storage, start=args.start, max_frames=args.max_frames, calib_dir=args.calib_dir,
                  progress=not args.no_progress)
    w, h = res["image_size"]
    print(f"wrote {res['bag']}: {plural(res['frames'], 'frame')} ({w}x{h}); "
          + ", ".join(f"{t} {n}" for t, n in res["topics"].items()))
    print("tf: " + ", ".join(f"{p} -> {c}" for p, c in res["tf"]))
    return 0
