"""Subcommands of the ``mono-depth`` CLI, one module each (``add_parser(subparsers)`` + ``run(args)``).

A command's module holds its parser (``mono-depth --help`` imports them all, so they import nothing
heavy); where the work needs numpy, OpenCV, YAML or the pipeline it lives in ``<command>_run.py``, loaded
by ``run``. Limits that a parser's help and its work share are defined here, with the checks the commands
share (each returns the reason a value is refused, or None; the command raises it as a CLIError).
"""
from __future__ import annotations

import math
import os
from typing import Optional

MIN_FRAME_SIZE = 16   # bench: smaller frames are no camera image (and OpenCV's resize rejects 0)
MAX_THREADS = 64      # --threads: 0 (the backend's default) .. 64, as depth_node's threads parameter
THREADS_HELP = f"CPU threads for inference, 0-{MAX_THREADS} (0: the backend's default)"
#: what runs without --model (the rule of mono_depth_ros.default_models; a test keeps the two in step)
DEFAULT_MODEL_HELP = ("the shipped model for the camera: models/road.pt for KITTI-shaped images (aspect 3.0-3.6, "
                      "at least 150 rows), else the indoor demo model models/demo.pt")


def threads_problem(value: Optional[int], option: str = "--threads") -> Optional[str]:
    """Why ``value`` is no thread count (None when it is, or when the option was not given)."""
    if value is None or 0 <= value <= MAX_THREADS:
        return None
    return f"{option} must be 0-{MAX_THREADS} (0: the backend's default), got {value}"


def at_least_problem(value: Optional[float], option: str, low: float) -> Optional[str]:
    """Why ``value`` is not a finite number >= ``low`` (None when it is, or when the option was not given)."""
    if value is None or (math.isfinite(value) and value >= low):
        return None
    return f"{option} must be >= {low:g}, got {value}"


def model_folder_problem(path: Optional[str], option: str = "--model") -> Optional[str]:
    """The message for a folder given as the model file (None otherwise: a missing file is each command's own
    check, "model file X does not exist")."""
    if path is None or not os.path.isdir(path):
        return None
    return f"{option} {path} is a folder, not a model file (give the model file itself: .pt, .onnx or .engine)"
