"""The backend interface and ``create_backend`` (backend choice, "auto" included).

A backend runs the network only: normalised float32 (B, 3, H, W) in, the model's raw output
(B, 1, h, w) float32 out (log depth for our models; see ``spec.output``).  Everything else
(decode, preprocessing, metres, range, resampling, clouds) is the pipeline's.

"auto" order: TensorRT (when ``tensorrt`` imports, CUDA is available and the TensorRT backend
module is installed) > CUDA PyTorch (checkpoints) > ONNX Runtime > CPU PyTorch.  A backend that
fails to start under "auto" is logged and the next one is tried; an explicitly named backend
that cannot run is a :class:`BackendError` with the reason.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..model_spec import ModelSpec, load_spec

log = logging.getLogger("mono_depth_ros")

BACKEND_NAMES = ("auto", "tensorrt", "torch", "onnxruntime")
PRECISIONS = ("auto", "fp32", "fp16", "int8")


class BackendError(RuntimeError):
    """A backend cannot run this model here (missing package, no GPU, unsupported precision...)."""


class Backend:
    """One loaded model on one device.  Subclasses set the attributes in ``__init__`` and implement
    :meth:`run` (and :meth:`close` when they hold resources).

    ``run`` returns a float32 array that may be a buffer the backend reuses on the next call:
    copy it to keep it.
    """

    name: str = "base"
    spec: ModelSpec
    input_shape: Tuple[int, int, int, int]    # (B, 3, H, W) the backend is set up for
    output_shape: Tuple[int, int, int, int]   # (B, 1, h, w)
    device: str = "cpu"
    precision: str = "fp32"

    @property
    def output_kind(self) -> str:
        """``log_depth`` | ``depth`` | ``inverse_depth`` (from the model's spec)."""
        return self.spec.output

    @property
    def output_size(self) -> Tuple[int, int]:
        """(w, h) of the output map."""
        return int(self.output_shape[3]), int(self.output_shape[2])

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def warmup(self, iterations: int = 2) -> None:
        x = np.zeros(self.input_shape, dtype=np.float32)
        for _ in range(iterations):
            self.run(x)

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return f"{self.name} ({self.device}, {self.precision})"

    def _check_input(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray) or x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            raise ValueError(f"{self.name} backend expects float32 (B, {', '.join(map(str, self.input_shape[1:]))}), "
                             f"got {getattr(x, 'shape', type(x))}")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        return x

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


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


def tensorrt_status() -> Optional[str]:
    """None when the TensorRT backend can be tried here, else the reason it cannot."""
    try:
        importlib.import_module("tensorrt")
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken install
        return f"the tensorrt Python package does not import ({type(exc).__name__}: {exc})"
    try:
        importlib.import_module("mono_depth_ros.backends.tensorrt_backend")
    except ImportError as exc:
        return f"the TensorRT backend module is not available ({exc})"
    if not cuda_available():
        return "no CUDA device is available (torch.cuda.is_available() is False)"
    return None


def onnxruntime_status() -> Optional[str]:
    try:
        importlib.import_module("onnxruntime")
    except Exception as exc:  # noqa: BLE001
        return f"onnxruntime does not import ({type(exc).__name__}: {exc})"
    return None


def torch_status() -> Optional[str]:
    try:
        importlib.import_module("torch")
    except Exception as exc:  # noqa: BLE001
        return f"torch does not import ({type(exc).__name__}: {exc})"
    return None


def available_backends() -> Dict[str, Optional[str]]:
    """name -> None if the backend can be used here, else why not."""
    return {"tensorrt": tensorrt_status(), "torch": torch_status(), "onnxruntime": onnxruntime_status()}


def _make(name: str, spec: ModelSpec, device: Optional[str], precision: str, threads: Optional[int],
          cache_dir: "str | Path | None") -> Backend:
    if name == "tensorrt":
        reason = tensorrt_status()
        if reason:
            raise BackendError(f"TensorRT backend unavailable: {reason}")
        if device not in (None, "cuda") and not str(device).startswith("cuda"):
            raise BackendError(f"TensorRT runs on CUDA devices only, got device={device!r}")
        mod = importlib.import_module("mono_depth_ros.backends.tensorrt_backend")
        return mod.TensorRTBackend(spec, precision="fp16" if precision == "auto" else precision,
                                   cache_dir=cache_dir)
    if name == "torch":
        reason = torch_status()
        if reason:
            raise BackendError(f"PyTorch backend unavailable: {reason}")
        from .torch_backend import TorchBackend

        return TorchBackend(spec, device=device, precision=precision, threads=threads)
    if name == "onnxruntime":
        reason = onnxruntime_status()
        if reason:
            raise BackendError(f"ONNX Runtime backend unavailable: {reason}")
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(spec, device=device, precision=precision, threads=threads, cache_dir=cache_dir)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")


def auto_order(spec: ModelSpec, device: Optional[str] = None) -> list:
    """The backends "auto" tries for this model, best first."""
    dev = (device or "").lower()
    want_cpu = dev == "cpu"
    order = []
    if spec.kind == "engine":
        return ["tensorrt"]
    if not want_cpu and tensorrt_status() is None:
        order.append("tensorrt")
    if spec.kind == "checkpoint" and not want_cpu and cuda_available():
        order.append("torch")  # CUDA PyTorch
    order.append("onnxruntime")
    if spec.kind == "checkpoint" and "torch" not in order:
        order.append("torch")  # CPU PyTorch
    return order


def create_backend(spec: "ModelSpec | str | Path", backend: str = "auto", device: Optional[str] = None,
                   precision: str = "fp32", threads: Optional[int] = None,
                   cache_dir: "str | Path | None" = None) -> Backend:
    """Load ``spec`` (a ModelSpec or a model path) on the named backend, or the best one ("auto").

    ``device``: None (the backend's best), "cpu", "cuda" or "cuda:N".  ``precision``: "fp32",
    "fp16" (CUDA), "int8" (a quantised ONNX / TensorRT INT8), or "auto" (fp16 on GPUs, fp32 on CPU).
    ``threads``: CPU threads (ONNX Runtime intra-op; PyTorch's set_num_threads).
    """
    if not isinstance(spec, ModelSpec):
        spec = load_spec(spec)
    backend = (backend or "auto").lower()
    if backend in ("ort", "onnx"):
        backend = "onnxruntime"
    if backend in ("trt",):
        backend = "tensorrt"
    if backend in ("pytorch",):
        backend = "torch"
    if backend not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}")
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if backend != "auto":
        return _make(backend, spec, device, precision, threads, cache_dir)
    errors = []
    for name in auto_order(spec, device):
        try:
            b = _make(name, spec, device, precision, threads, cache_dir)
        except Exception as exc:  # noqa: BLE001 - fall through to the next backend
            log.warning("backend %s could not start (%s: %s); trying the next one", name, type(exc).__name__, exc)
            errors.append(f"{name}: {exc}")
            continue
        log.info("using backend %s for %s", b.describe(), spec.path.name)
        return b
    raise BackendError(f"no backend can run {spec.path}: " + "; ".join(errors))


BackendLike = Union[str, Backend]
