"""Monocular depth from a camera: depth_node (+ rviz2 on request).

    ros2 launch mono_depth_ros depth.launch.py image:=/camera/image_raw camera_info:=/camera/camera_info \
        model:=/abs/path/model.pt rviz:=true

Use absolute topic names for image / camera_info.  The node's outputs are relative, so with
namespace:=cam they are /cam/depth/image, /cam/depth/points, ...; rviz2 is remapped to follow.
``model`` / ``backend`` left empty keep the values of ``params_file`` (config/depth.yaml).

``dds_profile`` (default ``default``) gives depth_node (and rviz2) the transport settings of
config/dds for camera-sized messages: Fast DDS with a 32 MB shared-memory segment, Cyclone DDS with
larger UDP messages and socket buffers (mono_depth_ros.dds.profile_env computes the environment).
The camera driver needs the same profile: what the node receives depends on the *publisher's*
settings (docs/ros.md, "Transport").
"""
import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

PACKAGE = 'mono_depth_ros'

ARGUMENTS = [
    ('image', '/camera/image_raw', 'Input sensor_msgs/Image topic (absolute); with use_compressed, '
                                   '<image>/compressed is used'),
    ('camera_info', '/camera/camera_info', 'Input sensor_msgs/CameraInfo topic (absolute)'),
    ('namespace', '', 'Namespace of the node and its depth/* outputs'),
    ('model', '', 'Model file (.pt, .onnx, .engine); empty: the params file value (the demo model)'),
    ('backend', '', 'auto|tensorrt|torch|onnxruntime; empty: the params file value'),
    ('params_file', '', 'Parameter YAML; empty: <share>/mono_depth_ros/config/depth.yaml'),
    ('use_sim_time', 'false', 'Use /clock (bag replay with --clock)'),
    ('rviz', 'false', 'Start rviz2 showing depth/colored and depth/points'),
    ('fixed_frame', 'camera_color_optical_frame', "rviz2's fixed frame (the camera's optical frame)"),
    ('dds_profile', 'default', 'DDS transport settings for depth_node and rviz2: default (config/dds: Fast DDS '
                               '32 MB shared memory, Cyclone DDS 64 KB fragments + socket buffers), none (the '
                               "RMW's defaults) or a Fast DDS / Cyclone DDS XML file; give the camera driver the same"),
]


def _truthy(text):
    return text.strip().lower() in ('1', 'true', 'yes', 'on')


def _setup(context, *args, **kwargs):
    from mono_depth_ros.dds import profile_env

    value = {name: LaunchConfiguration(name).perform(context) for name, _, _ in ARGUMENTS}
    share = FindPackageShare(PACKAGE).perform(context)
    try:
        dds_env = profile_env(value['dds_profile'], share_dir=share, environ=os.environ)
    except ValueError as exc:  # one line from ros2 launch, before anything starts
        raise RuntimeError(f'depth.launch.py: {exc}') from None
    params_file = value['params_file'] or os.path.join(share, 'config', 'depth.yaml')
    overrides = {'use_sim_time': _truthy(value['use_sim_time'])}
    for name in ('model', 'backend'):
        if value[name]:
            # launch_ros reads plain strings in a parameter dict as YAML ('1.0' -> double, 'a: b' ->
            # error): a file name stays a string only through ParameterValue(value_type=str)
            overrides[name] = ParameterValue(value[name], value_type=str)
    ns = value['namespace'].strip('/')
    image = value['image']
    actions = [Node(
        package=PACKAGE, executable='depth_node', name='depth_node', namespace=ns, output='screen',
        emulate_tty=True, parameters=[params_file, overrides], additional_env=dds_env,
        remappings=[('image', image), ('image/compressed', image.rstrip('/') + '/compressed'),
                    ('camera_info', value['camera_info'])])]
    if _truthy(value['rviz']):
        prefix = '/' + ns if ns else ''
        actions.append(Node(
            package='rviz2', executable='rviz2', name='depth_rviz', output='screen',
            arguments=['-d', os.path.join(share, 'config', 'depth.rviz'), '-f', value['fixed_frame']],
            parameters=[{'use_sim_time': overrides['use_sim_time']}], additional_env=dds_env,
            remappings=[('/depth/colored', prefix + '/depth/colored'),
                        ('/depth/points', prefix + '/depth/points')]))
    return actions


def _on_exit(event, _context):
    """depth_node exiting with a code > 0 (it cannot start: bad model, bad parameter; one FATAL line) fails
    the launch too, so that `ros2 launch`'s exit status tells a script; Ctrl-C or a signal (code 0 or < 0)
    does not. (The process name is 'depth_node-N'; rviz2 and others are left alone.)"""
    name = getattr(event.action, 'name', '') or ''
    if name.startswith('depth_node') and event.returncode is not None and event.returncode > 0:
        raise RuntimeError(f'depth.launch.py: depth_node exited with code {event.returncode} (see its log '
                           'above)')
    return None


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=doc) for name, default, doc in ARGUMENTS]
        + [RegisterEventHandler(OnProcessExit(on_exit=_on_exit)), OpaqueFunction(function=_setup)])
