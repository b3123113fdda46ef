"""Shared test fixtures: paths to ../shared/data (skipped with a reason when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MONO_DEPTH_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with a reason if it is not there."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"sample data {p} not available (../shared/data is only on the project's machines)")
    return p


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not available")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _torch_threads():
    try:
        import torch
    except ImportError:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _isolated_model_cache(tmp_path_factory):
    """Exported ONNX / engine caches go to a per-run temporary folder, never the user's ~/.cache."""
    old = os.environ.get("MONO_DEPTH_CACHE")
    os.environ["MONO_DEPTH_CACHE"] = str(tmp_path_factory.mktemp("mono_depth_cache"))
    yield
    if old is None:
        os.environ.pop("MONO_DEPTH_CACHE", None)
    else:
        os.environ["MONO_DEPTH_CACHE"] = old


SAMPLE_BAG = ("ros2_bags", "kitti_2frames_repackaged.mcap")


def sample_bag_messages():
    """The sample KITTI bag's messages by topic, and its /tf_static tree (skips without ../shared)."""
    from mono_depth_ros.bag import io as bio
    from mono_depth_ros.bag.tf import StaticTransforms

    msgs = {}
    with bio.BagReader(shared_path(*SAMPLE_BAG)) as r:
        for topic, _, m in r.messages(list(r.topics)):
            msgs.setdefault(topic, []).append(m)
    tf = StaticTransforms()
    for m in msgs["/tf_static"]:
        tf.add_message(m)
    return msgs, tf


# ---- the real-ROS tiers: named in the header and in the summary of every run --------------------------
ROS_TIERS = {"ros_rclpy": "real-rclpy (PyPI Jazzy wheels, Fast DDS)",
             "ros_full": "full ROS 2 (../shared/ros2 bundle)"}
_tier_counts: dict = {}


def pytest_collection_modifyitems(config, items):
    # modules that drive the real node through test/real_node.py belong to the real-rclpy tier
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and (hasattr(module, "need_rclpy") or hasattr(module, "require_real_rclpy")):
            item.add_marker("ros_rclpy")


def pytest_report_header(config):
    from ros_tiers import tier_status

    return ["ROS tiers: " + "; ".join(f"{name}: {state}" for name, state in tier_status().items())]


def pytest_runtest_logreport(report):
    # one count per test: skipped at setup, the call's outcome, or failed in any phase
    counted = (report.when == "call" or report.failed or (report.when == "setup" and report.skipped))
    for marker in ROS_TIERS:
        if counted and marker in report.keywords:
            counts = _tier_counts.setdefault(marker, {"passed": 0, "failed": 0, "skipped": 0})
            counts[report.outcome] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    parts = []
    for marker, name in ROS_TIERS.items():
        c = _tier_counts.get(marker)
        if not c:
            parts.append(f"{name}: no test selected")
        else:
            parts.append(f"{name}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped")
    terminalreporter.write_line("ROS tiers ran: " + "; ".join(parts))
