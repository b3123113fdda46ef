"""TensorRT backend (TensorRT 10 Python API): engine build + on-disk cache, and execution.

* Build: ONNX parser -> network (explicit batch, the only mode in TensorRT 10), builder config with a
  workspace memory-pool limit, FP16 (and optionally INT8 with an entropy calibrator fed by real images
  through the project's Preprocessor), one optimization profile for the input shape (batch 1..max_batch
  when the ONNX batch is dynamic), serialized.
* Cache: keyed by sha256(ONNX) + TensorRT version + GPU name + compute capability + precision (+ build
  options); engine ``<x>.engine`` + sidecar ``<x>.engine.json``, written atomically.  A mismatched or
  corrupt engine is rebuilt from ONNX when available, otherwise refused (see :mod:`..trt_engine`).
* Run: IO tensors bound by name to torch CUDA buffers (``set_tensor_address``), pinned host staging
  buffers, ``execute_async_v3`` on a dedicated CUDA stream, one synchronise per call.

``tensorrt`` and ``torch`` are imported inside functions: importing this module needs neither.
TensorRT cannot be installed on the development machine; this module is type-checked against
``tensorrt-stubs`` (``make typecheck``) and its runtime tests skip where ``tensorrt`` does not import.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..model_spec import ModelSpec, load_spec
from ..trt_engine import (PRECISIONS, EngineCacheError, EngineKey, cached_engine_path, make_key, read_sidecar,
                          resolve_engine, sha256_file)
from .base import Backend, BackendError

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

log = logging.getLogger(__name__)

ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
DEFAULT_WORKSPACE_GB = 2.0


# ---- small helpers ---------------------------------------------------------------------------------
def _require_trt() -> None:
    """Fail with a clear message where TensorRT is not installed."""
    try:
        import tensorrt
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("the TensorRT backend needs the `tensorrt` Python package (TensorRT 10) and an NVIDIA "
                           "GPU; install it (pip install tensorrt) or choose --backend onnxruntime/torch") from exc
    if not hasattr(tensorrt, "Builder"):  # the type stubs alone are a namespace package without code
        raise RuntimeError("`tensorrt` imports but has no Builder (only the type stubs are installed?); "
                           "install TensorRT 10 or choose another backend")


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


def _dims(d: "trt.Dims") -> Tuple[int, ...]:
    return tuple(int(d[i]) for i in range(len(d)))


def _torch_dtype(dt: "trt.DataType") -> "torch.dtype":
    import tensorrt as trt
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool, trt.DataType.INT64: torch.int64}
    if dt not in table:
        raise TypeError(f"unsupported TensorRT IO tensor type {dt}")
    return table[dt]


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
    import hashlib

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

    from ..checkpoint import atomic_write_bytes

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
    _require_trt()
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
        shape = _dims(t.shape)
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


def load_or_build_engine(model_path: "str | os.PathLike[str]", precision: str = "fp16",
                         cache_dir: "str | os.PathLike[str] | None" = None, engine_path: Optional[Path] = None,
                         max_batch: int = 1, opt_batch: int = 1, workspace_gb: float = DEFAULT_WORKSPACE_GB,
                         calib: Optional[Sequence[Any]] = None, device: int = 0,
                         ) -> Tuple["trt.ICudaEngine", Path, Dict[str, Any]]:
    """The deserialized engine for ``model_path`` (ONNX or engine), building and caching it as needed.

    Returns (engine, engine file, sidecar dict).  ``calib``: calibration images (files/folders/arrays)
    for ``precision="int8"``; without them, synthetic frames are used (logged).
    """
    _require_trt()
    import tensorrt as trt

    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    eng_path, onnx_path = _engine_and_onnx_paths(path, precision, cache_dir)
    if engine_path is not None:
        eng_path = Path(engine_path)
    import torch

    name, cc = gpu_identity(device)

    meta: Dict[str, str] = {}
    in_name: str = "image"
    in_shape: Tuple[int, ...] = (-1,)
    frames: List[np.ndarray] = []
    options: Dict[str, Any] = {"max_batch": max_batch, "opt_batch": opt_batch, "workspace_gb": workspace_gb}
    # An engine file given by the user keeps the precision and build options it was built with: only
    # TensorRT version, GPU and ONNX changes make it stale.
    side = read_sidecar(eng_path) if path.suffix.lower() in ENGINE_SUFFIXES else None
    fields = side.get("key_fields") if side else None
    if isinstance(fields, dict):
        precision = str(fields.get("precision", precision))
        options = dict(fields.get("options") or {})
        max_batch = int(options.get("max_batch", max_batch))
        opt_batch = int(options.get("opt_batch", opt_batch))
        workspace_gb = float(options.get("workspace_gb", workspace_gb))
    # A stale or corrupt engine file of the user's is never overwritten: it is rebuilt into the cache.
    rebuild_to: Optional[Path] = None
    if engine_path is None and path.suffix.lower() in ENGINE_SUFFIXES and onnx_path is not None:
        rebuild_to = cached_engine_path(onnx_path, precision, cache_dir)
    prof = None
    if onnx_path is not None and onnx_path.is_file():
        meta, in_name, in_shape = read_onnx_io(onnx_path)
        check_onnx_for_tensorrt(meta, onnx_path)
        if precision == "int8":
            import json

            from ..profiles import get_profile

            if "mono_depth_ros.profile" not in meta:
                raise EngineCacheError(f"{onnx_path} has no mono_depth_ros.profile metadata: cannot preprocess "
                                       "calibration images for INT8")
            prof = get_profile(json.loads(meta["mono_depth_ros.profile"]))
            if fields is None:  # the calibration set is part of the key of a cached engine
                frames = _calibration(prof, calib, options)

    def key_for(onnx_sha: str) -> EngineKey:
        return make_key(onnx_sha, trt.__version__, name, cc, precision, options)

    def build(onnx: Path) -> bytes:
        calibrator = None
        if precision == "int8":
            if not frames and prof is not None:
                frames.extend(_calibration(prof, calib, options))  # updates options["calib"] for the new key
            out = rebuild_to if rebuild_to is not None else eng_path
            cache = calibration_cache_path(out, sha256_file(onnx), str(options.get("calib", "")), trt.__version__)
            _drop_stale_calibration_caches(out, cache)
            calibrator = make_calibrator(frames, cache, device)
        return build_serialized_engine(onnx, precision, max_batch, opt_batch, workspace_gb, calibrator)

    def deserialize(data: bytes) -> Optional["trt.ICudaEngine"]:
        try:
            return runtime.deserialize_cuda_engine(data)
        except Exception as exc:  # noqa: BLE001 - some versions raise instead of returning None
            log.warning("TensorRT could not deserialize engine data: %s", exc)
            return None

    # TensorRT builds for, and deserializes onto, the *current* CUDA device: make it ``device`` (the
    # key's GPU name, and the calibrator's buffers, are that device's).  The runtime stays referenced
    # by the engines it deserializes (pybind keep_alive), so a local is enough.
    with torch.cuda.device(device):
        runtime = trt.Runtime(_Logger.get())
        resolved = resolve_engine(eng_path, onnx_path, key_for, build, deserialize, metadata=meta,
                                  input_info=(in_name, in_shape), rebuild_to=rebuild_to)
    return resolved.engine, resolved.path, resolved.sidecar


def _calibration(profile: Any, calib: Optional[Sequence[Any]], options: Dict[str, Any]) -> List[np.ndarray]:
    from ..quantize import frames_digest, load_calibration_frames

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


# ---- execution -----------------------------------------------------------------------------------------
class TensorRTBackend(Backend):
    """Runs a TensorRT engine: ``run(x (B,3,H,W) float32) -> (B,1,h,w) float32``.

    ``spec``: a :class:`ModelSpec` (or a path) of an ``.onnx`` (engine built/cached from it), an
    ``.engine`` (used as is; when stale, rebuilt from its recorded ONNX source into the engine cache,
    the file itself is left untouched), or a ``.pt`` checkpoint
    (exported to ONNX once via :func:`mono_depth_ros.export.cached_onnx`, then as ``.onnx``).
    ``cache_dir``: the project cache root (engines go to ``<cache_dir>/trt``), default
    :func:`mono_depth_ros.trt_engine.default_cache_dir`.  ``precision``: fp32 | fp16 | int8 (INT8 is
    calibrated on ``calib`` images through the Preprocessor; synthetic frames when none are given).
    The returned array is a reused pinned host buffer (valid until the next ``run``).
    """

    name = "tensorrt"

    def __init__(self, spec: "ModelSpec | str | os.PathLike[str]", precision: str = "fp16",
                 cache_dir: "str | os.PathLike[str] | None" = None, device: "int | str | None" = None,
                 max_batch: int = 1, workspace_gb: float = DEFAULT_WORKSPACE_GB,
                 calib: Optional[Sequence[Any]] = None) -> None:
        _require_trt()
        import tensorrt as trt
        import torch

        if not isinstance(spec, ModelSpec):
            spec = load_spec(Path(spec))
        if precision == "auto":
            precision = "fp16"
        if precision not in PRECISIONS:
            raise BackendError(f"TensorRT precision must be one of {PRECISIONS}, got {precision!r}")
        self.spec = spec
        self.precision = precision
        self._torch = torch
        index = _device_index(device)
        self._dev = torch.device("cuda", index)
        self.device = str(self._dev)
        torch.cuda.set_device(self._dev)
        model_path = spec.path
        if spec.kind == "checkpoint":
            from ..export import cached_onnx

            model_path = cached_onnx(spec.path, cache_dir=Path(cache_dir) if cache_dir is not None else None, dynamic_batch=max_batch > 1, stage=spec.stage)
        engine_dir = Path(cache_dir) / "trt" if cache_dir is not None else None
        self.engine, self.engine_path, self.sidecar = load_or_build_engine(
            model_path, precision, engine_dir, max_batch=max_batch, workspace_gb=workspace_gb, calib=calib,
            device=index)
        built_as = (self.sidecar.get("key_fields") or {}).get("precision")
        if built_as in PRECISIONS:
            self.precision = str(built_as)  # an engine file runs in the precision it was built for
        ctx = self.engine.create_execution_context()
        if ctx is None:
            raise BackendError(f"TensorRT could not create an execution context for {self.engine_path} "
                               "(out of GPU memory?)")
        self.context = ctx
        self.stream = torch.cuda.Stream(self._dev)
        self.inputs: List[str] = []
        self.outputs: List[str] = []
        for i in range(self.engine.num_io_tensors):
            tname = self.engine.get_tensor_name(i)
            if self.engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT:
                self.inputs.append(tname)
            else:
                self.outputs.append(tname)
        if len(self.inputs) != 1 or not self.outputs:
            raise BackendError(f"engine {self.engine_path} has inputs {self.inputs} and outputs {self.outputs}; "
                               "expected one image input and a depth output")
        self._in = self.inputs[0]
        self._out = spec.output_name if spec.output_name in self.outputs else self.outputs[0]
        shape = _dims(self.engine.get_tensor_shape(self._in))
        if len(shape) != 4:
            raise BackendError(f"engine {self.engine_path}: input {self._in} has shape {shape}, expected (B, 3, H, W)")
        self._dynamic_batch = shape[0] < 0
        self.input_shape = (1 if self._dynamic_batch else shape[0], shape[1], shape[2], shape[3])
        if (shape[3], shape[2]) != spec.input_size:
            raise BackendError(f"engine {self.engine_path} takes {shape[3]}x{shape[2]} inputs but the model "
                               f"description says {spec.input_size[0]}x{spec.input_size[1]}")
        self._batch = -1
        self._buffers: Dict[str, "torch.Tensor"] = {}
        self._host_in: Optional["torch.Tensor"] = None
        self._host_out: Optional["torch.Tensor"] = None
        self._allocate(self.input_shape[0])

    def _allocate(self, batch: int) -> None:
        """(Re)bind device buffers for ``batch`` and allocate pinned host staging buffers."""
        torch = self._torch
        shape = (batch, *self.input_shape[1:])
        if self._dynamic_batch:
            if not self.context.set_input_shape(self._in, list(shape)):
                raise ValueError(f"engine {self.engine_path} does not accept input shape {shape} "
                                 "(outside its optimization profile: rebuild with a larger max_batch)")
        elif batch != self.input_shape[0]:
            raise ValueError(f"engine {self.engine_path} has a fixed batch {self.input_shape[0]}, got {batch}")
        self._buffers = {}
        for tname in self.inputs + self.outputs:
            tshape = _dims(self.context.get_tensor_shape(tname))
            dtype = _torch_dtype(self.engine.get_tensor_dtype(tname))
            buf = torch.empty(tshape, dtype=dtype, device=self._dev)
            self._buffers[tname] = buf
            if not self.context.set_tensor_address(tname, int(buf.data_ptr())):
                raise RuntimeError(f"TensorRT rejected the buffer of tensor {tname}")
        out_shape = tuple(self._buffers[self._out].shape)
        self._host_in = torch.empty(shape, dtype=self._buffers[self._in].dtype, pin_memory=True)
        self._host_out = torch.empty(out_shape, dtype=self._buffers[self._out].dtype, pin_memory=True)
        if len(out_shape) == 3:  # foreign models: (B, h, w)
            out_shape = (out_shape[0], 1, out_shape[1], out_shape[2])
        self.output_shape = (int(out_shape[0]), int(out_shape[1]), int(out_shape[2]), int(out_shape[3]))
        self._batch = batch

    def run(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        if x.shape[0] != self._batch:
            self._allocate(int(x.shape[0]))
        assert self._host_in is not None and self._host_out is not None
        self._host_in.numpy()[...] = x  # casts to the engine's input type if it is not float32
        d_in, d_out = self._buffers[self._in], self._buffers[self._out]
        with self._torch.cuda.stream(self.stream):
            d_in.copy_(self._host_in, non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed ({self.engine_path})")
            self._host_out.copy_(d_out, non_blocking=True)
        self.stream.synchronize()
        out = np.asarray(self._host_out.numpy(), dtype=np.float32)  # no copy when the engine outputs fp32
        return out.reshape(self.output_shape)

    def close(self) -> None:
        self._buffers = {}
        self._host_in = self._host_out = None
        for attr in ("context", "engine"):
            if hasattr(self, attr):
                delattr(self, attr)

    def describe(self) -> str:
        return f"tensorrt ({self.device}, {self.precision}, engine {self.engine_path.name})"


def _device_index(device: "int | str | None") -> int:
    if device is None or device == "cuda":
        return 0
    if isinstance(device, int):
        return device
    if device.startswith("cuda:"):
        return int(device.split(":", 1)[1])
    raise BackendError(f"TensorRT runs on CUDA devices only, got device={device!r}")
