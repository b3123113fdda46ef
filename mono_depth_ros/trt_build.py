"""TensorRT engines from ONNX: the "is TensorRT here?" check, build, INT8 calibration, load-or-build.

* :func:`tensorrt_unavailable` is the one capability check (the backend registry, ``mono-depth export``
  and the runner use it): the ``tensorrt`` package (TensorRT 10, not just its type stubs) and a CUDA GPU.
* Build: ONNX parser -> network (explicit batch, the only mode in TensorRT 10), builder config with a
  workspace memory-pool limit, FP16 (and optionally INT8 with an entropy calibrator fed by real images
  through the project's Preprocessor), one optimization profile for the input shape (batch 1..max_batch
  when the ONNX batch is dynamic), serialized.
* Cache: :func:`load_or_build_engine` keys engines by sha256(ONNX) + TensorRT version + GPU name +
  compute capability + precision (+ build options); engine ``<x>.engine`` + sidecar ``<x>.engine.json``,
  written atomically.  A mismatched or corrupt engine is rebuilt from ONNX when available, otherwise
  refused (the decision is :func:`mono_depth_ros.trt_engine.resolve_engine`).
* :func:`export_engine`: ``mono-depth export --engine`` (always builds, into a temporary folder, then moved).

``tensorrt`` and ``torch`` are imported inside functions: importing this module needs neither.
TensorRT cannot be installed on the development machine; this module is type-checked against
``tensorrt-stubs`` (``make typecheck``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .checkpoint import atomic_write_bytes
from .model_cache import file_sha256
from .model_spec import ENGINE_SUFFIXES
from .profiles import Profile, get_profile
from .quantize import frames_digest, load_calibration_frames
from .trt_engine import (ENGINE_PRECISIONS, EngineCacheError, cached_engine_path, make_key, read_sidecar,
                         resolve_engine, sidecar_path)

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE_GB = 2.0


# ---- is TensorRT here? ------------------------------------------------------------------------------
def tensorrt_missing() -> Optional[str]:
    """None when the TensorRT 10 Python package imports (with code, not only its type stubs), else why not."""
    try:
        import tensorrt
    except ImportError:
        return "the `tensorrt` Python package (TensorRT 10) is not installed"
    except Exception as exc:  # noqa: BLE001 - a broken install
        return f"the `tensorrt` Python package does not import ({type(exc).__name__}: {exc})"
    if not hasattr(tensorrt, "Builder"):  # tensorrt-stubs alone: a namespace package without code
        return "`tensorrt` imports but has no Builder (only the type stubs are installed, not TensorRT)"
    return None


def tensorrt_unavailable() -> Optional[str]:
    """None when a TensorRT engine can be built and run here, else the reason (one line)."""
    reason = tensorrt_missing()
    if reason is not None:
        return reason
    try:
        import torch
    except ImportError:
        return "torch is not installed (it is needed to query the CUDA GPU)"
    try:
        cuda = bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001 - a broken CUDA setup
        cuda = False
    if not cuda:
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


class TensorRTUnavailable(RuntimeError):
    """An engine cannot be built on this machine (no TensorRT or no CUDA GPU)."""


def require_tensorrt() -> None:
    """Fail with a clear message where TensorRT is not installed."""
    reason = tensorrt_missing()
    if reason is not None:
        raise RuntimeError(f"the TensorRT backend cannot run here: {reason}; install TensorRT 10 (pip install "
                           "tensorrt) on a machine with an NVIDIA GPU, or choose --backend onnxruntime/torch")


class _Logger:
    """One trt.Logger per process (TensorRT expects a single logger)."""

    instance: Optional["trt.ILogger"] = None

    @classmethod
    def get(cls) -> "trt.ILogger":
        if cls.instance is None:
            import tensorrt as trt

            cls.instance = trt.Logger(trt.Logger.WARNING)
        return cls.instance


def gpu_identity(device: int = 0) -> Tuple[str, Tuple[int, int]]:
    """(GPU name, compute capability) of CUDA device ``device``."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("the TensorRT backend needs a CUDA GPU, and torch sees none")
    return torch.cuda.get_device_name(device), torch.cuda.get_device_capability(device)


def trt_dims(d: "trt.Dims") -> Tuple[int, ...]:
    return tuple(int(d[i]) for i in range(len(d)))


