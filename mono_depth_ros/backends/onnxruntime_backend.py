"""ONNX Runtime backend: CPU (threads configurable) or the CUDA execution provider when installed.

* graph optimisation ORT_ENABLE_ALL, sequential execution, ``intra_op_num_threads`` = ``threads``
  or the number of physical cores available to this process;
* intra-op workers sleep instead of spinning between parallel sections (shared cores);
* I/O binding with a preallocated output buffer per batch size (no allocation per frame on CPU);
* a checkpoint (.pt) is exported to ONNX once, into the cache directory, keyed by its hash;
* foreign models whose output is (B, h, w) are returned as (B, 1, h, w).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from ..export import cached_onnx
from ..model_spec import ModelSpec
from .interface import Backend, BackendError

log = logging.getLogger("mono_depth_ros")


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (falls back to the logical count)."""
    try:
        allowed = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        allowed = set(range(os.cpu_count() or 1))
    try:
        cores = set()
        cpu = phys = core = None
        with open("/proc/cpuinfo", "r", encoding="utf-8") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "processor":
                    cpu = int(val)
                elif key == "physical id":
                    phys = val.strip()
                elif key == "core id":
                    core = val.strip()
                elif not line.strip():
                    if cpu is not None and cpu in allowed:
                        cores.add((phys, core) if core is not None else ("cpu", cpu))
                    cpu = phys = core = None
        if cpu is not None and cpu in allowed:
            cores.add((phys, core) if core is not None else ("cpu", cpu))
        if cores:
            return len(cores)
    except (OSError, ValueError):
        pass
    return max(1, len(allowed))


def _dim(d: Any, default: int) -> int:
    return int(d) if isinstance(d, int) and d > 0 else default


def _model_path(spec: ModelSpec, precision: str, cache_dir: "str | Path | None", batch: int,
                onnx_path: "str | Path | None") -> Path:
    """The .onnx file to run: ``onnx_path``, the model itself, or a checkpoint's cached export."""
    if spec.kind == "engine":
        raise BackendError(f"{spec.path.name} is a TensorRT engine; ONNX Runtime runs .onnx models")
    if precision == "fp16":  # before a checkpoint's export: refused without writing to the cache
        raise BackendError("the ONNX Runtime backend runs the model in its own precision: export an fp16 model "
                           "or use precision fp32 (int8: pass a quantised .onnx)")
    quantized = "quantization" in spec.extra  # written by mono-depth quantize (mono_depth_ros.quantization)
    if precision == "int8" and not quantized and onnx_path is None:
        raise BackendError(f"precision int8 needs a quantised ONNX model and {spec.path.name} is not one: "
                           "make one with `mono-depth quantize` and pass the .int8.onnx file")
    if onnx_path is not None:
        path = Path(onnx_path)
    elif spec.kind == "checkpoint":
        path = cached_onnx(spec, cache_dir=cache_dir, dynamic_batch=batch != 1, stage=spec.stage)
    else:
        path = spec.path
    return path


def _providers(available: List[str], device: Optional[str]) -> List[Any]:
    """Execution providers for ``device`` (None: CUDA when this build has it, else CPU)."""
    dev = (device or "").lower()
    providers: List[Any] = []
    if dev.startswith("cuda") and "CUDAExecutionProvider" not in available:
        raise BackendError(f"device {device!r} requested but this onnxruntime build has no "
                           f"CUDAExecutionProvider (providers: {', '.join(available)})")
    if dev != "cpu" and "CUDAExecutionProvider" in available:
        idx = int(dev.split(":")[1]) if ":" in dev else 0
        providers.append(("CUDAExecutionProvider", {"device_id": idx}))
    providers.append("CPUExecutionProvider")
    return providers


