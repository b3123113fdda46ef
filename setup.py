"""mono_depth_ros: an ament_python package that also installs with pip."""
import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "mono_depth_ros"
# The real directory of this file: `colcon build --symlink-install` runs a symlink to it from the
# build directory, where only setup.py, setup.cfg, the packages and the data_files are linked (not
# README.md). The data_files globs stay relative to the working directory, as install_data wants.
HERE = os.path.dirname(os.path.realpath(__file__))


def _long_description():
    try:
        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


# Core runtime dependencies. Kept compatible with the ROS distros' own Python stacks:
# numpy 1.x (Humble) or 2.x, and OpenCV 4 (cv_bridge breaks with OpenCV 5).
INSTALL_REQUIRES = [
    "numpy>=1.21",
    "opencv-python-headless>=4.5,<5",
    "pyyaml>=5.4",
    "tqdm>=4.60",
    "rosbags>=0.10",
    "rosbags-image>=0.10",
]

EXTRAS = {
    # PyTorch: training, export and the PyTorch backend. Install the build that matches
    # your machine first (the Makefile pins torch==2.13.0, CPU, for CI and the demo).
    "torch": ["torch>=2.1"],
    "onnx": ["onnx>=1.15", "onnxruntime>=1.17", "onnxscript>=0.1"],
    # TensorRT 10 Python bindings come with JetPack / the TensorRT tarball / NVIDIA's index. The
    # backend also needs a CUDA build of torch (device buffers, streams) and onnx (export).
    "tensorrt": ["tensorrt>=10.0,<11", "torch>=2.1", "onnx>=1.15"],
    # threadpoolctl: loader workers cap the BLAS / OpenMP pools numpy already loaded (training.datasets.limit_threads)
    "training": ["h5py>=3.0", "tensorboard>=2.10", "matplotlib>=3.5", "scipy>=1.7", "threadpoolctl>=3"],
    # plots of the bag evaluation (mono-depth bag --eval)
    "eval": ["matplotlib>=3.5"],
    # colcon: test/test_packaging.py runs a real `colcon build` (plain and --symlink-install) of the package
    "dev": ["pytest>=7", "pytest-timeout>=2.1", "mypy>=1.5", "colcon-core>=0.15", "colcon-ros>=0.4"],
}
EXTRAS["all"] = sorted({d for k in ("torch", "onnx", "training") for d in EXTRAS[k]})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Monocular depth estimation for ROS 2 (Eigen et al. 2014) with TensorRT/PyTorch/ONNX Runtime",
    long_description=_long_description(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.8",
    # training/ is run from a source checkout (python -m training.train); it is not installed.
    # mono_depth_ros/models holds only the shipped model files (no __init__.py): listed as a package of its
    # own, with its data, so that setuptools installs it without its "absent from packages" warning.
    packages=find_packages(include=[PACKAGE, PACKAGE + ".*"]) + [PACKAGE + ".models"],
    include_package_data=True,
    package_data={PACKAGE + ".models": ["*.pt", "*.yaml", "*.onnx"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        ("share/" + PACKAGE + "/launch", glob("launch/*.launch.py")),
        ("share/" + PACKAGE + "/config", glob("config/*.yaml") + glob("config/*.rviz")),
        ("share/" + PACKAGE + "/config/dds", glob("config/dds/*.xml")),
    ],
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "depth_node = mono_depth_ros.ros.node:main",
            "depth_evaluator = mono_depth_ros.ros.evaluator_node:main",
            "mono-depth = mono_depth_ros.cli:main",
        ],
    },
)
