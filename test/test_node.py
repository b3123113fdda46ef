"""The depth node's internals through the fake rclpy in test/fake_rclpy: what the real-rclpy tests
(test/test_node_real.py: the node process over real DDS) cannot reach cheaply -- exact latency with a
frozen clock, buffer reuse, "not computed without subscribers", the newest-frame rule frame by frame,
the cv_bridge / sensor_msgs_py variants (broken, Humble, Jazzy) -- see test/fake_rclpy/README.md.

Real frames: the sample MCAP's KITTI image + camera_info (read with rosbags, copied field by field
into the fake's rosidl-style message classes) and the same frame's PNG.  A tiny Eigen et al.
network (random weights) stands in for a trained model: the tests check plumbing, not accuracy.
"""
from __future__ import annotations

import array
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from conftest import ROOT, TINY_NODE, save_tiny_model, shared_path

sys.path.insert(0, str(Path(__file__).parent / "fake_rclpy"))
from fake_ros import installed  # noqa: E402

sys.path.pop(0)

from mono_depth_ros.ros import conversions as conv  # noqa: E402
from mono_depth_ros.ros.params import DEFAULTS, PARAMS  # noqa: E402

OUTPUTS = ("depth/image", "depth/camera_info", "depth/points", "depth/colored")
BAG = ("ros2_bags", "kitti_2frames_repackaged.mcap")


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt", TINY_NODE)


@pytest.fixture(scope="module")
def pipeline(tiny_model):
    from mono_depth_ros.pipeline import DepthPipeline

    p = DepthPipeline(str(tiny_model), backend="torch", threads=1)
    yield p
    p.close()


@pytest.fixture(scope="module")
def bag_frames():
    """[(image, camera_info)] rosbags messages of the sample MCAP."""
    path = shared_path(*BAG)
    images, infos = [], []
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_HUMBLE)) as reader:
        for conn, _, raw in reader.messages():
            if conn.msgtype == "sensor_msgs/msg/Image":
                images.append(reader.deserialize(raw, conn.msgtype))
            elif conn.msgtype == "sensor_msgs/msg/CameraInfo":
                infos.append(reader.deserialize(raw, conn.msgtype))
    return list(zip(images, infos))


@pytest.fixture(autouse=True)
def _sigint_handler_restored():
    """node.main() ends with SIGINT ignored (its process exits next; see _ignore_sigint). Called in-process
    here, that would outlive the test: children inherit SIG_IGN, and a later test's Ctrl-C to a subprocess
    (test_user_errors' predict run) would be ignored. Restore the test process's handler."""
    import signal

    old = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture
def fake_ros():
    with installed() as rclpy:
        yield rclpy


@pytest.fixture
def ros(fake_ros):
    fake_ros.init()
    return fake_ros


@pytest.fixture
def make_node(ros, pipeline):
    nodes = []

    def make(use_pipeline=True, **params):
        from rclpy.parameter import Parameter

        from mono_depth_ros.ros.node import DepthNode

        overrides = [Parameter(k, value=v) for k, v in params.items()]
        node = DepthNode(pipeline=pipeline if use_pipeline else None, parameter_overrides=overrides)
        nodes.append(node)
        return node

    yield make
    for n in nodes:
        n.stop()
        n.destroy_node()


def to_fake(m):
    """A rosbags message -> the fake rclpy message of the same type (independent of conversions.py)."""
    import _fake_msgs

    return _fake_msgs.from_rosbags(m)


def small_frame(bag_frames, scale=0.5, sec=100, nanosec=5, frame_id="camera_color_left"):
    """The bag's first frame resized (fake Image, fake CameraInfo with matching intrinsics)."""
    img, info = bag_frames[0]
    T = conv.MessageTypes.from_rclpy()
    rgb = conv.image_msg_to_rgb(img)
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = small.shape[:2]
    header = conv.make_header(T, sec, nanosec, frame_id)
    intr = conv.camera_info_to_intrinsics(info).scaled_to(w, h)
    return conv.rgb_to_image_msg(T, small, header), conv.intrinsics_to_camera_info(T, intr, header), small, intr


def subscribe(node, *topics):
    for t in topics or OUTPUTS:
        node.publisher(t).subscription_count = 1


def published(node, topic):
    return node.publisher(topic).published


def warns(node):  # (without the once-only "input far from the model's training geometry" warning)
    return [m for sev, m in node.logged if sev == "WARN" and "was trained on" not in m]


