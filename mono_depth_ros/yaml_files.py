"""Reading a YAML file that must hold a mapping, with one-line errors (where and what).

Used by every YAML reader of the project: camera calibrations (``camera.CameraIntrinsics.from_yaml``),
ROS 2 params files (``mono-depth bag --params-file``), model sidecars (``model_spec``) and training
configs (``training.utils.load_yaml_config``); each wraps the ``ValueError`` into its own error type.
"""
from __future__ import annotations

import os
from typing import Any, Dict

import yaml


def read_yaml_mapping(path: "str | os.PathLike[str]", what: str) -> Dict[str, Any]:
    """The top-level mapping of the YAML file ``path`` (an empty file gives ``{}``).

    Raises ``ValueError`` with one line naming ``what`` and ``path``: unreadable, not text, not valid YAML
    (with PyYAML's line and column; its own message spans several lines), or not a mapping."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{what} {path} is not valid YAML{where}: {problem}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {path}: expected a mapping at the top level, got {type(doc).__name__}")
    return doc
