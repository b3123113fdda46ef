"""``mono-depth bag``: a recorded ROS 2 bag through the depth pipeline into a depth bag (+ --eval).

The parser lives here (``mono-depth --help`` imports it); the work, with its dependencies, in
:mod:`mono_depth_ros.commands.bag_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse

from . import DEFAULT_MODEL_HELP, THREADS_HELP


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "bag", help="run a ROS 2 bag through the depth pipeline into a new bag (and evaluate it)",
        description="Read a rosbag2 (MCAP or sqlite3; a directory or a single .mcap/.db3 file), run every image "
                    "through the same pipeline as depth_node, and write a rosbag2 (MCAP) with <ns>/image, "
                    "<ns>/camera_info, <ns>/points and <ns>/colored, stamped and framed as the node publishes "
                    "them. With --eval, compare with LiDAR (via /tf_static) or a ground-truth depth topic and write "
                    "CSV/JSON/markdown metrics and plots. No ROS installation needed.")
    p.add_argument("input", metavar="INPUT_BAG", help="rosbag2 directory, or a .mcap / .db3 file")
    p.add_argument("--model", help="model file (.pt / .onnx / .engine); default: --params-file's model, else "
                                    f"{DEFAULT_MODEL_HELP}, chosen from the first CameraInfo's size")
    p.add_argument("--out", required=True, metavar="OUTPUT_BAG", help="output rosbag2 directory (created)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUTPUT_BAG if it exists and is a rosbag2 (once the new one is complete), and the "
                        "evaluation files; a non-bag path, the input bag or a folder holding it is never replaced")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    p.add_argument("--image-topic", help="sensor_msgs/Image topic (default: detected)")
    p.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo topic (default: <image ns>/camera_info)")
    p.add_argument("--namespace", default="/depth", help="namespace of the output topics (default /depth)")
    p.add_argument("--copy", choices=["none", "tf", "all"], default="tf",
                   help="input topics copied into the output bag: none, /tf_static (default) or all")
    p.add_argument("--max-frames", type=int, help="stop after this many images")
    p.add_argument("--keep-partial", action="store_true",
                   help="on Ctrl-C keep (finalised) what was written so far instead of removing it")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--params-file", help="a ROS 2 parameters YAML of depth_node (e.g. config/depth.yaml); "
                                         "options below override it")
    g = p.add_argument_group("node parameters (as depth_node's; defaults from mono_depth_ros.ros.params)")
    g.add_argument("--backend", choices=["auto", "tensorrt", "torch", "onnxruntime"])
    g.add_argument("--device")
    g.add_argument("--precision", choices=["auto", "fp32", "fp16", "int8"])
    g.add_argument("--threads", type=int, help=THREADS_HELP)
    g.add_argument("--output-resolution", choices=["camera", "network"])
    g.add_argument("--min-depth", type=float)
    g.add_argument("--max-depth", type=float)
    g.add_argument("--depth-scale", type=float)
    g.add_argument("--depth-encoding", choices=["32FC1", "16UC1"])
    g.add_argument("--frame-id")
    g.add_argument("--no-points", action="store_true", help="do not write <ns>/points")
    g.add_argument("--points-unorganized", action="store_true")
    g.add_argument("--points-stride", type=int)
    g.add_argument("--points-color", action="store_true")
    g.add_argument("--colormap")
    g.add_argument("--color-min-depth", type=float)
    g.add_argument("--color-max-depth", type=float)
    e = p.add_argument_group("evaluation")
    e.add_argument("--eval", action="store_true", help="evaluate against ground truth")
    e.add_argument("--lidar-topic", help="LiDAR PointCloud2 topic (default: detected)")
    e.add_argument("--gt-topic", help="ground-truth depth image topic (32FC1 m or 16UC1 mm) instead of LiDAR")
    e.add_argument("--gt-depth-scale", type=float, help="metres per unit of an integer GT image (default 0.001)")
    e.add_argument("--calib", help="KITTI calibration (raw date folder or object calib .txt) for LiDAR -> camera "
                                   "instead of /tf_static")
    e.add_argument("--gt-max-dt", type=float, default=0.05,
                   help="largest |image stamp - ground-truth stamp| in seconds (default 0.05)")
    e.add_argument("--protocols", default="paper,garg80",
                   help="comma-separated: paper, garg80, eigen80, nyu10 (default paper,garg80)")
    e.add_argument("--median-scaling", action="store_true", help="per-frame median scaling (relative models)")
    e.add_argument("--eval-mode", choices=["image", "pixel"], default="image",
                   help="dataset figures: mean of per-frame metrics (default) or pooled pixels")
    e.add_argument("--eval-dir", help="where metrics go (default: OUTPUT_BAG_eval/); existing eval files are "
                                      "refused before any inference unless --overwrite")
    e.add_argument("--no-plots", action="store_true")
    return p


def run(args: argparse.Namespace) -> int:
    from .bag_run import run_bag_command

    return run_bag_command(args)
