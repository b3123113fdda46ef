"""The live evaluator's logic (ROS-agnostic LiveEvaluation) on the sample bag, and -- only where
ROS 2 is installed -- eval.launch.py end to end (skipped otherwise)."""
import ast
import importlib.util
import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, sample_bag_messages, shared_path
from mono_depth_ros.bag import io as bio
from mono_depth_ros.bag.evaluate import DepthEvaluator, LiveEvaluation, camera_info_K, lidar_to_depth

SAMPLE = ("ros2_bags", "kitti_2frames_repackaged.mcap")


def _sample():
    return sample_bag_messages()


def test_live_evaluation_latency_drops_and_metrics():
    msgs, tf = _sample()
    images = msgs["/kitti/camera_color_left/image_raw"]
    infos = msgs["/kitti/camera_color_left/camera_info"]
    clouds = msgs["/kitti/velodyne_points"]
    ev = DepthEvaluator(["paper"])
    live = LiveEvaluation(ev, tf.lookup, gt_max_dt=0.05, drop_timeout=1.0)
    stamps = [bio.stamp_to_ns(m.header.stamp) for m in images]
    K = camera_info_K(infos[0].k, infos[0].p)
    T = tf.lookup(infos[0].header.frame_id, clouds[0].header.frame_id)
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
    assert ev.totals()["paper"]["delta1"] == 1.0


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


def _ros2_available():
    return (importlib.util.find_spec("rclpy") is not None and importlib.util.find_spec("launch_ros") is not None
            and shutil.which("ros2") is not None)


@pytest.mark.skipif(not _ros2_available(), reason="needs a sourced ROS 2 with mono_depth_ros installed "
                                                  "(ros2 launch, rclpy, launch_ros)")
def test_eval_launch_end_to_end(tmp_path):  # pragma: no cover - only with ROS 2
    torch = pytest.importorskip("torch")
    from mono_depth_ros.bag.kitti2bag import convert
    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet
    from mono_depth_ros.profiles import Profile

    drive = shared_path("kitti_raw_layout_repackaged", "2011_09_26", "2011_09_26_drive_9999_sync")
    bag = tmp_path / "kitti_bag"
    convert(drive, bag)
    torch.manual_seed(0)
    model = tmp_path / "tiny.pt"
    save_model(EigenDepthNet(Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64,
                                     coarse_channels=(8, 16, 16, 16, 16), fine_channels=8)), model)
    env = dict(os.environ, ROS_DOMAIN_ID=str(100 + os.getpid() % 100),
               ROS_LOCALHOST_ONLY="1",                       # Humble
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")    # Jazzy and later
    out = tmp_path / "live"
    proc = subprocess.Popen(["ros2", "launch", "mono_depth_ros", "eval.launch.py", f"bag:={bag}", f"model:={model}",
                             f"output_dir:={out}", "idle_shutdown:=4.0", "play_delay:=4.0", "rate:=0.5"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        log, _ = proc.communicate(timeout=20)
        pytest.fail("eval.launch.py did not finish:\n" + log.decode(errors="replace")[-4000:])
    doc = json.loads((out / "live_eval.json").read_text())
    assert doc["input_images"] == 2, log.decode(errors="replace")[-4000:]
    assert doc["depth_images"] + doc["dropped_frames"] == 2
    assert doc["frames_evaluated"] == doc["depth_images"] >= 1
    assert doc["latency_mean_ms"] > 0
    assert Path(out / "live_eval_frames.csv").exists()
