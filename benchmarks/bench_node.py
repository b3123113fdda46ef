#!/usr/bin/env python3
"""Per-frame cost of the depth node (image -> pipeline -> the four output messages), per stage.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_node.py                  # 640x480 and 1242x375
    .venv/bin/python benchmarks/bench_node.py --sizes 1242x375 --frames 50 -p depth_encoding=16UC1 -p points_color=true

In-process, without DDS: the message-building cost of each output.  Over real DDS (serialisation,
transport, the node's rate and latency with a camera and a subscriber) use benchmarks/bench_dds.py.

Runs the real DepthNode through test/fake_rclpy (no ROS 2, no DDS: the fake's message classes apply
rosidl_generator_py's setter rules, its publish() only keeps the message), a tiny random-weight
network (160x120 input, as in test/test_node.py) on PyTorch with one thread, rgb8 frames, every
output subscribed, camera_info given.  Stages (p50 over --frames, after --warmup frames), timed
from the end of the previous stage:
  pipeline           DepthPipeline.infer_rgb (decode happens before it: in "node other")
  depth/image        depth array + Image message + publish
  depth/camera_info  CameraInfo message + publish
  depth/points       CloudBuilder.build + PointCloud2 message + publish
  depth/colored      colorize_depth + Image message + publish
  node other         the rest of process_once (decode, checks, header, stats)
  total              process_once
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "fake_rclpy"))
from fake_ros import installed  # noqa: E402

sys.path.pop(0)

from mono_depth_ros.ros import conversions as conv  # noqa: E402

OUTPUTS = ("depth/image", "depth/camera_info", "depth/points", "depth/colored")
STAGES = ("pipeline",) + OUTPUTS + ("node other", "total")


def tiny_model(folder: Path) -> Path:
    import torch

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from mono_depth_ros.profiles import Profile

    torch.manual_seed(0)
    profile = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                      fine_channels=8, min_depth=0.5, max_depth=80.0)
    path = folder / "tiny.pt"
    save_model(EigenDepthNet(profile, "fine"), path)
    return path


def frame(w: int, h: int, seed: int = 0):
    """A smooth rgb8 test image with some noise, and its CameraInfo (fake rclpy messages)."""
    from mono_depth_ros.camera import CameraIntrinsics

    T = conv.MessageTypes.from_rclpy()
    rng = np.random.default_rng(seed)
    u, v = np.meshgrid(np.linspace(0, 1, w, dtype=np.float32), np.linspace(0, 1, h, dtype=np.float32))
    rgb = np.stack([u, v, 1 - u * v], axis=-1) * 200 + rng.uniform(0, 55, (h, w, 3))
    header = conv.make_header(T, 100, 5, "camera")
    intr = CameraIntrinsics(fx=0.8 * w, fy=0.8 * w, cx=w / 2 - 0.5, cy=h / 2 - 0.5, width=w, height=h)
    return conv.rgb_to_image_msg(T, rgb.astype(np.uint8), header), conv.intrinsics_to_camera_info(T, intr, header)


def bench(pipeline, size, frames: int, warmup: int, params: dict) -> dict:
    from rclpy.parameter import Parameter

    from mono_depth_ros.ros.node import DepthNode

    node = DepthNode(pipeline=pipeline, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    try:
        marks = []
        for t in OUTPUTS:
            pub = node.publisher(t)
            pub.subscription_count = 1
            publish = pub.publish

            def timed(msg, _publish=publish, _t=t):
                _publish(msg)
                marks.append((_t, time.perf_counter()))
                node.publisher(_t).published.clear()  # real rclpy serialises and keeps nothing
            pub.publish = timed
        infer = pipeline.infer_rgb

        def timed_infer(*a, **k):
            t0 = time.perf_counter()
            r = infer(*a, **k)
            marks.append(("pipeline", time.perf_counter(), t0))
            return r
        node._pipeline = type("Timed", (), {"__getattr__": lambda s, n: getattr(pipeline, n),
                                            "infer_rgb": staticmethod(timed_infer)})()
        image, info = frame(*size)
        node.subscription("camera_info").deliver(info)
        rows = {s: [] for s in STAGES}
        for i in range(warmup + frames):
            marks.clear()
            node.subscription("image").deliver(image)
            t0 = time.perf_counter()
            assert node.process_once()
            total = time.perf_counter() - t0
            assert len(marks) == 5, marks
            if i < warmup:
                continue
            _, prev, start = marks[0]
            rows["pipeline"].append(prev - start)
            for name, t in marks[1:]:
                rows[name].append(t - prev)
                prev = t
            rows["total"].append(total)
            rows["node other"].append(total - sum(rows[s][-1] for s in ("pipeline",) + OUTPUTS))
        assert node._stats.bad == 0 and node._stats.errors == 0
        return {s: float(np.percentile(v, 50)) * 1e3 for s, v in rows.items()}
    finally:
        node.destroy_node()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1242x375"], help="WxH rgb8 frames")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="node parameter (bool/int/float/str parsed from the text), e.g. points_color=true")
    args = ap.parse_args()
    params = {}
    for kv in args.param:
        k, v = kv.split("=", 1)
        params[k] = {"true": True, "false": False}.get(v.lower(), v)
        for typ in (int, float):
            if isinstance(params[k], str):
                try:
                    params[k] = typ(v)
                except ValueError:
                    pass

    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp, installed() as rclpy:
        from mono_depth_ros.pipeline import DepthPipeline

        pipeline = DepthPipeline(str(tiny_model(Path(tmp))), backend="torch", threads=1)
        rclpy.init()
        try:
            print(f"depth_node per-frame p50 (ms), {args.frames} frames, fake rclpy, tiny model, params {params or 'default'}")
            print(f"{'stage':<18}" + "".join(f"{s:>12}" for s in args.sizes))
            results = [bench(pipeline, tuple(int(x) for x in s.split("x")), args.frames, args.warmup, params)
                       for s in args.sizes]
            for stage in STAGES:
                print(f"{stage:<18}" + "".join(f"{r[stage]:>12.2f}" for r in results))
        finally:
            rclpy.shutdown()
            pipeline.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
