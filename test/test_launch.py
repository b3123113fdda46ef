"""launch/depth.launch.py: parses, declares the documented arguments, and wires the node right.

ROS 2's ``launch`` / ``launch_ros`` are not installed here (and ``import launch`` alone would find
this repository's own launch/ folder as a namespace package), so:
* the argument list is checked on the AST;
* the launch logic (_setup) runs against small stand-ins for launch / launch_ros whose Node() takes launch_ros.actions.Node's keyword names only;
* the real launch / launch_ros load both files in the full-ROS tier (test/test_ros2_full.py).
"""
from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

LAUNCH = ROOT / "launch" / "depth.launch.py"
REQUIRED = {"image", "camera_info", "namespace", "model", "backend", "params_file", "use_sim_time", "rviz"}


def _arguments_from_ast():
    tree = ast.parse(LAUNCH.read_text(), filename=str(LAUNCH))
    funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in funcs
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "ARGUMENTS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError("ARGUMENTS not found")


def test_launch_file_declares_the_documented_arguments():
    args = _arguments_from_ast()
    names = [a[0] for a in args]
    assert REQUIRED <= set(names) and len(names) == len(set(names))
    assert all(isinstance(d, str) and doc for _, d, doc in args)
    defaults = {n: d for n, d, _ in args}
    assert defaults["rviz"] == "false" and defaults["use_sim_time"] == "false"
    assert defaults["image"].startswith("/") and defaults["camera_info"].startswith("/")


# ---- the launch logic against stand-ins --------------------------------------------------------
class _Node:
    """launch_ros.actions.Node's keyword arguments (+ ExecuteProcess's output/emulate_tty)."""

    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None, parameters=None,
                 remappings=None, ros_arguments=None, arguments=None, output="log", emulate_tty=False,
                 additional_env=None, **kwargs):
        assert not kwargs, f"unexpected Node arguments {kwargs}"
        self.__dict__.update(executable=executable, package=package, name=name, namespace=namespace,
                             parameters=parameters, remappings=remappings, arguments=arguments, output=output,
                             additional_env=additional_env)


class _ParameterValue:
    """launch_ros.parameter_descriptions.ParameterValue(value, *, value_type=None)."""

    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type

    def __eq__(self, other):
        return isinstance(other, _ParameterValue) and (self.value, self.value_type) == (other.value, other.value_type)


class _LaunchConfiguration:
    def __init__(self, name):
        self.name = name

    def perform(self, context):
        return context[self.name]


