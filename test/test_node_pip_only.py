"""depth_node with only rclpy + message packages (the PyPI Jazzy wheels), over real DDS.

One node process for the module (a tiny model), driven by this process's real rclpy: depth/image
comes back with the input's stamp, /diagnostics carries diagnostic_updater's statuses from the
built-in publisher (names, hardware id, FrequencyStatus keys, the diagnostic_updater.period
parameter), and two SIGINTs (what `ros2 launch` + the terminal send) end it with status 0 and no
traceback.
"""
from __future__ import annotations

import importlib.util
import statistics
import time

import pytest

from real_node import (RosHarness, make_camera_info, make_image, need_rclpy, save_tiny_model, start_node,
                       statuses, stop_node, values, wait_for)

need_rclpy()

NOT_ON_PYPI = ("diagnostic_updater", "cv_bridge", "sensor_msgs_py", "message_filters", "tf2_ros")
PERIOD = 0.25


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    present = [m for m in NOT_ON_PYPI if importlib.util.find_spec(m) is not None]
    if present:
        pytest.skip(f"{', '.join(present)} importable here (a ROS install is sourced): not a pip-only environment")
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, Image

    folder = tmp_path_factory.mktemp("pip_only")
    model = save_tiny_model(folder)
    h = RosHarness()
    log = folder / "node.log"
    proc = start_node(h, "-p", f"model:={model}", "-p", "backend:=torch", "-p", "threads:=1",
                      "-p", f"diagnostic_updater.period:={PERIOD}", "-p", "expected_min_rate:=0.5", log=log)
    depth = h.collect(Image, "depth/image")
    diags = h.collect(DiagnosticArray, "/diagnostics", 50)
    pub_img = h.node.create_publisher(Image, "image", 10)
    pub_info = h.node.create_publisher(CameraInfo, "camera_info", 10)
    wait_for(lambda: pub_img.get_subscription_count() and h.node.count_publishers("depth/image"),
             90, "depth_node's topics", proc, log)
    state = {"sent": 0, "stop": False}

    def camera():  # 5 Hz until the module ends
        while not state["stop"]:
            n = state["sent"]
            pub_info.publish(make_camera_info(100 + n))
            pub_img.publish(make_image(100 + n, 7))
            state["sent"] += 1
            time.sleep(0.2)

    import threading

    t = threading.Thread(target=camera, daemon=True)
    t.start()
    yield {"h": h, "proc": proc, "log": log, "depth": depth, "diags": diags}
    state["stop"] = True
    t.join()
    if proc.poll() is None:
        stop_node(proc)
    h.close()


def test_depth_image_over_real_dds(run):
    msg = wait_for(lambda: run["depth"] and run["depth"][-1], 60, "depth/image", run["proc"], run["log"])
    assert (msg.encoding, msg.width, msg.height) == ("32FC1", 160, 120)
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.nanosec == 7 and msg.header.stamp.sec >= 100


def test_diagnostics_same_statuses_as_diagnostic_updater(run):
    diags = run["diags"]
    topic = wait_for(lambda: [s for s in statuses(diags, "depth_node: depth topic status")
                              if s.message == "Desired frequency met"], 60,
                     "a depth topic status that is OK", run["proc"], run["log"])[-1]
    assert topic.level == b"\x00" and topic.hardware_id == "mono_depth_ros"
    assert {"Events in window", "Events since startup", "Duration of window (s)", "Actual frequency (Hz)",
            "Minimum acceptable frequency (Hz)", "Maximum acceptable frequency (Hz)"} <= set(values(topic))
    assert float(values(topic)["Minimum acceptable frequency (Hz)"]) == pytest.approx(0.45)
    proc = wait_for(lambda: [s for s in statuses(diags, "depth_node: processing")
                             if int(values(s).get("frames processed", "0")) > 0], 30, "processing", run["proc"])[-1]
    assert proc.hardware_id == "mono_depth_ros"
    assert {"frames received", "frames dropped (stale)", "bad input frames", "latency mean (ms)"} <= set(values(proc))


def test_diagnostic_updater_period_parameter_is_respected(run):
    diags = run["diags"]
    wait_for(lambda: len(statuses(diags, "depth_node: processing")) >= 8, 60, "8 diagnostics updates", run["proc"])
    stamps = [a.header.stamp.sec + a.header.stamp.nanosec * 1e-9 for a in list(diags)
              if any(s.name == "depth_node: processing" for s in a.status)]
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    # a timer fires late under load, never early: the median gap is PERIOD (0.25 s), far from the default 1 s
    assert PERIOD * 0.8 <= statistics.median(gaps) < 0.6, gaps


def test_two_sigints_exit_zero_without_traceback(run):
    wait_for(lambda: run["depth"], 60, "depth/image", run["proc"], run["log"])
    rc = stop_node(run["proc"], sigints=2)
    text = run["log"].read_text(errors="replace")
    assert rc == 0, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
