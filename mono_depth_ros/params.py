"""Parameters of the depth node: definitions, defaults and validation (no ROS imports).

The node declares every entry of :data:`PARAMS` with a ``ParameterDescriptor`` built from it
(description, read_only, FloatingPointRange/IntegerRange) and checks runtime changes with
:func:`validate_changes`.  ``config/depth.yaml`` holds the same defaults; a test keeps the two in
step.  Conventions: a depth/colour range of 0.0 means "use the model's own range".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Dict, Mapping, Optional, Tuple

from .backends.registry import BACKEND_NAMES
from .backends.registry import PRECISIONS as REGISTRY_PRECISIONS

BACKENDS, PRECISIONS = BACKEND_NAMES, REGISTRY_PRECISIONS  # the backends' own lists
OUTPUTS = ("camera", "network")
DEPTH_ENCODINGS = ("32FC1", "16UC1")
RELIABILITIES = ("reliable", "best_effort")
DROP_POLICIES = ("latest", "none")
COLORMAPS = ("turbo", "jet", "viridis", "inferno", "magma", "plasma")  # colorize.colorize_depth's maps


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any                      # its Python type is the ROS parameter type (bool/int/float/str)
    description: str
    read_only: bool = False           # fixed at start-up (publishers, subscriptions, model)
    range: Optional[Tuple[float, float, float]] = None   # (from, to, step); step 0 = continuous
    choices: Optional[Tuple[str, ...]] = None

    @property
    def type(self) -> type:
        return type(self.default)


PARAMS: Tuple[ParamSpec, ...] = (
    # --- model (read-only: loaded once at start-up) ---
    ParamSpec("model", "", "Model file: mono_depth_ros checkpoint (.pt), ONNX (.onnx) or TensorRT engine "
              "(.engine). Empty: the shipped demo model.", read_only=True),
    ParamSpec("backend", "auto", "Inference backend: auto|tensorrt|torch|onnxruntime.", read_only=True,
              choices=BACKENDS),
    ParamSpec("device", "", "Device, e.g. 'cuda:0' or 'cpu'. Empty: the backend's default.", read_only=True),
    ParamSpec("precision", "auto", "Inference precision: auto (fp16 on a GPU, fp32 on CPU)|fp32|fp16|int8.",
              read_only=True,
              choices=PRECISIONS),
    ParamSpec("threads", 0, "CPU threads for inference (0 = library default).", read_only=True,
              range=(0, 64, 1)),
    # --- input ---
    ParamSpec("use_compressed", False, "Subscribe to sensor_msgs/CompressedImage on 'image/compressed' "
              "instead of sensor_msgs/Image on 'image'.", read_only=True),
    ParamSpec("drop_policy", "latest", "latest: process the newest image only, dropping stale ones (live use, "
              "bounded latency); none: process every received image in order through a queue of queue_size "
              "(evaluation, bag replay; a full queue drops the incoming image, counted and WARN).",
              read_only=True, choices=DROP_POLICIES),
    ParamSpec("queue_size", 30, "drop_policy none: most images waiting (memory: queue_size x image size).",
              read_only=True, range=(1, 1000, 1)),
    ParamSpec("max_input_pixels", 4096 * 3072, "Images with more pixels (width x height from the message, "
              "checked before decoding) are refused as bad input (0 = no limit).", range=(0, 1_000_000_000, 1)),
    ParamSpec("camera_info_wait", 2.0, "Seconds the first images wait for the first camera_info (then they "
              "are published without intrinsics: depth/image and depth/colored only); 0 = no wait.",
              range=(0.0, 60.0, 0.0)),
    # --- depth output (runtime-changeable) ---
    ParamSpec("output_resolution", "camera", "camera: depth at the camera resolution (NaN outside the region "
              "the network sees); network: the network's output map with matching intrinsics.",
              choices=OUTPUTS),
    ParamSpec("min_depth", 0.0, "Smallest valid depth in metres; smaller values become NaN (0 = the model's "
              "range).", range=(0.0, 1000.0, 0.0)),
    ParamSpec("max_depth", 0.0, "Largest valid depth in metres; larger values become NaN (0 = the model's "
              "range).", range=(0.0, 1000.0, 0.0)),
    ParamSpec("depth_scale", 1.0, "Metric scale factor applied to the network's depth (e.g. to calibrate a "
              "relative model).", range=(0.001, 1000.0, 0.0)),
    ParamSpec("depth_encoding", "32FC1", "depth/image encoding: 32FC1 (metres, NaN invalid) or 16UC1 "
              "(millimetres, 0 invalid).", choices=DEPTH_ENCODINGS),
    ParamSpec("frame_id", "", "Override the output frame_id (empty: copy the input image's).", ),
    # --- point cloud ---
    ParamSpec("points_enabled", True, "Publish depth/points (needs camera_info)."),
    ParamSpec("points_organized", True, "Organised cloud (height x width of the depth image, NaN for invalid "
              "points) or unorganised (valid points only)."),
    ParamSpec("points_stride", 1, "Take every n-th pixel in both directions for the cloud.",
              range=(1, 16, 1)),
    ParamSpec("points_color", False, "Add an rgb field (camera colours) to the cloud."),
    # --- colourised depth ---
    ParamSpec("colormap", "turbo", "Colour map of depth/colored.", choices=COLORMAPS),
    ParamSpec("color_min_depth", 0.0, "Depth (m) mapped to the first colour (0 = automatic).",
              range=(0.0, 1000.0, 0.0)),
    ParamSpec("color_max_depth", 0.0, "Depth (m) mapped to the last colour (0 = automatic).",
              range=(0.0, 1000.0, 0.0)),
    # --- QoS (read-only: publishers are created once) ---
    ParamSpec("qos_reliability", "reliable", "Deprecated: default reliability of all four publishers, reliable "
              "(rviz, ros2 bag record) or best_effort; prefer qos_overrides.<topic>.publisher.reliability.",
              read_only=True, choices=RELIABILITIES),
    ParamSpec("qos_depth", 5, "Deprecated: default history depth of all four publishers; prefer "
              "qos_overrides.<topic>.publisher.depth.", read_only=True, range=(1, 100, 1)),
    # --- diagnostics ---
    ParamSpec("expected_min_rate", 1.0, "Diagnostics: lowest acceptable depth rate (Hz).",
              range=(0.0, 1000.0, 0.0)),
    ParamSpec("expected_max_rate", 100.0, "Diagnostics: highest acceptable depth rate (Hz).",
              range=(0.0, 1000.0, 0.0)),
    ParamSpec("camera_rate", 0.0, "Diagnostics: the camera's frame rate (Hz) for counting frames lost before "
              "the node (stamp gaps); 0 = estimate it from the image and camera_info stamps.",
              range=(0.0, 1000.0, 0.0)),
    ParamSpec("max_input_loss", 0.05, "Diagnostics: WARN when more than this fraction of the camera's frames "
              "was lost before reaching the node (DDS/transport) over the last 10 updates (1.0 = never).",
              range=(0.0, 1.0, 0.0)),
)

SPECS: Dict[str, ParamSpec] = {p.name: p for p in PARAMS}
DEFAULTS: Dict[str, Any] = {p.name: p.default for p in PARAMS}
RUNTIME: Tuple[str, ...] = tuple(p.name for p in PARAMS if not p.read_only)


@dataclass(frozen=True)
class NodeConfig:
    """A consistent snapshot of the node's parameters (replaced as a whole on every change)."""

    model: str = ""
    backend: str = "auto"
    device: str = ""
    precision: str = "auto"
    threads: int = 0
    use_compressed: bool = False
    drop_policy: str = "latest"
    queue_size: int = 30
    max_input_pixels: int = 4096 * 3072
    camera_info_wait: float = 2.0
    output_resolution: str = "camera"
    min_depth: float = 0.0
    max_depth: float = 0.0
    depth_scale: float = 1.0
    depth_encoding: str = "32FC1"
    frame_id: str = ""
    points_enabled: bool = True
    points_organized: bool = True
    points_stride: int = 1
    points_color: bool = False
    colormap: str = "turbo"
    color_min_depth: float = 0.0
    color_max_depth: float = 0.0
    qos_reliability: str = "reliable"
    qos_depth: int = 5
    expected_min_rate: float = 1.0
    expected_max_rate: float = 100.0
    camera_rate: float = 0.0
    max_input_loss: float = 0.05

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "NodeConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def as_dict(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def replace(self, changes: Mapping[str, Any]) -> "NodeConfig":
        d = self.as_dict()
        d.update({k: v for k, v in changes.items() if k in d})
        return NodeConfig(**d)

    # None = "the model's own range" (0.0 in the parameters)
    @property
    def depth_range(self) -> Tuple[Optional[float], Optional[float]]:
        return (self.min_depth or None, self.max_depth or None)


