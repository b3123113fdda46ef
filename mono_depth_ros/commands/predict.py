"""``mono-depth predict``: depth for images, folders and videos, written as .npy / 16-bit PNG / colour PNG / PLY.

The parser lives here (``mono-depth --help`` imports it); the work, and numpy / OpenCV / tqdm with it, in
:mod:`mono_depth_ros.commands.predict_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse

from . import DEFAULT_MODEL_HELP, THREADS_HELP


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "predict", help="predict depth for images, folders and videos",
        description="Run the depth pipeline on images, folders of images and videos. For each image (or video "
                    "frame) NAME it writes NAME_depth.npy (float32 metres, NaN invalid), NAME_depth.png (uint16 "
                    "millimetres, 0 invalid), NAME_color.png (turbo, near = warm) and, when camera intrinsics are "
                    "given, NAME.ply (the point cloud, camera optical frame). Existing outputs are never replaced "
                    "without --overwrite.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (their images and videos), videos")
    p.add_argument("--model", default=None, help="model file: .pt checkpoint, .onnx, or .engine (default: "
                   f"{DEFAULT_MODEL_HELP}, chosen from the first input's size)")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    p.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: the backend's best)")
    p.add_argument("--precision", default="fp32", choices=["auto", "fp32", "fp16", "int8"])
    p.add_argument("--threads", type=int, default=None, help=THREADS_HELP)
    p.add_argument("--output", default="camera", choices=["camera", "network"],
                   help="depth at the camera's resolution (default) or the network's output resolution")
    p.add_argument("--camera-info", default=None, help="ROS camera_calibration YAML with the camera intrinsics")
    p.add_argument("--fx", type=float, default=None, help="focal lengths in pixels (give --fx and --fy together)")
    p.add_argument("--fy", type=float, default=None)
    p.add_argument("--cx", type=float, default=None,
                   help="principal point in pixels (give --cx and --cy together; default: the image centre)")
    p.add_argument("--cy", type=float, default=None)
    p.add_argument("--min-depth", type=float, default=None, help="valid range (m); default: the model's")
    p.add_argument("--max-depth", type=float, default=None)
    p.add_argument("--scale", type=float, default=1.0, help="factor applied to the model's depth")
    p.add_argument("--stride", type=int, default=1, help="pixel stride of the PLY point cloud (>= 1)")
    p.add_argument("--every", type=int, default=1, help="videos: use every N-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="videos: at most this many frames each")
    p.add_argument("--color-min", type=float, default=None,
                   help="depth (m) at the warm end of NAME_color.png (default: each frame's 2 %% depth percentile)")
    p.add_argument("--color-max", type=float, default=None,
                   help="depth (m) at the cool end of NAME_color.png (default: each frame's 98 %% depth percentile)")
    p.add_argument("--max-pixels", type=float, default=None,
                   help="refuse images larger than this many pixels (default 50e6, read from the file header "
                        "before decoding; memory grows ~25 bytes per pixel, ~150 with a point cloud); 0: no limit")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--skip-existing", action="store_true",
                   help="skip frames whose outputs are all there (resume an interrupted run); incomplete sets "
                        "are redone")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from .predict_run import run_predict   # numpy, OpenCV, tqdm and the pipeline: only when predicting

    return run_predict(args)
