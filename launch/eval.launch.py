"""Live evaluation: play a bag, run depth_node on it, evaluate its depth against the bag's LiDAR.

    ros2 launch mono_depth_ros eval.launch.py bag:=/data/kitti_0002 model:=/abs/path/model.pt \
        output_dir:=/tmp/live_eval

Starts
  * ``depth_node`` through ``depth.launch.py`` (image/camera_info remapped to the bag's camera
    topics; ``params_file`` / ``model`` / ``rviz`` passed on),
  * ``depth_evaluator`` (mono_depth_ros/ros/evaluator_node.py): /depth/image + /depth/camera_info vs.
    the LiDAR topic via /tf_static; logs metrics, latency and dropped frames; writes them to
    ``output_dir`` at the end,
  * after ``play_delay`` seconds (time for the node to load its model), ``ros2 bag play`` of the bag
    (``--clock 100`` when ``use_sim_time``, the default: depth_node then runs on the bag's clock; the
    evaluator stays on wall time, so its idle shutdown works after the bag's clock stops), with a QoS
    override that makes /tf_static transient-local (latched) even for bags that did not record QoS
    (a bare .mcap from kitti2mcap), so that tf2 receives it.
When the evaluator has seen no depth image for ``idle_shutdown`` seconds (the bag has ended) it
writes its results and exits, and the whole launch shuts down.
"""
import os
import tempfile

from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, ExecuteProcess, IncludeLaunchDescription,
                            OpaqueFunction, RegisterEventHandler, TimerAction)
from launch.event_handlers import OnProcessExit
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
    ("play_delay", "5.0", "seconds before playback starts (model loading, TensorRT engine build: raise it)"),
    ("protocols", "paper,garg80", "evaluation protocols (paper, garg80, eigen80, nyu10)"),
    ("median_scaling", "false", "per-frame median scaling (relative-depth models)"),
    ("output_dir", "", "where the evaluator writes CSV / JSON / markdown / plots (empty: log only)"),
    ("idle_shutdown", "5.0", "seconds without depth (after the first) before the evaluator finishes and exits"),
    ("storage", "", "storage plugin for ros2 bag play -s (empty: mcap for a .mcap file, else automatic)"),
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


def _play(context, *args, **kwargs):
    bag = LaunchConfiguration("bag").perform(context)
    storage = LaunchConfiguration("storage").perform(context)
    if not storage and bag.endswith(".mcap") and os.path.isfile(bag):
        storage = "mcap"
    fd, qos_path = tempfile.mkstemp(prefix="mono_depth_tf_static_qos_", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(TF_STATIC_QOS)
    cmd = ["ros2", "bag", "play", bag, "--rate", LaunchConfiguration("rate").perform(context),
           "--qos-profile-overrides-path", qos_path]
    if storage:
        cmd += ["-s", storage]
    if LaunchConfiguration("use_sim_time").perform(context).strip().lower() in ("1", "true", "yes", "on"):
        cmd += ["--clock", CLOCK_HZ]
    return [ExecuteProcess(cmd=cmd, name="bag_play", output="screen")]


def _default_model(context, *args, **kwargs):
    """model:="" -> the shipped model for the bag's camera (KITTI-shaped: the road model), said once."""
    if LaunchConfiguration("model").perform(context).strip():
        return []
    from launch.actions import LogInfo, SetLaunchConfiguration

    from mono_depth_ros.default_models import default_model_for_bag

    path, why = default_model_for_bag(LaunchConfiguration("bag").perform(context),
                                      LaunchConfiguration("camera_info_topic").perform(context) or None)
    return [LogInfo(msg=why), SetLaunchConfiguration("model", str(path))]


def generate_launch_description():
    decls = [DeclareLaunchArgument(n, description=d) if v is None else DeclareLaunchArgument(n, default_value=v,
                                                                                             description=d)
             for n, v, d in ARGS]
    evaluator = Node(
        package="mono_depth_ros", executable="depth_evaluator", name="depth_evaluator", output="screen",
        parameters=[{
            "depth_topic": "/depth/image",
            "depth_info_topic": "/depth/camera_info",
            # explicit types: an empty string would otherwise be read as YAML null
            "image_topic": ParameterValue(LaunchConfiguration("image_topic"), value_type=str),
            "lidar_topic": ParameterValue(LaunchConfiguration("lidar_topic"), value_type=str),
            "protocols": ParameterValue(LaunchConfiguration("protocols"), value_type=str),
            "median_scaling": ParameterValue(LaunchConfiguration("median_scaling"), value_type=bool),
            "output_dir": ParameterValue(LaunchConfiguration("output_dir"), value_type=str),
            "idle_shutdown": ParameterValue(LaunchConfiguration("idle_shutdown"), value_type=float),
        }])
    return LaunchDescription(decls + [
        OpaqueFunction(function=_default_model),
        # depth_node exactly as users start it (params_file default: the package's config/depth.yaml)
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare("mono_depth_ros"), "launch",
                                                                "depth.launch.py"])),
            launch_arguments={"image": LaunchConfiguration("image_topic"),
                              "camera_info": LaunchConfiguration("camera_info_topic"),
                              "model": LaunchConfiguration("model"),
                              "params_file": LaunchConfiguration("params_file"),
                              "rviz": LaunchConfiguration("rviz"),
                              "use_sim_time": LaunchConfiguration("use_sim_time"),
                              "fixed_frame": LaunchConfiguration("fixed_frame")}.items()),
        evaluator,
        TimerAction(period=LaunchConfiguration("play_delay"), actions=[OpaqueFunction(function=_play)]),
        RegisterEventHandler(OnProcessExit(target_action=evaluator, on_exit=[
            EmitEvent(event=Shutdown(reason="evaluation finished"))])),
    ])
