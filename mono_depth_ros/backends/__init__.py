"""Inference backends: one small interface (:class:`Backend`), chosen by name or "auto".

Backends are imported lazily: importing this package imports neither torch, onnxruntime nor tensorrt.
"""
from .base import (BACKEND_NAMES, PRECISIONS, Backend, BackendError, auto_order, available_backends,
                   create_backend, cuda_available)

__all__ = ["BACKEND_NAMES", "PRECISIONS", "Backend", "BackendError", "auto_order", "available_backends",
           "create_backend", "cuda_available"]
