"""Packaging as colcon (colcon-ros ament_python) and rosdep see it, without ROS.

* package.xml: format 3 element order, and every dependency key is one checked to exist in both
  Humble and Jazzy (ROS packages) or in ros/rosdistro rosdep/python.yaml (system keys): an unknown
  key makes ``rosdep install --from-paths src --ignore-src`` fail for every user.
* ``colcon build --symlink-install`` runs ``setup.py develop`` from the *build* directory, where
  colcon-core (task/python/build.py, _symlinks_in_build) links only setup.py, setup.cfg, the
  top-level packages and the data_files sources: setup.py must not read other files relative to
  the working directory.  Reproduced here with the same links.
* With colcon on PATH (pip install colcon-core colcon-ros), a real ``colcon build`` in both modes
  (skipped otherwise).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import ROOT

# Checked against the distros: ROS packages released in Humble and Jazzy ...
ROS_PACKAGES = {
    "rclpy", "builtin_interfaces", "std_msgs", "sensor_msgs", "sensor_msgs_py", "cv_bridge", "message_filters",
    "diagnostic_updater", "diagnostic_msgs", "rcl_interfaces", "tf2_ros_py", "tf2_msgs", "geometry_msgs",
    "launch", "launch_ros", "ros2launch", "ros2bag", "rosbag2_storage_mcap", "rviz2",
    "ament_copyright", "ament_flake8", "ament_pep257", "launch_testing", "launch_testing_ros",
}
# ... and rosdep keys of ros/rosdistro rosdep/python.yaml with an Ubuntu jammy + noble rule.
ROSDEP_KEYS = {"python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-pytest"}

DEPEND_TAGS = {"depend", "build_depend", "build_export_depend", "buildtool_depend", "buildtool_export_depend",
               "exec_depend", "test_depend", "doc_depend", "conflict", "replace", "group_depend", "member_of_group"}


def _manifest():
    return ET.parse(ROOT / "package.xml").getroot()


def test_package_xml_format3_element_order():
    root = _manifest()
    assert root.tag == "package" and root.get("format") == "3"
    # package_format3.xsd: a sequence name, version, description, maintainer+, license+, url*, author*,
    # then the dependency elements in any order, then export?
    rank = {"name": 0, "version": 1, "description": 2, "maintainer": 3, "license": 4, "url": 5, "author": 6,
            **{t: 7 for t in DEPEND_TAGS}, "export": 8}
    tags = [e.tag for e in root if isinstance(e.tag, str)]
    assert all(t in rank for t in tags), set(tags) - set(rank)
    ranks = [rank[t] for t in tags]
    assert ranks == sorted(ranks), tags
    for once in ("name", "version", "description", "export"):
        assert tags.count(once) == 1, once
    assert root.findtext("name") == "mono_depth_ros"
    assert root.find("export").findtext("build_type") == "ament_python"


def test_package_xml_dependency_keys_resolve_for_rosdep():
    deps = [(e.tag, e.text.strip()) for e in _manifest() if e.tag in DEPEND_TAGS]
    unknown = [d for _, d in deps if d not in ROS_PACKAGES | ROSDEP_KEYS]
    assert not unknown, f"not a ROS package of Humble/Jazzy nor a checked rosdep key: {unknown}"
    names = [d for _, d in deps]
    assert len(names) == len(set(names)), "duplicate dependency"
    # `ros2 launch` itself comes from ros2launch (ROS 2 launch tutorial: exec_depend on it)
    assert ("exec_depend", "ros2launch") in deps


def _data_files():
    """setup.py's data_files, with setuptools.setup replaced by a recorder (cwd: the source)."""
    import setuptools

    captured = {}
    real, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kw: captured.update(kw)
    try:
        os.chdir(ROOT)
        exec(compile((ROOT / "setup.py").read_text(), str(ROOT / "setup.py"), "exec"),
             {"__name__": "__main__", "__file__": str(ROOT / "setup.py")})
    finally:
        os.chdir(cwd)
        setuptools.setup = real
    return captured