# ---- parameters ---------------------------------------------------------------------------
def test_parameters_declared_with_descriptors_and_yaml_defaults(make_node):
    import yaml

    node = make_node()
    for spec in PARAMS:
        assert node.get_parameter(spec.name).value == spec.default
        d = node.describe_parameter(spec.name)
        assert d.description and d.read_only == spec.read_only
        if spec.range is not None:
            r = (d.floating_point_range if spec.type is float else d.integer_range)
            assert len(r) == 1 and (r[0].from_value, r[0].to_value) == spec.range[:2]
    for name in ("model", "backend", "device", "precision", "qos_reliability", "use_compressed"):
        assert node.describe_parameter(name).read_only
    # config/depth.yaml holds the same defaults, with the same (static) types
    doc = yaml.safe_load((ROOT / "config" / "depth.yaml").read_text())
    values = doc["/**"]["ros__parameters"]
    assert values == DEFAULTS
    assert all(type(values[k]) is type(v) for k, v in DEFAULTS.items())
def test_range_against_the_models_own_bounds(make_node, pipeline):
    from rclpy.parameter import Parameter

    node = make_node()
    (r,) = node.set_parameters([Parameter("min_depth", value=pipeline.profile.max_depth + 1.0)])
    assert not r.successful and "empty" in r.reason


def test_qos_and_topics(make_node):
    from rclpy.qos import ReliabilityPolicy, qos_profile_sensor_data

    node = make_node()
    assert node.subscription("image").qos_profile == qos_profile_sensor_data
    assert node.subscription("camera_info").qos_profile == qos_profile_sensor_data
    assert node.subscription("image").msg_type.__name__ == "Image"
    for t in OUTPUTS:
        assert node.publisher(t).qos_profile.reliability == ReliabilityPolicy.RELIABLE
    be = make_node(qos_reliability="best_effort", use_compressed=True, qos_depth=2)
    assert all(be.publisher(t).qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for t in OUTPUTS)
    assert be.publisher("depth/image").qos_profile.depth == 2
    assert be.subscription("image/compressed").msg_type.__name__ == "CompressedImage"


# ---- frames ---------------------------------------------------------------------------------
def test_full_frame_outputs_headers_and_latency(make_node, bag_frames, pipeline):
    from rclpy.clock import Clock

    node = make_node(points_color=True)
    subscribe(node)
    img, info = bag_frames[0]
    image, camera_info = to_fake(img), to_fake(info)  # the bag's messages as-is (1242x375 rgb8)
    stamp_ns = conv.stamp_to_ns(img.header.stamp)
    Clock.frozen_ns = stamp_ns + 250_000_000
    try:
        node.subscription("camera_info").deliver(camera_info)
        node.subscription("image").deliver(image)
        assert node.process_once()
        assert not node.process_once()  # nothing pending any more
    finally:
        Clock.frozen_ns = None
    for t in OUTPUTS:
        (msg,) = published(node, t)
        assert conv.stamp_to_ns(msg.header.stamp) == stamp_ns
        assert msg.header.frame_id == "camera_color_left"
    depth_msg = published(node, "depth/image")[0]
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height, depth_msg.step) == ("32FC1", 1242, 375, 1242 * 4)
    depth = conv.image_msg_to_depth(depth_msg)
    # what the pipeline computes for the same frame
    intr = conv.camera_info_to_intrinsics(info)
    ref = pipeline.infer_rgb(conv.image_msg_to_rgb(img), intr)
    np.testing.assert_array_equal(np.isnan(depth), np.isnan(ref.depth))
    np.testing.assert_allclose(depth[np.isfinite(depth)], ref.depth[np.isfinite(ref.depth)], rtol=1e-6)
    assert conv.camera_info_to_intrinsics(published(node, "depth/camera_info")[0]) == ref.intrinsics
    cloud = conv.pointcloud2_to_array(published(node, "depth/points")[0])
    assert cloud.shape == depth.shape and cloud.dtype.names == ("x", "y", "z", "rgb")
    np.testing.assert_array_equal(np.isnan(cloud["z"]), np.isnan(depth))
    colored = published(node, "depth/colored")[0]
    assert (colored.encoding, colored.width, colored.height) == ("rgb8", 1242, 375)
    # diagnostics: latency = publish time - image stamp (clock frozen at stamp + 250 ms)
    node._updater.update()
    status = {s.name: s for s in published(node, "/diagnostics")[-1].status}
    proc = {kv.key: kv.value for kv in status["depth_node: processing"].values}
    assert proc["latency last (ms)"] == "250.0"
    assert proc["frames processed"] == "1" and proc["frames dropped (stale)"] == "0"
    assert "depth_node: depth topic status" in status
