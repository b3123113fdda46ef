"""Full-ROS tier: the package on a real ROS 2 Jazzy (the ../shared/ros2 bundle, set up by `make ros2`).

What a ROS user does, in a bash that sources the bundle: `colcon build` of this checkout (plain and
--symlink-install), `ros2 run mono_depth_ros mono-depth`, the launch_testing test of depth.launch.py
(`launch_test`, Cyclone DDS, cv_bridge present), and eval.launch.py end to end on a `mono-depth kitti2bag`
output of ../shared/data/kitti_raw_layout_repackaged played by `ros2 bag play` (tf2 for LiDAR -> camera),
whose figures must equal the offline `mono-depth bag --eval` on the same bag. A missing or unreadable
bag must stop eval.launch.py at once with one clear line.

Skips with a reason without the bundle; under CI=true fails when the bundle is there but broken
(test/ros_tiers.py).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY_NODE, save_tiny_model, shared_path
from ros_domains import claim_domain_id
from ros_tiers import bundle_popen, bundle_run, colcon_build, require_bundle

pytestmark = [pytest.mark.ros_full]

DRIVE = ("kitti_raw_layout_repackaged", "2011_09_26", "2011_09_26_drive_9999_sync")


def _tail(text: str, n: int = 4000) -> str:
    return text[-n:]


@pytest.fixture(scope="module")
def domain() -> int:
    return claim_domain_id()


@pytest.fixture(scope="module")
def ws(tmp_path_factory, domain) -> Path:
    """This checkout built with the bundle's colcon, --symlink-install (the sources stay live)."""
    require_bundle()
    ws = tmp_path_factory.mktemp("ros2_ws")
    out = colcon_build(ws, symlink=True, domain_id=domain)
    assert out.returncode == 0, _tail(out.stdout + out.stderr)
    return ws


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt", TINY_NODE)


