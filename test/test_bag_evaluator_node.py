"""depth_evaluator node glue, on the project's fake rclpy (test/fake_rclpy) and a fake tf2_ros built
from the sample bag's /tf_static. The real rclpy / tf2 behaviour is only checked with ROS 2
(test_bag_live.py::test_eval_launch_end_to_end)."""
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from conftest import sample_bag_messages
from mono_depth_ros.bag import io as bio
from mono_depth_ros.bag.evaluate import camera_info_K, lidar_to_depth

sys.path.insert(0, str(Path(__file__).parent / "fake_rclpy"))
from fake_ros import installed  # noqa: E402

sys.path.pop(0)

SAMPLE = ("ros2_bags", "kitti_2frames_repackaged.mcap")
MODULE = "mono_depth_ros.ros.evaluator_node"


def _to_fake(m):
    import _fake_msgs

    return _fake_msgs.from_rosbags(m)


@pytest.fixture
def evaluator_node(monkeypatch):
    msgs, static = sample_bag_messages()
    factory = bio.MessageFactory()
    lookups = []

    class Buffer:
        def lookup_transform(self, target, source, time, timeout=None):
            lookups.append((target, source))
            return factory.transform_stamped(0, target, source, static.lookup(target, source))

    tf2 = types.ModuleType("tf2_ros")
    tf2.Buffer = Buffer
    tf2.TransformListener = lambda buffer, node: None
    with installed() as rclpy:
        monkeypatch.setitem(sys.modules, "tf2_ros", tf2)
        monkeypatch.delitem(sys.modules, MODULE, raising=False)
        import mono_depth_ros.ros.evaluator_node as mod

        yield rclpy, mod, msgs, static, lookups
        sys.modules.pop(MODULE, None)


@pytest.mark.parametrize("order", ["info_first", "depth_first"])
def test_evaluator_node_metrics_latency_and_files(evaluator_node, tmp_path, order):
    """depth_first is depth_node's own order (depth/image, then depth/camera_info): the depth image
    waits for the camera_info of its stamp; both frames are scored either way."""
    rclpy, mod, msgs, static, lookups = evaluator_node
    from rclpy.parameter import Parameter

    from mono_depth_ros.ros import conversions as conv

    rclpy.init()
    node = mod.DepthEvaluatorNode(parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("lidar_topic", value="/kitti/velodyne_points"),
        Parameter("report_every", value=1)])
    T = conv.MessageTypes.from_rclpy()
    images = msgs["/kitti/camera_color_left/image_raw"]
    infos = msgs["/kitti/camera_color_left/camera_info"]
    clouds = msgs["/kitti/velodyne_points"]
    for img, info, cloud in zip(images, infos, clouds):
        K = camera_info_K(info.k, info.p)
        Tm = static.lookup(info.header.frame_id, cloud.header.frame_id)
        gt = lidar_to_depth(bio.pointcloud2_xyz(cloud), Tm, K, info.width, info.height)
        node.subscription("image").deliver(_to_fake(img))
        node.subscription("/kitti/velodyne_points").deliver(_to_fake(cloud))
        header = conv.make_header(T, img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id)
        depth = conv.depth_to_image_msg(T, np.where(gt > 0, gt, np.nan), header)
        if order == "info_first":
            node.subscription("depth/camera_info").deliver(_to_fake(info))
            node.subscription("depth/image").deliver(depth)
        else:
            node.subscription("depth/image").deliver(depth)
            assert len(node._waiting) == 1                      # held until its camera_info comes
            node.subscription("depth/camera_info").deliver(_to_fake(info))
            assert not node._waiting
    node.finish()
    doc = json.loads((tmp_path / "live_eval.json").read_text())
    assert doc["frames_evaluated"] == 2 and doc["input_images"] == 2 and doc["dropped_frames"] == 0
    assert doc["totals"]["paper"]["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert doc["totals"]["garg80"]["delta1"] == 1.0
    assert doc["latency_mean_ms"] >= 0 and doc["evaluation_errors"] == 0
    assert lookups == [("camera_color_left", "velodyne")]       # static: looked up once
    assert (tmp_path / "live_eval_worst_frame.png").exists()
    assert any("depth evaluation" in str(e) for e in node.logged)
    node.destroy_node()


def test_evaluator_node_survives_a_missing_transform(evaluator_node, tmp_path):
    rclpy, mod, msgs, static, lookups = evaluator_node
    from mono_depth_ros.ros import conversions as conv

    rclpy.init()
    node = mod.DepthEvaluatorNode()
    T = conv.MessageTypes.from_rclpy()
    img, info, cloud = (msgs[t][0] for t in ("/kitti/camera_color_left/image_raw",
                                             "/kitti/camera_color_left/camera_info", "/kitti/velodyne_points"))
    fake_cloud = _to_fake(cloud)
    fake_cloud.header.frame_id = "unknown_lidar"
    node.subscription("depth/camera_info").deliver(_to_fake(info))
    header = conv.make_header(T, img.header.stamp.sec, img.header.stamp.nanosec, img.header.frame_id)
    node.subscription("depth/image").deliver(conv.depth_to_image_msg(T, np.ones((375, 1242), np.float32), header))
    node.subscription("/kitti/velodyne_points").deliver(fake_cloud)
    node.finish()                                                 # no crash: counted and logged
    assert node.live.errors == 1 and len(node.evaluator) == 0
    assert any("unknown_lidar" in str(e) for e in node.logged)
    node.destroy_node()
