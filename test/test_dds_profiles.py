"""config/dds (the shipped DDS profiles), mono_depth_ros.dds.profile_env, depth.launch.py's dds_profile
argument, and the Fast DDS profile doing its job over real Fast DDS (the venv's PyPI Jazzy wheels).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT
from test_install_files import setup_kwargs  # noqa: F401  (fixture)
from mono_depth_ros import dds

FAST = ROOT / "config" / "dds" / "fastdds.xml"
CYCLONE = ROOT / "config" / "dds" / "cyclonedds.xml"
FAST_NS = "{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}"
CYC_NS = "{https://cdds.io/config}"
IMAGE_BYTES = 640 * 480 * 3


def _bytes(text: str) -> int:
    units = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "kB": 1000, "MB": 1000 ** 2}
    for u in sorted(units, key=len, reverse=True):
        if text.endswith(u):
            return int(float(text[: -len(u)]) * units[u])
    return int(text)


def test_fastdds_profile_parses_and_sizes_shared_memory_for_images():
    root = ET.parse(FAST).getroot()
    assert root.tag == FAST_NS + "dds"
    descs = {d.findtext(FAST_NS + "transport_id"): d for d in root.iter(FAST_NS + "transport_descriptor")}
    shm = [d for d in descs.values() if d.findtext(FAST_NS + "type") == "SHM"]
    udp = [d for d in descs.values() if d.findtext(FAST_NS + "type") == "UDPv4"]
    assert len(shm) == 1 and len(udp) == 1
    segment = int(shm[0].findtext(FAST_NS + "segment_size"))
    assert segment >= 16 * 1024 * 1024 and segment >= 20 * IMAGE_BYTES  # the built-in default is 512 KB
    assert int(shm[0].findtext(FAST_NS + "port_queue_capacity")) >= 512
    (participant,) = root.iter(FAST_NS + "participant")
    assert participant.get("is_default_profile") == "true"  # applies to every participant of the process
    rtps = participant.find(FAST_NS + "rtps")
    assert rtps.findtext(FAST_NS + "useBuiltinTransports") == "false"
    used = [t.text for t in rtps.find(FAST_NS + "userTransports")]
    assert sorted(used) == sorted(descs)  # both transports, each defined once (UDP: other hosts, CLI tools)


MEMORY_POLICIES = ("PREALLOCATED", "PREALLOCATED_WITH_REALLOC", "DYNAMIC", "DYNAMIC_REUSABLE")  # Fast DDS 2.x XML


def _default_profile(root, tag):
    (prof,) = [p for p in root.iter(FAST_NS + tag) if p.get("is_default_profile") == "true"]
    return prof


def test_fastdds_profile_frees_reader_payloads_and_keeps_rmw_writer_settings():
    """Readers: DYNAMIC (payload freed after each sample; rmw_fastrtps's PREALLOCATED_WITH_REALLOC pool
    keeps the largest sample ever received). Writers: what rmw_fastrtps would set itself, since with
    RMW_FASTRTPS_USE_QOS_FROM_XML=1 it leaves both to the XML. Literals: the XML parser's own, not the C++
    enum names (DYNAMIC_RESERVE makes Fast DDS reject the whole file, transports included)."""
    root = ET.parse(FAST).getroot()
    reader, writer = _default_profile(root, "data_reader"), _default_profile(root, "data_writer")
    assert reader.findtext(FAST_NS + "historyMemoryPolicy") == "DYNAMIC"
    assert writer.findtext(FAST_NS + "historyMemoryPolicy") == "PREALLOCATED_WITH_REALLOC"
    for p in root.iter(FAST_NS + "historyMemoryPolicy"):
        assert p.text in MEMORY_POLICIES
    for prof in (reader, writer):
        assert prof.find(FAST_NS + "qos").find(FAST_NS + "data_sharing").findtext(FAST_NS + "kind") == "OFF"
    assert writer.find(FAST_NS + "qos").find(FAST_NS + "publishMode").findtext(FAST_NS + "kind") == "SYNCHRONOUS"
    # nothing else in them: the QoS set in code (history, depth, reliability, ...) stays the node's
    assert {c.tag for c in reader} == {FAST_NS + "qos", FAST_NS + "historyMemoryPolicy"}
    assert {c.tag for c in reader.find(FAST_NS + "qos")} == {FAST_NS + "data_sharing"}
    assert {c.tag for c in writer.find(FAST_NS + "qos")} == {FAST_NS + "data_sharing", FAST_NS + "publishMode"}
    assert dds.wants_qos_from_xml(FAST) and not dds.wants_qos_from_xml(CYCLONE)


def test_cyclonedds_profile_parses_with_sizes_within_udp_and_cyclone_limits():
    root = ET.parse(CYCLONE).getroot()
    assert root.tag == CYC_NS + "CycloneDDS"
    (domain,) = root.findall(CYC_NS + "Domain")
    assert domain.get("Id") == "any"
    general = domain.find(CYC_NS + "General")
    max_msg = _bytes(general.findtext(CYC_NS + "MaxMessageSize"))
    frag = _bytes(general.findtext(CYC_NS + "FragmentSize"))
    assert 14720 < max_msg <= 65500 and 1344 < frag < max_msg  # beyond the defaults, within one UDP datagram
    rcv = domain.find(CYC_NS + "Internal").find(CYC_NS + "SocketReceiveBufferSize")
    assert rcv.get("min") == "default"  # never fail start-up where net.core.rmem_max is small
    assert _bytes(rcv.get("max")) >= 4 * 1024 * 1024


def test_profile_env_none_default_and_explicit_files(tmp_path):
    assert dds.profile_env("none", environ={}) == {}
    env = dds.profile_env("default", environ={})
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == env["FASTDDS_DEFAULT_PROFILES_FILE"] == str(FAST)
    assert env[dds.QOS_FROM_XML_VAR] == "1"  # else rmw_fastrtps overrides the reader memory policy
    assert env["CYCLONEDDS_URI"] == "file://" + str(CYCLONE)
    assert dds.QOS_FROM_XML_VAR not in dds.profile_env("default", environ={dds.QOS_FROM_XML_VAR: "0"})  # user's kept
    # an existing CYCLONEDDS_URI (e.g. the bundle's loopback binding) is kept, ours appended (later wins)
    inline = '<CycloneDDS><Domain><General><Interfaces><NetworkInterface name="lo"/></Interfaces></General></Domain></CycloneDDS>'
    env = dds.profile_env("default", environ={"CYCLONEDDS_URI": inline})
    assert env["CYCLONEDDS_URI"] == inline + ",file://" + str(CYCLONE)
    assert dds.profile_env("default", environ={"CYCLONEDDS_URI": env["CYCLONEDDS_URI"]})["CYCLONEDDS_URI"] \
        == env["CYCLONEDDS_URI"]  # applied twice: not duplicated
    # a user's own Fast DDS profile wins over ours (Fast DDS reads one file)
    mine = dds.profile_env("default", environ={"FASTRTPS_DEFAULT_PROFILES_FILE": "/etc/my_fastdds.xml"})
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in mine and "CYCLONEDDS_URI" in mine
    assert dds.QOS_FROM_XML_VAR not in mine  # their file, their choice
    # an installed share directory
    share = tmp_path / "share"
    (share / "config" / "dds").mkdir(parents=True)
    for f in (FAST, CYCLONE):
        (share / "config" / "dds" / f.name).write_bytes(f.read_bytes())
    env = dds.profile_env("default", share_dir=share, environ={})
    assert env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str((share / "config" / "dds" / "fastdds.xml").resolve())
    # explicit files: the kind is read from the root element
    assert dds.profile_env(str(FAST), environ={}) == {"FASTRTPS_DEFAULT_PROFILES_FILE": str(FAST),
                                                      "FASTDDS_DEFAULT_PROFILES_FILE": str(FAST),
                                                      dds.QOS_FROM_XML_VAR: "1"}
    transport_only = tmp_path / "mine.xml"  # no reader memory policy: rmw_fastrtps's QoS handling stays
    transport_only.write_text('<dds xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"><profiles>'
                              '<participant profile_name="p" is_default_profile="true"/></profiles></dds>')
    assert dds.QOS_FROM_XML_VAR not in dds.profile_env(str(transport_only), environ={})
    assert dds.profile_env(str(CYCLONE), environ={"CYCLONEDDS_URI": "file:///a.xml"}) == \
        {"CYCLONEDDS_URI": "file:///a.xml,file://" + str(CYCLONE)}


@pytest.mark.parametrize("case", ["missing", "not_xml", "foreign_root", "unknown_name", "broken_install"])
def test_profile_env_refuses_bad_profiles(tmp_path, case):
    if case == "missing":
        arg, kw = str(tmp_path / "nope.xml"), {}
    elif case == "not_xml":
        (tmp_path / "a.xml").write_text("<dds><profiles>")
        arg, kw = str(tmp_path / "a.xml"), {}
    elif case == "foreign_root":
        (tmp_path / "a.xml").write_text("<launch/>")
        arg, kw = str(tmp_path / "a.xml"), {}
    elif case == "unknown_name":
        arg, kw = "fast", {}
    else:
        arg, kw = "default", {"share_dir": tmp_path}
    with pytest.raises(ValueError) as err:
        dds.profile_env(arg, environ={}, **kw)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_depth_launch_applies_the_profile_to_depth_node_and_rviz(monkeypatch):
    from test_launch import _context, _load_with_stand_ins

    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    monkeypatch.delenv("RMW_FASTRTPS_USE_QOS_FROM_XML", raising=False)
    module = _load_with_stand_ins(monkeypatch)
    defaults = {n: d for n, d, _ in module.ARGUMENTS}
    assert defaults["dds_profile"] == "default"
    node, rviz = module._setup(_context(module, rviz="true"))
    assert node.additional_env["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(FAST)
    assert node.additional_env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"
    assert node.additional_env["CYCLONEDDS_URI"] == "file://" + str(CYCLONE)
    assert rviz.additional_env == node.additional_env
    (node,) = module._setup(_context(module, dds_profile="none"))
    assert node.additional_env == {}
    (node,) = module._setup(_context(module, dds_profile=str(CYCLONE)))
    assert node.additional_env == {"CYCLONEDDS_URI": "file://" + str(CYCLONE)}
    with pytest.raises(RuntimeError, match="dds_profile 'nope.xml'"):
        module._setup(_context(module, dds_profile="nope.xml"))


# ---- over real Fast DDS ------------------------------------------------------------------------
# the start of both camera scripts: a reliable rgb8 Image publisher on /camera/image_raw (node name: NODE)
CAMERA_PRELUDE = r"""
import json, sys, time
import numpy as np, rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import Image
from mono_depth_ros.ros import conversions as conv
rclpy.init()
node = rclpy.create_node(NODE)
pub = node.create_publisher(Image, "/camera/image_raw", QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST,
                                                                  reliability=ReliabilityPolicy.RELIABLE))
