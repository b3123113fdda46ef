"""launch_testing: depth.launch.py starts depth_node with a tiny model; images + camera_info in,
depth/image, depth/camera_info and depth/points out with the right encodings, sizes, stamps and
frames; Ctrl-C (the launch's SIGINT at shutdown) exits 0 without a traceback.

Needs a ROS 2 environment with this package built and sourced: ``launch_test
test/launch_tests/depth_node_launch.py``. The suite runs it that way against the ../shared/ros2 bundle
(test/test_ros2_full.py); the file name keeps pytest from collecting it directly. Under the bundle
cv_bridge is importable and works, so this is also the run of the node's cv_bridge path: the node must
not fall back (no "does not work here" warning).
"""
import array
import os
import random
import tempfile
import time
import unittest
from pathlib import Path

import numpy as np
import pytest

import rclpy  # noqa: E402
import launch_testing  # noqa: E402
import torch  # noqa: E402

import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402

# Keep parallel test runs apart (set before the node starts and before rclpy.init below); the suite
# passes its own ROS_DOMAIN_ID (test/ros_domains.py).
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 101)))
if os.environ.get("ROS_DISTRO") == "humble":
    os.environ.setdefault("ROS_LOCALHOST_ONLY", "1")
else:  # Jazzy and later
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

NS = "mdtest"
IMAGE_TOPIC = "/mdtest_cam/image"
INFO_TOPIC = "/mdtest_cam/camera_info"
W, H = 320, 96
STAMP = (42, 7)
FRAME = "mdtest_optical_frame"


def _tiny_model() -> str:
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from mono_depth_ros.profiles import Profile

    torch.manual_seed(0)
    profile = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                      fine_channels=8, min_depth=0.5, max_depth=80.0)
    path = Path(tempfile.mkdtemp(prefix="mdtest_")) / "tiny.pt"
    save_model(EigenDepthNet(profile, "fine"), path)
    return str(path)


@pytest.mark.launch_test
def generate_test_description():
    launch_file = Path(get_package_share_directory("mono_depth_ros")) / "launch" / "depth.launch.py"
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(str(launch_file)),
        launch_arguments={"model": _tiny_model(), "backend": "torch", "namespace": NS, "image": IMAGE_TOPIC,
                          "camera_info": INFO_TOPIC, "rviz": "false"}.items())
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestDepthNodeTopics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rclpy.init()
        cls.node = rclpy.create_node("depth_node_probe")

    @classmethod
    def tearDownClass(cls):
        cls.node.destroy_node()
        rclpy.shutdown()

    def test_outputs_arrive_with_encodings_sizes_stamps_frames(self, proc_output):
        from builtin_interfaces.msg import Time
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import Header

        got = {"depth": [], "info": [], "points": []}
        reliable = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        subs = [self.node.create_subscription(Image, f"/{NS}/depth/image", got["depth"].append, reliable),
                self.node.create_subscription(CameraInfo, f"/{NS}/depth/camera_info", got["info"].append, reliable),
                self.node.create_subscription(PointCloud2, f"/{NS}/depth/points", got["points"].append, reliable)]
        pub_image = self.node.create_publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
        pub_info = self.node.create_publisher(CameraInfo, INFO_TOPIC, qos_profile_sensor_data)

        header = Header(stamp=Time(sec=STAMP[0], nanosec=STAMP[1]), frame_id=FRAME)
        u = np.linspace(0, 255, W, dtype=np.float32)[None, :]
        v = np.linspace(0, 255, H, dtype=np.float32)[:, None]
        rgb = np.stack([u + 0 * v, v + 0 * u, 128 + 0 * (u + v)], axis=2).astype(np.uint8)
        image = Image(header=header, height=H, width=W, encoding="rgb8", is_bigendian=0, step=W * 3)
        image.data = array.array("B", rgb.tobytes())  # uint8[]: array.array skips rosidl's per-byte check
        info = CameraInfo(header=header, height=H, width=W, distortion_model="plumb_bob")
        info.k = [200.0, 0.0, 160.0, 0.0, 200.0, 48.0, 0.0, 0.0, 1.0]
        info.p = [200.0, 0.0, 160.0, 0.0, 0.0, 200.0, 48.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]

        deadline = time.monotonic() + 90.0
        while time.monotonic() < deadline and not all(got.values()):
            pub_info.publish(info)
            pub_image.publish(image)
            end = time.monotonic() + 0.3
            while time.monotonic() < end:
                rclpy.spin_once(self.node, timeout_sec=0.05)
        for s in subs:
            self.node.destroy_subscription(s)
        self.assertTrue(all(got.values()), f"not all outputs arrived: { {k: len(v) for k, v in got.items()} }")

        depth = got["depth"][0]
        self.assertEqual((depth.encoding, depth.width, depth.height, depth.step), ("32FC1", W, H, W * 4))
        d = np.frombuffer(bytes(depth.data), dtype="<f4").reshape(H, W)
        self.assertTrue(np.isfinite(d).any())
        cam = got["info"][0]
        self.assertEqual((cam.width, cam.height), (W, H))
        self.assertAlmostEqual(cam.k[0], 200.0, places=3)
        pts = got["points"][0]
        self.assertEqual((pts.height, pts.width), (H, W))  # organised by default
        self.assertEqual([f.name for f in pts.fields][:3], ["x", "y", "z"])
        for m in (depth, cam, pts):
            self.assertEqual((m.header.stamp.sec, m.header.stamp.nanosec), STAMP)
            self.assertEqual(m.header.frame_id, FRAME)


@launch_testing.post_shutdown_test()
class TestShutdown(unittest.TestCase):
    def test_clean_exit_on_sigint(self, proc_info, proc_output):
        launch_testing.asserts.assertExitCodes(proc_info)  # depth_node returns 0 after Ctrl-C
        for output in proc_output:
            self.assertNotIn(b"Traceback", output.text)
            self.assertNotIn(b"does not work here", output.text)  # cv_bridge, where installed, is used