def _stop(proc: subprocess.Popen, timeout: float = 20) -> str:
    """SIGINT to the process group (what a terminal's Ctrl-C does), then SIGKILL; the output."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    return out.decode(errors="replace")


# ---- colcon build, the CLI after it --------------------------------------------------------------
def test_colcon_build_plain_install_and_ros2_run_the_cli(tmp_path, domain, ws):
    out = colcon_build(tmp_path, symlink=False, domain_id=domain)
    assert out.returncode == 0, _tail(out.stdout + out.stderr)
    prefix = tmp_path / "install" / "mono_depth_ros"
    for rel in ("share/mono_depth_ros/launch/depth.launch.py", "share/mono_depth_ros/launch/eval.launch.py",
                "share/mono_depth_ros/config/depth.yaml", "lib/mono_depth_ros/depth_node",
                "lib/mono_depth_ros/depth_evaluator", "lib/mono_depth_ros/mono-depth"):
        assert (prefix / rel).exists(), rel
    # the console scripts are what `ros2 run` finds, the CLI included (docs/ros.md, README)
    exe = bundle_run(["ros2", "pkg", "executables", "mono_depth_ros"], domain_id=domain, ws=tmp_path)
    assert exe.returncode == 0, exe.stderr
    assert set(exe.stdout.split()) >= {"mono_depth_ros", "depth_node", "depth_evaluator", "mono-depth"}
    cli = bundle_run(["ros2", "run", "mono_depth_ros", "mono-depth", "info", "--profile", "nyu"],
                     domain_id=domain, ws=tmp_path, timeout=180)
    assert cli.returncode == 0, _tail(cli.stdout + cli.stderr)
    assert "304 x 228" in cli.stdout or "304x228" in cli.stdout.replace(" ", ""), cli.stdout[-2000:]
    # a command with its progress bar and the bag writer (tqdm, rosbags: requirements/ros.txt), end to end
    conv = bundle_run(["ros2", "run", "mono_depth_ros", "mono-depth", "kitti2bag", str(shared_path(*DRIVE)),
                       "--out", str(tmp_path / "kitti_bag")], domain_id=domain, ws=tmp_path, timeout=180)
    assert conv.returncode == 0, _tail(conv.stdout + conv.stderr)
    assert (tmp_path / "kitti_bag" / "metadata.yaml").exists(), conv.stdout[-2000:]
    # the plain install runs from its own copy, not from this checkout
    where = bundle_run(["python3", "-c", "import mono_depth_ros; print(mono_depth_ros.__file__)"],
                       domain_id=domain, ws=tmp_path, cwd=tmp_path)
    assert where.returncode == 0 and where.stdout.strip().startswith(str(prefix)), where.stdout + where.stderr


def test_generate_launch_description_with_real_launch(domain, ws):
    """Both launch files load in the real launch / launch_ros and declare their arguments."""
    code = ("import importlib.util, sys\n"
            "from launch.actions import DeclareLaunchArgument\n"
            "for f in sys.argv[1:]:\n"
            "    spec = importlib.util.spec_from_file_location('lf', f)\n"
            "    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            "    ld = m.generate_launch_description()\n"
            "    print(f.rsplit('/', 1)[-1], sorted(a.name for a in ld.entities "
            "if isinstance(a, DeclareLaunchArgument)))\n")
    out = bundle_run(["python3", "-c", code, str(ROOT / "launch" / "depth.launch.py"),
                      str(ROOT / "launch" / "eval.launch.py")], domain_id=domain, ws=ws)
    assert out.returncode == 0, _tail(out.stderr)
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    for name in ("image", "camera_info", "namespace", "model", "backend", "params_file", "use_sim_time", "rviz"):
        assert repr(name) in lines["depth.launch.py"], name
    for name in ("bag", "model", "rate", "output_dir", "image_topic", "lidar_topic"):
        assert repr(name) in lines["eval.launch.py"], name


# ---- launch_testing: depth.launch.py --------------------------------------------------------------
def test_depth_launch_launch_testing(domain, ws):
    out = bundle_run(["launch_test", str(ROOT / "test" / "launch_tests" / "depth_node_launch.py")],
                     domain_id=domain, ws=ws, timeout=240)
    text = out.stdout + out.stderr
    assert out.returncode == 0, _tail(text, 6000)
    assert "test_outputs_arrive_with_encodings_sizes_stamps_frames" in text and "FAILED" not in text
    assert "test_clean_exit_on_sigint" in text


# ---- eval.launch.py -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def kitti_bag(tmp_path_factory) -> Path:
    from mono_depth_ros.bag.kitti2bag import convert

    bag = tmp_path_factory.mktemp("kitti") / "kitti_9999"
    convert(shared_path(*DRIVE), bag)
    return bag


@pytest.fixture(scope="module")
def offline_eval(tmp_path_factory, tiny_model, kitti_bag) -> dict:
    """`mono-depth bag --eval` of the bag with the model (no ROS): the figures live evaluation must match."""
    return _offline_eval(tmp_path_factory.mktemp("offline"), kitti_bag, ["--model", str(tiny_model)])[0]


def _offline_eval(off: Path, bag: Path, extra: list) -> tuple:
    """(figures, CLI output) of `mono-depth bag BAG --eval` into ``off``."""
    cli = subprocess.run([sys.executable, "-m", "mono_depth_ros", "bag", str(bag), *extra, "--backend", "torch",
                          "--out", str(off / "bag"), "--eval", "--eval-dir", str(off), "--no-progress", "--no-plots"],
                         capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, _tail(cli.stdout + cli.stderr)
    (offline_json,) = list(off.glob("*.json"))
    return json.loads(offline_json.read_text()), cli.stdout + cli.stderr


def _eval_launch(args: list, domain: int, ws: Path, timeout: float) -> str:
    """`ros2 launch mono_depth_ros eval.launch.py ARGS` to its end; its log (exit 0 asserted)."""
    proc = bundle_popen(["ros2", "launch", "mono_depth_ros", "eval.launch.py", *args], domain_id=domain, ws=ws)
    try:
        log, _ = proc.communicate(timeout=timeout)
        log = log.decode(errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail("eval.launch.py did not finish:\n" + _tail(_stop(proc)))
    assert proc.returncode == 0, _tail(log)
    return log


def _assert_same_figures(doc: dict, ref: dict, rel: float) -> None:
    for proto, metrics in ref["totals"].items():
        for key, value in metrics.items():
            assert doc["totals"][proto][key] == pytest.approx(value, rel=rel, abs=1e-6), (proto, key)


@pytest.mark.parametrize("rate", ["1.0", "20.0"])
def test_eval_launch_scores_every_frame_and_matches_offline_eval(tmp_path, domain, ws, tiny_model, kitti_bag, rate,
                                                                 offline_eval):
    """rate 20: the bag's two frames 5 ms apart, faster than the node: queued, not dropped."""
    live = tmp_path / "live"
    log = _eval_launch([f"bag:={kitti_bag}", f"model:={tiny_model}", f"output_dir:={live}", "idle_shutdown:=3.0",
                        "play_delay:=1.0", f"rate:={rate}", "backend:=torch"], domain, ws, timeout=150)
    doc = json.loads((live / "live_eval.json").read_text())
    assert doc["input_images"] == 2, _tail(log)
    # every frame of the bag scored (images before camera_info wait for it; no drops in evaluation)
    assert doc["frames_evaluated"] == doc["depth_images"] == 2, _tail(log)
    assert doc["dropped_frames"] == 0 and doc["evaluation_errors"] == 0
    assert doc["frame_coverage"] == 1.0 and doc["bag_images"] == 2
    assert doc.get("latency_mean_ms", 0) > 0 or doc["depth_without_input_image"] == 0
    assert "Traceback" not in log
    # plots where matplotlib is importable, else one line saying why there are none
    has_mpl = bundle_run(["python3", "-c", "import matplotlib"], domain_id=domain, ws=ws).returncode == 0
    assert (live / "live_eval_per_frame.png").exists() == has_mpl, _tail(log)
    assert ("no plots: matplotlib is not installed" in log) != has_mpl, _tail(log)

    # the offline evaluation of the same bag with the same model: the same figures
    ref = offline_eval
    assert ref["frames_evaluated"] == 2
    assert set(doc["totals"]) == set(ref["totals"])
    _assert_same_figures(doc, ref, rel=1e-4)


