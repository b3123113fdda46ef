"""The output messages as the node builds them, on the *real* rclpy message classes (the PyPI Jazzy
wheels of requirements/rclpy.txt), serialised to CDR and back with rclpy's own serialisation (what
publish() and a subscriber do), plus the copy count of building them.

Skipped where the real sensor_msgs is not importable.  No DDS, no context: rclpy.serialization needs
neither.
"""
from __future__ import annotations

import array
import tracemalloc

import numpy as np
import pytest

from mono_depth_ros.camera import CameraIntrinsics
from mono_depth_ros.colorize import colorize_depth
from mono_depth_ros.pointcloud import CloudBuilder
from mono_depth_ros.ros import conversions as conv

serialization = pytest.importorskip("rclpy.serialization", reason="real rclpy not installed")
sensor_msgs = pytest.importorskip("sensor_msgs.msg", reason="real sensor_msgs not installed")
if not hasattr(sensor_msgs.Image, "SLOT_TYPES"):  # pragma: no cover - test/fake_rclpy's classes
    pytest.skip("sensor_msgs here is not the rosidl-generated one", allow_module_level=True)

H, W = 480, 640
INTR = CameraIntrinsics(fx=525.0, fy=523.0, cx=319.5, cy=239.5, width=W, height=H)


@pytest.fixture(scope="module")
def T():
    return conv.MessageTypes.from_rclpy()


@pytest.fixture(scope="module")
def depth():
    rng = np.random.default_rng(7)
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    d = (1.0 + u / W * 4.0 + v / H).astype(np.float32) + rng.uniform(0, 0.01, (H, W)).astype(np.float32)
    d[:40, :] = np.nan
    d[100, 100:110] = [0.0, -1.0, np.inf, np.nan, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    return d


def roundtrip(msg):
    return serialization.deserialize_message(serialization.serialize_message(msg), type(msg))


def header(T):
    return conv.make_header(T, 1_700_000_123, 456_789_012, "camera_color_optical_frame")


def assert_header(msg):
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == \
        (1_700_000_123, 456_789_012, "camera_color_optical_frame")


@pytest.mark.parametrize("encoding", ["32FC1", "16UC1"])
def test_depth_image_fields_exact_after_cdr(T, depth, encoding):
    arr = conv.depth_array(depth, encoding)
    msg = roundtrip(conv.array_to_image_msg(T, arr, encoding, header(T)))
    assert_header(msg)
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step) == \
        (H, W, encoding, 0, W * arr.itemsize)
    assert bytes(msg.data) == arr.tobytes()
    back = conv.image_msg_to_depth(msg)
    if encoding == "32FC1":  # metres as they are, NaN kept
        np.testing.assert_array_equal(back, depth)
    else:                    # millimetres, 0 = invalid (NaN, inf, <= 0)
        np.testing.assert_array_equal(np.isnan(back), ~(np.isfinite(depth) & (depth > 0)))


def test_colored_image_fields_exact_after_cdr(T, depth):
    rgb = colorize_depth(depth, 0.5, 10.0)
    msg = roundtrip(conv.array_to_image_msg(T, rgb, "rgb8", header(T)))
    assert_header(msg)
    assert (msg.height, msg.width, msg.encoding, msg.step) == (H, W, "rgb8", W * 3)
    np.testing.assert_array_equal(conv.image_msg_to_rgb(msg), rgb)


@pytest.mark.parametrize("organized", [True, False])
@pytest.mark.parametrize("color", [False, True])
def test_cloud_fields_exact_after_cdr(T, depth, organized, color):
    rgb = np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8) if color else None
    cloud = CloudBuilder().build(depth, INTR, rgb=rgb, organized=organized)
    msg = roundtrip(conv.cloud_to_pointcloud2(T, cloud, header(T)))
    assert_header(msg)
    step = 32 if color else 16
    assert (msg.point_step, msg.row_step, msg.is_bigendian, msg.is_dense) == \
        (step, step * msg.width, False, not organized)
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == \
        [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)] + ([("rgb", 16, 7, 1)] if color else [])
    assert bytes(msg.data) == cloud.data.tobytes()
    pts = conv.pointcloud2_to_array(msg)
    valid = np.isfinite(depth) & (depth > 0)
    if organized:
        assert (msg.height, msg.width) == (H, W)
        np.testing.assert_array_equal(np.isnan(pts["z"]), ~valid)
        v, u = 300, 500  # back-projection with the camera's K
        assert pts["x"][v, u] == pytest.approx((u - INTR.cx) * depth[v, u] / INTR.fx, rel=1e-6)
        assert pts["y"][v, u] == pytest.approx((v - INTR.cy) * depth[v, u] / INTR.fy, rel=1e-6)
    else:
        assert (msg.height, msg.width) == (1, int(valid.sum()))
        np.testing.assert_array_equal(pts["z"][0], depth[valid])


def test_camera_info_fields_exact_after_cdr(T):
    scaled = INTR.scaled_to(320, 240)
    msg = roundtrip(conv.intrinsics_to_camera_info(T, scaled, header(T)))
    assert_header(msg)
    assert conv.camera_info_to_intrinsics(msg) == scaled
    assert list(msg.d) == [0.0] * 5 and msg.distortion_model == "plumb_bob"


def test_payload_is_copied_once_and_not_shared(T, depth):
    """Building a message copies the pipeline's buffer exactly once: the memory traced while building
    stays near one payload (Jazzy's __init__(data=...) + setter held three at once), and the message
    does not alias the source buffer (later frames reuse that buffer)."""
    cloud = CloudBuilder().build(depth, INTR, organized=True)
    payload = cloud.data.nbytes
    assert payload == H * W * 16
    conv.cloud_to_pointcloud2(T, cloud, header(T))  # warm up imports
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        msg = conv.cloud_to_pointcloud2(T, cloud, header(T))
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert isinstance(msg.data, array.array) and len(msg.data) == payload
    assert payload <= peak < 1.5 * payload, f"peak {peak} bytes while building a {payload}-byte cloud"
    keep = bytes(msg.data[:64])
    cloud.data.view(np.uint8)[:64] = 0xAB
    assert bytes(msg.data[:64]) == keep
    # the same for an image
    rgb = colorize_depth(depth, 0.5, 10.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        img = conv.array_to_image_msg(T, rgb, "rgb8", header(T))
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert rgb.nbytes <= peak < 1.5 * rgb.nbytes and len(img.data) == rgb.nbytes


@pytest.mark.parametrize("frame_id", ["", "c", "camera_color_optical_frame", "abc"])
def test_bench_dds_reads_stamp_and_width_from_serialised_outputs(T, depth, frame_id):
    """benchmarks/bench_dds.py's subscriber takes serialised messages and reads the stamp and width from
    the CDR bytes (header, then height, width, for Image, CameraInfo and PointCloud2)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_dds", Path(__file__).parents[1] / "benchmarks" / "bench_dds.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    hdr = conv.make_header(T, 1_700_000_123, 456_789_012, frame_id)
    small = depth[:48, :64].copy()
    intr = CameraIntrinsics(fx=50.0, fy=50.0, cx=31.5, cy=23.5, width=64, height=48)
    msgs = [conv.array_to_image_msg(T, conv.depth_array(small), "32FC1", hdr),
            conv.intrinsics_to_camera_info(T, intr, hdr),
            conv.cloud_to_pointcloud2(T, CloudBuilder().build(small, intr), hdr)]
    for m in msgs:
        assert bench.cdr_stamp_and_width(serialization.serialize_message(m)) == (1_700_000_123_456_789_012, 64)