def test_buffers_are_reused_and_published_messages_stay_intact(make_node, bag_frames, pipeline):
    """The decode and colour buffers are reused from frame to frame; every message owns its data, so
    a later frame does not change what an earlier one published."""
    from mono_depth_ros.colorize import colorize_depth

    node = make_node(points_color=True)
    subscribe(node)
    image, info, small, intr = small_frame(bag_frames)
    dark, _, _, _ = small_frame(bag_frames)
    dark.data = array.array("B", (small // 3).tobytes())
    node.subscription("camera_info").deliver(info)
    bufs = []
    for msg in (image, dark, image):
        node.subscription("image").deliver(msg)
        assert node.process_once()
        bufs.append((node._rgb, node._colored))
    assert all(b[0] is bufs[0][0] and b[1] is bufs[0][1] for b in bufs)
    lo, hi = pipeline.profile.min_depth, pipeline.profile.max_depth
    for i, rgb in enumerate((small, small // 3, small)):
        ref = pipeline.infer_rgb(np.ascontiguousarray(rgb), intr)
        depth = conv.image_msg_to_depth(published(node, "depth/image")[i])
        np.testing.assert_array_equal(depth, ref.depth)
        colored = np.frombuffer(published(node, "depth/colored")[i].data, np.uint8).reshape(rgb.shape)
        np.testing.assert_array_equal(colored, colorize_depth(ref.depth, lo, hi))
        cloud = conv.pointcloud2_to_array(published(node, "depth/points")[i])
        np.testing.assert_array_equal(cloud["z"], ref.depth)
    assert not np.array_equal(conv.image_msg_to_depth(published(node, "depth/image")[0]),
                              conv.image_msg_to_depth(published(node, "depth/image")[1]))


def test_outputs_without_subscribers_are_not_computed(make_node, bag_frames, pipeline, monkeypatch):
    calls = []
    real = pipeline.infer_rgb
    monkeypatch.setattr(pipeline, "infer_rgb", lambda *a, **k: calls.append(1) or real(*a, **k))
    node = make_node()
    image, info, _, _ = small_frame(bag_frames)
    node.subscription("camera_info").deliver(info)
    node.subscription("image").deliver(image)
    assert node.process_once()
    assert calls == [] and node._stats.idle == 1
    assert all(published(node, t) == [] for t in OUTPUTS)
    # points disabled: a points subscriber alone does not trigger inference either
    assert node.set_parameters([__import__("rclpy.parameter").parameter.Parameter("points_enabled", value=False)])[0].successful
    subscribe(node, "depth/points")
    node.subscription("image").deliver(image)
    node.process_once()
    assert calls == [] and node._stats.idle == 2
    # only depth/colored subscribed: only it is published
    subscribe(node, "depth/colored")
    node.subscription("image").deliver(image)
    node.process_once()
    assert len(calls) == 1 and len(published(node, "depth/colored")) == 1
    assert all(published(node, t) == [] for t in ("depth/image", "depth/camera_info", "depth/points"))


def test_only_the_newest_frame_is_processed(make_node, bag_frames):
    node = make_node()
    subscribe(node, "depth/image")
    for sec in (1, 2, 3):
        image, info, _, _ = small_frame(bag_frames, sec=sec)
        node.subscription("camera_info").deliver(info)
        node.subscription("image").deliver(image)
    assert node.process_once()
    assert not node.process_once()
    (msg,) = published(node, "depth/image")
    assert msg.header.stamp.sec == 3
    assert (node._stats.received, node._stats.dropped, node._stats.processed) == (3, 2, 1)


def test_without_camera_info_depth_only_and_one_warning(make_node, bag_frames):
    node = make_node(camera_info_wait=0.0)  # no wait for a first camera_info (test_node_input.py: the wait)
    subscribe(node)
    image, _, _, _ = small_frame(bag_frames)
    for _ in range(3):
        node.subscription("image").deliver(image)
        node.process_once()
    assert len(published(node, "depth/image")) == 3 and len(published(node, "depth/colored")) == 3
    assert published(node, "depth/points") == [] and published(node, "depth/camera_info") == []
    assert len([w for w in warns(node) if "camera_info" in w]) == 1


def test_camera_info_of_another_size_follows_the_one_policy(make_node, bag_frames, pipeline):
    """camera.fit_intrinsics on the node: the full-size camera_info with half-size images (binning) is
    scaled (one warning for many frames); a camera_info of another aspect ratio skips the frame, counted,
    with one throttled line."""
    node = make_node()
    subscribe(node)
    image, _, small, _ = small_frame(bag_frames)
    _, info = bag_frames[0]
    full = conv.camera_info_to_intrinsics(info)
    node.subscription("camera_info").deliver(to_fake(info))
    for _ in range(3):
        node.subscription("image").deliver(image)
        assert node.process_once()
    scaled = full.scaled_to(small.shape[1], small.shape[0])
    infos = published(node, "depth/camera_info")
    assert len(infos) == 3 and all(conv.camera_info_to_intrinsics(m) == scaled for m in infos)
    assert node._stats.bad == 0 and len([w for w in warns(node) if "scaling the intrinsics" in w]) == 1
    assert "scaled to the" in node._camera_note            # what /diagnostics' camera_info value says
    cloud = conv.pointcloud2_to_array(published(node, "depth/points")[0])
    ref = pipeline.infer_rgb(np.ascontiguousarray(small), scaled)
    np.testing.assert_array_equal(cloud["z"], ref.depth)
    other = to_fake(info)
    other.height = info.height // 3                          # another aspect ratio: a wrong camera_info
    node.subscription("camera_info").deliver(other)
    for _ in range(3):
        node.subscription("image").deliver(image)
        assert node.process_once()
    assert node._stats.bad == 3 and "another aspect ratio" in node._stats.last_bad
    assert len(published(node, "depth/image")) == 3              # nothing more published
    skipped = [w for w in warns(node) if "skipping frame" in w]
    assert len(skipped) == 1 and "another aspect ratio" in skipped[0]
    assert "does not fit" in node._camera_note and "frames skipped" in node._camera_note   # not "ok"


def test_compressed_input(make_node, bag_frames):
    from sensor_msgs.msg import CompressedImage

    node = make_node(use_compressed=True)
    subscribe(node, "depth/image")
    image, info, small, _ = small_frame(bag_frames)
    ok, jpg = cv2.imencode(".jpg", small[:, :, ::-1])
    msg = CompressedImage(header=image.header, format="rgb8; jpeg compressed bgr8", data=array.array("B", jpg.tobytes()))
    node.subscription("camera_info").deliver(info)
    node.subscription("image/compressed").deliver(msg)
    node.process_once()
    (out,) = published(node, "depth/image")
    assert (out.width, out.height) == (small.shape[1], small.shape[0])


def test_worker_thread_processes_and_stops(make_node, bag_frames):
    node = make_node()
    subscribe(node, "depth/image")
    image, info, _, _ = small_frame(bag_frames)
    node.subscription("camera_info").deliver(info)
    node.start()
    node.subscription("image").deliver(image)
    deadline = time.monotonic() + 30
    while not published(node, "depth/image") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(published(node, "depth/image")) == 1
    node.stop()
    assert not node._thread.is_alive()
    assert "depth_worker" not in [t.name for t in threading.enumerate()]


# ---- diagnostics bounds, cv_bridge -----------------------------------------------------------
def test_expected_max_rate_zero_means_no_upper_bound(make_node):
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.parameter import Parameter

    def topic_status(node):
        node._updater.update()
        return {s.name: s for s in published(node, "/diagnostics")[-1].status}["depth_node: depth topic status"]

    node = make_node(expected_max_rate=0.0)
    for _ in range(5):
        node._freq.tick()  # 5 events within microseconds: far above any finite bound
    assert "max" not in node._freq_bounds and topic_status(node).level == DiagnosticStatus.OK
    assert node.set_parameters([Parameter("expected_max_rate", value=50.0)])[0].successful
    for _ in range(5):
        node._freq.tick()
    st = topic_status(node)
    assert node._freq_bounds["max"] == 50.0 and st.level == DiagnosticStatus.WARN and "too high" in st.message


def test_input_loss_counts_a_frame_seen_by_dds_and_by_stamps_once(make_node):
    """DDS reports a lost frame when it gives up on it, the stamp gap shows it only when the next frame comes:
    often in different diagnostics updates. The recent loss must count it once."""
    def processing(node):
        node._updater.update()
        st = {s.name: s for s in published(node, "/diagnostics")[-1].status}["depth_node: processing"]
        return {kv.key: kv.value for kv in st.values}, st

    node = make_node()
    s = node._stats
    s.received, s.dds_lost = 10, 10            # update 1: 10 received, DDS reports 10 lost
    assert processing(node)[0]["input loss (recent %)"] == "50.0"
    s.received, s.gaps.missing = 20, 10        # update 2: 10 more received; the stamps now show the same 10
    values, st = processing(node)
    assert values["input loss (recent %)"] == f"{100 * 10 / 30:.1f}"   # 10 of 30, not 20 of 40
    assert "10 in the last 2 updates" in st.message
    s.received, s.dds_lost, s.gaps.missing = 30, 15, 12   # update 3: 5 more lost (DDS), 2 of them by stamps
    assert processing(node)[0]["input loss (recent %)"] == f"{100 * 15 / 45:.1f}"


def _fake_cv_bridge(broken: bool):
    """A cv_bridge module with the real signatures (cv2_to_imgmsg(cvim, encoding, header),
    imgmsg_to_cv2(img_msg, desired_encoding)); ``broken`` fails like cv_bridge under OpenCV 5."""
    import types as _types

    mod = _types.ModuleType("cv_bridge")

    class CvBridgeError(TypeError):
        pass

    class CvBridge:
        def cv2_to_imgmsg(self, cvim, encoding="passthrough", header=None):
            if broken:
                raise KeyError(16)
            T = conv.MessageTypes.from_rclpy()
            return conv.array_to_image_msg(T, cvim, encoding, header if header is not None else T.Header())

        def imgmsg_to_cv2(self, img_msg, desired_encoding="passthrough"):
            if broken:
                raise KeyError(16)
            if img_msg.encoding != desired_encoding:  # this stand-in converts nothing
                raise CvBridgeError(f"{img_msg.encoding} -> {desired_encoding} not supported")
            if desired_encoding == "32FC1":
                return conv.image_msg_to_depth(img_msg)
            return conv.image_msg_to_rgb(img_msg)

    mod.CvBridge, mod.CvBridgeError = CvBridge, CvBridgeError
    return mod


@pytest.mark.parametrize("broken", [True, False])
def test_cv_bridge_used_when_it_works_else_field_conversions(make_node, bag_frames, broken):
    sys.modules["cv_bridge"] = _fake_cv_bridge(broken)  # fake_ros.installed() removes it again
    node = make_node()
    assert (node._bridge is None) == broken
    assert any("cv_bridge" in w for w in warns(node)) == broken
    subscribe(node)
    image, info, small, _ = small_frame(bag_frames, sec=7, nanosec=9)
    bgr = conv.array_to_image_msg(conv.MessageTypes.from_rclpy(), np.ascontiguousarray(small[:, :, ::-1]), "bgr8",
                                  image.header)
    node.subscription("camera_info").deliver(info)
    for msg in (image, bgr):  # bgr8: the stand-in bridge refuses it, the field-level decoder takes it
        node.subscription("image").deliver(msg)
        assert node.process_once()
    assert node._stats.bad == 0 and all(len(published(node, t)) == 2 for t in OUTPUTS)
    d0, d1 = (conv.image_msg_to_depth(m) for m in published(node, "depth/image"))
    np.testing.assert_array_equal(d0, d1)  # same pixels, whichever decoder
    assert all((m.header.stamp.sec, m.header.stamp.nanosec) == (7, 9) for m in published(node, "depth/colored"))


@pytest.mark.parametrize("color", [False, True])
def test_unorganised_cloud(make_node, bag_frames, pipeline, color):
    """Unorganised clouds (invalid points dropped) are built by conversions, never sensor_msgs_py's
    create_cloud (it copies the points two to three times)."""
    node = make_node(points_organized=False, points_color=color)
    subscribe(node, "depth/points")
    image, info, small, intr = small_frame(bag_frames)
    node.subscription("camera_info").deliver(info)
    node.subscription("image").deliver(image)
    assert node.process_once() and node._stats.errors == 0
    (msg,) = published(node, "depth/points")
    assert msg.height == 1 and msg.is_dense is True
    assert msg.point_step == (32 if color else 16) and msg.row_step == msg.point_step * msg.width
    got = conv.pointcloud2_to_array(msg).reshape(-1)
    from mono_depth_ros.pointcloud import CloudBuilder

    ref = CloudBuilder().build(pipeline.infer_rgb(small, intr).depth, intr, rgb=small if color else None,
                               organized=False)
    assert msg.width == ref.width > 0 and bytes(msg.data) == ref.data.tobytes()
    assert np.isfinite(got["z"]).all()


def test_stop_after_a_start_interrupted_before_the_thread_ran(make_node):
    """Ctrl-C inside start() (seen under load in the real-rclpy tier): the Thread object exists but never
    started; stop() must not raise 'cannot join thread before it is started' (a traceback and exit 1)."""
    import threading

    node = make_node()
    node._thread = threading.Thread(target=lambda: None)
    node.stop()
    assert node._stop.is_set()
