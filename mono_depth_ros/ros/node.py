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
import sys
import threading
import time
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..camera import IntrinsicsFitter, IntrinsicsSizeError
from ..image_files import read_header_bytes
from ..default_models import ROAD_MODEL, is_kitti_shaped
from ..model_spec import geometry_note
from ..msgs import conversions as conv
from ..msgs.outputs import DepthOutputs
from . import diagnostics
from ..params import DEFAULTS, PARAMS, NodeConfig, ParamSpec, validate_changes, validate_config, validate_value

try:  # the subscription's message-lost event: rclpy.event_handler (Iron+), rclpy.qos_event (Humble)
    from rclpy.event_handler import SubscriptionEventCallbacks, UnsupportedEventTypeError
except ImportError:  # pragma: no cover
    try:
        from rclpy.qos_event import SubscriptionEventCallbacks, UnsupportedEventTypeError
    except ImportError:  # test/fake_rclpy has neither
        SubscriptionEventCallbacks = UnsupportedEventTypeError = None
try:  # rclpy's QoS overriding (Galactic+); test/fake_rclpy lacks it
    from rclpy.qos_overriding_options import QoSOverridingOptions
except ImportError:  # pragma: no cover
    QoSOverridingOptions = None
try:  # diagnostic_updater when installed (a ROS install); else the built-in one with the same statuses
    import diagnostic_updater
except ImportError:  # pip-only installs: the PyPI ROS wheels have no diagnostic_updater
    from . import diagnostics as diagnostic_updater
try:  # cv_bridge decodes camera images when installed and working (conversions' decoder is the fallback)
    from cv_bridge import CvBridge
except ImportError:  # pragma: no cover - only without cv_bridge
    CvBridge = None

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


def _profile_text(profile: Any) -> str:
    trained = f"{profile.resize_w}x{profile.resize_h}" if profile.resize_w and profile.resize_h \
        else f"{profile.input_w}x{profile.input_h}"
    return (f"profile '{profile.name}' (trained on {trained} images, network input {profile.input_w}x"
            f"{profile.input_h}, {profile.min_depth:g}-{profile.max_depth:g} m)")


def _encoded_size(data: Any) -> Optional[Tuple[int, int]]:
    """(width, height) from a PNG or JPEG header without decoding (image_files' parser); None when not found."""
    header = read_header_bytes(data)
    return (header.width, header.height) if header is not None else None


def _too_large(msg: Any, limit: int) -> Optional[str]:
    """Why an image exceeds max_input_pixels (from its message fields / encoded header), else None."""
    if limit <= 0:
        return None
    if isinstance(msg, CompressedImage):
        size = _encoded_size(msg.data)
        if size is None:
            return None  # unknown container: the decoder's own checks apply
        w, h = size
    else:
        w, h = int(msg.width), int(msg.height)
    if w * h <= limit:
        return None
    return (f"image {w}x{h} ({w * h} pixels) exceeds max_input_pixels {limit}; refused before decoding "
            "(raise max_input_pixels, 0 = no limit)")


def _geometry_warning(profile: Any, w: int, h: int) -> Optional[str]:
    """The CLI's and bag tools' geometry check (model_spec.geometry_note); for KITTI-shaped images it also
    names the shipped road model, which the node (unlike predict / bag / eval.launch.py) does not pick by
    itself: it loads its model before the first image."""
    note = geometry_note(profile, w, h)
    trained = (profile.resize_w or profile.input_w, profile.resize_h or profile.input_h)
    if note and is_kitti_shaped(w, h) and not is_kitti_shaped(*trained):
        note += f"; the shipped road model is trained for KITTI's camera: model:={ROAD_MODEL}"
    return note


def _qos_text(qos: Any) -> str:
    def name(policy: Any) -> str:
        return str(getattr(policy, "name", policy)).lower()

    history = name(qos.history)
    return f"{name(qos.reliability)}, {history}" + (f" {qos.depth}" if history == "keep_last" else "")


def _declare_hint(spec: ParamSpec, exc: Exception) -> str:
    """The fix for a value rclpy refused at declaration: the decimal-point hint only for a type error of
    a floating-point parameter (an int given for a double), else the default and the allowed values."""
    hint = f"default {spec.default!r}"
    if spec.type is float and "Type" in type(exc).__name__:
        return hint + "; floating-point parameters need a decimal point, e.g. 5.0"
    if spec.range is not None:
        return hint + f"; range {spec.range[0]:g} - {spec.range[1]:g}"
    return hint


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


