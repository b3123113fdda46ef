#!/usr/bin/env python3
"""The cost outside the model at 640x480 (docs/pipeline.md): decode, preprocess, postprocess and the cloud,
for the camera output and the network output, organised and unorganised clouds.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_outside_model.py [--iters 50] [--profile nyu]

The NYU network with random weights (timings do not depend on the weights), ONNX Runtime on 2 threads,
one 640x480 rgb8 frame of noise decoded from a ROS-style byte buffer each iteration; p50 in ms over
``--iters`` iterations after 5 warm-up ones.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.commands.bench_run import random_model
from mono_depth_ros.pipeline import DepthPipeline
from mono_depth_ros.pointcloud import CloudBuilder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--profile", default="nyu")
    a = ap.parse_args()
    w, h = 640, 480
    data = np.random.default_rng(0).integers(0, 256, (h, w, 3), np.uint8).tobytes()
    K = CameraIntrinsics(w, h, 525.0, 525.0, (w - 1) / 2.0, (h - 1) / 2.0)
    builder = CloudBuilder()
    with tempfile.TemporaryDirectory(prefix="bench_outside_model.") as td:
        pipe = DepthPipeline(str(random_model(a.profile, Path(td))), backend="onnxruntime", threads=2,
                             cache_dir=td)
        print(f"{w}x{h} rgb8, profile {a.profile}, {pipe.backend.describe()}; p50 ms of {a.iters} after 5 warm-up")
        for output in ("camera", "network"):
            pipe.set_output(output)
            t = {k: [] for k in ("decode", "preprocess", "postprocess", "organised cloud", "unorganised cloud")}
            points = 0
            for i in range(5 + a.iters):
                r = pipe.infer(data, w, h, "rgb8", intrinsics=K)
                t0 = time.perf_counter()
                builder.build(r.depth, r.intrinsics, rgb=r.rgb, organized=True)
                t1 = time.perf_counter()
                cloud = builder.build(r.depth, r.intrinsics, rgb=r.rgb, organized=False)
                t2 = time.perf_counter()
                if i >= 5:
                    for k in ("decode", "preprocess", "postprocess"):
                        t[k].append(r.timings[k])
                    t["organised cloud"].append(t1 - t0)
                    t["unorganised cloud"].append(t2 - t1)
                    points = len(cloud.data)
            row = ", ".join(f"{k} {1e3 * float(np.percentile(v, 50)):.2f}" for k, v in t.items())
            print(f"{output} output ({r.depth.shape[1]}x{r.depth.shape[0]}): {row}; unorganised {points} points")
        pipe.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