def read_onnx_io(onnx_path: Path) -> Tuple[Dict[str, str], str, Tuple[int, ...]]:
    """(metadata_props, first input name, input shape with -1 for dynamic dims) of an ONNX file."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in m.metadata_props}
    inp = m.graph.input[0]
    dims = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim)
    return meta, inp.name, dims


def check_onnx_for_tensorrt(meta: Dict[str, str], onnx_path: Path) -> None:
    """Refuse models TensorRT should not be given (with the fix in the message)."""
    if "mono_depth_ros.quantization" in meta:
        raise EngineCacheError(
            f"{onnx_path} was quantised for ONNX Runtime (uint8-activation QDQ, which TensorRT does not take); "
            "build the TensorRT engine from the fp32 ONNX instead (precision int8 with calibration images, or fp16)")


# ---- INT8 calibration ----------------------------------------------------------------------------
def calibration_cache_path(engine_path: Path, onnx_sha256: str, calib_digest: str, trt_version: str) -> Path:
    """``<engine>.<tag>.calib``: the tag covers everything the scales depend on (ONNX, calibration set,
    TensorRT version), so a rebuild after the model or the images changed never reuses stale scales
    (TensorRT leaves that check to the application: see ``IInt8Calibrator.read_calibration_cache``)."""
    tag = hashlib.sha256(f"{onnx_sha256}|{calib_digest}|{trt_version}".encode()).hexdigest()[:12]
    return engine_path.with_name(f"{engine_path.name}.{tag}.calib")


def _drop_stale_calibration_caches(engine_path: Path, keep: Path) -> None:
    for old in [engine_path.with_name(engine_path.name + ".calib"),
                *engine_path.parent.glob(engine_path.name + ".*.calib")]:
        if old != keep and old.is_file():
            try:
                old.unlink()
            except OSError as exc:  # pragma: no cover - permissions
                log.warning("cannot remove stale calibration cache %s: %s", old, exc)


def make_calibrator(frames: Sequence[np.ndarray], cache_file: Path, device: int = 0) -> "trt.IInt8Calibrator":
    """An IInt8EntropyCalibrator2 over preprocessed frames (1, 3, H, W) float32, one per batch.
    ``cache_file`` must be specific to the ONNX model and calibration set (:func:`calibration_cache_path`).

    (Deprecated by TensorRT 10.1 in favour of explicit quantisation, but still the simplest route from a
    folder of images to an INT8 engine; ``mono-depth quantize`` writes uint8-activation QDQ for ONNX
    Runtime, which TensorRT does not accept.)
    """
    import tensorrt as trt
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._frames = list(frames)
            self._next = 0
            shape = tuple(self._frames[0].shape) if self._frames else (1,)
            self._dev = torch.empty(shape, dtype=torch.float32, device=f"cuda:{device}")

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: List[str]) -> List[int]:
            if self._next >= len(self._frames):
                return []
            self._dev.copy_(torch.from_numpy(np.ascontiguousarray(self._frames[self._next], dtype=np.float32)))
            torch.cuda.synchronize(device)
            self._next += 1
            return [int(self._dev.data_ptr())]

        def read_calibration_cache(self) -> Optional[bytes]:  # None: no cache, calibrate
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            atomic_write_bytes(cache_file, bytes(cache), overwrite=True)

    return EntropyCalibrator()


# ---- build -------------------------------------------------------------------------------------------
def build_serialized_engine(onnx_path: Path, precision: str = "fp16", max_batch: int = 1, opt_batch: int = 1,
                            workspace_gb: float = DEFAULT_WORKSPACE_GB,
                            calibrator: Optional["trt.IInt8Calibrator"] = None) -> bytes:
    """ONNX file -> serialized TensorRT engine bytes."""
    require_tensorrt()
    import tensorrt as trt

    logger = _Logger.get()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineCacheError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision in ("fp16", "int8"):
        if not builder.platform_has_fast_fp16:
            log.warning("this GPU has no fast FP16; building %s anyway", precision)
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if calibrator is not None:
            config.int8_calibrator = calibrator
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = trt_dims(t.shape)
        if any(d < 0 for d in shape[1:]):
            raise EngineCacheError(f"{onnx_path}: input {t.name} has dynamic spatial dims {shape}; "
                                   "export it with the profile's fixed input size")
        if shape[0] < 0:
            lo, opt, hi = (1, *shape[1:]), (max(1, min(opt_batch, max_batch)), *shape[1:]), (max_batch, *shape[1:])
        else:
            lo = opt = hi = shape
        profile.set_shape(t.name, trt.Dims(list(lo)), trt.Dims(list(opt)), trt.Dims(list(hi)))
    config.add_optimization_profile(profile)
    if precision == "int8" and calibrator is not None:
        config.set_calibration_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineCacheError(f"TensorRT failed to build an engine from {onnx_path} ({precision}); "
                               "see the TensorRT log above")
    return bytes(serialized)


def _engine_and_onnx_paths(model_path: Path, precision: str, cache_dir: "str | os.PathLike[str] | None",
                           ) -> Tuple[Path, Optional[Path]]:
    """An .onnx model -> (its cached engine path, itself); an .engine -> (itself, its ONNX source if known)."""
    if model_path.suffix.lower() in ENGINE_SUFFIXES:
        side = read_sidecar(model_path)
        src = side.get("onnx") if side else None
        onnx: Optional[Path] = Path(src) if isinstance(src, str) else None
        if onnx is None or not onnx.is_file():
            sibling = model_path.with_suffix(".onnx")
            onnx = sibling if sibling.is_file() else onnx
        return model_path, onnx
    return cached_engine_path(model_path, precision, cache_dir), model_path


class _EngineJob:
    """One load-or-build: the precision and build options (part of the cache key) and the INT8 calibration."""

    def __init__(self, precision: str, max_batch: int, opt_batch: int, workspace_gb: float,
                 calib: Optional[Sequence[Any]], device: int) -> None:
        self.precision = precision
        self.max_batch, self.opt_batch, self.workspace_gb = max_batch, opt_batch, workspace_gb
        self.options: Dict[str, Any] = {"max_batch": max_batch, "opt_batch": opt_batch, "workspace_gb": workspace_gb}
        self.calib, self.device = calib, device
        self.frames: List[np.ndarray] = []
        self.profile: Optional[Profile] = None
        self.out: Optional[Path] = None   # where the engine (and its calibration cache) is written

    def adopt(self, side: Optional[Dict[str, Any]]) -> Any:
        """An engine file given by the user keeps the precision and build options it was built with: only
        TensorRT version, GPU and ONNX changes make it stale.  Returns its sidecar's key fields."""
        fields = side.get("key_fields") if side else None
        if isinstance(fields, dict):
            self.precision = str(fields.get("precision", self.precision))
            self.options = dict(fields.get("options") or {})
            self.max_batch = int(self.options.get("max_batch", self.max_batch))
            self.opt_batch = int(self.options.get("opt_batch", self.opt_batch))
            self.workspace_gb = float(self.options.get("workspace_gb", self.workspace_gb))
        return fields

    def inspect(self, onnx_path: Optional[Path], calibrate: bool,
                ) -> Tuple[Dict[str, str], Tuple[str, Tuple[int, ...]]]:
        """(ONNX metadata, (input name, input shape)); loads the calibration frames now when ``calibrate``
        (the calibration set is part of the key of a cached engine)."""
        if onnx_path is None or not onnx_path.is_file():
            return {}, ("image", (-1,))
        meta, in_name, in_shape = read_onnx_io(onnx_path)
        check_onnx_for_tensorrt(meta, onnx_path)
        if self.precision == "int8":
            if "mono_depth_ros.profile" not in meta:
                raise EngineCacheError(f"{onnx_path} has no mono_depth_ros.profile metadata: cannot preprocess "
                                       "calibration images for INT8")
            self.profile = get_profile(json.loads(meta["mono_depth_ros.profile"]))
            if calibrate:
                self.frames = _calibration(self.profile, self.calib, self.options)
        return meta, (in_name, in_shape)

    def build(self, onnx: Path) -> bytes:
        calibrator = None
        if self.precision == "int8":
            import tensorrt as trt

            if not self.frames and self.profile is not None:
                self.frames.extend(_calibration(self.profile, self.calib, self.options))  # updates options["calib"]
            assert self.out is not None
            cache = calibration_cache_path(self.out, file_sha256(onnx), str(self.options.get("calib", "")),
                                           trt.__version__)
            _drop_stale_calibration_caches(self.out, cache)
            calibrator = make_calibrator(self.frames, cache, self.device)
        return build_serialized_engine(onnx, self.precision, self.max_batch, self.opt_batch, self.workspace_gb,
                                       calibrator)