class StampGaps:
    """Frames the camera sent but the node never received, counted from the image stamps.

    The camera period is ``nominal_ns`` (the ``camera_rate`` parameter) or estimated: the 25th
    percentile of the last 50 positive stamp differences of the images (right while at least a
    quarter of the images arrive one after the other), and of the camera_info messages when those
    carry the images' stamps (camera_info is small and seldom lost, so it still shows the true
    period when only every third image arrives).  A difference of at least k - 0.25 periods means
    k - 1 missing frames (stamp jitter of up to a quarter period counts nothing).  A stamp going
    backwards (a bag looping, a clock reset) restarts the estimate; a gap over ``max(2 s, 10
    periods)`` is a pause of the stream, counted separately, and restarts the estimate too (the
    stream may come back at another rate).
    """

    WINDOW = 50

    def __init__(self) -> None:
        self.missing = 0
        self.pauses = 0
        self._last: Optional[int] = None
        self._last_info: Optional[int] = None
        self._deltas: "collections.deque[int]" = collections.deque(maxlen=self.WINDOW)
        self._info_deltas: "collections.deque[int]" = collections.deque(maxlen=self.WINDOW)
        self._info_stamps: "collections.deque[int]" = collections.deque(maxlen=self.WINDOW)
        self._image_stamps: "collections.deque[int]" = collections.deque(maxlen=self.WINDOW)

    @staticmethod
    def _low(deltas: "collections.deque[int]") -> Optional[float]:
        if len(deltas) < 5:
            return None
        ordered = sorted(deltas)
        return float(ordered[len(ordered) // 4])

    def period_ns(self, nominal_ns: float = 0.0) -> Optional[float]:
        if nominal_ns > 0:
            return nominal_ns
        est = self._low(self._deltas)
        # camera_info shares the images' stamps (most images within its window have one)
        oldest_info = self._info_stamps[0] if self._info_stamps else None
        recent = [t for t in self._image_stamps if oldest_info is not None and t >= oldest_info]
        if len(recent) >= 3 and len(set(recent) & set(self._info_stamps)) * 2 > len(recent):
            info = self._low(self._info_deltas)
            if info is not None:
                est = info if est is None else min(est, info)
        return est

    def info(self, stamp_ns: int) -> None:
        if self._last_info is not None:
            d = stamp_ns - self._last_info
            period = self._low(self._info_deltas)
            if d < 0 or (period and d > max(2e9, 10 * period)):  # back in time, or a pause: start again
                self._info_deltas.clear()
            elif d > 0:
                self._info_deltas.append(d)
        self._last_info = stamp_ns
        self._info_stamps.append(stamp_ns)

    def image(self, stamp_ns: int, nominal_ns: float = 0.0) -> int:
        """Account for one received image; returns the frames found missing before it."""
        self._image_stamps.append(stamp_ns)
        last, self._last = self._last, stamp_ns
        if last is None:
            return 0
        d = stamp_ns - last
        if d <= 0:
            if d < 0:  # time went backwards: start again
                self._deltas.clear()
            return 0
        period = self.period_ns(nominal_ns)
        if period and d > max(2e9, 10 * period):  # a pause
            self.pauses += 1
            self._deltas.clear()
            return 0
        self._deltas.append(d)
        if not period:
            return 0
        frames = int(d / period + 0.25)
        missing = max(frames - 1, 0)
        self.missing += missing
        return missing


class _Stats:
    """Counters shared by the callbacks, the worker and the diagnostics (guarded by the node's lock)."""

    def __init__(self) -> None:
        self.received = self.processed = self.dropped = self.bad = self.idle = self.errors = 0
        self.dds_lost = 0                 # the image subscription's message-lost event (total)
        self.dds_lost_supported = False
        self.gaps = StampGaps()
        self.loss_window: "collections.deque[Tuple[int, int]]" = collections.deque(maxlen=10)  # per update
        self.received_at_last_report = self.lost_at_last_report = 0
        self.latencies: "collections.deque[float]" = collections.deque(maxlen=100)
        self.infer_times: "collections.deque[float]" = collections.deque(maxlen=100)
        self.last_bad = ""
        self.bad_at_last_report = self.dropped_at_last_report = 0
        self.queue_full = self.queue_full_at_last_report = 0   # drop_policy none: incoming images refused


class DepthNode(Node):
    def __init__(self, pipeline: Any = None, **node_kwargs: Any) -> None:
        """``pipeline``: an already built DepthPipeline (tests); None = load the ``model`` parameter."""
        super().__init__("depth_node", **node_kwargs)
        self._lock = threading.Condition()
        self._stats = _Stats()
        self._queue: "collections.deque[Any]" = collections.deque()  # received, unprocessed images
        self._first_image_at: Optional[float] = None  # monotonic time of the first image
        self._camera_wait_over = False     # camera_info_wait has passed without any camera_info
        self._geometry: Optional[Tuple[int, int]] = None  # last input size checked against the model
        self._geometry_note = "not seen yet"
        self._camera: Tuple[Any, Any, Optional[str]] = (None, None, None)  # (msg, intrinsics, error)
        # camera_info of another size: the one policy (camera.fit_intrinsics), each scaling logged once
        self._fit_intrinsics = IntrinsicsFitter(lambda note: self.get_logger().warning(note))
        self._camera_note = "ok"
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
                self._fatal(f"invalid parameter {spec.name}: {exc} ({_declare_hint(spec, exc)})")
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
            with warnings.catch_warnings():  # rclpy warns about a depth-0 override before our check refuses it
                warnings.filterwarnings("ignore", message="A zero depth with KEEP_LAST", category=UserWarning)
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
            f"model {cfg.model or '(demo)'} on {getattr(self._pipeline, 'backend_name', '?')}, {kind} depth, "
            f"{_profile_text(self._pipeline.profile)}; drop_policy {cfg.drop_policy}; "
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
        self._sub_image: Any = None
        if SubscriptionEventCallbacks is not None:
            try:  # count what DDS reports lost (Fast DDS and Cyclone DDS do)
                self._sub_image = self.create_subscription(
                    image_type, image_topic, self._on_image, sensor_qos(), **overridable(),
                    event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_message_lost))
                self._stats.dds_lost_supported = True
            except UnsupportedEventTypeError:  # this RMW does not report lost messages: stamps only
                self._sub_image = None
        if self._sub_image is None:
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
                        ".engine): `ros2 launch mono_depth_ros depth.launch.py model:=/abs/path/model.pt`, or without "
                        "launch `depth_node --ros-args -p model:=/abs/path/model.pt`; or set the 'backend' "
                        "parameter to an installed one (torch, onnxruntime or tensorrt).")

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
        thread = self._thread
        # ident is None: Ctrl-C came inside start(), before the thread ran (join() would raise)
        if thread is not None and thread.ident is not None:
            thread.join(timeout=10.0)

    # ---- callbacks (executor thread): store only ------------------------------------------
    def _on_image(self, msg: Any) -> None:
        stamp = conv.stamp_to_ns(msg.header.stamp)
        cfg = self._cfg
        too_large = _too_large(msg, cfg.max_input_pixels)  # before anything is decoded or queued
        full = False
        with self._lock:
            self._stats.received += 1
            self._stats.gaps.image(stamp, 1e9 / cfg.camera_rate if cfg.camera_rate > 0 else 0.0)
            if self._first_image_at is None:
                self._first_image_at = time.monotonic()
            if too_large:
                pass
            elif cfg.drop_policy == "latest":
                self._stats.dropped += len(self._queue)  # stale: a newer image is here
                self._queue.clear()
                self._queue.append(msg)
            elif len(self._queue) >= cfg.queue_size:
                self._stats.queue_full += 1
                full = True
            else:
                self._queue.append(msg)
            self._lock.notify()
        if too_large:
            self._bad_input(too_large)
        elif full:
            self.get_logger().warning(
                f"queue full ({cfg.queue_size} images waiting): an image was dropped; the node is slower than "
                "the input (drop_policy none: slow the bag down, e.g. ros2 bag play --rate, or raise queue_size)",
                throttle_duration_sec=BAD_INPUT_THROTTLE_SEC)

    def _on_camera_info(self, msg: Any) -> None:
        # Keep the latest CameraInfo: it rarely changes, and an exact-time synchroniser would drop
        # images whenever camera_info (best effort) loses a message.
        camera: Tuple[Any, Any, Optional[str]]
        try:
            camera = (msg, conv.camera_info_to_intrinsics(msg), None)
        except ValueError as exc:
            camera = (msg, None, f"bad camera_info: {exc}")
        stamp = conv.stamp_to_ns(msg.header.stamp)
        with self._lock:
            self._camera = camera
            self._stats.gaps.info(stamp)
            self._lock.notify()  # images may be waiting for the first camera_info

    def _on_message_lost(self, info: Any) -> None:
        with self._lock:  # total_count: all lost so far on this subscription
            self._stats.dds_lost = max(self._stats.dds_lost, int(info.total_count))

    def _on_set_parameters(self, params: Any) -> SetParametersResult:
        fixed = next((p.name for p in params if p.name in (diagnostics.PERIOD_PARAMETER,
                                                           diagnostics.USE_FQN_PARAMETER)), None)
        if fixed:  # read once by the Updater (diagnostic_updater's and ours): a change would do nothing
            return SetParametersResult(successful=False, reason=f"{fixed} is fixed at start-up (restart the "
                                       "node to change it)")
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
    def _waiting_for_camera_info(self) -> bool:
        """(Under the lock.) The first images wait up to camera_info_wait for a first camera_info."""
        if self._camera[0] is not None or self._camera_wait_over or self._first_image_at is None:
            return False
        if time.monotonic() < self._first_image_at + self._cfg.camera_info_wait:
            return True
        self._camera_wait_over = True
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if not self._queue or self._waiting_for_camera_info():
                    self._lock.wait(0.05)
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
        """Process the next image (the newest with drop_policy latest, else the oldest waiting), unless
        none is there or the first images still wait for camera_info (the worker's loop body). True if
        an image was taken."""
        with self._lock:
            if not self._queue or self._waiting_for_camera_info():
                return False
            msg = self._queue.popleft()
            cfg, camera, dirty = self._cfg, self._camera, self._pipeline_dirty
            self._pipeline_dirty = False
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
            self._check_geometry(rgb.shape[1], rgb.shape[0])
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
            self.get_logger().warning(f"no camera_info received (waited {self._cfg.camera_info_wait:g} s, "
                                      "camera_info_wait): publishing depth/image and depth/colored only; "
                                      "depth/points and depth/camera_info need the camera intrinsics", once=True)
            return None
        h, w = rgb.shape[:2]
        try:   # one scale factor (binning): scaled; anything else: the frame is skipped (BadInput, counted)
            fitted = self._fit_intrinsics(intrinsics, w, h)
        except IntrinsicsSizeError as exc:
            self._set_camera_note(f"{intrinsics.width}x{intrinsics.height}: does not fit the {w}x{h} images "
                                  "(frames skipped)")
            raise BadInput(str(exc)) from None
        self._set_camera_note("ok" if fitted is intrinsics else
                              f"{intrinsics.width}x{intrinsics.height}, scaled to the {w}x{h} images (binning)")
        return fitted

    def _set_camera_note(self, note: str) -> None:
        if note != self._camera_note:   # written (under the lock) only when it changes
            with self._lock:
                self._camera_note = note

    def _check_geometry(self, w: int, h: int) -> None:
        """Warn once when the input is far from the images the model was trained on (another aspect
        ratio, or much smaller than the network input): its depth is then unreliable."""
        if self._geometry == (w, h):
            return
        self._geometry = (w, h)
        note = _geometry_warning(self._pipeline.profile, w, h)
        self._geometry_note = note or "ok"
        if note:
            self.get_logger().warning(note, once=True)

    def _bad_input(self, reason: str) -> None:
        with self._lock:
            self._stats.bad += 1
            self._stats.last_bad = reason
            n = self._stats.bad
        self.get_logger().warning(f"skipping frame ({n} bad so far): {reason}",
                               throttle_duration_sec=BAD_INPUT_THROTTLE_SEC)

    # ---- publishing ------------------------------------------------------------------------
    def _publish(self, result: Any, header: Any, cfg: NodeConfig, want: Dict[str, bool], camera_msg: Any) -> None:
        # One output stage for the node and the bag tools (msgs.outputs.DepthOutputs).  Not cv_bridge /
        # sensor_msgs_py.create_cloud: they copy the payload 2-3 times; DepthOutputs copies it once.
        outputs = getattr(self, "_outputs", None)
        if outputs is None or outputs.pipeline is not self._pipeline:
            outputs = self._outputs = DepthOutputs(self._types, self._pipeline, clouds=self._clouds)
            outputs.colored = self._colored
        pubs = {"depth": self._pub_depth, "info": self._pub_info, "points": self._pub_points,
                "colored": self._pub_colored}
        for key, msg in outputs.iter_build(result, header, [k for k, v in want.items() if v], cfg,
                                           camera_info=camera_msg):
            pubs[key].publish(msg)  # each as soon as it is made
        self._colored = outputs.colored

    # ---- diagnostics -----------------------------------------------------------------------
    def _diagnose(self, stat: Any) -> Any:
        with self._lock:
            s, cfg = self._stats, self._cfg
            lat = np.asarray(s.latencies, dtype=np.float64)
            inf = np.asarray(s.infer_times, dtype=np.float64)
            new_bad = s.bad - s.bad_at_last_report
            new_drop = s.dropped - s.dropped_at_last_report
            new_full = s.queue_full - s.queue_full_at_last_report
            s.bad_at_last_report, s.dropped_at_last_report, s.queue_full_at_last_report = s.bad, s.dropped, s.queue_full
            queue = (len(self._queue), s.queue_full)
            geometry = self._geometry_note
            # input loss over the last 10 updates: frames lost = the larger of what DDS reported lost and what
            # the stamps show missing (both can see the same frame), taken of the two running totals: the two
            # see a frame at different times (DDS when it gives up, the stamps when the next frame comes), so
            # the larger of each update's two increments would count such a frame twice
            lost = max(s.dds_lost, s.gaps.missing)
            s.loss_window.append((s.received - s.received_at_last_report, lost - s.lost_at_last_report))
            s.received_at_last_report, s.lost_at_last_report = s.received, lost
            window_received = sum(r for r, _ in s.loss_window)
            window_lost = sum(n for _, n in s.loss_window)
            period = s.gaps.period_ns(1e9 / cfg.camera_rate if cfg.camera_rate > 0 else 0.0)
            counts = (s.received, s.processed, s.dropped, s.bad, s.idle, s.errors, s.last_bad)
            dds = (s.dds_lost, s.dds_lost_supported)
            gaps = (s.gaps.missing, s.gaps.pauses)
            camera = self._camera_note if self._camera[1] is not None else "missing or invalid"
        loss = window_lost / (window_received + window_lost) if window_lost else 0.0
        warnings = []
        if new_bad:
            warnings.append(f"{new_bad} bad input frame(s) skipped: {counts[6]}")
        if new_full:
            warnings.append(f"{new_full} image(s) dropped: queue full (queue_size {cfg.queue_size}, drop_policy none)")
        if window_lost and loss > cfg.max_input_loss:
            rate = f" of a {1e9 / period:.3g} Hz camera" if period else ""
            warnings.append(f"{loss:.0%} of the camera's frames{rate} lost before reaching the node "
                            f"(DDS/transport; {window_lost} in the last {len(s.loss_window)} updates)")
        if warnings:
            stat.summary(DiagnosticStatus.WARN, "; ".join(warnings))
        elif new_drop:
            stat.summary(DiagnosticStatus.OK, f"{new_drop} stale frame(s) dropped (inference slower than input)")
        else:
            stat.summary(DiagnosticStatus.OK, "ok")
        for key, val in zip(("frames received", "frames processed", "frames dropped (stale)",
                             "bad input frames", "frames skipped (no subscribers)", "processing errors"), counts):
            stat.add(key, str(val))
        stat.add("frames lost (DDS/transport)", str(dds[0]) if dds[1] else "not reported by this RMW")
        stat.add("frames missing (stamp gaps)", str(gaps[0]))
        stat.add("input loss (recent %)", f"{loss * 100:.1f}")
        stat.add("camera rate (Hz)", f"{1e9 / period:.3f}" if period else "unknown")
        stat.add("stream pauses", str(gaps[1]))
        stat.add("frames dropped (queue full)", str(queue[1]))
        stat.add("queue length", str(queue[0]))
        stat.add("input vs model geometry", geometry)
        stat.add("last bad input", counts[6])
        stat.add("camera_info", camera)
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
    try:
        rclpy.init(args=args)
    except Exception as exc:  # noqa: BLE001 - RCLError (rclpy's C extension): a params file that does not
        #                       parse, a malformed --ros-args; rcl has logged its own ERROR line
        text = " | ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        print(f"[FATAL] [depth_node]: cannot start ROS 2 ({type(exc).__name__}): {text}. Check the --ros-args "
              "and the params file (YAML; config/depth.yaml is an example)", file=sys.stderr)
        return 1
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
    sys.exit(main())
