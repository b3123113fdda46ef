"""QoS of depth_node the ROS way, over real rclpy + DDS: defaults, and qos_overrides from a params
file changing the QoS the node actually offers/requests (seen from another process through the
graph: get_publishers_info_by_topic / get_subscriptions_info_by_topic).  One node process per case.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from real_node import RosHarness, need_rclpy, save_tiny_model, start_node, stop_node, wait_for

need_rclpy()

OVERRIDES = {
    "/image": {"subscription": {"reliability": "reliable", "depth": 1}},
    "/depth/image": {"publisher": {"reliability": "best_effort", "depth": 2}},
}


@pytest.fixture(scope="module")
def h():
    harness = RosHarness("qos_test")
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("qos"))


def _endpoint(h, topic, kind):
    get = h.node.get_publishers_info_by_topic if kind == "pub" else h.node.get_subscriptions_info_by_topic
    found = [e for e in get(topic) if e.node_name == "depth_node"]
    return found[0] if found else None


def _params(h, names):
    from rcl_interfaces.srv import GetParameters

    client = h.node.create_client(GetParameters, "/depth_node/get_parameters")
    try:
        assert client.wait_for_service(timeout_sec=60)
        future = client.call_async(GetParameters.Request(names=names))
        wait_for(future.done, 60, "get_parameters")
        return future.result().values
    finally:
        h.node.destroy_client(client)


def test_defaults_and_overrides_from_a_params_file(h, model, tmp_path):
    from rclpy.qos import ReliabilityPolicy

    params = tmp_path / "qos.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"qos_overrides": OVERRIDES}}}))
    log = tmp_path / "node.log"
    proc = start_node(h, "-p", f"model:={model}", "-p", "backend:=torch", "--params-file", str(params), log=log)
    try:
        wait_for(lambda: all(_endpoint(h, t, k) for t, k in (("/image", "sub"), ("/camera_info", "sub"),
                                                              ("/depth/image", "pub"), ("/depth/points", "pub"))),
                 90, "depth_node's endpoints in the graph", proc, log)
        # overridden
        assert _endpoint(h, "/image", "sub").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert _endpoint(h, "/depth/image", "pub").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        # defaults: camera topics best effort (sensor data), publishers reliable
        assert _endpoint(h, "/camera_info", "sub").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert _endpoint(h, "/depth/points", "pub").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert _endpoint(h, "/depth/colored", "pub").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        # history depth is not visible in the graph: read the declared (read-only) parameters instead
        values = _params(h, ["qos_overrides./image.subscription.depth",
                             "qos_overrides./depth/image.publisher.depth",
                             "qos_overrides./depth/points.publisher.depth",
                             "qos_overrides./camera_info.subscription.reliability"])
        assert [v.integer_value for v in values[:3]] == [1, 2, 5]
        assert values[3].string_value == "best_effort"
        text = log.read_text()
        assert "/image (reliable, keep_last 1)" in text and "best_effort, keep_last 2" in text, text
    finally:
        rc = stop_node(proc)
    assert rc == 0, log.read_text(errors="replace")[-3000:]  # after finally: never masks a failure above


def test_remapped_topic_overrides_and_the_deprecated_publisher_parameter(h, model, tmp_path):
    from rclpy.qos import ReliabilityPolicy

    params = tmp_path / "qos.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"qos_overrides": {
        "/cam/image_raw": {"subscription": {"reliability": "reliable"}},
        "/depth/image": {"publisher": {"reliability": "reliable"}}}}}}))
    log = tmp_path / "node.log"
    proc = start_node(h, "-p", f"model:={model}", "-p", "backend:=torch", "-r", "image:=/cam/image_raw",
                      "-p", "qos_reliability:=best_effort", "--params-file", str(params), log=log)
    try:
        ep = wait_for(lambda: _endpoint(h, "/cam/image_raw", "sub"), 90, "the remapped subscription", proc, log)
        assert ep.qos_profile.reliability == ReliabilityPolicy.RELIABLE
        # qos_reliability (deprecated) still sets the publishers' default; a per-topic override wins
        wait_for(lambda: _endpoint(h, "/depth/points", "pub") and _endpoint(h, "/depth/image", "pub"), 30, "pubs")
        assert _endpoint(h, "/depth/points", "pub").qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
        assert _endpoint(h, "/depth/image", "pub").qos_profile.reliability == ReliabilityPolicy.RELIABLE
        assert "qos_reliability / qos_depth are deprecated" in log.read_text()
    finally:
        rc = stop_node(proc)
    assert rc == 0, log.read_text(errors="replace")[-3000:]  # after finally: never masks a failure above


@pytest.mark.parametrize("override, needle", [
    ({"/image": {"subscription": {"reliability": "sometimes"}}}, "reliability"),
    ({"/depth/image": {"publisher": {"depth": 0}}}, "depth must be >= 1"),
])
def test_bad_override_is_one_fatal_line_and_exit_1(h, model, tmp_path, override, needle):
    params = tmp_path / "qos.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"qos_overrides": override}}}))
    log = tmp_path / "node.log"
    proc = start_node(h, "-p", f"model:={model}", "-p", "backend:=torch", "--params-file", str(params), log=log)
    assert proc.wait(timeout=120) == 1
    text = log.read_text()
    fatal = [line for line in text.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and needle in fatal[0] and "qos" in fatal[0].lower(), text
    assert "Traceback" not in text and "UserWarning" not in text, text  # rclpy's depth-0 warning filtered


def test_unparsable_params_file_is_one_fatal_line_and_exit_1(h, tmp_path):
    """rclpy.init refuses a params file that is no valid YAML (RCLError): one FATAL line, no traceback."""
    params = tmp_path / "broken.yaml"
    params.write_text("/**:\n  ros__parameters:\n    min_depth: [1.0\n    max_depth: 2.0\n")
    log = tmp_path / "node.log"
    proc = start_node(h, "--params-file", str(params), log=log)
    assert proc.wait(timeout=120) == 1
    text = log.read_text()
    fatal = [line for line in text.splitlines() if "[FATAL]" in line]
    assert len(fatal) == 1 and "params file" in fatal[0] and str(params) in fatal[0], text
    assert "Traceback" not in text, text