def test_setup_py_runs_from_a_colcon_symlink_build_directory(tmp_path):
    kw = _data_files()
    build = tmp_path / "build" / "mono_depth_ros"
    items = ["setup.py", "setup.cfg"] + [p for p in kw["packages"] if "." not in p]
    items += [f for _, files in kw["data_files"] for f in files]
    for item in items:
        (build / item).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT / item, build / item)
    out = subprocess.run([sys.executable, "setup.py", "--name", "--long-description"], cwd=build,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert lines[0] == "mono_depth_ros" and "mono_depth_ros" in out.stdout[len(lines[0]):]
    # the globbed launch / config files are found through the links as well
    again = subprocess.run([sys.executable, "-c", "import runpy, setuptools; got = {};"
                            "setuptools.setup = lambda **kw: got.update(kw);"
                            "runpy.run_path('setup.py', run_name='__main__');"
                            "print(sorted(f for _, fs in got['data_files'] for f in fs))"],
                           cwd=build, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip() == str(sorted(f for _, fs in kw["data_files"] for f in fs))


# colcon from the dev extra sits next to this interpreter (make test does not activate the venv)
COLCON = shutil.which("colcon", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


#: setuptools' warning for a folder with files that is importable but not in `packages` (mono_depth_ros/models)
ABSENT_WARNING = "absent from the `packages` configuration"
SHIPPED_MODELS = sorted(p.name for p in (ROOT / "mono_depth_ros" / "models").glob("*.pt"))


def _copy_source(dest: Path) -> Path:
    """The checkout's files (tracked and untracked, not ignored) copied to ``dest``: a clean source tree."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for f in files:
        if (ROOT / f).is_file() and not f.startswith(".venv"):
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


def test_wheel_ships_the_models_without_setuptools_warnings(tmp_path):
    """`pip install .` builds a wheel: it holds mono_depth_ros/models/*.pt, and setuptools does not warn that
    mono_depth_ros.models is missing from `packages` (the ~40 lines the first `make demo` printed)."""
    import zipfile

    assert SHIPPED_MODELS, "no shipped models/*.pt in the checkout"
    src = _copy_source(tmp_path / "src")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                          "--no-index", "-w", str(tmp_path / "dist"), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert ABSENT_WARNING not in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]
    (whl,) = (tmp_path / "dist").glob("mono_depth_ros-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mono_depth_ros/models/")
                  and n.endswith(".pt")) == SHIPPED_MODELS
    assert "mono_depth_ros/default_models.py" in names


@pytest.mark.skipif(COLCON is None, reason="colcon is not installed (pip install colcon-core colcon-ros)")
@pytest.mark.parametrize("symlink", [False, True], ids=["install", "symlink-install"])
def test_colcon_build_installs_the_ros_layout(tmp_path, symlink):  # pragma: no cover - needs colcon
    _copy_source(tmp_path / "src" / "mono_depth_ros")
    cmd = [COLCON, "build", "--event-handlers", "console_direct+"] + (["--symlink-install"] if symlink else [])
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert ABSENT_WARNING not in out.stdout + out.stderr, (out.stdout + out.stderr)[-4000:]
    prefix = tmp_path / "install" / "mono_depth_ros"
    if not symlink:   # the shipped models are installed with the package (symlink-install: the source's own)
        assert sorted(p.name for p in prefix.glob("lib/python*/site-packages/mono_depth_ros/models/*.pt")) == \
            SHIPPED_MODELS
    for rel in ("share/ament_index/resource_index/packages/mono_depth_ros", "share/mono_depth_ros/package.xml",
                "share/mono_depth_ros/launch/depth.launch.py", "share/mono_depth_ros/launch/eval.launch.py",
                "share/mono_depth_ros/config/depth.yaml", "share/mono_depth_ros/config/depth.rviz",
                "lib/mono_depth_ros/depth_node", "lib/mono_depth_ros/depth_evaluator"):
        assert (prefix / rel).exists(), rel