def _deserializer(runtime: "trt.Runtime") -> Any:
    def deserialize(data: bytes) -> Optional["trt.ICudaEngine"]:
        try:
            return runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # noqa: BLE001 - some versions raise instead of returning None
            log.warning("TensorRT could not deserialize engine data: %s", exc)
            return None
    return deserialize


def load_or_build_engine(model_path: "str | os.PathLike[str]", precision: str = "fp16",
                         cache_dir: "str | os.PathLike[str] | None" = None, engine_path: Optional[Path] = None,
                         max_batch: int = 1, opt_batch: int = 1, workspace_gb: float = DEFAULT_WORKSPACE_GB,
                         calib: Optional[Sequence[Any]] = None, device: int = 0,
                         ) -> Tuple["trt.ICudaEngine", Path, Dict[str, Any]]:
    """The deserialized engine for ``model_path`` (ONNX or engine), building and caching it as needed.

    Returns (engine, engine file, sidecar dict).  ``calib``: calibration images (files/folders/arrays)
    for ``precision="int8"``; without them, synthetic frames are used (logged).
    """
    require_tensorrt()
    import tensorrt as trt
    import torch

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    is_engine = path.suffix.lower() in ENGINE_SUFFIXES
    eng_path, onnx_path = _engine_and_onnx_paths(path, precision, cache_dir)
    if engine_path is not None:
        eng_path = Path(engine_path)
    name, cc = gpu_identity(device)
    job = _EngineJob(precision, max_batch, opt_batch, workspace_gb, calib, device)
    fields = job.adopt(read_sidecar(eng_path) if is_engine else None)
    # A stale or corrupt engine file of the user's is never overwritten: it is rebuilt into the cache.
    rebuild_to: Optional[Path] = None
    if engine_path is None and is_engine and onnx_path is not None:
        rebuild_to = cached_engine_path(onnx_path, job.precision, cache_dir)
    job.out = rebuild_to if rebuild_to is not None else eng_path
    meta, input_info = job.inspect(onnx_path, calibrate=fields is None)

    def key_for(onnx_sha: str) -> Any:
        return make_key(onnx_sha, trt.__version__, name, cc, job.precision, job.options)

    # TensorRT builds for, and deserializes onto, the *current* CUDA device: make it ``device`` (the
    # key's GPU name, and the calibrator's buffers, are that device's).  The runtime stays referenced
    # by the engines it deserializes (pybind keep_alive), so a local is enough.
    with torch.cuda.device(device):
        runtime = trt.Runtime(_Logger.get())
        resolved = resolve_engine(eng_path, onnx_path, key_for, job.build, _deserializer(runtime), metadata=meta,
                                  input_info=input_info, rebuild_to=rebuild_to)
    return resolved.engine, resolved.path, resolved.sidecar


