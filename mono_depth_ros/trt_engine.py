"""TensorRT engine cache: keys, sidecars and the load-or-build decision (no TensorRT import here).

A serialized TensorRT engine only runs on the TensorRT version and GPU it was built for, and building
one takes minutes, so engines are cached on disk and rebuilt *only* when something that matters
changes.  The cache key is the sha256 of::

    sha256(ONNX file) | TensorRT version | GPU name | compute capability | precision | build options

An engine ``<x>.engine`` always sits beside ``<x>.engine.json`` (the sidecar)::

    {"format": "mono_depth_ros.trt_engine", "version": 1,
     "key": "<hex>", "key_fields": {...the fields above...},
     "onnx": "/abs/path/model.onnx",          # where it was built from (for rebuilding)
     "mono_depth_ros.profile": "{...}", "mono_depth_ros.output": "log_depth", ...  # the ONNX metadata_props
     "input_name": "image", "input_shape": [B, 3, H, W], "created": "...", "build_seconds": 42.0}

The ONNX ``metadata_props`` are copied to the top level, so :func:`mono_depth_ros.model_spec.load_spec`
configures the pipeline from an ``.engine`` file alone.

Decision (:func:`resolve_engine`): a cached engine whose sidecar key equals the current key is
used; a missing, mismatched (other TensorRT / GPU / ONNX / precision) or corrupt engine is rebuilt
from the ONNX file when it is available, and otherwise refused with an :class:`EngineCacheError`
that names the file and the fix.  An engine file the *user* gave (``rebuild_to``) is never
replaced: when it is stale, the rebuilt engine goes to the engine cache instead.  The TensorRT calls
themselves (build, deserialize) are passed in as callables by :mod:`mono_depth_ros.trt_build`, so this
module is importable and testable without TensorRT or a GPU.  The engine folder is
``default_cache_dir("trt")`` of :mod:`mono_depth_ros.model_cache`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, TypeVar

from .checkpoint import atomic_write_bytes
from .model_cache import default_cache_dir, file_sha256

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "mono_depth_ros.trt_engine"
SIDECAR_VERSION = 1
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")   # what an engine is built for (backends add "auto")

E = TypeVar("E")  # a deserialized engine (trt.ICudaEngine); opaque here


class EngineCacheError(RuntimeError):
    """An engine file cannot be used and cannot be rebuilt (message says which file and what to do)."""


def sidecar_path(engine_path: "str | os.PathLike[str]") -> Path:
    """``x.engine`` -> ``x.engine.json``."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on.  Equal keys <=> the cached engine may be reused."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: str  # "9.0"
    precision: str
    # Build options that change the engine: batch range, workspace, calibration set digest, ...
    options: Tuple[Tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.precision not in ENGINE_PRECISIONS:
            raise ValueError(f"precision must be one of {ENGINE_PRECISIONS}, got {self.precision!r}")

    def fields(self) -> Dict[str, Any]:
        return {"onnx_sha256": self.onnx_sha256, "trt_version": self.trt_version, "gpu_name": self.gpu_name,
                "compute_capability": self.compute_capability, "precision": self.precision,
                "options": {k: v for k, v in self.options}}

    @property
    def digest(self) -> str:
        blob = json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def describe(self) -> str:
        return (f"TensorRT {self.trt_version} on {self.gpu_name!r} (sm {self.compute_capability}), "
                f"{self.precision}, ONNX sha256 {self.onnx_sha256[:12]}")


def make_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: "str | Tuple[int, int]",
             precision: str, options: Optional[Mapping[str, Any]] = None) -> EngineKey:
    cc = compute_capability if isinstance(compute_capability, str) else f"{compute_capability[0]}.{compute_capability[1]}"
    opts = tuple(sorted((str(k), str(v)) for k, v in (options or {}).items()))
    return EngineKey(onnx_sha256, str(trt_version), str(gpu_name), cc, precision, opts)