def _load_with_stand_ins(monkeypatch):
    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda entities: list(entities)
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = lambda name, default_value=None, description="": ("arg", name, default_value)
    actions.OpaqueFunction = lambda function: ("opaque", function)
    actions.RegisterEventHandler = lambda handler: ("handler", handler)
    handlers = types.ModuleType("launch.event_handlers")
    handlers.OnProcessExit = lambda on_exit, target_action=None: ("on_process_exit", target_action, on_exit)
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = _LaunchConfiguration
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = _Node
    ros_subs = types.ModuleType("launch_ros.substitutions")
    ros_params = types.ModuleType("launch_ros.parameter_descriptions")
    ros_params.ParameterValue = _ParameterValue

    class FindPackageShare:
        def __init__(self, package):
            assert package == "mono_depth_ros"

        def perform(self, context):
            return str(ROOT)  # share/<pkg> mirrors the source tree (setup.py data_files)

    ros_subs.FindPackageShare = FindPackageShare
    for name, mod in {"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers,
                      "launch.substitutions": subs, "launch_ros": launch_ros, "launch_ros.actions": ros_actions,
                      "launch_ros.substitutions": ros_subs, "launch_ros.parameter_descriptions": ros_params}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("depth_launch_under_test", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context(module, **values):
    ctx = {name: default for name, default, _ in module.ARGUMENTS}
    ctx.update(values)
    return ctx


def test_launch_logic_defaults(monkeypatch):
    module = _load_with_stand_ins(monkeypatch)
    ld = module.generate_launch_description()
    assert {e[1] for e in ld if e[0] == "arg"} >= REQUIRED and ld[-1][0] == "opaque"
    (node,) = ld[-1][1](_context(module))
    assert (node.package, node.executable, node.name, node.namespace) == ("mono_depth_ros", "depth_node",
                                                                          "depth_node", "")
    params_file, overrides = node.parameters
    assert Path(params_file) == ROOT / "config" / "depth.yaml" and Path(params_file).is_file()
    assert overrides == {"use_sim_time": False}  # empty model/backend keep the params file's values
    assert dict(node.remappings) == {"image": "/camera/image_raw", "image/compressed": "/camera/image_raw/compressed",
                                     "camera_info": "/camera/camera_info"}


def test_launch_fails_when_depth_node_exits_with_an_error(monkeypatch):
    """The launch's process-exit handler: depth_node's exit code > 0 fails the launch (ros2 launch exits 1;
    end to end in test_ros2_full.py); Ctrl-C / signals and other processes do not."""
    module = _load_with_stand_ins(monkeypatch)
    ld = module.generate_launch_description()
    (handler,) = [e[1] for e in ld if e[0] == "handler"]
    kind, target, on_exit = handler
    assert kind == "on_process_exit" and target is None  # every process; the handler picks depth_node

    def exit_of(name, code):
        return types.SimpleNamespace(action=types.SimpleNamespace(name=name), returncode=code)

    with pytest.raises(RuntimeError, match="depth_node exited with code 1"):
        on_exit(exit_of("depth_node-1", 1), None)
    for name, code in (("depth_node-1", 0), ("depth_node-1", -2), ("depth_node-1", None), ("rviz2-2", 1)):
        assert on_exit(exit_of(name, code), None) is None


def test_launch_logic_overrides_namespace_and_rviz(monkeypatch, tmp_path):
    module = _load_with_stand_ins(monkeypatch)
    params = tmp_path / "p.yaml"
    params.write_text("/**:\n  ros__parameters: {}\n")
    ctx = _context(module, model="/m/model.onnx", backend="onnxruntime", namespace="/front", use_sim_time="true",
                   rviz="true", image="/cam/image_rect", camera_info="/cam/info", params_file=str(params),
                   fixed_frame="cam_optical")
    node, rviz = module._setup(ctx)
    assert node.namespace == "front"
    assert node.parameters == [str(params), {"use_sim_time": True,  # typed: never YAML-parsed by launch_ros
                                             "model": _ParameterValue("/m/model.onnx", value_type=str),
                                             "backend": _ParameterValue("onnxruntime", value_type=str)}]
    assert dict(node.remappings)["image/compressed"] == "/cam/image_rect/compressed"
    assert (rviz.package, rviz.executable) == ("rviz2", "rviz2")
    d = rviz.arguments[rviz.arguments.index("-d") + 1]
    assert Path(d) == ROOT / "config" / "depth.rviz" and Path(d).is_file()
    assert rviz.arguments[rviz.arguments.index("-f") + 1] == "cam_optical"
    assert dict(rviz.remappings) == {"/depth/colored": "/front/depth/colored", "/depth/points": "/front/depth/points"}
    assert rviz.parameters == [{"use_sim_time": True}]


def test_rviz_config_shows_depth_colored_and_points():
    cfg = yaml.safe_load((ROOT / "config" / "depth.rviz").read_text())
    vm = cfg["Visualization Manager"]
    displays = {d["Class"]: d for d in vm["Displays"]}
    image = displays["rviz_default_plugins/Image"]
    cloud = displays["rviz_default_plugins/PointCloud2"]
    assert image["Topic"]["Value"] == "/depth/colored" and cloud["Topic"]["Value"] == "/depth/points"
    assert image["Topic"]["Reliability Policy"] == cloud["Topic"]["Reliability Policy"] == "Reliable"
    assert image["Enabled"] and cloud["Enabled"]
    assert vm["Global Options"]["Fixed Frame"]
    assert any(p["Class"] == "rviz_common/Displays" for p in cfg["Panels"])


# ---- eval.launch.py against stand-ins ----------------------------------------------------------
def _load_eval_with_stand_ins(monkeypatch):
    """eval.launch.py with the launch / launch_ros names it imports replaced by recorders."""
    def rec(kind):
        return lambda *a, **kw: (kind, a, kw)

    launch = types.ModuleType("launch")
    launch.LaunchDescription = lambda entities: list(entities)
    actions = types.ModuleType("launch.actions")
    for n in ("EmitEvent", "IncludeLaunchDescription", "LogInfo", "OpaqueFunction", "RegisterEventHandler",
              "TimerAction"):
        setattr(actions, n, rec(n))
    actions.DeclareLaunchArgument = lambda name, default_value=None, description="": ("arg", name, default_value)
    actions.ExecuteProcess = lambda *, cmd, name=None, output="log", **kw: ("ExecuteProcess", cmd, name)
    handlers = types.ModuleType("launch.event_handlers")
    handlers.OnProcessExit = rec("OnProcessExit")
    handlers.OnProcessIO = rec("OnProcessIO")
    handlers.OnShutdown = rec("OnShutdown")
    events = types.ModuleType("launch.events")
    events.Shutdown = rec("Shutdown")
    sources = types.ModuleType("launch.launch_description_sources")
    sources.PythonLaunchDescriptionSource = rec("PythonLaunchDescriptionSource")
    subs = types.ModuleType("launch.substitutions")
    subs.LaunchConfiguration = _LaunchConfiguration
    subs.PathJoinSubstitution = rec("PathJoinSubstitution")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = _Node
    ros_params = types.ModuleType("launch_ros.parameter_descriptions")
    ros_params.ParameterValue = _ParameterValue
    ros_subs = types.ModuleType("launch_ros.substitutions")

    class FindPackageShare:
        def __init__(self, package):
            assert package == "mono_depth_ros"

        def perform(self, context):
            return str(ROOT)

    ros_subs.FindPackageShare = FindPackageShare
    for name, mod in {"launch": launch, "launch.actions": actions, "launch.event_handlers": handlers,
                      "launch.events": events, "launch.launch_description_sources": sources,
                      "launch.substitutions": subs, "launch_ros": types.ModuleType("launch_ros"),
                      "launch_ros.actions": ros_actions, "launch_ros.parameter_descriptions": ros_params,
                      "launch_ros.substitutions": ros_subs}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("eval_launch_under_test", ROOT / "launch" / "eval.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("sim", ["true", "false"])
def test_eval_launch_plays_with_clock_when_depth_node_uses_sim_time(monkeypatch, sim):
    from conftest import SAMPLE_BAG, shared_path

    bag = shared_path(*SAMPLE_BAG)
    module = _load_eval_with_stand_ins(monkeypatch)
    ld = module.generate_launch_description()
    defaults = {e[1]: e[2] for e in ld if isinstance(e, tuple) and e[0] == "arg"}
    assert defaults["use_sim_time"] == "true" and defaults["eval_mode"] == "true"
    ctx = {**{k: v for k, v in defaults.items() if v is not None}, "bag": str(bag), "use_sim_time": sim}
    actions = module._setup(ctx)
    (include,) = [e for e in actions if isinstance(e, tuple) and e[0] == "IncludeLaunchDescription"]
    passed = dict(include[2]["launch_arguments"])
    assert passed["use_sim_time"] == sim               # depth.launch.py's argument, passed on
    # evaluation mode: the package's depth.yaml with EVAL_NODE_PARAMS on top, in a temporary file
    params = yaml.safe_load(Path(passed["params_file"]).read_text())["/**"]["ros__parameters"]
    assert {k: params[k] for k in module.EVAL_NODE_PARAMS} == module.EVAL_NODE_PARAMS
    assert params["depth_encoding"] == "32FC1"          # the rest of config/depth.yaml kept
    (evaluator,) = [e for e in actions if isinstance(e, _Node)]
    p = evaluator.parameters[0]
    assert "use_sim_time" not in p   # wall time: idle shutdown after the clock stops
    assert p["bag_images"] == 2 and p["wait_for_node"] == "depth_node"
    play, handler = module._play(ctx)
    (kind, cmd, name) = play
    qos = Path(cmd[cmd.index("--qos-profile-overrides-path") + 1])
    assert "/tf_static:" in qos.read_text()
    module._remove_temp_files()     # what the launch's OnShutdown handler does
    assert not qos.exists() and not Path(passed["params_file"]).exists()
    assert (kind, name) == ("ExecuteProcess", "bag_play") and handler[0] == "RegisterEventHandler"
    assert cmd[:4] == ["ros2", "bag", "play", str(bag)] and cmd[cmd.index("-s") + 1] == "mcap"
    if sim == "true":
        assert cmd[cmd.index("--clock") + 1] == module.CLOCK_HZ and float(module.CLOCK_HZ) > 0
    else:
        assert "--clock" not in cmd


def test_eval_launch_refuses_a_bag_without_the_topics_before_starting_anything(monkeypatch, tmp_path):
    from conftest import SAMPLE_BAG, shared_path

    module = _load_eval_with_stand_ins(monkeypatch)
    defaults = {e[1]: e[2] for e in module.generate_launch_description() if isinstance(e, tuple) and e[0] == "arg"}
    ctx = {**{k: v for k, v in defaults.items() if v is not None}, "bag": str(shared_path(*SAMPLE_BAG)),
           "lidar_topic": "/no/lidar"}
    with pytest.raises(module.BagProblem, match="LiDAR topic '/no/lidar' is not in bag"):
        module._setup(ctx)
    with pytest.raises(module.BagProblem, match="does not exist"):
        module._setup({**ctx, "bag": str(tmp_path / "nothing")})
