"""Helpers for tests that run the real ``depth_node`` (a child process) on real rclpy + DDS.

The test process talks to it through its own rclpy Context on a ROS_DOMAIN_ID of its own
(test/ros_domains.py), discovery on localhost only.  Tests skip with a reason where rclpy or torch is
not importable.  Everything waits for conditions with deadlines; no fixed sleep decides a result.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

import conftest
from ros_domains import claim_domain_id, ros_env

ROOT = Path(__file__).resolve().parents[1]
TINY_W, TINY_H = 160, 120


def need_rclpy():
    from ros_tiers import require_real_rclpy

    require_real_rclpy()  # skip with the reason; under CI=true fail (make venv installs the PyPI Jazzy wheels)
    return pytest.importorskip("rclpy", reason="rclpy not installed (make venv installs the PyPI Jazzy wheels)")


def save_tiny_model(folder: Path) -> Path:
    """A tiny Eigen et al. network with random weights (plumbing, not accuracy)."""
    return conftest.save_tiny_model(folder / "tiny.pt", conftest.TINY_NODE)


class RosHarness:
    """The test side: one rclpy Context + node + executor thread on its own domain."""

    def __init__(self, name: str = "depth_test") -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.domain = claim_domain_id()
        self.env = ros_env(self.domain)
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # read by rcl at init
        os.environ.pop("ROS_LOCALHOST_ONLY", None)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=self.domain,
                   signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - context shut down at the end of the module
            pass

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        self.context.try_shutdown()

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> List[Any]:
        box: List[Any] = []
        self.node.create_subscription(msg_type, topic, box.append, qos)
        return box


def start_node(harness: RosHarness, *ros_args: str, log: Optional[Path] = None,
               extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """``python -m mono_depth_ros.ros.node --ros-args ...`` on the harness's domain."""
    env = dict(harness.env)
    env.update(extra_env or {})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "mono_depth_ros.ros.node", "--ros-args", *ros_args],
                            env=env, cwd=str(ROOT), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop_node(proc: subprocess.Popen, sigints: int = 1, gap: float = 0.05, timeout: float = 30.0) -> int:
    """SIGINT (``sigints`` times, ``gap`` s apart, like the terminal + ros2 launch), then the exit status."""
    for i in range(sigints):
        if proc.poll() is None:
            if i:
                time.sleep(gap)
            proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition",
             proc: Optional[subprocess.Popen] = None, log: Optional[Path] = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace") if log is not None and log.exists() else ""
            raise AssertionError(f"depth_node exited ({proc.returncode}) while waiting for {what}:\n{text}")
        time.sleep(0.05)
    text = log.read_text(errors="replace") if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{text[-4000:]}")


def make_image(sec: int, nanosec: int = 0, w: int = TINY_W, h: int = TINY_H, frame_id: str = "cam_optical",
               seed: int = 0) -> Any:
    """A real sensor_msgs/Image (rgb8, a smooth gradient + noise)."""
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), np.full_like(xx, 128)], -1)
    rgb = np.clip(rgb + rng.integers(-10, 10, rgb.shape), 0, 255).astype(np.uint8)
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.header.frame_id = frame_id
    msg.height, msg.width, msg.encoding, msg.step = h, w, "rgb8", w * 3
    msg.data = rgb.tobytes()
    return msg


def make_camera_info(sec: int, nanosec: int = 0, w: int = TINY_W, h: int = TINY_H,
                     frame_id: str = "cam_optical") -> Any:
    from sensor_msgs.msg import CameraInfo

    f = 0.8 * w
    msg = CameraInfo()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
    msg.header.frame_id = frame_id
    msg.width, msg.height = w, h
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [f, 0.0, w / 2, 0.0, 0.0, f, h / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def statuses(arrays: List[Any], name: str) -> List[Any]:
    """Every DiagnosticStatus called ``name`` in the received DiagnosticArrays, oldest first."""
    return [s for a in list(arrays) for s in a.status if s.name == name]


def values(status: Any) -> Dict[str, str]:
    return {kv.key: kv.value for kv in status.values}
