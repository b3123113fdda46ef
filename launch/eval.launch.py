"""Live evaluation: play a bag, run depth_node on it, evaluate its depth against the bag's LiDAR.

    ros2 launch mono_depth_ros eval.launch.py bag:=/data/kitti_0002 model:=/abs/path/model.pt \
        output_dir:=/tmp/live_eval

Starts
  * ``depth_node`` through ``depth.launch.py`` (image/camera_info remapped to the bag's camera
    topics; ``params_file`` / ``model`` / ``rviz`` passed on),
  * ``depth_evaluator`` (mono_depth_ros/ros/evaluator_node.py): /depth/image + /depth/camera_info vs.
    the LiDAR topic via /tf_static; logs metrics, latency and dropped frames; writes them to
    ``output_dir`` at the end,
  * ``play_delay`` seconds after depth_node is ready (the evaluator sees it subscribe to the camera
    topic, which it does once its model has loaded, and logs READY_LINE), ``ros2 bag play`` of the bag
    (``--clock 100`` when ``use_sim_time``, the default: depth_node then runs on the bag's clock; the
    evaluator stays on wall time, so its idle shutdown works after the bag's clock stops), with a QoS
    override that makes /tf_static transient-local (latched) even for bags that did not record QoS
    (a bare .mcap from kitti2mcap), so that tf2 receives it.
When the evaluator has seen no depth image for ``idle_shutdown`` seconds (the bag has ended) it
writes its results and exits, and the whole launch shuts down.

Every frame of the bag is evaluated: depth_node runs in its evaluation mode (EVAL_NODE_PARAMS: images
that arrive before their camera_info wait for it, and every frame is processed, queued instead of
dropped), and the evaluator reports the coverage (frames scored / camera images in the bag).
Before anything starts the bag is opened and its camera, camera_info and LiDAR topics checked: a
missing or unreadable bag stops the launch at once with one error line (exit code 1); so does
``ros2 bag play`` exiting with an error.
"""
import os
import tempfile

import yaml

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction, RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit, OnProcessIO, OnShutdown
from launch.events import Shutdown
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

ARGS = [
    ("bag", None, "rosbag2 to play: a directory (metadata.yaml) or a single .mcap / .db3 file"),
    ("model", "", "depth_node's model file (.pt / .onnx / .engine); empty: the shipped model for the bag's "
                  "camera (KITTI-shaped: models/road.pt, else the demo model)"),
    ("params_file", "", "depth_node parameters YAML; empty: the package's config/depth.yaml"),
    ("rviz", "false", "also start rviz2 (depth.launch.py's configuration)"),
    ("fixed_frame", "camera_color_left_optical_frame", "rviz2's fixed frame (kitti2bag: "
     "camera_color_left_optical_frame; kitti2mcap bags: camera_color_left)"),
    ("image_topic", "/kitti/camera_color_left/image_raw", "camera image topic in the bag"),
    ("camera_info_topic", "/kitti/camera_color_left/camera_info", "camera_info topic in the bag"),
    ("lidar_topic", "/kitti/velodyne_points", "LiDAR PointCloud2 topic in the bag"),
    ("rate", "1.0", "playback rate (slower than real time if the model cannot keep up; see dropped frames)"),
    ("play_delay", "1.0", "seconds between depth_node being ready (model loaded, subscribed) and playback"),
    ("backend", "", "depth_node's backend (auto|tensorrt|torch|onnxruntime); empty: the params file value"),
    ("protocols", "paper,garg80", "evaluation protocols (paper, garg80, eigen80, nyu10)"),
    ("median_scaling", "false", "per-frame median scaling (relative-depth models)"),
    ("output_dir", "", "where the evaluator writes CSV / JSON / markdown / plots (empty: log only)"),
    ("idle_shutdown", "5.0", "seconds without depth (after the first) before the evaluator finishes and exits"),
    ("storage", "", "storage plugin for ros2 bag play -s (empty: mcap for a .mcap file, else automatic)"),
    ("eval_mode", "true", "depth_node in evaluation mode (every frame processed, images wait for their "
     "camera_info; EVAL_NODE_PARAMS); false: the node as it runs live (drops stale frames)"),
    ("use_sim_time", "true", "depth_node runs on the bag's clock (ros2 bag play --clock 100), so its "
     "/diagnostics latency (publish time - image stamp) is in bag time; the evaluator's latency is "
     "wall-clock either way"),
]