T = conv.MessageTypes.from_rclpy()
"""
CAMERA = CAMERA_PRELUDE.replace("NODE", '"profile_test_camera"') + r"""
rgb = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
msg = conv.rgb_to_image_msg(T, rgb, conv.make_header(T, 0, 0, "cam"))
end = time.monotonic() + 20
while pub.get_subscription_count() < 1 and time.monotonic() < end:
    time.sleep(0.05)
time.sleep(1.0)
t0 = time.monotonic()
for i in range(int(sys.argv[1])):
    time.sleep(max(0.0, t0 + i / 30.0 - time.monotonic()))
    msg.header.stamp.sec = i
    pub.publish(msg)
time.sleep(1.0)
print(json.dumps({"sent": int(sys.argv[1])}))
rclpy.try_shutdown()
"""


@pytest.mark.ros_rclpy
def test_fastdds_profile_delivers_camera_images_to_a_best_effort_subscriber():
    """640x480 rgb8 at 30 Hz from a reliable camera (another process) into a best-effort subscription,
    both with config/dds/fastdds.xml: (nearly) every frame arrives.  With Fast DDS's built-in 512 KB
    segment most are lost silently (benchmarks/bench_dds.py prints both)."""
    pytest.importorskip("rclpy", reason="real rclpy not installed")
    from sensor_msgs.msg import Image

    if not hasattr(Image, "SLOT_TYPES"):  # pragma: no cover - test/fake_rclpy
        pytest.skip("not the real sensor_msgs")
    from ros_domains import claim_domain_id, ros_env

    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        pytest.skip("this checks the Fast DDS profile")
    env = ros_env(claim_domain_id())
    env.update(dds.profile_env(str(FAST), environ=env))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # this process joins the same domain with the same profile; rclpy reads both at init
    code = r"""