def test_eval_launch_without_a_model_runs_the_road_model_with_the_offline_figures(tmp_path, domain, ws, kitti_bag):
    """Issue 13: a KITTI bag without model:= runs the shipped road model (said once), through `ros2 bag play`
    + eval.launch.py, with the figures of `mono-depth bag --eval` without --model (which picks it too)."""
    from mono_depth_ros.default_models import ROAD_MODEL

    ref, out = _offline_eval(tmp_path / "offline", kitti_bag, [])
    assert ROAD_MODEL.name in out
    live = tmp_path / "live"
    log = _eval_launch([f"bag:={kitti_bag}", f"output_dir:={live}", "idle_shutdown:=3.0", "play_delay:=1.0",
                        "backend:=torch"], domain, ws, timeout=180)
    assert ROAD_MODEL.name in log and "KITTI-shaped" in log, _tail(log)
    doc = json.loads((live / "live_eval.json").read_text())
    assert doc["frames_evaluated"] == ref["frames_evaluated"] == 2 and doc["frame_coverage"] == 1.0
    _assert_same_figures(doc, ref, rel=1e-2)


@pytest.mark.parametrize("launch_file", ["depth.launch.py", "eval.launch.py"])
def test_launch_fails_when_the_node_cannot_start(domain, ws, kitti_bag, launch_file):
    """A model that does not load: depth_node's one FATAL line, and `ros2 launch` itself exits 1 (not 0), so a
    script or a supervisor sees the failure; eval.launch.py includes depth.launch.py and both watch depth_node's
    exit: still one error line."""
    extra = [f"bag:={kitti_bag}", "play_delay:=0.5"] if launch_file == "eval.launch.py" else []
    proc = bundle_popen(["ros2", "launch", "mono_depth_ros", launch_file, "model:=/nonexistent/model.pt", *extra],
                        domain_id=domain, ws=ws)
    try:
        log, _ = proc.communicate(timeout=120)
        log = log.decode(errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"{launch_file} kept running after depth_node failed:\n" + _tail(_stop(proc)))
    assert proc.returncode == 1, _tail(log)
    fatal = [ln for ln in log.splitlines() if "[FATAL]" in ln]
    errors = [ln for ln in log.splitlines() if "[ERROR] [launch]" in ln]
    assert len(fatal) == 1 and "/nonexistent/model.pt" in fatal[0], _tail(log)
    assert len(errors) == 1 and "depth_node exited with code 1" in errors[0], _tail(log)
    assert "Traceback" not in log


@pytest.mark.parametrize("kind", ["missing", "unreadable", "play_fails"])
def test_eval_launch_stops_at_once_on_a_bad_bag(tmp_path, domain, ws, tiny_model, kitti_bag, kind):
    extra = []
    if kind == "missing":
        bag = tmp_path / "no" / "such_bag"
    elif kind == "unreadable":
        bag = tmp_path / "broken.mcap"
        bag.write_bytes(b"this is not an MCAP file" * 100)
    else:  # readable, but `ros2 bag play` refuses it (wrong storage plugin): exits non-zero
        bag, extra = kitti_bag, ["storage:=sqlite3"]
    t0 = time.monotonic()
    proc = bundle_popen(["ros2", "launch", "mono_depth_ros", "eval.launch.py", f"bag:={bag}",
                         f"model:={tiny_model}", "play_delay:=0.5", *extra], domain_id=domain, ws=ws)
    try:
        log, _ = proc.communicate(timeout=90)
        log = log.decode(errors="replace")
    except subprocess.TimeoutExpired:
        pytest.fail(f"eval.launch.py kept running with a {kind} bag:\n" + _tail(_stop(proc)))
    took = time.monotonic() - t0
    assert proc.returncode == 1, _tail(log)
    errors = [ln for ln in log.splitlines() if "[ERROR] [launch]" in ln]
    assert len(errors) == 1 and "eval.launch.py:" in errors[0] and str(bag) in errors[0], _tail(log)
    assert "Traceback" not in log
    if kind != "play_fails":  # checked before anything is started
        assert "process started" not in log, _tail(log)
    else:
        assert "exited with code" in errors[0]
    print(f"{kind}: {errors[0]} ({took:.1f} s)")
    assert took < 60, took
