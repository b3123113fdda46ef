"""The node's built-in /diagnostics publisher (mono_depth_ros/ros/diagnostics.py, used where
diagnostic_updater is not installed) against the real diagnostic_updater of the ROS 2 Jazzy bundle
in ../shared/ros2: the same tasks on both give the same statuses (names with and without
use_fqn, levels, messages, hardware ids, keys, FrequencyStatus values except the two that depend on
timing), the same "Node starting up" announcements and the same parameters.  Both run in one process
of the bundle's Python (real rclpy, Cyclone DDS); skipped where the bundle is absent.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from ros_domains import claim_domain_id

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = Path(os.environ.get("MONO_DEPTH_ROS2_BUNDLE", ROOT.parent / "shared" / "ros2"))

SCRIPT = r'''
import importlib.util, json, sys
import rclpy
from rclpy.parameter import Parameter
from diagnostic_msgs.msg import DiagnosticStatus
import diagnostic_updater as real

spec = importlib.util.spec_from_file_location("builtin_diagnostics", sys.argv[1])
builtin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(builtin)

rclpy.init()
out = {}
for label, mod in (("real", real), ("builtin", builtin)):
    for use_fqn in (False, True):
        node = rclpy.create_node("depth_node", namespace="/cam",  # use_fqn as from a params file
                                 parameter_overrides=[Parameter("diagnostic_updater.use_fqn", value=use_fqn)])
        sent = []
        up = mod.Updater(node, period=0.5)
        up.publisher.publish = sent.append          # capture what would go out on /diagnostics
        up.setHardwareID("mono_depth_ros")
        bounds = {"min": 5.0, "max": 5.0}
        freq = mod.HeaderlessTopicDiagnostic("depth", up, mod.FrequencyStatusParam(bounds, 0.1, 10))
        def processing(stat, n=[0]):
            n[0] += 1
            stat.summary(DiagnosticStatus.WARN if n[0] % 2 else DiagnosticStatus.OK, "state %d" % n[0])
            stat.add("frames received", str(n[0]))
            return stat
        up.add("processing", processing)
        up.update()                  # no events yet: ERROR
        for _ in range(3):
            freq.tick()
        up.update()                  # events within microseconds: "too high"
        bounds.pop("max")
        bounds["min"] = 1e9
        freq.tick()
        up.update()                  # "too low"
        bounds["min"] = 0.0
        freq.tick()
        up.update()                  # met, no minimum key
        rows = []
        for arr in sent:
            rows.append([[s.name, s.level.hex() if isinstance(s.level, bytes) else s.level, s.message,
                          s.hardware_id, [[kv.key, kv.value] for kv in s.values
                                          if kv.key not in ("Duration of window (s)", "Actual frequency (Hz)")],
                          [kv.key for kv in s.values]] for s in arr.status])
        params = sorted("diagnostic_updater." + k for k in node.get_parameters_by_prefix("diagnostic_updater"))
        out[f"{label} use_fqn={use_fqn}"] = {"rows": rows, "params": params, "period": up.period}
        node.destroy_node()
rclpy.shutdown()
print("JSON" + json.dumps(out))
'''


def test_builtin_diagnostics_match_diagnostic_updater(tmp_path):
    if not (BUNDLE / "setup.sh").is_file():
        pytest.skip(f"ROS 2 bundle {BUNDLE} not available (../shared/ros2 is on the project's machines)")
    target = Path(os.environ.get("MONO_DEPTH_ROS2_DIR", Path(tempfile.gettempdir()) / "mono_depth_ros2"))
    setup = subprocess.run(["bash", str(BUNDLE / "setup.sh"), str(target)], capture_output=True, text=True,
                           timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    script = tmp_path / "compare.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, ROS_DOMAIN_ID=str(claim_domain_id()), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.pop("PYTHONPATH", None)
    cmd = f'source "{target}/env.sh" && python "{script}" "{ROOT / "mono_depth_ros" / "ros" / "diagnostics.py"}"'
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("JSON"))[4:])
    for fqn in (False, True):
        real, builtin = out[f"real use_fqn={fqn}"], out[f"builtin use_fqn={fqn}"]
        assert builtin == real
        names = {s[0] for arr in real["rows"] for s in arr}
        prefix = "/cam/depth_node" if fqn else "depth_node"
        assert names == {f"{prefix}: depth topic status", f"{prefix}: processing"}
    rows = out["real use_fqn=False"]["rows"]
    assert [s[2] for s in rows[0]] == ["Node starting up"] and [s[2] for s in rows[1]] == ["Node starting up"]
    assert [arr[0][2] for arr in rows[2:]] == ["No events recorded.", "Frequency too high.", "Frequency too low.",
                                              "Desired frequency met"]
    assert out["real use_fqn=False"]["params"] == ["diagnostic_updater.period", "diagnostic_updater.use_fqn"]
