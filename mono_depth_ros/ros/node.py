"""depth_node: camera image in, REP 118 depth image, camera_info, point cloud and colourised depth out.

A thin rclpy shell over the ROS-agnostic pipeline (mono_depth_ros.pipeline).  Threading: the
subscription callbacks only store the newest image (and the newest CameraInfo); a worker thread
runs inference on the newest image, so a slow model drops stale frames instead of queueing them
(counted, and reported on /diagnostics with the latency = publish time - image stamp).

Topics (relative: a namespace groups them; remap ``image`` / ``camera_info``):
  sub  image (sensor_msgs/Image) or image/compressed (use_compressed), camera_info
  pub  depth/image, depth/camera_info, depth/points, depth/colored, /diagnostics
Outputs nobody subscribes to are not computed.  Parameters: mono_depth_ros/ros/params.py.
"""
from __future__ import annotations

import collections
import signal
import threading
from typing import Any, Dict, Optional, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from . import conversions as conv
from . import diagnostics
from .params import DEFAULTS, PARAMS, NodeConfig, ParamSpec, validate_changes, validate_config, validate_value

try:  # rclpy's QoS overriding (Galactic+); test/fake_rclpy lacks it
    from rclpy.qos_overriding_options import QoSOverridingOptions
except ImportError:  # pragma: no cover
    QoSOverridingOptions = None
try:  # diagnostic_updater when installed (a ROS install); else the built-in one with the same statuses
    import diagnostic_updater
except ImportError:  # pip-only installs: the PyPI ROS wheels have no diagnostic_updater
    from . import diagnostics as diagnostic_updater  # type: ignore[no-redef]
try:  # the ecosystem's converters, when installed (the field-level ones in conversions are the fallback)
    from cv_bridge import CvBridge
except ImportError:  # pragma: no cover - only without cv_bridge
    CvBridge = None
try:
    from sensor_msgs_py import point_cloud2
except ImportError:  # pragma: no cover
    point_cloud2 = None

BAD_INPUT_THROTTLE_SEC = 5.0  # one log line per this many seconds for bad inputs (a constant: rclpy
#                               refuses changing a call site's throttle between calls)


def _check_qos(qos: QoSProfile) -> SetParametersResult:
    """Validation callback of the QoS overrides (rclpy already refuses unknown policy names)."""
    if qos.history == HistoryPolicy.KEEP_LAST and qos.depth < 1:
        return SetParametersResult(successful=False, reason=f"depth must be >= 1 with keep_last, got {qos.depth}")
    if qos.depth > 1000:
        return SetParametersResult(successful=False, reason=f"depth {qos.depth} > 1000 (memory: that many "
                                   "images per topic)")
    return SetParametersResult(successful=True)


def _qos_text(qos: Any) -> str:
    def name(policy: Any) -> str:
        return str(getattr(policy, "name", policy)).lower()

    history = name(qos.history)
    return f"{name(qos.reliability)}, {history}" + (f" {qos.depth}" if history == "keep_last" else "")


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, missing/unloadable model); already logged as fatal."""


class BadInput(ValueError):
    """A frame that cannot be processed (counted, logged throttled, skipped)."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=spec.description, read_only=spec.read_only)
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    if spec.range is not None and spec.type is float:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]),
                                                     to_value=float(spec.range[1]), step=float(spec.range[2]))]
    elif spec.range is not None and spec.type is int:
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]),
                                        step=int(spec.range[2]))]
    return d


class _Stats:
    """Counters shared by the callbacks, the worker and the diagnostics (guarded by the node's lock)."""

    def __init__(self) -> None:
        self.received = self.processed = self.dropped = self.bad = self.idle = self.errors = 0
        self.latencies: "collections.deque[float]" = collections.deque(maxlen=100)
        self.infer_times: "collections.deque[float]" = collections.deque(maxlen=100)
        self.last_bad = ""
        self.bad_at_last_report = self.dropped_at_last_report = 0


