#!/usr/bin/env python3
"""depth_node over real DDS: a camera process -> the depth_node process -> a subscriber process.

    .venv/bin/python benchmarks/bench_dds.py              # full table (~6 min on 2 cores, after the model)
    .venv/bin/python benchmarks/bench_dds.py --quick      # default profile only, 5 s runs (< 2 min, model cached)
    .venv/bin/python benchmarks/bench_dds.py --profiles default --outputs all --rates 1 --duration 30
    .venv/bin/python benchmarks/bench_dds.py --big-frame  # + one 8000x6000 frame: the node's RSS before/peak/after
    .venv/bin/python benchmarks/bench_dds.py --messages   # building each output message in-process, no DDS

Real rclpy and the RMW it loads (the venv's PyPI Jazzy wheels: Fast DDS; under the ROS bundle: Cyclone
DDS).  Every process gets its own ROS_DOMAIN_ID (from MONO_DEPTH_TEST_DOMAINS, as the tests) and
ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; "profile default" gives all three processes the shipped
config/dds profile (mono_depth_ros.dds.profile_env, what depth.launch.py applies), "none" the RMW's
defaults.  ``RMW_FASTRTPS_USE_QOS_FROM_XML=0 bench_dds.py --big-frame ...`` keeps the profile's
transports but lets rmw_fastrtps force its reader pool (PREALLOCATED_WITH_REALLOC): the memory
before the reader profile's fix, for a before/after of the 8000x6000 frame.

* camera: 640x480 rgb8 real frames (../shared/data NYU / TUM / Kinect v2 colour images, resized) +
  CameraInfo at ``--rate`` x {1, 4} Hz, stamped with the wall clock, reliable (image_transport's
  default; ``--camera-qos best_effort`` for the other kind);
* node: ``python -m mono_depth_ros.ros.node`` with the NYU-profile int8 ONNX model (random weights,
  ``mono-depth export`` + ``mono-depth quantize`` on synthetic calibration frames, cached in
  $TMPDIR/mono_depth_bench_dds; ``--model`` for another), backend onnxruntime, default parameters;
* subscriber: depth/image + depth/camera_info ("depth") or also depth/points + depth/colored ("all"),
  RELIABLE (the node's publishers' default), taking the serialised bytes (``raw=True``: the stamp is read
  from the CDR header, no Python deserialisation of multi-MB clouds), and /diagnostics.

Figures per run: camera frames published, delivery into the node (its diagnostics' "frames received"
/ published), node rate (depth images received / camera time), latency camera stamp -> subscriber
p50/p95/p99 (and p50 of the first and last third: growth shows there), node CPU (% of one core) and
RSS (end of run; peak).  "transport" rows: the camera straight into a best-effort subscriber (the
node's subscription QoS), no node.  Before the runs: the pipeline alone (DepthPipeline.infer_rgb on
the same frames, in this process: p50/p99/FPS) and ``mono-depth bench``'s pipeline FPS.
Timing figures are only as quiet as the machine: say whether it was shared when you quote them.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("MONO_DEPTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
FRAMES = [SHARED / "nyu_depth_v2_samples" / "open3d_nyu_raw" / "NYU_color.ppm",
          SHARED / "nyu_depth_v2_samples" / "mmseg_pseudo_nyu" / "bookstore_0001d_00001.jpg",
          SHARED / "rgbd_misc_samples" / "other_formats" / "TUM_color.png",
          SHARED / "rgbd_misc_samples" / "emsanet_kinect2" / "sample_rgb.png"]
W, H = 640, 480
CAMERA_TOPIC, INFO_TOPIC = "/camera/image_raw", "/camera/camera_info"
BIG_PAUSE = 3.0  # seconds without camera frames after the big one
OUTPUTS = {"depth": ["depth/image", "depth/camera_info"],
           "all": ["depth/image", "depth/camera_info", "depth/points", "depth/colored"],
           "camera": [CAMERA_TOPIC]}


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------
def load_frames(w: int = W, h: int = H) -> List[np.ndarray]:
    import cv2

    out = []
    for p in FRAMES:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        if bgr.shape[:2] != (h, w):
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    if not out:
        print(f"WARNING: no frames under {SHARED}: random frames instead", file=sys.stderr)
        rng = np.random.default_rng(0)
        out = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(4)]
    return out


def intrinsics(w: int, h: int):
    from mono_depth_ros.camera import CameraIntrinsics

    f = 525.0 * w / 640.0
    return CameraIntrinsics(fx=f, fy=f, cx=(w - 1) / 2.0, cy=(h - 1) / 2.0, width=w, height=h)


def cdr_stamp_and_width(raw: bytes) -> tuple:
    """(stamp ns, width) of a serialised Image / CameraInfo / PointCloud2 (all start header, height, width)."""
    sec, nsec, n = struct.unpack_from("<iII", raw, 4)
    pos = 16 + n
    pos = 4 + ((pos - 4 + 3) & ~3)
    _, width = struct.unpack_from("<II", raw, pos)
    return sec * 1_000_000_000 + nsec, width


def pct(a, q) -> float:
    return float(np.percentile(a, q)) if len(a) else float("nan")


# ---------------------------------------------------------------------------------------------
# roles (child processes)
# ---------------------------------------------------------------------------------------------
def role_camera(args) -> int:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from mono_depth_ros.ros import conversions as conv

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    rel = ReliabilityPolicy.RELIABLE if args.camera_qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=rel)
    pub_img = node.create_publisher(Image, CAMERA_TOPIC, qos)
    pub_info = node.create_publisher(CameraInfo, INFO_TOPIC, qos)
    T = conv.MessageTypes.from_rclpy()
    hdr = conv.make_header(T, 0, 0, "camera_color_optical_frame")
    images = [conv.rgb_to_image_msg(T, f, hdr) for f in load_frames()]
    info = conv.intrinsics_to_camera_info(T, intrinsics(W, H), hdr)
    big = big_info = None
    if args.big_at > 0:
        bw, bh = args.big_size
        rng = np.random.default_rng(5)
        tile = rng.integers(0, 256, (bh, 1, 3), dtype=np.uint8)
        big = conv.rgb_to_image_msg(T, np.ascontiguousarray(np.broadcast_to(tile, (bh, bw, 3))), hdr)
        big_info = conv.intrinsics_to_camera_info(T, intrinsics(bw, bh), hdr)
    deadline = time.monotonic() + 30.0
    while pub_img.get_subscription_count() < args.wait_subs and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # discovery settles (both directions)
    period = 1.0 / args.rate
    n = int(round(args.duration * args.rate))
    t_start = time.time_ns()
    t0 = time.monotonic()
    sent = 0
    big_sent = []
    for i in range(n):
        target = t0 + i * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time_ns()
        if big is not None and not big_sent and target - t0 >= args.big_at:
            for m in (big_info, big):
                m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, 1_000_000_000)
            pub_info.publish(big_info)
            pub_img.publish(big)
            big_sent.append(now)
            time.sleep(BIG_PAUSE)  # no newer frame replaces it before the node takes it (newest-frame-only)
            t0 += BIG_PAUSE
            continue
        msg = images[i % len(images)]
        for m in (info, msg):
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(now, 1_000_000_000)
        pub_info.publish(info)
        pub_img.publish(msg)
        sent += 1
    t_end = time.time_ns()
    Path(args.out).write_text(json.dumps({"published": sent, "t_start": t_start, "t_end": t_end,
                                          "big_sent": big_sent, "rate": args.rate}))
    time.sleep(0.5)  # let the last messages go out before the participant goes
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


def role_sub(args) -> int:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    types = {"depth/image": Image, "depth/camera_info": CameraInfo, "depth/points": PointCloud2,
             "depth/colored": Image, CAMERA_TOPIC: Image}
    rclpy.init()
    node = rclpy.create_node("bench_subscriber")
    topics = OUTPUTS[args.outputs]
    recv: Dict[str, list] = {t: [] for t in topics}
    diags: list = []
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    subs = []
    for t in topics:
        def cb(raw, _t=t):
            now = time.time_ns()
            stamp, width = cdr_stamp_and_width(raw)
            recv[_t].append((now, stamp, width))
        qos = reliable if t != CAMERA_TOPIC or args.transport_qos == "reliable" else qos_profile_sensor_data
        subs.append(node.create_subscription(types[t], t, cb, qos, raw=True))

    def on_diag(msg):
        now = time.time_ns()
        for st in msg.status:
            if "processing" in st.name:
                diags.append((now, {kv.key: kv.value for kv in st.values}))
    if args.outputs != "camera":
        subs.append(node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10))
    stop = {"flag": False}
    signal.signal(signal.SIGINT, lambda *a: stop.update(flag=True))
    signal.signal(signal.SIGTERM, lambda *a: stop.update(flag=True))
    ready = False
    t_ready = time.monotonic() + 60.0
    try:
        while not stop["flag"]:
            rclpy.spin_once(node, timeout_sec=0.05)
            if not ready:
                matched = all(node.count_publishers(t if t.startswith("/") else "/" + t) > 0 for t in topics
                              if t != CAMERA_TOPIC)
                if (matched and (diags or args.outputs == "camera")) or time.monotonic() > t_ready:
                    time.sleep(0.5)
                    Path(args.ready).write_text("1")
                    ready = True
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    Path(args.out).write_text(json.dumps({"recv": recv, "diags": diags}))
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------------------------------
# orchestration
# ---------------------------------------------------------------------------------------------
class ProcSampler:
    """CPU time and RSS of one process from /proc, sampled by the caller."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: List[tuple] = []  # (time ns, cpu seconds, rss MB, hwm MB)
        self.tick = os.sysconf("SC_CLK_TCK")

    def sample(self) -> None:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        cpu = (int(stat[11]) + int(stat[12])) / self.tick
        kv = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
        self.samples.append((time.time_ns(), cpu, int(kv.get("VmRSS", 0)) / 1024, int(kv.get("VmHWM", 0)) / 1024))

    def window(self, t0: int, t1: int) -> Dict[str, float]:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return {"cpu_pct": float("nan"), "rss_mb": float("nan"), "rss_peak_mb": float("nan")}
        (ta, ca, _, _), (tb, cb, rss, _) = inside[0], inside[-1]
        return {"cpu_pct": 100.0 * (cb - ca) / ((tb - ta) * 1e-9), "rss_mb": rss,
                "rss_peak_mb": max(s[2] for s in inside)}


