"""The node's per-frame costs in-process: the pipeline's wall and CPU time, and rclpy's message costs.

    .venv/bin/python benchmarks/bench_node_costs.py [--model M.onnx] [--frames 200]

Prints, for a 640x480 rgb8 frame:

* ``DepthPipeline.infer_rgb`` with ONNX Runtime at 1 and 2 intra-op threads: wall and CPU
  (``time.process_time``) per frame, and the ``backend.run`` share -- what the node spends per processed
  frame before it builds and publishes anything (docs/performance.md, "Where the CPU goes");
* rclpy's ``deserialize_message`` of a 640x480 rgb8 Image (what taking a camera frame costs on top of the
  RMW's copy), ``serialize_message`` of a 640x480 xyz+pad PointCloud2 (4.9 MB), and ``publish`` of that cloud
  and of its serialised bytes with no subscriber (needs the real rclpy: requirements/rclpy.txt).

Default model: the NYU-profile int8 ONNX model with random weights that benchmarks/bench_dds.py caches
(made on first use, ~1 min). Performance figures belong here, never in unit tests.
"""
from __future__ import annotations

import argparse
import array
import os
import sys
import time
from pathlib import Path
from typing import Callable, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def per_call(fn: Callable[[], object], n: int) -> Tuple[float, float]:
    """(wall ms, CPU ms) per call of ``fn`` over ``n`` calls, after 10 warm-up calls."""
    for _ in range(10):
        fn()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - w0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def pipeline_costs(model: str, frames: int) -> None:
    from mono_depth_ros.camera import CameraIntrinsics
    from mono_depth_ros.pipeline import DepthPipeline

    rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    K = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
    for threads in (1, 2):
        with DepthPipeline(model, backend="onnxruntime", threads=threads) as p:
            wall, cpu = per_call(lambda: p.infer_rgb(rgb, K), frames)
            x = p._pre(rgb)[0]
            run_wall, run_cpu = per_call(lambda: p.backend.run(x), frames)
        print(f"pipeline, {threads} thread(s): {wall:.1f} ms wall, {cpu:.1f} ms CPU per frame; "
              f"backend.run {run_wall:.1f} ms wall, {run_cpu:.1f} ms CPU")


def rclpy_costs(n: int) -> None:
    try:
        import rclpy
        from rclpy.serialization import deserialize_message, serialize_message
        from sensor_msgs.msg import Image, PointCloud2, PointField
    except ImportError as exc:
        print(f"rclpy message costs: skipped (real rclpy not importable: {exc})")
        return
    img = Image(height=480, width=640, encoding="rgb8", step=1920)
    img.header.frame_id = "camera_color_optical_frame"
    img.data = array.array("B", bytes(640 * 480 * 3))
    raw = serialize_message(img)
    wall, _ = per_call(lambda: deserialize_message(raw, Image), n)
    print(f"deserialize_message, 640x480 rgb8 Image ({len(raw)} bytes): {wall:.3f} ms")

    cloud = PointCloud2(height=480, width=640, point_step=16, row_step=640 * 16, is_dense=False)
    cloud.fields = [PointField(name=c, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, c in enumerate("xyz")]
    cloud.data = array.array("B", bytes(640 * 480 * 16))
    wall, _ = per_call(lambda: serialize_message(cloud), n)
    print(f"serialize_message, 640x480 PointCloud2 ({len(cloud.data)} bytes of points): {wall:.2f} ms")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    rclpy.init()
    try:
        node = rclpy.create_node("bench_node_costs")
        pub = node.create_publisher(PointCloud2, "bench_node_costs/points", 5)
        wall, _ = per_call(lambda: pub.publish(cloud), n)
        cloud_raw = serialize_message(cloud)
        raw_wall, _ = per_call(lambda: pub.publish(cloud_raw), n)
        print(f"publish of that cloud, no subscriber: {wall:.2f} ms (message), {raw_wall:.2f} ms (serialised bytes)")
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="ONNX model (default: bench_dds.py's NYU-profile int8 model, made if missing)")
    ap.add_argument("--frames", type=int, default=200)
    args = ap.parse_args()
    model = args.model
    if not model:
        import bench_dds

        model = bench_dds.ensure_model(argparse.Namespace(model=None))
    print(f"model {model}; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    pipeline_costs(model, args.frames)
    rclpy_costs(max(args.frames // 4, 20))
    return 0


if __name__ == "__main__":
    sys.exit(main())