import json, sys, time, subprocess, os
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_test_subscriber")
got = set()
node.create_subscription(Image, "/camera/image_raw", lambda m: got.add(m.header.stamp.sec), qos_profile_sensor_data)
cam = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
end = time.monotonic() + 60
while cam.poll() is None and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.05)
for _ in range(20):
    rclpy.spin_once(node, timeout_sec=0.05)
out = json.loads(cam.stdout.read() or "{}")
print(json.dumps({"sent": out.get("sent"), "got": len(got)}))
rclpy.try_shutdown()
"""
    n = 60
    r = subprocess.run([sys.executable, "-c", code, CAMERA, str(n)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["sent"] == n
    assert res["got"] >= 0.95 * n, f"only {res['got']} of {n} frames arrived with the profile"


def test_profiles_are_installed_where_the_launch_file_looks(setup_kwargs):
    """setup.py installs config/dds/*.xml to share/mono_depth_ros/config/dds (dds_dir(share))."""
    installed = {f: dest for dest, files in setup_kwargs["data_files"] for f in files}
    for f in (FAST, CYCLONE):
        rel = str(f.relative_to(ROOT))
        assert installed.get(rel) == "share/mono_depth_ros/config/dds", rel
    assert dds.dds_dir("/opt/x/share/mono_depth_ros") == Path("/opt/x/share/mono_depth_ros/config/dds")


# ---- reader memory over real Fast DDS ------------------------------------------------------------
BIG_W, BIG_H = 4000, 4000  # 48 MB rgb8: above glibc's largest mmap threshold (32 MB), so a freed payload
#                            leaves the process at once; larger than the 32 MB segment, as in issue 14
BIG_CAMERA = CAMERA_PRELUDE.replace("NODE", '"profile_test_big_camera"') + r"""
hdr = conv.make_header(T, 0, 0, "cam")
small = conv.rgb_to_image_msg(T, np.zeros((240, 320, 3), np.uint8), hdr)  # 230 KB: sent in fragments
big = conv.rgb_to_image_msg(T, np.zeros((int(sys.argv[2]), int(sys.argv[1]), 3), np.uint8), hdr)
end = time.monotonic() + 20
while pub.get_subscription_count() < 1 and time.monotonic() < end:
    time.sleep(0.05)
time.sleep(0.5)
def burst(n):
    for _ in range(n):
        pub.publish(small)
        time.sleep(1 / 30)
burst(10)
print("big", flush=True)
pub.publish(big)
del big
time.sleep(0.5)
burst(20)
time.sleep(0.5)
rclpy.try_shutdown()
"""
BIG_SUBSCRIBER = r"""
import json, subprocess, sys, time
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
rclpy.init()
node = rclpy.create_node("profile_test_big_subscriber")
got = []
node.create_subscription(Image, "/camera/image_raw", lambda raw: got.append(len(raw)), qos_profile_sensor_data,
                         raw=True)
cam = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], sys.argv[3]], stdout=subprocess.PIPE,
                       text=True)
before, peak, end = None, 0.0, time.monotonic() + 90
while cam.poll() is None and time.monotonic() < end:
    rclpy.spin_once(node, timeout_sec=0.02)
    if before is None and len(got) >= 5:
        before = anon_mb()
    peak = max(peak, anon_mb())
for _ in range(10):
    rclpy.spin_once(node, timeout_sec=0.05)
print(json.dumps({"before": before, "peak": peak, "after": anon_mb(), "small": sum(n < 1000000 for n in got),
                  "big_cam": "big" in cam.stdout.read()}))
rclpy.try_shutdown()
"""


def _big_frame_memory(qos_from_xml: str) -> dict:
    from ros_domains import claim_domain_id, ros_env

    env = ros_env(claim_domain_id())
    env.update(dds.profile_env(str(FAST), environ=env))
    env[dds.QOS_FROM_XML_VAR] = qos_from_xml
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", BIG_SUBSCRIBER, BIG_CAMERA, str(BIG_W), str(BIG_H)], env=env,
                       capture_output=True, text=True, timeout=150)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "XMLPARSER" not in r.stderr, r.stderr[-2000:]  # Fast DDS took the whole file
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["big_cam"] and res["before"] is not None and res["small"] >= 20, res
    return res


@pytest.fixture(scope="module")
def real_fastdds():
    pytest.importorskip("rclpy", reason="real rclpy not installed")
    from sensor_msgs.msg import Image

    if not hasattr(Image, "SLOT_TYPES"):  # pragma: no cover - test/fake_rclpy
        pytest.skip("not the real sensor_msgs")
    if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        pytest.skip("this checks the Fast DDS profile")


@pytest.mark.ros_rclpy
def test_fastdds_profile_returns_a_huge_samples_memory(real_fastdds):
    """Issue 14: one frame far larger than the camera's (48 MB here) into a best-effort subscriber
    (the node's default QoS). With the shipped profile as depth.launch.py applies it, the reader's
    payload is freed (an incomplete one once the writer's next fragmented sample starts: the camera's
    next image): anonymous memory comes back to where it was. With RMW_FASTRTPS_USE_QOS_FROM_XML=0
    (rmw_fastrtps forces PREALLOCATED_WITH_REALLOC) the pool keeps it: the check can fail."""
    big_mb = BIG_W * BIG_H * 3 / 2 ** 20
    fixed = _big_frame_memory("1")
    assert fixed["peak"] - fixed["before"] >= 0.5 * big_mb, fixed  # the frame did reach this reader
    assert fixed["after"] - fixed["before"] < 0.25 * big_mb, fixed
    pooled = _big_frame_memory("0")
    assert pooled["after"] - pooled["before"] >= 0.75 * big_mb, pooled


QOS_CHECK = r"""
import json, time
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node("profile_test_qos")
node.create_subscription(Image, "/a", lambda m: None, qos_profile_sensor_data)
node.create_subscription(Image, "/b", lambda m: None, QoSProfile(depth=3, reliability=ReliabilityPolicy.RELIABLE))
node.create_publisher(Image, "/c", QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL))
end = time.monotonic() + 10
out = {}
while time.monotonic() < end and len(out) < 3:
    rclpy.spin_once(node, timeout_sec=0.05)
    for t in ("/a", "/b"):
        for i in node.get_subscriptions_info_by_topic(t):
            out[t] = i.qos_profile.reliability.name
    for i in node.get_publishers_info_by_topic("/c"):
        out["/c"] = i.qos_profile.durability.name
print(json.dumps(out))
rclpy.try_shutdown()
"""


@pytest.mark.ros_rclpy
def test_fastdds_profile_with_qos_from_xml_keeps_the_qos_set_in_code(real_fastdds):
    """RMW_FASTRTPS_USE_QOS_FROM_XML=1 hands the memory policies to the XML; the QoS given in code
    (what the node's defaults and qos_overrides produce) must still be what the endpoints get, and
    Fast DDS must accept the whole file (an XMLPARSER error would drop the transports too)."""
    from ros_domains import claim_domain_id, ros_env

    env = ros_env(claim_domain_id())
    env.update(dds.profile_env("default", environ=env))
    assert env[dds.QOS_FROM_XML_VAR] == "1"
    r = subprocess.run([sys.executable, "-c", QOS_CHECK], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "XMLPARSER" not in r.stderr, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"/a": "BEST_EFFORT", "/b": "RELIABLE",
                                                            "/c": "TRANSIENT_LOCAL"}
