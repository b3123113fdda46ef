"""The one cache-folder and file-hash helper of the model-file lifecycle (standard library only).

* :func:`default_cache_dir`: the project cache (``$MONO_DEPTH_CACHE`` or ``$XDG_CACHE_HOME/mono_depth_ros``,
  i.e. ``~/.cache/mono_depth_ros``) and its sub-folders (``default_cache_dir("trt")``: TensorRT engines,
  ``$MONO_DEPTH_TRT_CACHE`` overrides it);
* :func:`file_sha256`: hex SHA-256 of a file, memoised by path, size and mtime;
* :func:`read_and_hash`: a file's bytes and their SHA-256 from one read (the checkpoint loader uses it,
  so a ``.pt`` is read once and its digest is known without reading it again).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

_SUB_ENV = {"trt": "MONO_DEPTH_TRT_CACHE"}   # sub-folders with their own override
_hash_cache: Dict[tuple, str] = {}
_CHUNK = 1 << 22


def default_cache_dir(sub: Optional[str] = None) -> Path:
    """``$MONO_DEPTH_CACHE`` or ``$XDG_CACHE_HOME/mono_depth_ros`` (``~/.cache/mono_depth_ros``); with ``sub``,
    that folder's ``sub`` (``"trt"``: ``$MONO_DEPTH_TRT_CACHE`` when set)."""
    if sub is not None:
        env = os.environ.get(_SUB_ENV.get(sub, ""), "")
        if env:
            return Path(env).expanduser()
        return default_cache_dir() / sub
    env = os.environ.get("MONO_DEPTH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mono_depth_ros"


def _key(p: Path, st: os.stat_result) -> tuple:
    return (str(p.resolve()), st.st_size, st.st_mtime_ns)


def file_sha256(path: "str | os.PathLike[str]") -> str:
    """Hex SHA-256 of a file's contents (memoised by path, size and mtime)."""
    p = Path(path)
    key = _key(p, p.stat())
    h = _hash_cache.get(key)
    if h is None:
        d = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                d.update(chunk)
        h = _hash_cache[key] = d.hexdigest()
    return h


def read_and_hash(path: "str | os.PathLike[str]") -> Tuple[bytes, str]:
    """(contents, hex SHA-256) of a file from a single read; the digest is memoised like :func:`file_sha256`'s."""
    p = Path(path)
    with open(p, "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read()
    h = hashlib.sha256(data).hexdigest()
    _hash_cache[_key(p, st)] = h
    return data, h
