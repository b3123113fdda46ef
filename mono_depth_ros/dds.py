"""DDS profiles for camera-sized messages (config/dds/), and the environment that applies them.

No ROS import: depth.launch.py, benchmarks/bench_dds.py and the tests share :func:`profile_env`.

* ``config/dds/fastdds.xml`` (Fast DDS, rmw_fastrtps_cpp): a 32 MB shared-memory segment instead of
  the built-in 512 KB one, which cannot hold one 640x480 rgb8 image in flight and makes best-effort
  subscribers lose most frames without a word; and readers whose payload memory is freed after each
  sample (history memory policy DYNAMIC) instead of a pool that keeps the largest sample ever received
  (one 8000x6000 frame: ~140 MB held for good).  Applied with ``FASTRTPS_DEFAULT_PROFILES_FILE``
  (Fast DDS 2.x: Humble, Jazzy) and ``FASTDDS_DEFAULT_PROFILES_FILE`` (3.x), plus
  ``RMW_FASTRTPS_USE_QOS_FROM_XML=1``, without which rmw_fastrtps overrides the memory policies (the
  QoS set in code and the qos_overrides parameters apply on top of the XML either way).
* ``config/dds/cyclonedds.xml`` (Cyclone DDS, rmw_cyclonedds_cpp; no shared memory without iceoryx):
  a larger socket receive buffer and UDP messages / fragments of up to 64 KB, appended to any
  ``CYCLONEDDS_URI`` already set (Cyclone merges a comma-separated list, later entries win).

The profile must be given to every process that *publishes* images (the camera driver) as well: the
publisher's segment / socket settings are the ones that matter for what the node receives.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, Mapping, Optional

__all__ = ["FASTDDS_FILE", "CYCLONEDDS_FILE", "PROFILE_CHOICES", "QOS_FROM_XML_VAR", "profile_env", "profile_kind",
           "dds_dir", "wants_qos_from_xml"]

FASTDDS_FILE = "fastdds.xml"
CYCLONEDDS_FILE = "cyclonedds.xml"
PROFILE_CHOICES = ("default", "none")  # or a path to a Fast DDS or Cyclone DDS XML file
FASTDDS_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
QOS_FROM_XML_VAR = "RMW_FASTRTPS_USE_QOS_FROM_XML"  # rmw_fastrtps: "1" = keep the XML's memory policies


def dds_dir(share_dir: "str | os.PathLike[str] | None" = None) -> Path:
    """config/dds of an installed package share directory, or of this source checkout."""
    if share_dir is not None:
        return Path(share_dir) / "config" / "dds"
    return Path(__file__).resolve().parents[1] / "config" / "dds"


def profile_kind(path: "str | os.PathLike[str]") -> str:
    """'fastdds' or 'cyclonedds' from the XML root element; ValueError for anything else."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValueError(f"DDS profile {str(p)!r} cannot be read as XML: {exc}") from None
    tag = root.tag.rsplit("}", 1)[-1]
    if tag in ("dds", "profiles"):
        return "fastdds"
    if tag == "CycloneDDS":
        return "cyclonedds"
    raise ValueError(f"DDS profile {str(p)!r}: root element <{tag}> is neither Fast DDS (<dds> or <profiles>) "
                     "nor Cyclone DDS (<CycloneDDS>)")


def wants_qos_from_xml(path: "str | os.PathLike[str]") -> bool:
    """True when a Fast DDS profile file has a default ``<data_reader>`` profile that sets
    ``historyMemoryPolicy``: rmw_fastrtps honours it only with ``RMW_FASTRTPS_USE_QOS_FROM_XML=1``."""
    try:
        root = ET.parse(Path(path)).getroot()
    except (OSError, ET.ParseError):
        return False
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in ("data_reader", "subscriber") and el.get("is_default_profile") == "true":
            if any(c.tag.rsplit("}", 1)[-1] == "historyMemoryPolicy" for c in el):
                return True
    return False


def _fast_env(path: Path, env: Mapping[str, str]) -> Dict[str, str]:
    out = {v: str(path.resolve()) for v in FASTDDS_VARS}
    if wants_qos_from_xml(path) and not env.get(QOS_FROM_XML_VAR):  # a value the user set is kept
        out[QOS_FROM_XML_VAR] = "1"
    return out


def _cyclone_uri(existing: Optional[str], path: Path) -> str:
    uri = "file://" + str(path.resolve())
    existing = (existing or "").strip()
    if not existing:
        return uri
    if uri in existing.split(","):
        return existing
    return existing + "," + uri


def profile_env(profile: str, share_dir: "str | os.PathLike[str] | None" = None,
                environ: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """Environment variables to add to a ROS process for ``profile``.

    ``profile``: ``default`` (the shipped Fast DDS and Cyclone DDS profiles; a Fast DDS profile file
    already named in ``environ`` is kept, since Fast DDS reads only one; with the shipped file
    ``RMW_FASTRTPS_USE_QOS_FROM_XML=1`` too, unless ``environ`` sets it), ``none`` (nothing: the RMW's
    own defaults), or the path of a Fast DDS or Cyclone DDS XML file (its kind is read from the root
    element; ``RMW_FASTRTPS_USE_QOS_FROM_XML=1`` as well when the file sets a default reader memory
    policy, see :func:`wants_qos_from_xml`).  ``environ`` (default ``os.environ``) is only read, for an
    existing ``CYCLONEDDS_URI`` to extend, a user's Fast DDS profile and QoS-from-XML choice to keep.
    Raises ValueError for an unknown name, a missing or unreadable file.
    """
    env = os.environ if environ is None else environ
    text = str(profile).strip()
    if text in ("", "none"):
        return {}
    if text == "default":
        folder = dds_dir(share_dir)
        fast, cyclone = folder / FASTDDS_FILE, folder / CYCLONEDDS_FILE
        for f in (fast, cyclone):
            if not f.is_file():
                raise ValueError(f"the shipped DDS profile {str(f)!r} is missing (a broken install?)")
        out: Dict[str, str] = {}
        user_fast = next((env[v] for v in FASTDDS_VARS if env.get(v)), None)
        if not user_fast:
            out.update(_fast_env(fast, env))
        out["CYCLONEDDS_URI"] = _cyclone_uri(env.get("CYCLONEDDS_URI"), cyclone)
        return out
    path = Path(os.path.expanduser(text))
    if not path.is_file():
        raise ValueError(f"dds_profile {text!r} is not one of {', '.join(PROFILE_CHOICES)} nor an existing XML file")
    if profile_kind(path) == "fastdds":
        return _fast_env(path, env)
    return {"CYCLONEDDS_URI": _cyclone_uri(env.get("CYCLONEDDS_URI"), path)}
