"""depth_evaluator: live evaluation of depth_node against a LiDAR, with latency and dropped frames.

Subscribes to the node's ``depth/image`` + ``depth/camera_info``, the LiDAR PointCloud2 (e.g. a
KITTI bag played with ``ros2 bag play``), the camera ``image`` the node consumes (to measure
end-to-end latency and count dropped frames) and /tf (/tf_static) through tf2. Each depth image is
paired with the LiDAR scan nearest in stamp, the scan is moved into the depth image's frame with
tf2 and projected with depth/camera_info's intrinsics (the depth image's own geometry, whatever
the node's ``output_resolution``), and the paper's eight metrics are computed -- the same code as
``mono-depth bag --eval`` (mono_depth_ros.bag.evaluate). A running summary is logged every
``report_every`` frames; on shutdown (Ctrl-C, launch shutdown, or ``idle_shutdown`` seconds without
a depth image) the totals are logged and, with ``output_dir``, written as CSV / JSON / markdown /
plots.

Latency = wall time the depth image arrives here - wall time its input image (same stamp) arrived
here: independent of the recording's stamps, so it is right under ``ros2 bag play`` too. Dropped =
input images with no depth image within ``drop_timeout`` s (the node keeps only the newest frame
when inference is slower than the camera).

Entry point: ``depth_evaluator = mono_depth_ros.ros.evaluator_node:main``.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from tf2_ros import Buffer, TransformListener

from ..bag.evaluate import NO_PLOTS, DepthEvaluator, LiveEvaluation, plots_available
from ..msgs.fields import camera_info_K
from ..bag.io import pointcloud2_xyz
from ..bag.tf import transform_stamped_to_matrix
from ..msgs import conversions as conv

PARAMS: Dict[str, Any] = {
    "depth_topic": "depth/image",
    "depth_info_topic": "depth/camera_info",
    "image_topic": "image",            # the camera image depth_node consumes ("" = no latency / drops)
    "lidar_topic": "/kitti/velodyne_points",
    "protocols": "paper,garg80",
    "median_scaling": False,
    "eval_mode": "image",
    "gt_max_dt": 0.05,                 # s between a depth image and its LiDAR scan
    "drop_timeout": 2.0,               # s after which an input image without depth counts as dropped
    "report_every": 10,                # log a summary every n evaluated frames (0 = only at the end)
    "output_dir": "",                  # write CSV / JSON / markdown / plots here at shutdown
    "idle_shutdown": 0.0,              # s without depth after the first one -> finish and exit (0 = never)
    "qos_reliability": "reliable",     # of the subscriptions (depth_node publishes reliable by default)
    # s a tf lookup may wait. 0: none. The lookup runs in a callback on the thread that also delivers
    # /tf, so a transform missing at that moment cannot arrive during the wait: the frame is skipped
    # (counted) and later ones find it.
    "tf_timeout": 0.0,
    "worst_frame_rgb": True,           # decode input images for the worst-frame figure
    # camera images in the played bag (eval.launch.py counts them before playing; 0 = unknown): the
    # coverage reported at the end is frames evaluated / this (else / camera images received)
    "bag_images": 0,
    # name of the depth node to wait for: once it subscribes to image_topic (it subscribes after its
    # model has loaded) the evaluator logs READY_LINE once; eval.launch.py starts `ros2 bag play` on it
    "wait_for_node": "",
}

READY_LINE = "ready for playback"
WAIT_INFO_S = 1.0   # s a depth image waits for the depth/camera_info of its stamp
MAX_WAITING = 10    # depth images waiting at most  # eval.launch.py matches this text in the evaluator's output


class DepthEvaluatorNode(Node):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__("depth_evaluator", **kwargs)
        p = {k: self.declare_parameter(k, v).value for k, v in PARAMS.items()}
        self.p = p
        protocols = [s.strip() for s in str(p["protocols"]).split(",") if s.strip()]
        self.evaluator = DepthEvaluator(protocols, median_scaling=bool(p["median_scaling"]), mode=str(p["eval_mode"]))
        self.live = LiveEvaluation(self.evaluator, self._transform, gt_max_dt=float(p["gt_max_dt"]),
                                   drop_timeout=float(p["drop_timeout"]))
        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self._T: Dict[tuple, np.ndarray] = {}
        self._infos: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._waiting: "OrderedDict[int, tuple]" = OrderedDict()  # depth images awaiting their camera_info
        self._no_info = 0
        self._last_depth_wall: Optional[float] = None
        self._finished = False
        self._bad_inputs = 0
        self._errors_logged = 0
        rel = ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=rel, durability=DurabilityPolicy.VOLATILE)
        self.create_subscription(Image, p["depth_topic"], self._on_depth, qos)
        self.create_subscription(CameraInfo, p["depth_info_topic"], self._on_depth_info, qos)
        self.create_subscription(PointCloud2, p["lidar_topic"], self._on_lidar, qos)
        if p["image_topic"]:
            self.create_subscription(Image, p["image_topic"], self._on_image, qos)
        self.create_timer(0.5, self._check_idle)
        self._ready_timer = None
        if p["wait_for_node"] and p["image_topic"]:
            self._ready_timer = self.create_timer(0.2, self._check_ready)
        self.get_logger().info(f"evaluating {p['depth_topic']} against {p['lidar_topic']} ({', '.join(protocols)})")

    # ---- tf ----
    def _transform(self, target: str, source: str) -> np.ndarray:
        key = (target, source)
        if key not in self._T:  # LiDAR -> camera is static on a vehicle: look it up once
            ts = self.tf_buffer.lookup_transform(target, source, Time(),
                                                 timeout=Duration(seconds=float(self.p["tf_timeout"])))
            self._T[key] = transform_stamped_to_matrix(ts)[2]
        return self._T[key]

    # ---- callbacks ----
    def _on_image(self, msg: Any) -> None:
        rgb = (lambda m=msg: conv.image_msg_to_rgb(m)) if self.p["worst_frame_rgb"] else None
        self.live.on_image(conv.stamp_to_ns(msg.header.stamp), time.monotonic(), rgb)

    def _on_depth_info(self, msg: Any) -> None:
        stamp = conv.stamp_to_ns(msg.header.stamp)
        try:
            self._infos[stamp] = camera_info_K(msg.k, msg.p)
        except ValueError as exc:
            self.get_logger().warning(f"bad depth camera_info: {exc}", throttle_duration_sec=5.0)
            return
        while len(self._infos) > 50:
            self._infos.popitem(last=False)
        waiting = self._waiting.pop(stamp, None)
        if waiting is not None:
            self._evaluate_depth(*waiting, self._infos[stamp])

    def _on_depth(self, msg: Any) -> None:
        """depth_node publishes depth/image before depth/camera_info: a depth image waits (bounded) for
        the camera_info of its own stamp; one that waited WAIT_INFO_S takes the latest camera_info."""
        wall = time.monotonic()
        self._last_depth_wall = wall
        stamp = conv.stamp_to_ns(msg.header.stamp)
        K = self._infos.get(stamp)
        if K is not None:
            self._evaluate_depth(msg, stamp, wall, K)
        else:
            self._waiting[stamp] = (msg, stamp, wall)
        self._flush_waiting(wall)

    def _flush_waiting(self, wall: Optional[float] = None, final: bool = False) -> None:
        while self._waiting:
            stamp, (msg, _, arrived) = next(iter(self._waiting.items()))
            if not (final or len(self._waiting) > MAX_WAITING or (wall is not None and wall - arrived > WAIT_INFO_S)):
                return
            del self._waiting[stamp]
            if not self._infos:
                self._no_info += 1
                self.get_logger().warning("no depth/camera_info received: cannot project the LiDAR for a depth "
                                          "image", throttle_duration_sec=5.0)
                continue
            self._evaluate_depth(msg, stamp, arrived, next(reversed(self._infos.values())))

    def _evaluate_depth(self, msg: Any, stamp: int, wall: float, K: np.ndarray) -> None:
        try:
            depth = conv.image_msg_to_depth(msg)
        except ValueError as exc:
            self._bad(f"bad depth image: {exc}")
            return
        self._report(self.live.on_depth(stamp, wall, depth, K, msg.header.frame_id,
                                        now_ns=self.get_clock().now().nanoseconds))

    def _on_lidar(self, msg: Any) -> None:
        try:
            points = pointcloud2_xyz(msg, self.p["lidar_topic"])
        except ValueError as exc:
            self._bad(str(exc))
            return
        self._report(self.live.on_lidar(conv.stamp_to_ns(msg.header.stamp), points, msg.header.frame_id))

    def _bad(self, reason: str) -> None:
        self._bad_inputs += 1
        self.get_logger().warning(f"skipping a message ({self._bad_inputs} so far): {reason}", throttle_duration_sec=5.0)

    def _report(self, recs: list) -> None:
        if self.live.errors != self._errors_logged:  # the evaluation (LiveEvaluation) skipped frames
            self._errors_logged = self.live.errors
            self.get_logger().warning(f"evaluation of a frame failed ({self.live.errors} so far): "
                                   f"{self.live.last_error}", throttle_duration_sec=5.0)
        n = int(self.p["report_every"])
        if not recs or n <= 0:
            return
        if len(self.evaluator) // n != (len(self.evaluator) - len(recs)) // n:
            self.get_logger().info(self._summary_line())

    def _summary_line(self) -> str:
        totals = self.evaluator.totals()
        s = self.live.stats(expected_images=int(self.p["bag_images"]))
        parts = [f"{len(self.evaluator)} frames"]
        for name, t in totals.items():
            parts.append(f"{name}: AbsRel {t['abs_rel']:.3f} RMSE {t['rmse']:.2f} d1 {t['delta1']:.3f}")
        if "latency_mean_ms" in s:
            parts.append(f"latency {s['latency_mean_ms']:.0f} ms (p90 {s['latency_p90_ms']:.0f})")
        parts.append(f"dropped {s['dropped_frames']}/{s['input_images']}")
        parts.append(f"coverage {s['frame_coverage']:.0%}")
        return "; ".join(parts)

    def _check_ready(self) -> None:
        topic = self.resolve_topic_name(str(self.p["image_topic"]))
        if any(i.node_name == self.p["wait_for_node"] for i in self.get_subscriptions_info_by_topic(topic)):
            self.get_logger().info(f"{self.p['wait_for_node']} subscribes to {topic}: {READY_LINE}")
            if self._ready_timer is not None:
                self._ready_timer.cancel()
                self._ready_timer = None

    def _check_idle(self) -> None:
        self._flush_waiting(time.monotonic())
        if float(self.p["idle_shutdown"]) > 0 and self._last_depth_wall is not None and time.monotonic() - self._last_depth_wall > float(self.p["idle_shutdown"]):
            self.get_logger().info(f"no depth image for {self.p['idle_shutdown']} s: finishing")
            self.finish()
            raise SystemExit(0)  # leaves spin(); main() shuts down cleanly

    # ---- results ----
    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._flush_waiting(final=True)
        self._report(self.live.finish())
        stats = self.live.stats(expected_images=int(self.p["bag_images"]))
        stats["bad_messages"] = self._bad_inputs
        stats["depth_without_camera_info"] = self._no_info
        log = self.get_logger()
        if stats["frame_coverage"] < 1.0:
            log.warning(f"coverage {stats['frame_coverage']:.0%}: {stats['frames_evaluated']} of "
                        f"{stats['bag_images'] or stats['input_images']} camera frames evaluated "
                        f"(dropped {stats['dropped_frames']}, without ground truth "
                        f"{stats['frames_without_ground_truth']}, evaluation errors {stats['evaluation_errors']})")
        if len(self.evaluator) == 0:
            log.warning(f"no frame was evaluated: {stats}")
        else:
            log.info("depth evaluation:\n" + self.evaluator.markdown() + "\n" + self._summary_line())
        if self.p["output_dir"]:
            paths = self.evaluator.write(Path(str(self.p["output_dir"])), prefix="live_eval", extra=stats,
                                         plots=len(self.evaluator) > 0)
            log.info("wrote " + ", ".join(str(v) for v in paths.values()))
            if len(self.evaluator) > 0 and not plots_available():
                log.info(NO_PLOTS)


def main(args: Any = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = DepthEvaluatorNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException, SystemExit):
        pass
    finally:
        if node is not None:
            node.finish()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
