"""Backend registry: the names, the one capability check, the "auto" order and :func:`create_backend`.

"auto" order: TensorRT (when TensorRT 10 imports and a CUDA GPU is visible:
:func:`mono_depth_ros.trt_build.tensorrt_unavailable`) > CUDA PyTorch (checkpoints) > ONNX Runtime >
CPU PyTorch.  A backend that fails to start under "auto" is logged and the next one is tried; an
explicitly named backend that cannot run is a :class:`BackendError` with the reason.

The runners (``onnxruntime_backend``, ``torch_backend``, ``tensorrt_backend``) are imported only when
one is created: importing this module imports neither torch, onnxruntime nor tensorrt.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..model_spec import ModelSpec, load_spec
from ..trt_build import tensorrt_unavailable
from ..trt_engine import ENGINE_PRECISIONS
from .interface import Backend, BackendError

log = logging.getLogger("mono_depth_ros")

BACKEND_NAMES = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("auto",) + ENGINE_PRECISIONS
_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "trt": "tensorrt", "pytorch": "torch"}
_LABELS = {"tensorrt": "TensorRT", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}


def cuda_available() -> bool:
    """CUDA usable through PyTorch (False when torch is missing or CPU-only)."""
    try:
        import torch
    except ImportError:
        return False
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def backend_status(name: str) -> Optional[str]:
    """The capability check: None when backend ``name`` can be tried here, else the reason it cannot."""
    if name == "tensorrt":
        return tensorrt_unavailable()
    try:
        importlib.import_module(name)  # "torch" / "onnxruntime": the backend's package
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
        return f"{name} does not import ({type(exc).__name__}: {exc})"
    return None


def available_backends() -> Dict[str, Optional[str]]:
    """name -> None if the backend can be used here, else why not."""
    return {name: backend_status(name) for name in _LABELS}


def _make(name: str, spec: ModelSpec, device: Optional[str], precision: str, threads: Optional[int],
          cache_dir: "str | Path | None") -> Backend:
    if name not in _LABELS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    reason = backend_status(name)
    if reason:
        raise BackendError(f"{_LABELS[name]} backend unavailable: {reason}")
    if name == "tensorrt":
        if device not in (None, "cuda") and not str(device).startswith("cuda"):
            raise BackendError(f"TensorRT runs on CUDA devices only, got device={device!r}")
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(spec, precision="fp16" if precision == "auto" else precision, cache_dir=cache_dir)
    if name == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(spec, device=device, precision=precision, threads=threads)
    from .onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(spec, device=device, precision=precision, threads=threads, cache_dir=cache_dir)


def auto_order(spec: ModelSpec, device: Optional[str] = None) -> List[str]:
    """The backends "auto" tries for this model, best first."""
    want_cpu = (device or "").lower() == "cpu"
    if spec.kind == "engine":
        return ["tensorrt"]
    order = []
    if not want_cpu and backend_status("tensorrt") is None:
        order.append("tensorrt")
    if spec.kind == "checkpoint" and not want_cpu and cuda_available():
        order.append("torch")  # CUDA PyTorch
    order.append("onnxruntime")
    if spec.kind == "checkpoint" and "torch" not in order:
        order.append("torch")  # CPU PyTorch
    return order


def _backend_name(backend: Optional[str]) -> str:
    name = (backend or "auto").lower()
    name = _ALIASES.get(name, name)
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
    return name


def create_backend(spec: "ModelSpec | str | Path", backend: str = "auto", device: Optional[str] = None,
                   precision: str = "fp32", threads: Optional[int] = None,
                   cache_dir: "str | Path | None" = None) -> Backend:
    """Load ``spec`` (a ModelSpec or a model path) on the named backend, or the best one ("auto").

    ``device``: None (the backend's best), "cpu", "cuda" or "cuda:N".  ``precision``: "fp32",
    "fp16" (CUDA), "int8" (a quantised ONNX / TensorRT INT8), or "auto" (fp16 on GPUs, fp32 on CPU).
    ``threads``: CPU threads (ONNX Runtime intra-op; PyTorch's set_num_threads).
    A checkpoint's contents, read once by :func:`load_spec`, are dropped from the spec once the backend
    holds the model (no second copy of the weights stays in memory).
    """
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec)
    name = _backend_name(backend)
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if name != "auto":
        b = _make(name, spec, device, precision, threads, cache_dir)
        spec.release_payload()
        return b
    errors = []
    for name in auto_order(spec, device):
        try:
            b = _make(name, spec, device, precision, threads, cache_dir)
        except Exception as exc:  # noqa: BLE001 - fall through to the next backend
            log.warning("backend %s could not start (%s: %s); trying the next one", name, type(exc).__name__, exc)
            errors.append(f"{name}: {exc}")
            continue
        log.info("using backend %s for %s", b.describe(), spec.path.name)
        spec.release_payload()
        return b
    raise BackendError(f"no backend can run {spec.path}: " + "; ".join(errors))


BackendLike = Union[str, Backend]
