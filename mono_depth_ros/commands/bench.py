"""``mono-depth bench``: latency of the model alone and of the whole pipeline, as a table and JSON.

* model: ``backend.run`` on a preprocessed frame (what the backend costs);
* pipeline: a 640x480 ``rgb8`` ROS image buffer -> decode -> preprocess -> backend -> metres,
  upsampled to the camera image -> point-cloud buffers (x, y, z, rgb) with
  :class:`~mono_depth_ros.pointcloud.CloudBuilder` (what the ROS node does per frame, minus the
  message publication).

Warm-up iterations are not timed.  Without ``--model`` the profile's network with random weights
is benchmarked (the timing does not depend on the weights; the output says so).

The parser lives here (``mono-depth --help`` imports it); the work, with its dependencies, in
:mod:`mono_depth_ros.commands.bench_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse

from . import MAX_THREADS, MIN_FRAME_SIZE


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="benchmark the model and the whole pipeline (p50/p90 latency, FPS)",
                       description="Warm up, then time the model alone and the full pipeline (640x480 rgb8 decode "
                                   "-> depth + point-cloud buffers). Prints a markdown table; --json writes the "
                                   "figures. Without --model: the profile's network with random weights.")
    p.add_argument("--model", help="model file (.pt, .onnx, .int8.onnx, .engine); default: random weights")
    p.add_argument("--profile", default="nyu", help="profile of the random-weight network (without --model)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"],
                   help="inference backend (default: auto, the best that runs here)")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: the backend's best)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "int8"],
                   help="default: auto (fp16 on GPUs, fp32 on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"CPU threads, 0-{MAX_THREADS} (default: the backend's, physical cores on CPU)")
    p.add_argument("--iters", type=int, default=50, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first")
    p.add_argument("--width", type=int, default=640, help=f"pipeline frame width (>= {MIN_FRAME_SIZE})")
    p.add_argument("--height", type=int, default=480, help=f"pipeline frame height (>= {MIN_FRAME_SIZE})")
    p.add_argument("--stride", type=int, default=1, help="point-cloud pixel stride (>= 1)")
    p.add_argument("--no-pipeline", action="store_true", help="time the model only")
    p.add_argument("--json", dest="json_out", help="write the results as JSON to this file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return p


def run(args: argparse.Namespace) -> int:
    from .bench_run import run_bench_command

    return run_bench_command(args)