def _calibration(profile: Any, calib: Optional[Sequence[Any]], options: Dict[str, Any]) -> List[np.ndarray]:
    frames = load_calibration_frames(profile, calib, limit=64)
    options["calib"] = frames_digest(frames)
    return frames


def build_engine(onnx_path: "str | os.PathLike[str]", engine_path: "str | os.PathLike[str] | None" = None,
                 precision: str = "fp16", cache_dir: "str | os.PathLike[str] | None" = None, max_batch: int = 1,
                 workspace_gb: float = DEFAULT_WORKSPACE_GB, calib: Optional[Sequence[Any]] = None,
                 device: int = 0) -> Path:
    """Export helper: build (or reuse) the engine of ``onnx_path``; returns the engine file path."""
    _, path, _ = load_or_build_engine(onnx_path, precision, cache_dir,
                                      Path(engine_path) if engine_path is not None else None,
                                      max_batch=max_batch, workspace_gb=workspace_gb, calib=calib, device=device)
    return path


def export_engine(onnx_path: "str | Path", engine_path: "str | Path", precision: str = "fp16",
                  calib: Optional[Sequence[Any]] = None, max_batch: int = 1, workspace_gb: Optional[float] = None,
                  device: int = 0, overwrite: bool = False) -> Path:
    """Build the TensorRT engine of ``onnx_path`` (an fp32 export of this project) into ``engine_path``
    and its sidecar ``<engine>.engine.json`` (cache key + the ONNX metadata, so the engine file alone
    configures the pipeline; see :mod:`mono_depth_ros.trt_engine`).

    Always builds (into a temporary folder beside the target, then moved into place): an existing
    engine is replaced only with ``overwrite``, and survives a failed build.  ``precision`` int8 is
    calibrated on ``calib`` (image files / folders / RGB arrays) through the Preprocessor, synthetic
    frames when none are given.  Raises :class:`TensorRTUnavailable` where TensorRT or a CUDA GPU is
    missing, before writing anything.
    """
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(ENGINE_PRECISIONS)}, got {precision!r}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    if not overwrite:
        for p in (engine_path, sidecar_path(engine_path)):
            if p.exists():
                raise FileExistsError(f"{p} exists; refusing to overwrite it (pass overwrite=True / --overwrite)")
    reason = tensorrt_unavailable()
    if reason is not None:
        raise TensorRTUnavailable(f"cannot build a TensorRT engine here: {reason}")
    kw: Dict[str, Any] = {} if workspace_gb is None else {"workspace_gb": workspace_gb}
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mono_depth_engine.", dir=str(engine_path.parent)) as tmp:
        tmp_engine = Path(tmp) / engine_path.name
        built = build_engine(onnx_path, tmp_engine, precision=precision, max_batch=max_batch, calib=calib,
                             device=device, **kw)
        # sidecar first: an engine is never visible without the sidecar that describes it
        os.replace(sidecar_path(built), sidecar_path(engine_path))
        os.replace(built, engine_path)
    return engine_path