CLOCK_HZ = "100"

TF_STATIC_QOS = """/tf_static:
  history: keep_all
  reliability: reliable
  durability: transient_local
"""

# depth_node's evaluation mode (its parameters, mono_depth_ros/ros/params.py): every image processed in
# order through a bounded queue instead of "newest only" (a model slower than the bag is paced, not
# dropped; a full queue still drops, counted), the first images wait for the first camera_info, and no
# range mask, so the evaluator scores what `mono-depth bag --eval` scores (the depth before the mask).
EVAL_NODE_PARAMS = {"drop_policy": "none", "queue_size": 100, "camera_info_wait": 10.0,
                    "min_depth": 0.001, "max_depth": 1000.0}
READY_LINE = "ready for playback"  # mono_depth_ros/ros/evaluator_node.py READY_LINE


def _truthy(text):
    return str(text).strip().lower() in ("1", "true", "yes", "on")


class BagProblem(RuntimeError):
    """A bag that cannot be evaluated: launch logs the message as one error line and exits 1."""


def _check_bag(bag, image_topic, camera_info_topic, lidar_topic):
    """Open the bag before anything starts; the number of camera images in it."""
    from mono_depth_ros.bag.io import BagError, BagReader

    try:
        with BagReader(bag) as reader:
            info = reader.require_topic(image_topic, "sensor_msgs/msg/Image", "camera image")
            reader.require_topic(camera_info_topic, "sensor_msgs/msg/CameraInfo", "camera_info")
            reader.require_topic(lidar_topic, "sensor_msgs/msg/PointCloud2", "LiDAR")
    except BagError as exc:
        raise BagProblem(f"eval.launch.py: nothing started: {exc}") from None
    return info.count


_TEMP_FILES = []  # removed when the launch shuts down


