"""The two real-ROS test tiers: what each needs, and how a test reaches it.

* **real-rclpy** (marker ``ros_rclpy``): the PyPI ROS 2 Jazzy wheels (rclpy, rmw_fastrtps_cpp, message
  packages; requirements/rclpy.txt, installed by ``make venv``) in this project's .venv. The node runs as
  a real process (``python -m mono_depth_ros.ros.node``) and talks real DDS to the test process.
* **full ROS 2** (marker ``ros_full``): the relocatable ROS 2 Jazzy bundle in ../shared/ros2 (Cyclone DDS,
  launch, launch_testing, ros2 bag, cv_bridge, tf2_ros, colcon), unpacked by ``make ros2`` into ``.ros2/``
  (its own Python 3.11 venv with numpy < 2, plus requirements/cpu.txt + requirements/ros.txt: torch,
  onnxruntime, rosbags, exactly what a ROS user installs). Tests run ``ros2 ...`` / ``launch_test`` in a
  ``bash`` that sources ``.ros2/env.sh`` and a colcon workspace built from this checkout.

Where a tier's prerequisites are absent the tests skip with the reason. Under CI=true, a tier whose
prerequisites should be there (real rclpy always: make venv installs it; the full tier when
../shared/ros2 exists) but do not work makes the tests FAIL instead: CI must never go green by skipping
them.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import pytest

from ros_domains import ros_env

ROOT = Path(__file__).resolve().parents[1]
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
BUNDLE = Path(os.environ.get("MONO_DEPTH_ROS2_BUNDLE", ROOT.parent / "shared" / "ros2"))
ROS2_DIR = Path(os.environ.get("MONO_DEPTH_ROS2_DIR", ROOT / ".ros2"))
ROS2_STAMP = ROS2_DIR / ".installed"  # written by `make ros2` after the bundle + Python deps are in place

# environment of the test process that must not leak into a bundle shell (another venv's Python)
_LEAKY = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "AMENT_PREFIX_PATH", "COLCON_PREFIX_PATH", "CMAKE_PREFIX_PATH",
          "LD_LIBRARY_PATH", "ROS_DISTRO", "ROS_VERSION", "ROS_PYTHON_VERSION", "RMW_IMPLEMENTATION",
          "CYCLONEDDS_URI", "ROS_LOG_DIR", "PYTHONSAFEPATH", "MONO_DEPTH_SHARED_DATA_UNUSED")


def unavailable(reason: str, *, expected: bool) -> None:
    """Skip with ``reason``; under CI=true FAIL instead when the prerequisite is ``expected`` there."""
    if CI and expected:
        pytest.fail(f"{reason} (CI=true: this ROS tier must run, not skip)", pytrace=False)
    pytest.skip(reason)


# ---- real rclpy ---------------------------------------------------------------------------------
_RCLPY_CHECK = """
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
assert not hasattr(rclpy, "_reset"), "this is test/fake_rclpy's double, not the real rclpy"
"""
_rclpy_problem: List[Optional[str]] = []


def real_rclpy_problem() -> Optional[str]:
    """Why the PyPI rclpy tier cannot run here (None when it can). Checked in a child interpreter, so
    the test process itself does not load rclpy just for this."""
    if not _rclpy_problem:
        out = subprocess.run([sys.executable, "-c", _RCLPY_CHECK], capture_output=True, text=True, timeout=120)
        _rclpy_problem.append(None if out.returncode == 0 else
                              "real rclpy (requirements/rclpy.txt: the PyPI ROS 2 Jazzy wheels) does not import: "
                              + (out.stderr.strip().splitlines() or ["?"])[-1])
    return _rclpy_problem[0]


def require_real_rclpy() -> None:
    reason = real_rclpy_problem()
    if reason:
        unavailable(reason, expected=True)


# ---- full ROS 2 bundle -------------------------------------------------------------------------
def bundle_problem() -> Optional[str]:
    """Why the full-ROS tier cannot run here (None when it can)."""
    if not (BUNDLE / "setup.sh").is_file():
        return f"no ROS 2 bundle at {BUNDLE} (../shared/ros2 is only on the project's machines)"
    if not ROS2_STAMP.is_file() or not (ROS2_DIR / "env.sh").is_file():
        return f"the ROS 2 bundle is not set up in {ROS2_DIR}: run `make ros2` (make test does it)"
    return None


def require_bundle() -> None:
    reason = bundle_problem()
    if reason:
        unavailable(reason, expected=(BUNDLE / "setup.sh").is_file())


def bundle_base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not p.startswith(str(ROOT / ".venv")))
    return env


def bundle_script(command: Union[str, Sequence[str]], ws: Optional[Path] = None) -> str:
    """A bash script: the bundle's env.sh, the workspace's setup.bash, then ``command``."""
    if not isinstance(command, str):
        command = " ".join(shlex.quote(str(c)) for c in command)
    lines = ["set +u", f"source {shlex.quote(str(ROS2_DIR / 'env.sh'))}"]
    if ws is not None:
        lines.append(f"source {shlex.quote(str(ws / 'install' / 'setup.bash'))}")
    lines.append(f"exec {command}" if not command.lstrip().startswith(("(", "{")) else command)
    return "\n".join(lines)


def bundle_run(command: Union[str, Sequence[str]], *, domain_id: int, ws: Optional[Path] = None,
               timeout: float = 120, cwd: Optional[Path] = None,
               extra_env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    env = ros_env(domain_id, bundle_base_env())
    env.update(extra_env or {})
    return subprocess.run(["bash", "-c", bundle_script(command, ws)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def bundle_popen(command: Union[str, Sequence[str]], *, domain_id: int, ws: Optional[Path] = None,
                 cwd: Optional[Path] = None, extra_env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """A process (own session: stop it with os.killpg) with stdout+stderr merged into a pipe."""
    env = ros_env(domain_id, bundle_base_env())
    env.update(extra_env or {})
    return subprocess.Popen(["bash", "-c", bundle_script(command, ws)], env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def colcon_build(ws: Path, symlink: bool, domain_id: int, timeout: float = 300) -> subprocess.CompletedProcess:
    """``colcon build`` of this checkout (linked as ws/src/mono_depth_ros) with the bundle's colcon."""
    src = ws / "src"
    src.mkdir(parents=True, exist_ok=True)
    link = src / "mono_depth_ros"
    if not link.exists():
        link.symlink_to(ROOT, target_is_directory=True)
    cmd: List[str] = ["colcon", "build", "--event-handlers", "console_direct-"]
    if symlink:
        cmd.append("--symlink-install")
    return bundle_run(cmd, domain_id=domain_id, cwd=ws, timeout=timeout)


def tier_status() -> Dict[str, str]:
    """One line per tier for the pytest header: will it run, and if not, why."""
    rclpy_reason = real_rclpy_problem()
    full_reason = bundle_problem()
    return {
        "real-rclpy (PyPI Jazzy wheels, Fast DDS)": "runs" if rclpy_reason is None else
        ("FAILS: " if CI else "skips: ") + rclpy_reason,
        "full ROS 2 (../shared/ros2 bundle: launch, ros2 bag, cv_bridge, tf2, colcon)": "runs" if full_reason is None
        else ("FAILS: " if CI and (BUNDLE / "setup.sh").is_file() else "skips: ") + full_reason,
    }
