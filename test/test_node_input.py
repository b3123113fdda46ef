"""depth_node's input handling over real rclpy + DDS, in evaluation mode (drop_policy none).

One node process: drop_policy none with a small queue, a reliable image subscription (QoS override,
as for bag evaluation), max_input_pixels 20000, camera_info_wait 10 s.  Checked: images that come
before any camera_info wait for it (and get depth/camera_info); every image is processed in order,
or counted as dropped because the queue was full; an image above max_input_pixels is refused with
one log line and the next one is served; an input far from the model's training geometry gives one
warning and a diagnostics entry.
"""
from __future__ import annotations

import time

import pytest
import yaml

from real_node import (RosHarness, make_camera_info, make_image, need_rclpy, save_tiny_model, start_node,
                       statuses, stop_node, values, wait_for)

need_rclpy()

PROC = "depth_node: processing"
QUEUE = 10


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    folder = tmp_path_factory.mktemp("input")
    model = save_tiny_model(folder)
    params = folder / "eval.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "drop_policy": "none", "queue_size": QUEUE, "max_input_pixels": 20000, "camera_info_wait": 10.0,
        "diagnostic_updater": {"period": 0.25},
        "qos_overrides": {"/image": {"subscription": {"reliability": "reliable", "depth": 100}},
                          "/depth/image": {"publisher": {"depth": 100}},
                          "/depth/camera_info": {"publisher": {"depth": 100}},
                          "/camera_info": {"subscription": {"reliability": "reliable", "depth": 100}}}}}}))
    h = RosHarness("input_test")
    log = folder / "node.log"
    proc = start_node(h, "-p", f"model:={model}", "-p", "backend:=torch", "-p", "threads:=1",
                      "--params-file", str(params), log=log)
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE)
    out = {"depth": h.collect(Image, "depth/image", reliable), "info": h.collect(CameraInfo, "depth/camera_info",
                                                                                 reliable),
           "diags": h.collect(DiagnosticArray, "/diagnostics", 50)}
    pub_img = h.node.create_publisher(Image, "image", reliable)
    pub_info = h.node.create_publisher(CameraInfo, "camera_info", reliable)
    wait_for(lambda: pub_img.get_subscription_count() and pub_info.get_subscription_count()
             and h.node.count_publishers("depth/image") and h.node.count_publishers("depth/camera_info"),
             90, "depth_node", proc, log)
    wait_for(lambda: h.node.get_publishers_info_by_topic("/depth/image")
             and all(p.get_subscription_count() for p in (pub_img, pub_info)), 30, "matching")
    yield {"h": h, "proc": proc, "log": log, "img": pub_img, "pinfo": pub_info, **out}
    if proc.poll() is None:
        assert stop_node(proc) == 0, log.read_text(errors="replace")[-3000:]
    h.close()


def _sec(msgs):
    return [m.header.stamp.sec for m in list(msgs)]


def _last(run):
    return values([s for s in statuses(run["diags"], PROC) if s.values][-1])


def test_first_images_wait_for_camera_info(run):
    for sec in (10, 11, 12):
        run["img"].publish(make_image(sec))
    # the node has the images, and no camera_info yet: nothing comes out while they wait
    wait_for(lambda: [s for s in statuses(run["diags"], PROC) if s.values
                      and int(values(s)["frames received"]) >= 3], 60, "3 images received", run["proc"], run["log"])
    assert _sec(run["depth"]) == [] and int(_last(run)["queue length"]) == 3
    run["pinfo"].publish(make_camera_info(10))
    wait_for(lambda: len(run["info"]) >= 3, 60, "depth/camera_info for the 3 waiting images", run["proc"], run["log"])
    assert _sec(run["info"]) == [10, 11, 12] and _sec(run["depth"]) == [10, 11, 12]
    assert "no camera_info received" not in run["log"].read_text()


def _settled(run):
    """The newest diagnostics once they account for every depth image received so far."""
    return wait_for(lambda: (lambda v: v if int(v["frames processed"]) == len(run["depth"])
                             and v["queue length"] == "0" else None)(_last(run)), 30, "settled diagnostics")


