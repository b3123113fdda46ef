"""The live evaluator's logic (ROS-agnostic LiveEvaluation) on the sample bag. eval.launch.py end to end
(ros2 launch + ros2 bag play) is in the full-ROS tier: test/test_ros2_full.py."""
import ast
import json

import numpy as np
import pytest

from conftest import ROOT, sample_bag_messages
from mono_depth_ros.bag import io as bio
from mono_depth_ros.bag.evaluate import DepthEvaluator, LiveEvaluation, camera_info_K, lidar_to_depth

SAMPLE = ("ros2_bags", "kitti_2frames_repackaged.mcap")


def _sample():
    return sample_bag_messages()


def _live_setup(drop_timeout: float):
    """The sample bag's images, clouds and stamps, a LiveEvaluation on it, and the camera's K and the
    LiDAR -> camera transform."""
    msgs, tf = _sample()
    images = msgs["/kitti/camera_color_left/image_raw"]
    infos = msgs["/kitti/camera_color_left/camera_info"]
    clouds = msgs["/kitti/velodyne_points"]
    live = LiveEvaluation(DepthEvaluator(["paper"]), tf.lookup, gt_max_dt=0.05, drop_timeout=drop_timeout)
    stamps = [bio.stamp_to_ns(m.header.stamp) for m in images]
    K = camera_info_K(infos[0].k, infos[0].p)
    T = tf.lookup(infos[0].header.frame_id, clouds[0].header.frame_id)
    return images, clouds, stamps, live, K, T


def test_live_evaluation_latency_drops_and_metrics():
    images, clouds, stamps, live, K, T = _live_setup(drop_timeout=1.0)
    gt0 = lidar_to_depth(bio.pointcloud2_xyz(clouds[0]), T, K, 1242, 375)
    # frame 0: image at wall 10.0, its depth (= the ground truth itself) at 10.08; frame 1: never
    live.on_image(stamps[0], 10.0, rgb=lambda: bio.image_to_array(images[0]))
    live.on_lidar(stamps[0], bio.pointcloud2_xyz(clouds[0]), clouds[0].header.frame_id)
    recs = live.on_depth(stamps[0], 10.08, np.where(gt0 > 0, gt0, np.nan), K, images[0].header.frame_id)
    assert recs == []                         # a nearer LiDAR scan could still come
    live.on_image(stamps[1], 10.1)
    recs = live.on_lidar(stamps[1], bio.pointcloud2_xyz(clouds[1]), clouds[1].header.frame_id)
    assert len(recs) == 1 and recs[0].metrics["paper"]["abs_rel"] == pytest.approx(0, abs=1e-6)
    assert recs[0].extra["latency_s"] == pytest.approx(0.08)
    live.on_image(stamps[1] + 10**9, 11.5)   # 1.4 s later: frame 1 has timed out -> dropped
    assert live.dropped == 1
    live.finish()
    s = live.stats()
    assert s["input_images"] == 3 and s["depth_images"] == 1 and s["dropped_frames"] == 2
    assert s["frames_evaluated"] == 1 and s["latency_mean_ms"] == pytest.approx(80.0)
    assert live.evaluator.totals()["paper"]["delta1"] == 1.0


def test_live_evaluation_writes_latency_column(tmp_path):
    msgs, tf = _sample()
    infos = msgs["/kitti/camera_color_left/camera_info"]
    clouds = msgs["/kitti/velodyne_points"]
    ev = DepthEvaluator(["paper", "garg80"])
    live = LiveEvaluation(ev, tf.lookup)
    K = camera_info_K(infos[0].k, infos[0].p)
    for i, c in enumerate(clouds):
        st = bio.stamp_to_ns(c.header.stamp)
        live.on_image(st, float(i), None)
        live.on_lidar(st, bio.pointcloud2_xyz(c), c.header.frame_id)
        live.on_depth(st, i + 0.03, np.full((375, 1242), 12.0, np.float32), K, infos[0].header.frame_id)
    live.finish()
    paths = ev.write(tmp_path, prefix="live_eval", extra=live.stats(), plots=False)
    header = paths["csv"].read_text().splitlines()[0].split(",")
    assert header[-1] == "latency_s"
    doc = json.loads(paths["json"].read_text())
    assert doc["frames_evaluated"] == 2 and doc["dropped_frames"] == 0
    assert doc["frames"][1]["latency_s"] == pytest.approx(0.03)


def test_launch_and_node_files_are_valid_python_with_expected_entry_points():
    launch = ROOT / "launch" / "eval.launch.py"
    tree = ast.parse(launch.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    text = launch.read_text()
    assert 'executable="depth_evaluator"' in text and '"depth.launch.py"' in text and '"play"' in text
    node = ast.parse((ROOT / "mono_depth_ros" / "ros" / "evaluator_node.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in node.body)


def test_live_evaluation_depth_after_the_next_lidar_scan_still_finds_its_ground_truth():
    """Live, a frame's depth arrives after its camera image by the node's processing time, often after
    the next LiDAR scan: the scan it needs is kept while its camera image awaits depth."""
    images, clouds, stamps, live, K, T = _live_setup(drop_timeout=5.0)
    for i in range(2):   # the bag's order: camera image, LiDAR scan; frame 1 one second later
        live.on_image(stamps[i], 10.0 + i)
        assert live.on_lidar(stamps[i], bio.pointcloud2_xyz(clouds[i]), clouds[i].header.frame_id) == []
    recs = []
    for i in range(2):   # the depth of both frames only now
        gt = lidar_to_depth(bio.pointcloud2_xyz(clouds[i]), T, K, 1242, 375)
        recs += live.on_depth(stamps[i], 12.0 + i, np.where(gt > 0, gt, np.nan), K, images[i].header.frame_id)
    recs += live.finish()
    s = live.stats(expected_images=2)
    assert len(recs) == 2 and s["frames_without_ground_truth"] == 0 and s["frame_coverage"] == 1.0
    assert all(r.metrics["paper"]["abs_rel"] == pytest.approx(0, abs=1e-6) for r in recs)


def test_live_evaluation_depth_before_its_input_image_is_not_a_drop():
    """The evaluator receives the camera image and the node's depth separately; the depth can win."""
    ev = DepthEvaluator(["paper"])
    live = LiveEvaluation(ev, lambda a, b: np.eye(4), drop_timeout=1.0)
    K = np.array([[100.0, 0, 16], [0, 100.0, 8], [0, 0, 1]])
    live.on_depth(5, 10.0, np.ones((16, 32), np.float32), K, "cam")
    assert live.unmatched_depth == 1
    live.on_image(5, 10.01)          # its input image, later
    live.on_image(6, 20.0)           # much later: nothing of frame 5 left to expire
    live.finish()
    s = live.stats()
    assert s["depth_without_input_image"] == 0 and s["dropped_frames"] == 1   # only frame 6, never served
    assert s["input_images"] == 2 and s["depth_images"] == 1