class MachineSampler:
    """How busy the whole machine is (all cores, from /proc/stat): with the camera, the node and the subscriber
    on the same cores, it tells a node that is slow from a machine that is full."""

    def __init__(self) -> None:
        self.samples: List[tuple] = []  # (time ns, busy jiffies, total jiffies)

    def sample(self) -> None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
        self.samples.append((time.time_ns(), total - idle, total))

    def window(self, t0: int, t1: int) -> float:
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2 or inside[-1][2] == inside[0][2]:
            return float("nan")
        return 100.0 * (inside[-1][1] - inside[0][1]) / (inside[-1][2] - inside[0][2])


class Bench:
    def __init__(self, args) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_dds_"))
        self.py = sys.executable
        if args.domain:
            self.domain = args.domain
        else:
            sys.path.insert(0, str(ROOT / "test"))
            from ros_domains import claim_domain_id

            self.domain = claim_domain_id()
        self.rows: List[Dict[str, Any]] = []

    def env(self, profile: str) -> Dict[str, str]:
        from mono_depth_ros.dds import profile_env

        env = dict(os.environ)
        for k in ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"):
            env.pop(k, None)
        if profile != "none":  # a RMW_FASTRTPS_USE_QOS_FROM_XML already set is kept (=0: the pre-fix reader pool)
            env.update(profile_env(profile, environ=env))
        else:
            env.pop("RMW_FASTRTPS_USE_QOS_FROM_XML", None)
        env.update(ROS_DOMAIN_ID=str(self.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
                   PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
        env.pop("ROS_LOCALHOST_ONLY", None)
        return env

    def child(self, env, *argv, log: str) -> subprocess.Popen:
        f = open(self.tmp / log, "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen([self.py, str(Path(__file__).resolve()), *argv], env=env, stdout=f,
                                stderr=subprocess.STDOUT)

    def start_node(self, env, model: str) -> subprocess.Popen:
        f = open(self.tmp / "node.log", "ab")  # noqa: SIM115
        cmd = [self.py, "-m", "mono_depth_ros.ros.node", "--ros-args", "-r", f"image:={CAMERA_TOPIC}",
               "-r", f"camera_info:={INFO_TOPIC}", "-p", f"model:={model}", "-p", f"backend:={self.args.backend}"]
        for p in self.args.param:
            cmd += ["-p", p]
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)

    def run_once(self, env, profile: str, outputs: str, mult: int, node: Optional[subprocess.Popen],
                 big: bool = False, cam_env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        a = self.args
        tag = f"{profile}-{outputs}-{mult}x{'-big' if big else ''}"
        ready, sub_out, cam_out = self.tmp / f"{tag}.ready", self.tmp / f"{tag}.sub.json", self.tmp / f"{tag}.cam.json"
        sub = self.child(env, "--role", "sub", "--sub-outputs", outputs, "--transport-qos", a.transport_qos,
                         "--out", str(sub_out), "--ready", str(ready),
                         log="sub.log")
        sampler = ProcSampler(node.pid) if node is not None else None
        deadline = time.monotonic() + 90
        while not ready.exists() and time.monotonic() < deadline and sub.poll() is None:
            time.sleep(0.1)
        rate = a.rate * mult
        duration = a.big_duration if big else a.duration
        cam_args = ["--role", "camera", "--rate", str(rate), "--duration", str(duration), "--out", str(cam_out),
                    "--camera-qos", a.camera_qos, "--wait-subs", "1"]
        if big:
            cam_args += ["--big-at", str(a.big_at), "--big-size", *map(str, a.big_size)]
        cam = self.child(cam_env if cam_env is not None else env, *cam_args, log="camera.log")
        others = {"camera": ProcSampler(cam.pid), "sub": ProcSampler(sub.pid), "machine": MachineSampler()}
        while cam.poll() is None:
            for s in ([sampler] if sampler else []) + list(others.values()):
                s.sample()
            time.sleep(0.2)
        t_drain = time.monotonic() + (a.big_drain if big else 2.5)
        while time.monotonic() < t_drain:
            if sampler:
                sampler.sample()
            time.sleep(0.2)
        sub.send_signal(signal.SIGINT)
        try:
            sub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sub.kill()
        try:
            cam_r = json.loads(cam_out.read_text())
            sub_r = json.loads(sub_out.read_text())
        except (OSError, ValueError) as exc:
            return {"profile": profile, "outputs": outputs, "rate": rate, "error": f"no result ({exc}); logs in {self.tmp}"}
        row = self.summarise(profile, outputs, rate, cam_r, sub_r, sampler, big)
        t0, t1 = cam_r["t_start"], cam_r["t_end"]  # the camera's publishing window (its samples end with it)
        row["camera_cpu_pct"] = others["camera"].window(t0, t1 + 1_000_000_000)["cpu_pct"]
        row["sub_cpu_pct"] = others["sub"].window(t0, t1 + 1_000_000_000)["cpu_pct"]
        row["machine_busy_pct"] = others["machine"].window(t0, t1 + 1_000_000_000)
        return row

    def summarise(self, profile, outputs, rate, cam, sub, sampler, big) -> Dict[str, Any]:
        t0, t1 = cam["t_start"], cam["t_end"]
        topic = CAMERA_TOPIC if outputs == "camera" else "depth/image"
        rows = [r for r in sub["recv"][topic] if t0 - 1 <= r[1] <= t1 + 1]
        small = [r for r in rows if r[2] == W]
        lat = np.array([(r[0] - r[1]) * 1e-6 for r in small])
        dur = (t1 - t0) * 1e-9
        out: Dict[str, Any] = {"profile": profile, "outputs": outputs, "rate": rate, "published": cam["published"],
                               "out_frames": len(set(r[1] for r in small)), "out_hz": len(set(r[1] for r in small)) / dur,
                               "lat_p50": pct(lat, 50), "lat_p95": pct(lat, 95), "lat_p99": pct(lat, 99)}
        thirds = np.array_split(lat, 3) if lat.size >= 6 else []
        out["lat_first3_p50"] = pct(thirds[0], 50) if len(thirds) else float("nan")
        out["lat_last3_p50"] = pct(thirds[-1], 50) if len(thirds) else float("nan")
        for t in OUTPUTS.get(outputs, []):
            n = len(set(r[1] for r in sub["recv"].get(t, []) if t0 - 1 <= r[1] <= t1 + 1))
            out[f"n[{t}]"] = n
        if outputs == "camera":
            out["delivery_pct"] = 100.0 * len(set(r[1] for r in rows)) / max(cam["published"] + len(cam["big_sent"]), 1)
        else:
            before = [d for d in sub["diags"] if d[0] < t0]
            after = sub["diags"][-1] if sub["diags"] else None

            def num(d, key):
                try:
                    return float(d[1].get(key, "nan"))
                except (TypeError, ValueError):
                    return float("nan")
            if after is not None:
                base = before[-1] if before else None
                for key, name in (("frames received", "node_received"), ("frames processed", "node_processed"),
                                  ("frames dropped (stale)", "node_stale")):
                    out[name] = num(after, key) - (num(base, key) if base else 0.0)
                lost = [k for k in after[1] if "lost" in k.lower()]
                for k in lost:
                    out[f"node {k}"] = num(after, k) - (num(base, k) if base else 0.0)
                out["delivery_pct"] = 100.0 * out["node_received"] / max(cam["published"] + len(cam["big_sent"]), 1)
        if sampler:
            out.update(sampler.window(t0, t1))
        if big and sampler:
            tb = cam["big_sent"][0] if cam["big_sent"] else t0
            pre = [s[2] for s in sampler.samples if tb - 3_000_000_000 <= s[0] < tb]
            post = [s for s in sampler.samples if s[0] >= tb]
            out["big"] = {"sent": bool(cam["big_sent"]),
                          "processed": any(r[2] == self.args.big_size[0] for r in sub["recv"]["depth/image"]),
                          "rss_steady_mb": float(np.median(pre)) if pre else float("nan"),
                          "rss_peak_mb": max((s[2] for s in post), default=float("nan")),
                          "rss_end_mb": post[-1][2] if post else float("nan"),
                          "hwm_mb": post[-1][3] if post else float("nan"),
                          "seconds_after": (post[-1][0] - tb) * 1e-9 if post else float("nan"),
                          "outputs_after": sum(1 for r in small if r[1] > tb)}
        return out

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def ensure_model(args) -> str:
    if args.model:
        return str(Path(args.model).resolve())
    cache = Path(tempfile.gettempdir()) / "mono_depth_bench_dds"
    cache.mkdir(exist_ok=True)
    int8 = cache / "nyu_random.int8.onnx"
    if int8.exists():
        return str(int8)
    import torch

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.model import EigenDepthNet

    print(f"making the NYU-profile int8 model in {cache} (once; ~1-2 min) ...", flush=True)
    torch.manual_seed(0)
    pt = cache / "nyu_random.pt"
    if not pt.exists():
        save_model(EigenDepthNet("nyu").eval(), pt, overwrite=True,
                   meta={"note": "random weights (bench_dds timing only)"})
    fp32 = cache / "nyu_random.onnx"
    cli = [sys.executable, "-m", "mono_depth_ros"]
    if not fp32.exists():
        subprocess.run(cli + ["export", "--model", str(pt), "--out", str(fp32), "--overwrite"], check=True)
    tmp = cache / "nyu_random.int8.tmp.onnx"
    subprocess.run(cli + ["quantize", "--model", str(fp32), "--out", str(tmp), "--overwrite"], check=True)
    tmp.replace(int8)
    return str(int8)


def pipeline_figures(model: str, iters: int, backend: str) -> Dict[str, float]:
    from mono_depth_ros.pipeline import DepthPipeline

    frames = load_frames()
    intr = intrinsics(W, H)
    pipe = DepthPipeline(model, backend=backend)
    try:
        for i in range(10):
            pipe.infer_rgb(frames[i % len(frames)], intr)
        ts = []
        for i in range(iters):
            t0 = time.perf_counter()
            pipe.infer_rgb(frames[i % len(frames)], intr)
            ts.append((time.perf_counter() - t0) * 1e3)
    finally:
        close = getattr(pipe, "close", None)
        if close:
            close()
    out = {"p50": pct(ts, 50), "p99": pct(ts, 99), "fps": 1e3 / pct(ts, 50)}
    with tempfile.TemporaryDirectory() as td:
        j = Path(td) / "bench.json"
        r = subprocess.run([sys.executable, "-m", "mono_depth_ros", "bench", "--model", model, "--backend",
                            backend, "--iters", str(max(iters // 2, 20)), "--json", str(j)],
                           capture_output=True, text=True)
        if r.returncode == 0 and j.exists():
            res = json.loads(j.read_text())
            pipe_row = next((v for k, v in res.items() if "pipeline" in k and isinstance(v, dict) and "fps" in v), None)
            if pipe_row is None:
                pipe_row = next((v for v in res.values() if isinstance(v, dict) and "pipeline" in v), {}).get("pipeline")
            if isinstance(pipe_row, dict):
                out["bench_fps"] = float(pipe_row["fps"])
                out["bench_p50"] = float(pipe_row["p50_ms"])
    return out


def message_figures(n: int = 30) -> None:
    """--messages: building each 640x480 output message in-process with the real rclpy classes (no DDS),
    p50 / min of n, against the generated constructor's own path (``cls(data=array.array)``: Jazzy's
    __init__ + setter copy the payload twice more)."""
    from mono_depth_ros.colorize import colorize_depth
    from mono_depth_ros.pointcloud import CloudBuilder
    from mono_depth_ros.ros import conversions as conv

    T = conv.MessageTypes.from_rclpy()
    hdr = conv.make_header(T, 1, 2, "camera_color_optical_frame")
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.5, 10.0, (H, W)).astype(np.float32)
    depth[:20] = np.nan
    intr = intrinsics(W, H)
    cloud = CloudBuilder().build(depth, intr)
    colored = colorize_depth(depth, 0.5, 10.0)

    def ctor_path(cls, arr, **fields):  # the generated classes' own way: one copy here, two in __init__
        return cls(data=conv._u8_array(arr), **fields)

    cases = [
        ("depth/image 32FC1", lambda: conv.array_to_image_msg(T, conv.depth_array(depth), "32FC1", hdr)),
        ("depth/camera_info", lambda: conv.intrinsics_to_camera_info(T, intr, hdr)),
        ("depth/points (xyz, organised)", lambda: conv.cloud_to_pointcloud2(T, cloud, hdr)),
        ("  same via PointCloud2(data=...)", lambda: ctor_path(
            T.PointCloud2, cloud.data, header=hdr, height=H, width=W, fields=conv.point_fields(T, cloud.fields),
            is_bigendian=False, point_step=16, row_step=16 * W, is_dense=False)),
        ("depth/colored rgb8", lambda: conv.array_to_image_msg(T, colored, "rgb8", hdr)),
        ("  same via Image(data=...)", lambda: ctor_path(T.Image, colored, header=hdr, height=H, width=W,
                                                         encoding="rgb8", is_bigendian=0, step=3 * W)),
        ("colorize_depth 640x480", lambda: colorize_depth(depth, 0.5, 10.0, out=colored)),
        ("CloudBuilder.build xyz", lambda: CloudBuilder.build(builder, depth, intr)),
    ]
    builder = CloudBuilder()
    print(f"message building, 640x480, real rclpy classes, in-process (no DDS), p50 / min of {n}:")
    for name, f in cases:
        f()
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            m = f()
            ts.append((time.perf_counter() - t0) * 1e3)
            del m
        print(f"  {name:<34} {pct(ts, 50):8.3f} / {min(ts):.3f} ms")


def fmt(v, spec=".1f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return format(v, spec)


def print_table(rows, pipe, base: float) -> None:
    """The table, then the issue's targets judged on the default profile's rows (or the last profile run)."""
    judged = "default" if any(r.get("profile") == "default" for r in rows) else (rows[-1]["profile"] if rows else "")
    print()
    print("| profile | outputs | camera Hz | published | delivery % | node Hz | latency p50 / p95 / p99 ms "
          "| p50 first / last third | node CPU % | camera / subscriber CPU % | machine busy % | node RSS MB (peak) |")
    print("|---|---|---:|---:|---:|---:|---|---|---:|---|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['profile']} | {r['outputs']} | {r['rate']:g} | {r['error']} |")
            continue
        print(f"| {r['profile']} | {r['outputs']} | {r['rate']:g} | {r['published']} | {fmt(r.get('delivery_pct'))} "
              f"| {fmt(r['out_hz'])} | {fmt(r['lat_p50'])} / {fmt(r['lat_p95'])} / {fmt(r['lat_p99'])} "
              f"| {fmt(r['lat_first3_p50'])} / {fmt(r['lat_last3_p50'])} | {fmt(r.get('cpu_pct'), '.0f')} "
              f"| {fmt(r.get('camera_cpu_pct'), '.0f')} / {fmt(r.get('sub_cpu_pct'), '.0f')} "
              f"| {fmt(r.get('machine_busy_pct'), '.0f')} "
              f"| {fmt(r.get('rss_mb'), '.0f')} ({fmt(r.get('rss_peak_mb'), '.0f')}) |")
    if pipe:
        print(f"\npipeline alone (DepthPipeline.infer_rgb, 640x480, this process): p50 {pipe['p50']:.1f} ms, "
              f"p99 {pipe['p99']:.1f} ms, {pipe['fps']:.1f} FPS; mono-depth bench pipeline: "
              f"{fmt(pipe.get('bench_fps'))} FPS (p50 {fmt(pipe.get('bench_p50'), '.1f')} ms)")
        ref = pipe.get("bench_fps") or pipe["fps"]
        depth1 = [r for r in rows if r.get("outputs") == "depth" and "out_hz" in r and r.get("profile") == judged]
        all1 = [r for r in rows if r.get("outputs") == "all" and "out_hz" in r and r.get("profile") == judged]
        if depth1:
            best = max(r["out_hz"] for r in depth1)
            print(f"target: depth-only node rate >= 0.8 x mono-depth bench pipeline FPS ({0.8 * ref:.1f} Hz): best "
                  f"{best:.1f} Hz ({'met' if best >= 0.8 * ref else 'NOT met'}; {best / pipe['fps']:.2f} x the "
                  f"in-process pipeline's {pipe['fps']:.1f} FPS)")
        if all1:
            best = max(r["out_hz"] for r in all1)
            print(f"target: all outputs >= 40 Hz: best {best:.1f} Hz ({'met' if best >= 40 else 'NOT met'})")
        p99 = [r["lat_p99"] for r in rows if r.get("outputs") in ("depth", "all") and r["rate"] == base
               and r.get("profile") == judged and np.isfinite(r.get("lat_p99", np.nan))]
        if p99:
            print(f"target: latency p99 at {base:g} Hz <= 2 x pipeline p99 ({2 * pipe['p99']:.1f} ms): worst {max(p99):.1f} ms "
                  f"({'met' if max(p99) <= 2 * pipe['p99'] else 'NOT met'})")
    deliv = [r for r in rows if r.get("profile") == judged and r.get("outputs") in ("depth", "all")
             and r["rate"] == base and "delivery_pct" in r]
    if deliv:
        worst = min(r["delivery_pct"] for r in deliv)
        print(f"target: delivery >= 99 % into the node at {base:g} Hz ({judged} profile): worst {worst:.1f} % "
              f"({'met' if worst >= 99 else 'NOT met'})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--role", choices=["camera", "sub"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--ready", help=argparse.SUPPRESS)
    ap.add_argument("--sub-outputs", choices=list(OUTPUTS), help=argparse.SUPPRESS)
    ap.add_argument("--wait-subs", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--big-at", type=float, default=0.0, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true",
                    help="< 2 min: 5 s runs, the default profile only (unless --profiles), transport + depth + all "
                         "at 1x and 4x")
    ap.add_argument("--profiles", nargs="+", default=None,
                    help="DDS profiles to compare: none, default, or XML paths (default: none default)")
    ap.add_argument("--outputs", nargs="+", default=["depth", "all"], choices=["depth", "all"],
                    help="subscribed outputs (default: depth all)")
    ap.add_argument("--rates", nargs="+", type=int, default=[1, 4], help="camera rate multipliers (default 1 4)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate at 1x, Hz (default 30)")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of camera per run (default 20)")
    ap.add_argument("--camera-qos", choices=["reliable", "best_effort"], default="reliable")
    ap.add_argument("--no-transport", action="store_true", help="skip the camera -> subscriber rows (no node)")
    ap.add_argument("--no-node", action="store_true", help="only the camera -> subscriber rows (no model needed)")
    ap.add_argument("--profile-on", nargs="+", choices=["both", "camera", "subscriber"], default=["both"],
                    help="transport rows: give the profile to both processes (default), or to the camera or the "
                         "subscriber only (which side's settings matter)")
    ap.add_argument("--transport-qos", choices=["best_effort", "reliable"], default="best_effort",
                    help="QoS of the subscriber in the camera -> subscriber rows (default best_effort, the node's "
                         "default subscription)")
    ap.add_argument("--big-frame", action="store_true",
                    help="also: one 8000x6000 frame (+ matching camera_info) amid 640x480 frames at 10 Hz, depth "
                         "outputs subscribed, default profile; prints the node's RSS before / peak / after")
    ap.add_argument("--big-size", type=int, nargs=2, default=[8000, 6000], metavar=("W", "H"))
    ap.add_argument("--model", help="model file for the node (default: NYU-profile int8 ONNX, random weights, cached; "
                                    "e.g. mono_depth_ros/models/demo.pt with --backend torch)")
    ap.add_argument("--backend", default=None, help="the node's backend (default: onnxruntime for the default "
                                                    "model, auto for --model)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra depth_node parameter, e.g. -p points_color:=true")
    ap.add_argument("--domain", type=int, help="ROS_DOMAIN_ID (default: claimed from MONO_DEPTH_TEST_DOMAINS)")
    ap.add_argument("--pipeline-iters", type=int, default=100)
    ap.add_argument("--json", help="also write the rows as JSON here")
    ap.add_argument("--messages", action="store_true",
                    help="only: the cost of building each output message in-process (real rclpy classes, no DDS)")
    args = ap.parse_args()
    if args.role == "camera":
        return role_camera(args)
    if args.role == "sub":
        args.outputs = args.sub_outputs
        return role_sub(args)
    if args.backend is None:
        args.backend = "auto" if args.model else "onnxruntime"
    if args.profiles is None:
        args.profiles = ["default"] if args.quick else ["none", "default"]
    if args.quick:
        args.duration = min(args.duration, 5.0)
        args.pipeline_iters = min(args.pipeline_iters, 30)
    args.big_duration, args.big_drain = 25.0, 3.0
    try:
        import rclpy  # noqa: F401
    except ImportError:
        print("bench_dds needs rclpy (make venv installs the PyPI Jazzy wheels, or source a ROS 2 install)",
              file=sys.stderr)
        return 2
    if args.messages:
        message_figures()
        return 0
    model = "" if args.no_node else ensure_model(args)
    bench = Bench(args)
    print(f"model {model}; RMW {os.environ.get('RMW_IMPLEMENTATION') or 'default (rmw_fastrtps_cpp in the venv)'}; "
          f"ROS_DOMAIN_ID {bench.domain}; logs {bench.tmp}; load {os.getloadavg()[0]:.2f}", flush=True)
    pipe: Dict[str, float] = {}
    if not args.no_node:
        pipe = pipeline_figures(model, args.pipeline_iters, args.backend)
        print(f"pipeline alone: p50 {pipe['p50']:.1f} ms, p99 {pipe['p99']:.1f} ms, {pipe['fps']:.1f} FPS; "
              f"mono-depth bench pipeline {fmt(pipe.get('bench_fps'))} FPS", flush=True)
    rows: List[Dict[str, Any]] = []
    for profile in args.profiles:
        env = bench.env(profile)
        if not args.no_transport:
            sides = ["both"] if profile == "none" else args.profile_on
            for side in sides:
                sub_env = env if side in ("both", "subscriber") else bench.env("none")
                cam_env = env if side in ("both", "camera") else bench.env("none")
                for mult in args.rates:
                    r = bench.run_once(sub_env, profile, "camera", mult, None, cam_env=cam_env)
                    r["outputs"] = "transport" if side == "both" else f"transport, profile on {side} only"
                    rows.append(r)
                    print(json.dumps(r), flush=True)
        if args.no_node:
            continue
        node = bench.start_node(env, model)
        try:
            for outputs in args.outputs:
                for mult in args.rates:
                    r = bench.run_once(env, profile, outputs, mult, node)
                    rows.append(r)
                    print(json.dumps(r), flush=True)
            if args.big_frame and profile == args.profiles[-1]:
                saved_rate = args.rate
                args.rate, args.big_at = 10.0, 5.0
                r = bench.run_once(env, profile, "depth", 1, node, big=True)
                args.rate, args.big_at = saved_rate, 0.0
                print(json.dumps(r), flush=True)
                rows.append(r)
        finally:
            bench.stop(node)
    print_table([r for r in rows if "big" not in r], pipe, args.rate)
    for r in rows:
        if "big" in r:
            b = r["big"]
            print(f"\none {args.big_size[0]}x{args.big_size[1]} frame amid 640x480 at 10 Hz ({r['profile']} profile, "
                  f"depth outputs): sent {b['sent']}, processed {b['processed']}; node RSS steady "
                  f"{fmt(b['rss_steady_mb'], '.0f')} MB, peak {fmt(b['rss_peak_mb'], '.0f')} MB, "
                  f"{fmt(b['seconds_after'], '.0f')} s later {fmt(b['rss_end_mb'], '.0f')} MB "
                  f"(target: within 100 MB of steady: "
                  f"{'met' if b['rss_end_mb'] - b['rss_steady_mb'] <= 100 else 'NOT met'}); "
                  f"640x480 outputs after it: {b['outputs_after']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"pipeline": pipe, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