def _type_ok(spec: ParamSpec, value: Any) -> bool:
    if spec.type is bool:
        return isinstance(value, bool)
    if spec.type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.type is float:
        return isinstance(value, float)
    return isinstance(value, spec.type)


def validate_value(name: str, value: Any) -> Optional[str]:
    """Reason why ``value`` is not acceptable for parameter ``name`` (None when it is)."""
    spec = SPECS.get(name)
    if spec is None:
        return None  # not ours (e.g. use_sim_time, diagnostic_updater.period): let others decide
    if not _type_ok(spec, value):
        return f"{name} must be of type {spec.type.__name__}, got {type(value).__name__} {value!r}"
    if spec.type is float and not math.isfinite(value):
        return f"{name} must be a finite number, got {value!r}"
    if spec.range is not None:
        lo, hi, _ = spec.range
        if not lo <= value <= hi:
            return f"{name}={value!r} is outside [{lo:g}, {hi:g}]"
    if spec.choices is not None and value not in spec.choices:
        return f"{name}={value!r} is not one of {', '.join(spec.choices)}"
    if name == "depth_scale" and value <= 0:
        return "depth_scale must be > 0"
    return None


def validate_config(cfg: NodeConfig) -> Optional[str]:
    """Checks across parameters (ranges that must be ordered)."""
    for lo_name, hi_name in (("min_depth", "max_depth"), ("color_min_depth", "color_max_depth")):
        lo, hi = getattr(cfg, lo_name), getattr(cfg, hi_name)
        if lo > 0 and hi > 0 and not lo < hi:
            return f"{lo_name} ({lo:g}) must be smaller than {hi_name} ({hi:g}) (0 = automatic)"
    if cfg.expected_max_rate > 0 and cfg.expected_min_rate > cfg.expected_max_rate:
        return (f"expected_min_rate ({cfg.expected_min_rate:g}) must not exceed "
                f"expected_max_rate ({cfg.expected_max_rate:g})")
    return None


def validate_changes(current: NodeConfig, changes: Mapping[str, Any],
                     started: bool = True) -> Tuple[Optional[NodeConfig], Optional[str]]:
    """Check a set of parameter changes against ``current``.

    Returns (new config, None) when all are acceptable, else (None, reason).  Read-only
    parameters are refused once the node has ``started`` (rclpy refuses them itself too).
    """
    for name, value in changes.items():
        spec = SPECS.get(name)
        if spec is None:
            continue
        if started and spec.read_only:
            return None, f"{name} is read-only: it is fixed at start-up (restart the node to change it)"
        reason = validate_value(name, value)
        if reason:
            return None, reason
    new = current.replace(changes)
    reason = validate_config(new)
    if reason:
        return None, reason
    return new, None
