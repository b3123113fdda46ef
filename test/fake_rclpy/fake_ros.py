"""Put the fake ROS 2 packages of this directory on sys.path for the duration of a test.

Usage (test/test_node.py): ``with installed() as rclpy: ...``.  Saves and restores any real
modules of the same names, blocks cv_bridge and sensor_msgs_py (so the node takes its
field-level conversion path, the one these tests exercise), and drops mono_depth_ros.ros.node so
that it binds to the fake.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

FAKE_DIR = str(Path(__file__).resolve().parent)
TOP = ("rclpy", "rcl_interfaces", "sensor_msgs", "std_msgs", "builtin_interfaces", "diagnostic_msgs",
       "diagnostic_updater", "cv_bridge", "sensor_msgs_py", "_fake_msgs")
NODE_MODULE = "mono_depth_ros.ros.node"


def _ours(name: str) -> bool:
    return name.split(".")[0] in TOP or name == NODE_MODULE


def _forget_node_attr() -> object:
    """``from mono_depth_ros.ros import node`` reads the package attribute first: drop it too."""
    pkg = sys.modules.get("mono_depth_ros.ros")
    return pkg.__dict__.pop("node", None) if pkg is not None else None


@contextmanager
def installed() -> Iterator[object]:
    saved = {k: v for k, v in sys.modules.items() if _ours(k)}
    for k in saved:
        del sys.modules[k]
    saved_attr = _forget_node_attr()
    sys.path.insert(0, FAKE_DIR)
    sys.modules["cv_bridge"] = None  # type: ignore[assignment]  # import -> ImportError
    sys.modules["sensor_msgs_py"] = None  # type: ignore[assignment]
    try:
        import rclpy

        rclpy._reset()
        yield rclpy
    finally:
        try:
            import rclpy as _r

            _r._reset()
        except ImportError:
            pass
        sys.path.remove(FAKE_DIR)
        for k in [k for k in sys.modules if _ours(k)]:
            del sys.modules[k]
        _forget_node_attr()
        sys.modules.update(saved)
        if saved_attr is not None:
            sys.modules["mono_depth_ros.ros"].node = saved_attr  # type: ignore[attr-defined]
