"""TensorRT backend (TensorRT 10 Python API): runs an engine.

* Engine: built or taken from the on-disk cache by :func:`mono_depth_ros.trt_build.load_or_build_engine`
  (the cache decision is :mod:`mono_depth_ros.trt_engine`'s); a ``.pt`` is exported to ONNX once first
  (:func:`mono_depth_ros.export.cached_onnx`).
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
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

import numpy as np

from ..export import cached_onnx
from ..model_spec import ModelSpec, load_spec
from ..trt_build import DEFAULT_WORKSPACE_GB, load_or_build_engine, require_tensorrt, trt_dims
from ..trt_engine import ENGINE_PRECISIONS
from .interface import Backend, BackendError

if TYPE_CHECKING:
    import tensorrt as trt
    import torch

log = logging.getLogger(__name__)


def _torch_dtype(dt: "trt.DataType") -> "torch.dtype":
    import tensorrt as trt
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool, trt.DataType.INT64: torch.int64}
    if dt not in table:
        raise TypeError(f"unsupported TensorRT IO tensor type {dt}")
    return table[dt]


# ---- execution -----------------------------------------------------------------------------------------
class TensorRTBackend(Backend):
    """Runs a TensorRT engine: ``run(x (B,3,H,W) float32) -> (B,1,h,w) float32``.

    ``spec``: a :class:`ModelSpec` (or a path) of an ``.onnx`` (engine built/cached from it), an
    ``.engine`` (used as is; when stale, rebuilt from its recorded ONNX source into the engine cache,
    the file itself is left untouched), or a ``.pt`` checkpoint
    (exported to ONNX once via :func:`mono_depth_ros.export.cached_onnx`, then as ``.onnx``).
    ``cache_dir``: the project cache root (engines go to ``<cache_dir>/trt``), default
    ``mono_depth_ros.model_cache.default_cache_dir("trt")``.  ``precision``: fp32 | fp16 | int8 (INT8 is
    calibrated on ``calib`` images through the Preprocessor; synthetic frames when none are given).
    The returned array is a reused pinned host buffer (valid until the next ``run``).
    """

    name = "tensorrt"

    def __init__(self, spec: "ModelSpec | str | os.PathLike[str]", precision: str = "fp16",
                 cache_dir: "str | os.PathLike[str] | None" = None, device: "int | str | None" = None,
                 max_batch: int = 1, workspace_gb: float = DEFAULT_WORKSPACE_GB,
                 calib: Optional[Sequence[Any]] = None) -> None:
        require_tensorrt()
        import tensorrt as trt
        import torch

        if not isinstance(spec, ModelSpec):
            spec = load_spec(Path(spec))
        if precision == "auto":
            precision = "fp16"
        if precision not in ENGINE_PRECISIONS:
            raise BackendError(f"TensorRT precision must be one of {ENGINE_PRECISIONS}, got {precision!r}")
        self.spec = spec
        self.precision = precision
        self._torch = torch
        index = _device_index(device)
        self._dev = torch.device("cuda", index)
        self.device = str(self._dev)
        torch.cuda.set_device(self._dev)
        model_path = spec.path
        if spec.kind == "checkpoint":
            model_path = cached_onnx(spec, cache_dir=Path(cache_dir) if cache_dir is not None else None,
                                     dynamic_batch=max_batch > 1, stage=spec.stage)
        engine_dir = Path(cache_dir) / "trt" if cache_dir is not None else None
        self.engine, self.engine_path, self.sidecar = load_or_build_engine(
            model_path, precision, engine_dir, max_batch=max_batch, workspace_gb=workspace_gb, calib=calib,
            device=index)
        built_as = (self.sidecar.get("key_fields") or {}).get("precision")
        if built_as in ENGINE_PRECISIONS:
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
        shape = trt_dims(self.engine.get_tensor_shape(self._in))
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
            tshape = trt_dims(self.context.get_tensor_shape(tname))
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
