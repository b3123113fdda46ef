"""ROS_DOMAIN_ID allocation for tests that run real ROS 2 (rclpy/DDS, ros2 launch, ros2 bag).

Every real-ROS test (or module) takes its own domain id, so tests that run at the same time (pytest-xdist
workers, several checkouts on one machine, a developer's own ROS graph) never see each other's nodes. Ids
come from MONO_DEPTH_TEST_DOMAINS ("LO-HI", default "1-101": Fast DDS and Cyclone DDS derive UDP ports from
the id, and ids above 101 collide with Linux's ephemeral port range) and are claimed with an exclusive lock
file, so two processes never hold the same id; the lock is released when the holder exits.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

_HELD: List[object] = []  # open lock files: keep them for the process's lifetime


def _range() -> Tuple[int, int]:
    text = os.environ.get("MONO_DEPTH_TEST_DOMAINS", "1-101")
    lo, _, hi = text.partition("-")
    lo_i, hi_i = int(lo), int(hi or lo)
    if not 0 <= lo_i <= hi_i <= 232:
        raise ValueError(f"MONO_DEPTH_TEST_DOMAINS={text!r}: want LO-HI within 0-232")
    return lo_i, hi_i


def claim_domain_id() -> int:
    """A ROS_DOMAIN_ID no other process on this machine holds (held until this process exits)."""
    lo, hi = _range()
    folder = Path(tempfile.gettempdir()) / "mono_depth_ros_test_domains"
    folder.mkdir(exist_ok=True)
    start = lo + os.getpid() % (hi - lo + 1)
    for i in range(hi - lo + 1):
        dom = lo + (start - lo + i) % (hi - lo + 1)
        f = open(folder / f"{dom}.lock", "w")  # noqa: SIM115 - kept open on purpose
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _HELD.append(f)
        return dom
    raise RuntimeError(f"all ROS domain ids {lo}-{hi} are taken by other processes")


def ros_env(domain_id: int, base: Dict[str, str] | None = None) -> Dict[str, str]:
    """An environment for a child ROS process: its own domain, discovery on localhost only."""
    env = dict(os.environ if base is None else base)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)  # deprecated in Jazzy; conflicts with the range above
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
