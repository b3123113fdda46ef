"""Shared test fixtures: paths to ../shared/data (skipped with a reason when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mono_depth_ros.profiles import Profile

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


def signal_when(cmd, ready, sig, *, timeout: float = 60.0, poll: float = 0.05):
    """Run ``cmd`` (in the repository, PYTHONPATH and OMP_NUM_THREADS=1 set), send it ``sig`` once
    ``ready()`` is true (or after ``timeout`` s), and return (exit status, stderr). The process is killed
    if it does not end within ``timeout`` s of the signal."""
    import subprocess
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and not ready():
            time.sleep(poll)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


def log_lines_at_least(log: Path, n: int):
    """A ``ready`` for :func:`signal_when`: the training log ``log`` has ``n`` lines."""
    return lambda: log.is_file() and len(log.read_text().splitlines()) >= n


# the tiny network of the CLI tests: 160x120 input, 0.1-10 m, no resize step
TINY_CLI = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                   fine_channels=8, min_depth=0.1, max_depth=10.0, resize_w=160, resize_h=120)


# the tiny network of the node tests: outdoor range (the sample bag is KITTI), the profile's default resize
TINY_NODE = Profile(name="tiny", input_w=160, input_h=120, fc_hidden=64, coarse_channels=(8, 16, 16, 16, 16),
                    fine_channels=8, min_depth=0.5, max_depth=80.0)


def save_tiny_model(path: Path, profile: Profile = TINY_CLI, seed: int = 0) -> Path:
    """A randomly initialised tiny model file (``profile``, torch seed ``seed``); skips without torch."""
    torch = pytest.importorskip("torch")

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(seed)
    save_model(EigenDepthNet(profile).eval(), path)
    return path