def _node_params_file(user_file):
    """depth_node's parameters: the user's params_file (default: the package's config/depth.yaml)
    with the evaluation mode on top of every node entry, as a temporary YAML for depth.launch.py."""
    with open(user_file, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    doc.setdefault("/**", {})
    for entry in doc.values():
        if isinstance(entry, dict):
            entry.setdefault("ros__parameters", {}).update(EVAL_NODE_PARAMS)
    return _write_temp("mono_depth_eval_params_", yaml.safe_dump(doc))


def _write_temp(prefix, text):
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _TEMP_FILES.append(path)
    return path


def _remove_temp_files(*_args):
    while _TEMP_FILES:
        try:
            os.unlink(_TEMP_FILES.pop())
        except OSError:
            pass


def _play(context, *args, **kwargs):
    bag = LaunchConfiguration("bag").perform(context)
    storage = LaunchConfiguration("storage").perform(context)
    if not storage and bag.endswith(".mcap") and os.path.isfile(bag):
        storage = "mcap"
    qos_path = _write_temp("mono_depth_tf_static_qos_", TF_STATIC_QOS)
    cmd = ["ros2", "bag", "play", bag, "--rate", LaunchConfiguration("rate").perform(context),
           "--qos-profile-overrides-path", qos_path]
    if storage:
        cmd += ["-s", storage]
    if _truthy(LaunchConfiguration("use_sim_time").perform(context)):
        cmd += ["--clock", CLOCK_HZ]
    play = ExecuteProcess(cmd=cmd, name="bag_play", output="screen")

    def on_play_exit(event, _context):
        # > 0: ros2 bag play failed (usage error, unreadable bag); < 0: stopped by a signal (Ctrl-C)
        if event.returncode is not None and event.returncode > 0:
            raise BagProblem(f"eval.launch.py: `ros2 bag play {bag}` exited with code {event.returncode}; "
                             "the bag could not be played, stopping")
        return None

    return [play, RegisterEventHandler(OnProcessExit(target_action=play, on_exit=on_play_exit))]


def _setup(context, *args, **kwargs):
    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGS}
    bag_images = _check_bag(value["bag"], value["image_topic"], value["camera_info_topic"], value["lidar_topic"])
    said = []
    if not value["model"].strip():  # model:="" -> the shipped model for the bag's camera (KITTI-shaped: road)
        from launch.actions import LogInfo

        from mono_depth_ros.default_models import default_model_for_bag

        path, why = default_model_for_bag(value["bag"], value["camera_info_topic"] or None)
        value["model"] = str(path)
        said.append(LogInfo(msg=why))
    params_file = value["params_file"]
    if _truthy(value["eval_mode"]):
        if not params_file:
            share = FindPackageShare("mono_depth_ros").perform(context)
            params_file = os.path.join(share, "config", "depth.yaml")
        params_file = _node_params_file(params_file)
    evaluator = Node(
        package="mono_depth_ros", executable="depth_evaluator", name="depth_evaluator", output="screen",
        parameters=[{
            "depth_topic": "/depth/image",
            "depth_info_topic": "/depth/camera_info",
            # explicit types: an empty string would otherwise be read as YAML null
            "image_topic": ParameterValue(value["image_topic"], value_type=str),
            "lidar_topic": ParameterValue(value["lidar_topic"], value_type=str),
            "protocols": ParameterValue(value["protocols"], value_type=str),
            "median_scaling": _truthy(value["median_scaling"]),
            "output_dir": ParameterValue(value["output_dir"], value_type=str),
            "idle_shutdown": float(value["idle_shutdown"]),
            "bag_images": int(bag_images),
            "wait_for_node": "depth_node",
        }])
    started = []

    def on_evaluator_output(event):
        if not started and READY_LINE in event.text.decode(errors="replace"):
            started.append(True)
            return [TimerAction(period=float(value["play_delay"]), actions=[OpaqueFunction(function=_play)])]
        return None

    def on_any_exit(event, _context):
        # depth_node failing (e.g. its model does not load) ends the evaluation with its exit code
        name = getattr(event.action, "name", "") or ""
        if name.startswith("depth_node") and event.returncode is not None and event.returncode > 0:
            raise RuntimeError(f"eval.launch.py: depth_node exited with code {event.returncode} (see its FATAL "
                               "line above); stopping")
        return None

    return said + [
        # depth_node exactly as users start it (params_file default: the package's config/depth.yaml)
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("mono_depth_ros"), "launch",
                                                                "depth.launch.py"])),
            launch_arguments={"image": value["image_topic"],
                              "camera_info": value["camera_info_topic"],
                              "model": value["model"],
                              "backend": value["backend"],
                              "params_file": params_file,
                              "rviz": value["rviz"],
                              "use_sim_time": value["use_sim_time"],
                              "fixed_frame": value["fixed_frame"]}.items()),
        evaluator,
        RegisterEventHandler(OnProcessIO(target_action=evaluator, on_stdout=on_evaluator_output,
                                         on_stderr=on_evaluator_output)),
        RegisterEventHandler(OnProcessExit(on_exit=on_any_exit)),
        RegisterEventHandler(OnShutdown(on_shutdown=_remove_temp_files)),
        RegisterEventHandler(OnProcessExit(target_action=evaluator, on_exit=[
            EmitEvent(event=Shutdown(reason="evaluation finished"))])),
    ]


def generate_launch_description():
    decls = [DeclareLaunchArgument(n, description=d) if v is None else DeclareLaunchArgument(n, default_value=v,
                                                                                             description=d)
             for n, v, d in ARGS]
    return LaunchDescription(decls + [OpaqueFunction(function=_setup)])