def cached_engine_path(onnx_path: "str | os.PathLike[str]", precision: str,
                       cache_dir: "str | os.PathLike[str] | None" = None) -> Path:
    """Stable cache location of the engine for ``onnx_path``: ``<engine dir>/<stem>-<pathhash>.<precision>.engine``
    (``cache_dir``: the engine folder, default ``model_cache.default_cache_dir("trt")``).

    The name does not contain the key: a changed key *replaces* the engine (no stale files piling up);
    the path hash keeps two models with the same file name apart.
    """
    onnx_path = Path(onnx_path).resolve()
    tag = hashlib.sha256(str(onnx_path).encode()).hexdigest()[:8]
    d = Path(cache_dir) if cache_dir is not None else default_cache_dir("trt")
    return d / f"{onnx_path.stem}-{tag}.{precision}.engine"


# ---- sidecar ----------------------------------------------------------------------------------
def write_sidecar(engine_path: "str | os.PathLike[str]", key: EngineKey, onnx_path: "str | os.PathLike[str] | None",
                  metadata: Optional[Mapping[str, str]] = None, input_name: Optional[str] = None,
                  input_shape: Optional[Tuple[int, ...]] = None, build_seconds: Optional[float] = None) -> Path:
    doc: Dict[str, Any] = {str(k): str(v) for k, v in (metadata or {}).items()}
    doc.update({
        "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION,
        "key": key.digest, "key_fields": key.fields(),
        "onnx": str(Path(onnx_path).resolve()) if onnx_path is not None else None,
        "input_shape": list(input_shape) if input_shape is not None else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    if input_name is not None:
        doc["input_name"] = input_name
    if build_seconds is not None:
        doc["build_seconds"] = round(build_seconds, 2)
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    return atomic_write_bytes(sidecar_path(engine_path), data, overwrite=True)


def read_sidecar(engine_path: "str | os.PathLike[str]") -> Optional[Dict[str, Any]]:
    """The sidecar of ``engine_path`` as a dict, or None when it is missing or unreadable (logged)."""
    p = sidecar_path(engine_path)
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        log.warning("TensorRT engine sidecar %s is unreadable (%s); treating the engine as unknown", p, exc)
        return None
    if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT or not isinstance(doc.get("key"), str):
        log.warning("%s is not a mono_depth_ros engine sidecar; treating the engine as unknown", p)
        return None
    return doc


META_PREFIX = "mono_depth_ros."


def engine_metadata(engine_path: "str | os.PathLike[str]") -> Dict[str, str]:
    """The ONNX metadata_props stored with an engine (profile, output kind, metric), {} if unknown."""
    doc = read_sidecar(engine_path) or {}
    return {k: str(v) for k, v in doc.items() if k.startswith(META_PREFIX)}


# ---- load or build ------------------------------------------------------------------------------
@dataclass
class ResolvedEngine:
    path: Path
    engine: Any          # trt.ICudaEngine
    built: bool          # True when (re)built now
    reason: str          # why it was built / "cache hit"
    sidecar: Dict[str, Any]


def resolve_engine(engine_path: Path, onnx_path: Optional[Path], key_for: Callable[[str], EngineKey],
                   build: Callable[[Path], bytes], deserialize: Callable[[bytes], Optional[E]],
                   metadata: Optional[Mapping[str, str]] = None,
                   input_info: Optional[Tuple[str, Tuple[int, ...]]] = None,
                   rebuild_to: Optional[Path] = None) -> ResolvedEngine:
    """Use ``engine_path`` if it is current, else (re)build it from ``onnx_path``, else refuse.

    ``key_for(onnx_sha256)`` gives the current key (TensorRT version, GPU, precision, options) for an
    ONNX digest; ``build(onnx_path)`` returns serialized engine bytes; ``deserialize(bytes)`` returns
    an engine or None (TensorRT's answer for corrupt or incompatible data).

    ``rebuild_to``: ``engine_path`` is the user's own file, which is never overwritten: a sidecar-less
    engine that deserializes is used as is, and a stale or corrupt one is resolved (cache hit or
    rebuild) at ``rebuild_to`` (the engine cache) instead.
    """
    engine_path = Path(engine_path)
    onnx_ok = onnx_path is not None and Path(onnx_path).is_file()
    side = read_sidecar(engine_path) if engine_path.is_file() else None
    onnx_sha = file_sha256(onnx_path) if onnx_ok and onnx_path is not None else None
    hit, reason = _cached(engine_path, side, onnx_sha, key_for, deserialize)
    if hit is not None:
        return hit

    user_file = rebuild_to is not None and Path(rebuild_to) != engine_path
    if (user_file or not onnx_ok) and engine_path.is_file() and side is None:
        # A foreign engine without a sidecar may still deserialize: the runtime checks its own version.
        engine = deserialize(engine_path.read_bytes())
        if engine is not None:
            log.warning("%s; using it as is (%s)", reason,
                        "not rebuilt: it is your file" if user_file else "no ONNX to rebuild from")
            return ResolvedEngine(engine_path, engine, False, "unverified (no sidecar)", {})
        reason = f"engine {engine_path} is corrupt or was built by another TensorRT version / GPU"

    if not onnx_ok or onnx_path is None or onnx_sha is None:
        src = f" (its ONNX source {onnx_path} does not exist)" if onnx_path is not None else ""
        raise EngineCacheError(
            f"cannot use TensorRT engine {engine_path}: {reason}{src}. Fix: pass the ONNX model instead "
            f"(--model model.onnx --backend tensorrt) so the engine is rebuilt for this machine, or rebuild it "
            f"with `mono-depth export ... --engine` on this machine")

    if user_file and rebuild_to is not None:
        log.warning("%s; leaving it untouched and using the engine cache %s (built from %s) instead",
                    reason, rebuild_to, onnx_path)
        return resolve_engine(Path(rebuild_to), onnx_path, key_for, build, deserialize, metadata, input_info)
    return _build(engine_path, Path(onnx_path), onnx_sha, reason, key_for, build, deserialize, metadata, input_info)


def _cached(engine_path: Path, side: Optional[Dict[str, Any]], onnx_sha: Optional[str],
            key_for: Callable[[str], EngineKey], deserialize: Callable[[bytes], Optional[E]],
            ) -> Tuple[Optional[ResolvedEngine], str]:
    """(the cached engine when it is current and deserializes, else None; why it cannot be used)."""
    if not engine_path.is_file():
        return None, "no cached engine"
    if side is None:
        return None, f"engine {engine_path} has no readable sidecar {sidecar_path(engine_path).name} (key unknown)"
    fields = side.get("key_fields") or {}
    current = key_for(onnx_sha or str(fields.get("onnx_sha256", "")))
    if side["key"] != current.digest:
        return None, _mismatch(engine_path, fields, current)
    engine = deserialize(engine_path.read_bytes())
    if engine is None:
        return None, f"engine {engine_path} is corrupt (TensorRT could not deserialize it)"
    log.info("TensorRT engine cache hit: %s (%s)", engine_path, current.describe())
    return ResolvedEngine(engine_path, engine, False, "cache hit", side), ""


def _build(engine_path: Path, onnx_path: Path, onnx_sha: str, reason: str, key_for: Callable[[str], EngineKey],
           build: Callable[[Path], bytes], deserialize: Callable[[bytes], Optional[E]],
           metadata: Optional[Mapping[str, str]], input_info: Optional[Tuple[str, Tuple[int, ...]]],
           ) -> ResolvedEngine:
    """Build ``engine_path`` from ``onnx_path`` and write it with its sidecar (atomically)."""
    log.warning("building TensorRT engine %s from %s: %s (this takes a while; the result is cached)",
                engine_path, onnx_path, reason)
    t0 = time.perf_counter()
    data = build(onnx_path)
    dt = time.perf_counter() - t0
    key = key_for(onnx_sha)  # after build: building may settle options (e.g. the calibration digest)
    engine = deserialize(data)
    if engine is None:
        raise EngineCacheError(f"TensorRT built an engine from {onnx_path} but cannot deserialize it "
                               f"({key.describe()})")
    atomic_write_bytes(engine_path, data, overwrite=True)
    name, shape = input_info if input_info is not None else (None, None)
    write_sidecar(engine_path, key, onnx_path, metadata, name, shape, build_seconds=dt)
    log.info("TensorRT engine %s built in %.1f s (%s)", engine_path, dt, key.describe())
    return ResolvedEngine(engine_path, engine, True, reason, read_sidecar(engine_path) or {})


def _mismatch(engine_path: Path, old: Mapping[str, Any], new: EngineKey) -> str:
    diffs = []
    for k, v in new.fields().items():
        if old.get(k) != v:
            diffs.append(f"{k} {old.get(k)!r} -> {v!r}")
    what = ", ".join(diffs) if diffs else "key differs"
    return f"engine {engine_path} was built for another configuration ({what})"