def _session_options(ort: Any, threads: int) -> Any:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    # No busy-waiting between parallel sections: ORT's spinning workers burn the cores the camera driver,
    # DDS and the publishing thread need (docs/performance.md, 2026-12-03: the node at a 30 Hz camera
    # 157 -> 92 % CPU, all four outputs 24.5 -> 27.4 Hz on 2 cores; `mono-depth bench` within its spread).
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def _pick(wanted: Optional[str], names: List[str]) -> str:
    return wanted if wanted in names else names[0]


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, spec: ModelSpec, device: Optional[str] = None, precision: str = "fp32",
                 threads: Optional[int] = None, cache_dir: "str | Path | None" = None, batch: int = 1,
                 onnx_path: "str | Path | None" = None):
        import onnxruntime as ort

        path = _model_path(spec, precision, cache_dir, batch, onnx_path)
        providers = _providers(ort.get_available_providers(), device)
        self.threads = int(threads) if threads else physical_cores()
        try:
            self.session = ort.InferenceSession(str(path), sess_options=_session_options(ort, self.threads),
                                                providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise BackendError(f"ONNX Runtime cannot load {path}: {exc}") from exc
        self.spec = spec
        self.onnx_path = path
        quantized = "quantization" in spec.extra
        self.precision = "int8" if quantized else ("fp32" if precision in ("auto", "int8") else precision)
        used = self.session.get_providers()
        self.device = "cuda" if used and used[0] == "CUDAExecutionProvider" else "cpu"
        self._bind_io(path, int(batch))
        self._out: Dict[int, np.ndarray] = {}
        self._binding = self.session.io_binding()
        self._ort = ort
        y = self._run_plain(np.zeros(self.input_shape, dtype=np.float32))
        self.output_shape = tuple(int(s) for s in y.shape)  # type: ignore[assignment]
        log.info("onnxruntime: %s on %s, %d intra-op threads, output %s", path.name, self.device, self.threads,
                 self.output_shape)

    def _bind_io(self, path: Path, batch: int) -> None:
        """Input/output names and the input shape, checked against the model's description."""
        inputs = self.session.get_inputs()
        names_in = [i.name for i in inputs]
        self.input_name = _pick(self.spec.input_name, names_in)
        self.output_name = _pick(self.spec.output_name, [o.name for o in self.session.get_outputs()])
        inp = inputs[names_in.index(self.input_name)]
        if inp.type not in ("tensor(float)",):
            raise BackendError(f"{path.name}: input {inp.name} is {inp.type}; float32 inputs are supported")
        p = self.spec.profile
        shape = list(inp.shape) if inp.shape else []
        if len(shape) != 4:
            raise BackendError(f"{path.name}: input {inp.name} has rank {len(shape)}, expected (B, 3, H, W)")
        h, w = _dim(shape[2], p.input_h), _dim(shape[3], p.input_w)
        if (w, h) != (p.input_w, p.input_h):
            raise BackendError(f"{path.name}: the model's input is {w}x{h} but its description says "
                               f"{p.input_w}x{p.input_h}")
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        self.input_shape = (self._fixed_batch or batch, 3, p.input_h, p.input_w)

    def _run_plain(self, x: np.ndarray) -> np.ndarray:
        y = self.session.run([self.output_name], {self.input_name: x})[0]
        return self._as_b1hw(y)

    @staticmethod
    def _as_b1hw(y: np.ndarray) -> np.ndarray:
        if y.ndim == 3:
            y = y[:, None]
        if y.ndim != 4 or y.shape[1] != 1:
            raise BackendError(f"model output has shape {y.shape}; expected (B, 1, h, w) or (B, h, w)")
        return y if y.dtype == np.float32 else y.astype(np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        b = x.shape[0]
        if self._fixed_batch is not None and b != self._fixed_batch:
            raise ValueError(f"{self.onnx_path.name} has a fixed batch of {self._fixed_batch}, got {b}; "
                             "export with --dynamic-batch for other batch sizes")
        if self.device != "cpu":
            return self._run_plain(x)
        out = self._out.get(b)
        if out is None:
            raw = self.session.run([self.output_name], {self.input_name: x})[0]  # learn the output shape
            self._out[b] = np.empty(raw.shape, dtype=np.float32)
            return self._as_b1hw(raw)
        bind = self._binding
        bind.bind_cpu_input(self.input_name, x)
        bind.bind_output(self.output_name, "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(bind)
        return self._as_b1hw(out)

    def close(self) -> None:
        self._out.clear()