class DepthNode(Node):
    def __init__(self, pipeline: Any = None, **node_kwargs: Any) -> None:
        """``pipeline``: an already built DepthPipeline (tests); None = load the ``model`` parameter."""
        super().__init__("depth_node", **node_kwargs)
        self._lock = threading.Condition()
        self._stats = _Stats()
        self._pending: Any = None          # newest unprocessed image message
        self._camera: Tuple[Any, Any, Optional[str]] = (None, None, None)  # (msg, intrinsics, error)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._types = conv.MessageTypes.from_rclpy()
        self._bridge = self._working_bridge()

        # parameters: declared with descriptors; values from config/depth.yaml / launch overrides.
        # rclpy raises at declaration for an override of the wrong type (e.g. `min_depth: 5`, an
        # int for a double: InvalidParameterTypeException) or outside the descriptor's range
        # (InvalidParameterValueException): one fatal line, not a traceback.
        values: Dict[str, Any] = {}
        for spec in PARAMS:
            try:
                values[spec.name] = self.declare_parameter(spec.name, spec.default, _descriptor(spec)).value
            except Exception as exc:  # noqa: BLE001 - rclpy's Parameter*Exception classes differ per distro
                self._fatal(f"invalid parameter {spec.name}: {exc} (default {spec.default!r}; "
                            "floating-point parameters need a decimal point, e.g. 5.0)")
        cfg = NodeConfig.from_mapping(values)
        reason = next((r for r in (validate_value(k, v) for k, v in values.items()) if r), None) \
            or validate_config(cfg)
        if reason:
            self._fatal(f"invalid parameter: {reason}")
        self._cfg = cfg
        self._pipeline_dirty = True
        self._pipeline = pipeline if pipeline is not None else self._load_pipeline(cfg)
        reason = self._range_problem(cfg)
        if reason:
            self._fatal(f"invalid parameter: {reason}")
        from ..pointcloud import CloudBuilder

        self._clouds = CloudBuilder()
        # per-frame buffers, reused while the size stays (worker thread only; messages copy out of them)
        self._rgb: Optional[np.ndarray] = None      # decoded camera image
        self._colored: Optional[np.ndarray] = None  # colourised depth

        # topics (QoS: defaults below, each overridable through qos_overrides.<topic>.<entity>.<policy>)
        try:
            self._create_topics(cfg)
        except StartupError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bad qos_overrides value: rclpy raises RuntimeError,
            #                       InvalidQosOverridesError or a Parameter*Exception
            self._fatal(f"cannot create the node's topics: {type(exc).__name__}: {exc}. QoS overrides take "
                        "history keep_last|keep_all|system_default, depth >= 1, reliability "
                        "reliable|best_effort|best_available|system_default (config/depth.yaml)")

        # diagnostics: rate of the depth outputs (FrequencyStatus) + latency, drops, bad inputs
        self._updater = diagnostic_updater.Updater(self)
        self._updater.setHardwareID("mono_depth_ros")
        self._freq_bounds: Dict[str, float] = {}  # read by FrequencyStatus on every update
        self._set_freq_bounds(cfg)
        self._freq = diagnostic_updater.HeaderlessTopicDiagnostic(
            "depth", self._updater, diagnostic_updater.FrequencyStatusParam(self._freq_bounds, 0.1, 10))
        self._updater.add("processing", self._diagnose)

        self.add_on_set_parameters_callback(self._on_set_parameters)
        kind = "metric" if getattr(self._pipeline, "metric", True) else "RELATIVE (not metric; see depth_scale)"
        self.get_logger().info(
            f"model {cfg.model or '(demo)'} on {getattr(self._pipeline, 'backend_name', '?')}, {kind} depth; "
            f"subscribed to {self._sub_image.topic_name} ({_qos_text(self._sub_image.qos_profile)}) + "
            f"{self._sub_info.topic_name} ({_qos_text(self._sub_info.qos_profile)}); publishers "
            f"{_qos_text(self._pub_depth.qos_profile)} (depth/image)")

    # ---- start-up -------------------------------------------------------------------------
    def _create_topics(self, cfg: NodeConfig) -> None:
        """Publishers and subscriptions with QoS overriding enabled (rclpy declares read-only
        parameters qos_overrides.<resolved topic>.<publisher|subscription>.<history|depth|reliability>,
        set from a params file or launch; the values below are the defaults they override)."""
        if cfg.qos_reliability != DEFAULTS["qos_reliability"] or cfg.qos_depth != DEFAULTS["qos_depth"]:
            self.get_logger().warning(
                "qos_reliability / qos_depth are deprecated (they set the default of all four publishers); "
                "use qos_overrides.<topic>.publisher.reliability / .depth per topic instead (config/depth.yaml)")

        def publisher_qos() -> QoSProfile:  # a new profile per entity: rclpy's overriding edits it in place
            return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth,
                              reliability=ReliabilityPolicy.RELIABLE if cfg.qos_reliability == "reliable"
                              else ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)

        def sensor_qos() -> QoSProfile:  # qos_profile_sensor_data: best effort, keep last 5, volatile
            return QoSProfile(history=qos_profile_sensor_data.history, depth=qos_profile_sensor_data.depth,
                              reliability=qos_profile_sensor_data.reliability,
                              durability=qos_profile_sensor_data.durability)

        def overridable() -> Dict[str, Any]:
            if QoSOverridingOptions is None:  # pragma: no cover - test/fake_rclpy has no QoS overriding
                return {}
            return {"qos_overriding_options": QoSOverridingOptions.with_default_policies(callback=_check_qos)}

        self._pub_depth = self.create_publisher(Image, "depth/image", publisher_qos(), **overridable())
        self._pub_info = self.create_publisher(CameraInfo, "depth/camera_info", publisher_qos(), **overridable())
        self._pub_points = self.create_publisher(PointCloud2, "depth/points", publisher_qos(), **overridable())
        self._pub_colored = self.create_publisher(Image, "depth/colored", publisher_qos(), **overridable())
        image_type, image_topic = (CompressedImage, "image/compressed") if cfg.use_compressed else (Image, "image")
        self._sub_image = self.create_subscription(image_type, image_topic, self._on_image, sensor_qos(),
                                                   **overridable())
        self._sub_info = self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, sensor_qos(),
                                                  **overridable())

    def _fatal(self, message: str) -> None:
        self.get_logger().fatal(message)
        raise StartupError(message)

    def _working_bridge(self) -> Any:
        """cv_bridge when importable *and* working: a cv_bridge built against another OpenCV
        (e.g. cv2 5.x, `KeyError: 16`) fails on every frame; then use the field-level conversions."""
        if CvBridge is None:
            return None
        try:
            bridge = CvBridge()
            rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
            depth = np.array([[0.5, np.nan, 2.0], [3.0, 4.0, 80.0]], dtype=np.float32)
            rgb_back = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(rgb, encoding="rgb8"), desired_encoding="rgb8")
            depth_back = bridge.imgmsg_to_cv2(bridge.cv2_to_imgmsg(depth, encoding="32FC1"),
                                              desired_encoding="32FC1")
            if not (np.array_equal(rgb_back, rgb) and np.array_equal(depth_back, depth, equal_nan=True)):
                raise ValueError("an image does not survive a cv2_to_imgmsg / imgmsg_to_cv2 round trip")
            return bridge
        except Exception as exc:  # noqa: BLE001
            self.get_logger().warning(f"cv_bridge is installed but does not work here ({type(exc).__name__}: "
                                      f"{exc}); using the built-in image conversions instead")
            return None

    def _load_pipeline(self, cfg: NodeConfig) -> Any:
        try:
            from ..pipeline import DepthPipeline

            return DepthPipeline(cfg.model or None, backend=cfg.backend, device=cfg.device or None,
                                 precision=cfg.precision, output=cfg.output_resolution,
                                 scale=cfg.depth_scale, threads=cfg.threads or None)  # range: first frame
        except Exception as exc:  # noqa: BLE001 - any load failure is fatal, with one clear message
            what = repr(cfg.model) if cfg.model else "(none given: the shipped demo model)"
            self._fatal(f"cannot load model {what} with backend {cfg.backend!r}: {type(exc).__name__}: {exc}. "
                        "Fix: set the 'model' parameter to an existing model file (.pt checkpoint, .onnx or "
                        ".engine), e.g. `ros2 launch mono_depth_ros depth.launch.py model:=/abs/path/model.pt`, "
                        "or pick an installed backend (backend:=torch|onnxruntime|tensorrt).")

    def _range_problem(self, cfg: NodeConfig) -> Optional[str]:
        """The depth range with 0 replaced by the model's own bound must be ordered."""
        profile = self._pipeline.profile
        lo, hi = cfg.min_depth or profile.min_depth, cfg.max_depth or profile.max_depth
        if not 0 <= lo < hi:
            return (f"depth range [{lo:g}, {hi:g}] m is empty (min_depth={cfg.min_depth:g}, max_depth="
                    f"{cfg.max_depth:g}; 0 = the model's {profile.min_depth:g} / {profile.max_depth:g})")
        return None

    def start(self) -> None:
        """Start the inference worker thread."""
        self._thread = threading.Thread(target=self._run, name="depth_worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    # ---- callbacks (executor thread): store only ------------------------------------------
    def _on_image(self, msg: Any) -> None:
        with self._lock:
            self._stats.received += 1
            if self._pending is not None:
                self._stats.dropped += 1
            self._pending = msg
            self._lock.notify()

    def _on_camera_info(self, msg: Any) -> None:
        # Keep the latest CameraInfo: it rarely changes, and an exact-time synchroniser would drop
        # images whenever camera_info (best effort) loses a message.
        camera: Tuple[Any, Any, Optional[str]]
        try:
            camera = (msg, conv.camera_info_to_intrinsics(msg), None)
        except ValueError as exc:
            camera = (msg, None, f"bad camera_info: {exc}")
        with self._lock:
            self._camera = camera

    def _on_set_parameters(self, params: Any) -> SetParametersResult:
        if any(p.name == diagnostics.PERIOD_PARAMETER for p in params):
            return SetParametersResult(successful=False, reason=f"{diagnostics.PERIOD_PARAMETER} is fixed at "
                                       "start-up (restart the node to change it)")
        new, reason = validate_changes(self._cfg, {p.name: p.value for p in params})
        if new is not None:
            reason = self._range_problem(new)
        if new is None or reason:
            return SetParametersResult(successful=False, reason=reason)
        with self._lock:
            self._cfg = new
            self._pipeline_dirty = True
            self._set_freq_bounds(new)
        return SetParametersResult(successful=True)

    def _set_freq_bounds(self, cfg: NodeConfig) -> None:
        # diagnostic_updater's FrequencyStatus checks freq_bound['max'] only when the key exists;
        # expected_max_rate 0.0 means "no upper bound" (params.validate_config)
        self._freq_bounds["min"] = cfg.expected_min_rate
        if cfg.expected_max_rate > 0:
            self._freq_bounds["max"] = cfg.expected_max_rate
        else:
            self._freq_bounds.pop("max", None)

    # ---- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._pending is None:
                    self._lock.wait(0.1)
            try:
                self.process_once()
            except Exception as exc:  # noqa: BLE001 - a failing frame must not kill the worker
                if self._stop.is_set() or not rclpy.ok():
                    return  # Ctrl-C shut the context down under a publish(): not a processing error
                with self._lock:
                    self._stats.errors += 1
                self.get_logger().error(f"processing a frame failed: {type(exc).__name__}: {exc}",
                                        throttle_duration_sec=BAD_INPUT_THROTTLE_SEC)

    def _wanted(self, cfg: NodeConfig) -> Dict[str, bool]:
        return {"depth": self._pub_depth.get_subscription_count() > 0,
                "info": self._pub_info.get_subscription_count() > 0,
                "points": cfg.points_enabled and self._pub_points.get_subscription_count() > 0,
                "colored": self._pub_colored.get_subscription_count() > 0}

    def process_once(self) -> bool:
        """Process the newest pending image, if any (the worker's loop body). True if there was one."""
        with self._lock:
            msg, self._pending = self._pending, None
            cfg, camera, dirty = self._cfg, self._camera, self._pipeline_dirty
            self._pipeline_dirty = False
        if msg is None:
            return False
        if dirty:
            self._pipeline.set_range(*cfg.depth_range)
            self._pipeline.set_scale(cfg.depth_scale)
            self._pipeline.set_output(cfg.output_resolution)
        want = self._wanted(cfg)
        if not any(want.values()):
            with self._lock:
                self._stats.idle += 1
            return True
        try:
            rgb = self._decode(msg)
            intrinsics = self._intrinsics_for(rgb, camera)
        except ValueError as exc:  # ImageDecodeError, BadInput
            self._bad_input(str(exc))
            return True
        if intrinsics is None:
            want["info"] = want["points"] = False
            if not any(want.values()):
                with self._lock:
                    self._stats.idle += 1
                return True
        result = self._pipeline.infer_rgb(rgb, intrinsics)
        header = conv.copy_header(self._types, msg.header, cfg.frame_id)
        self._publish(result, header, cfg, want, camera[0])
        latency = (self.get_clock().now().nanoseconds - conv.stamp_to_ns(msg.header.stamp)) * 1e-9
        self._freq.tick()
        with self._lock:
            self._stats.processed += 1
            self._stats.latencies.append(latency)
            self._stats.infer_times.append(float(result.timings.get("total", sum(result.timings.values()))))
        return True

    def _decode(self, msg: Any) -> np.ndarray:
        if isinstance(msg, CompressedImage):
            return conv.compressed_msg_to_rgb(msg)
        conv.check_image_msg(msg)  # empty image, data shorter than step * height
        if self._bridge is not None:
            try:
                return self._bridge.imgmsg_to_cv2(msg, desired_encoding="rgb8")
            except Exception:  # noqa: BLE001 - CvBridgeError and friends: try the field-level decoder,
                pass           # which also knows the uyvy / yuyv aliases; it raises ImageDecodeError
        self._rgb = conv.image_msg_to_rgb(msg, out=self._rgb)
        return self._rgb

    def _intrinsics_for(self, rgb: np.ndarray, camera: Tuple[Any, Any, Optional[str]]) -> Any:
        msg, intrinsics, error = camera
        if error:
            raise BadInput(error)
        if msg is None:
            self.get_logger().warning("no camera_info received yet: publishing depth/image and depth/colored "
                                   "only; depth/points and depth/camera_info need the camera intrinsics",
                                   once=True)
            return None
        h, w = rgb.shape[:2]
        if (intrinsics.width, intrinsics.height) != (w, h):
            raise BadInput(f"camera_info is {intrinsics.width}x{intrinsics.height} but the image is {w}x{h}")
        return intrinsics

    def _bad_input(self, reason: str) -> None:
        with self._lock:
            self._stats.bad += 1
            self._stats.last_bad = reason
            n = self._stats.bad
        self.get_logger().warning(f"skipping frame ({n} bad so far): {reason}",
                               throttle_duration_sec=BAD_INPUT_THROTTLE_SEC)

    # ---- publishing ------------------------------------------------------------------------
    def _publish(self, result: Any, header: Any, cfg: NodeConfig, want: Dict[str, bool], camera_msg: Any) -> None:
        if want["depth"]:
            self._pub_depth.publish(self._image_msg(conv.depth_array(result.depth, cfg.depth_encoding),
                                                    cfg.depth_encoding, header))
        if want["info"] and result.intrinsics is not None:
            self._pub_info.publish(conv.intrinsics_to_camera_info(self._types, result.intrinsics, header,
                                                                  source=camera_msg))
        if want["points"] and result.intrinsics is not None:
            cloud = self._clouds.build(result.depth, result.intrinsics,
                                       rgb=result.rgb if cfg.points_color else None,
                                       organized=cfg.points_organized, stride=cfg.points_stride)
            self._pub_points.publish(self._cloud_msg(cloud, header))
        if want["colored"]:
            from ..colorize import colorize_depth

            lo, hi = self._color_range(cfg, result.depth)
            self._colored = colorize_depth(result.depth, lo, hi, cfg.colormap, out=self._colored)
            self._pub_colored.publish(self._image_msg(self._colored, "rgb8", header))

    def _image_msg(self, array: np.ndarray, encoding: str, header: Any) -> Any:
        # Not cv_bridge: its cv2_to_imgmsg copies twice (tobytes + frombytes) into a message that
        # Jazzy's __init__ / setter copy again; conversions copies the buffer once (module doc there).
        return conv.array_to_image_msg(self._types, array, encoding, header)

    def _cloud_msg(self, cloud: Any, header: Any) -> Any:
        # Not sensor_msgs_py.point_cloud2.create_cloud: it copies the points through tobytes() and the
        # message's __init__ + setter (3 copies of up to 9.8 MB at 640x480); this copies once.
        return conv.cloud_to_pointcloud2(self._types, cloud, header)

    def _color_range(self, cfg: NodeConfig, depth: np.ndarray) -> Tuple[float, float]:
        lo, hi = cfg.color_min_depth, cfg.color_max_depth
        if not (lo > 0 and hi > 0):
            if getattr(self._pipeline, "metric", True):
                profile = self._pipeline.profile
                auto = (cfg.min_depth or profile.min_depth, cfg.max_depth or profile.max_depth)
            else:  # relative depth: the frame's own robust range
                finite = depth[np.isfinite(depth)]
                auto = tuple(np.percentile(finite, [2, 98])) if finite.size else (0.0, 1.0)
            lo, hi = lo or float(auto[0]), hi or float(auto[1])
        lo = max(float(lo), 0.0)
        return lo, max(float(hi), lo + 1e-3)

    # ---- diagnostics -----------------------------------------------------------------------
    def _diagnose(self, stat: Any) -> Any:
        with self._lock:
            s = self._stats
            lat = np.asarray(s.latencies, dtype=np.float64)
            inf = np.asarray(s.infer_times, dtype=np.float64)
            new_bad = s.bad - s.bad_at_last_report
            new_drop = s.dropped - s.dropped_at_last_report
            s.bad_at_last_report, s.dropped_at_last_report = s.bad, s.dropped
            counts = (s.received, s.processed, s.dropped, s.bad, s.idle, s.errors, s.last_bad)
            camera_ok = self._camera[1] is not None
        if new_bad:
            stat.summary(DiagnosticStatus.WARN, f"{new_bad} bad input frame(s) skipped: {counts[6]}")
        elif new_drop:
            stat.summary(DiagnosticStatus.OK, f"{new_drop} stale frame(s) dropped (inference slower than input)")
        else:
            stat.summary(DiagnosticStatus.OK, "ok")
        for key, val in zip(("frames received", "frames processed", "frames dropped (stale)",
                             "bad input frames", "frames skipped (no subscribers)", "processing errors"), counts):
            stat.add(key, str(val))
        stat.add("last bad input", counts[6])
        stat.add("camera_info", "ok" if camera_ok else "missing or invalid")
        if lat.size:
            stat.add("latency last (ms)", f"{lat[-1] * 1e3:.1f}")
            stat.add("latency mean (ms)", f"{lat.mean() * 1e3:.1f}")
            stat.add("latency max (ms)", f"{lat.max() * 1e3:.1f}")
        if inf.size:
            stat.add("pipeline time mean (ms)", f"{inf.mean() * 1e3:.1f}")
        return stat


def _ignore_sigint() -> None:
    """From the first Ctrl-C on, further SIGINTs are ignored: `ros2 launch` forwards SIGINT to a
    process group the terminal has already signalled, and a second KeyboardInterrupt raised while
    node.stop() joins the worker would end the process with a traceback (and status -2)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # not the main thread (main() called from a test's thread)
        pass


def _shutdown(node: Optional[DepthNode]) -> None:
    _ignore_sigint()
    if node is not None:
        node.stop()
        node.destroy_node()
    rclpy.try_shutdown()  # restores the SIGINT handler rclpy found at init ...
    _ignore_sigint()      # ... so ignore again until the process has exited


def _main(args: Any) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = DepthNode()
        node.start()
        rclpy.spin(node)
    except StartupError:
        return 1  # already logged as fatal by the node
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # Ctrl-C / shutdown from outside: exit quietly
    finally:
        _shutdown(node)
    return 0


def main(args: Any = None) -> int:
    """The depth_node process. It ends with SIGINT ignored: shutting down is the process's last act,
    and a handler restored on return would let the second SIGINT of a burst raise there."""
    try:
        return _main(args)
    except KeyboardInterrupt:  # a second Ctrl-C before _shutdown could ignore it: still a quiet exit
        return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