def test_every_image_processed_in_order_or_counted(run):
    v0 = _settled(run)
    done0, full0, received0 = len(run["depth"]), int(v0["frames dropped (queue full)"]), int(v0["frames received"])
    for i in range(60):  # a burst: far faster than the node
        run["pinfo"].publish(make_camera_info(100 + i))
        run["img"].publish(make_image(100 + i, seed=i))

    def settled():
        v = _last(run)
        processed = int(v["frames processed"]) - int(v0["frames processed"])
        full = int(v["frames dropped (queue full)"]) - full0
        return (processed, full, v) if int(v["frames received"]) - received0 == 60 and processed + full == 60 \
            else None

    try:
        got, full, v = wait_for(settled, 120, "60 images processed or counted", run["proc"])
    except AssertionError as exc:
        raise AssertionError(f"{len(run['depth']) - done0} depth images; before {v0}; now {_last(run)}") from exc
    wait_for(lambda: len(run["depth"]) - done0 >= got, 30, "every processed image's depth/image")
    stamps = _sec(run["depth"])[done0:]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps) == got  # in order, none twice
    assert int(v["frames dropped (stale)"]) == 0  # drop_policy none never drops for staleness
    if full:
        assert "queue full" in run["log"].read_text()
    # paced input (10 Hz): every image comes out, in order
    done1, full1 = len(run["depth"]), int(v["frames dropped (queue full)"])
    for i in range(20):
        run["pinfo"].publish(make_camera_info(200 + i))
        run["img"].publish(make_image(200 + i, seed=i))
        time.sleep(0.1)
    wait_for(lambda: len(run["depth"]) - done1 >= 20 - (int(_last(run)["frames dropped (queue full)"]) - full1),
             60, "the paced images", run["proc"], run["log"])
    assert _sec(run["depth"])[done1:] == list(range(200, 220)), _last(run)


def test_image_above_max_input_pixels_is_refused_and_the_next_served(run):
    bad0 = int(_settled(run)["bad input frames"])
    n0 = len(run["depth"])
    run["img"].publish(make_image(300, w=200, h=150))  # 30000 px > 20000
    run["pinfo"].publish(make_camera_info(301))
    run["img"].publish(make_image(301))
    wait_for(lambda: len(run["depth"]) > n0, 60, "the next good image", run["proc"], run["log"])
    assert _sec(run["depth"])[n0:] == [301]
    wait_for(lambda: int(_last(run)["bad input frames"]) == bad0 + 1, 30, "the refusal counted", run["proc"])
    lines = [ln for ln in run["log"].read_text().splitlines() if "max_input_pixels" in ln]
    assert len(lines) == 1 and "200x150" in lines[0], lines


def test_input_far_from_the_models_geometry_warns_once(run):
    def wide():
        return [m for m in list(run["depth"]) if m.width == 320]

    # 320x60: aspect 5.3 against the tiny model's 4:3. camera_info and image travel on two topics, so
    # the first image may still meet the old 160x120 camera_info (a bad input): send until two pass
    deadline, sec = time.monotonic() + 60, 400
    while len(wide()) < 2 and time.monotonic() < deadline:
        run["pinfo"].publish(make_camera_info(sec, w=320, h=60))
        run["img"].publish(make_image(sec, w=320, h=60))
        sec += 1
        time.sleep(0.2)
    assert len(wide()) >= 2, _last(run)
    wait_for(lambda: "320x60" in _last(run)["input vs model geometry"], 30, "the geometry note", run["proc"])
    lines = [ln for ln in run["log"].read_text().splitlines() if "was trained on" in ln]
    assert len(lines) == 1 and "320x60" in lines[0] and "[WARN]" in lines[0], lines


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_compressed_image_size_is_read_from_the_header(ext):
    import cv2
    import numpy as np
    from sensor_msgs.msg import CompressedImage

    from mono_depth_ros.ros.node import _encoded_size, _too_large

    ok, data = cv2.imencode(ext, np.zeros((150, 200, 3), np.uint8))
    assert ok and _encoded_size(data.tobytes()) == (200, 150)
    assert _encoded_size(data.tobytes()[:40]) in (None, (200, 150)) and _encoded_size(b"GIF89a" + bytes(40)) is None
    msg = CompressedImage(format=ext[1:], data=data.tobytes())
    assert "200x150" in _too_large(msg, 20000) and _too_large(msg, 30000) is None and _too_large(msg, 0) is None


def test_geometry_warning_names_the_road_model_for_kitti_shaped_images():
    """depth_node loads its model before the first image, so it cannot pick road.pt for a KITTI camera as
    predict / bag / eval.launch.py do; its once-only geometry warning names it instead."""
    from mono_depth_ros.default_models import DEMO_MODEL, ROAD_MODEL
    from mono_depth_ros.model_spec import load_spec
    from mono_depth_ros.ros.node import _geometry_warning

    demo = load_spec(DEMO_MODEL).profile
    kitti = _geometry_warning(demo, 1242, 375)
    assert kitti is not None and "was trained on" in kitti and f"model:={ROAD_MODEL}" in kitti
    other = _geometry_warning(demo, 320, 60)          # far from the model, but not KITTI's camera
    assert other is not None and "road model" not in other
    assert _geometry_warning(demo, 640, 480) is None  # the model's own geometry: no warning
