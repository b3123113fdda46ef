"""Inference backends: the interface (:class:`Backend`), a registry (names, "auto" order, the capability
check, :func:`create_backend`) and thin runners (ONNX Runtime, PyTorch, TensorRT).

The model-file lifecycle is below this package: ONNX export (:mod:`mono_depth_ros.export`), engine
cache and build (:mod:`mono_depth_ros.trt_engine`, :mod:`mono_depth_ros.trt_build`), cache folder and
file hash (:mod:`mono_depth_ros.model_cache`).  Runners are imported lazily: importing this package
imports neither torch, onnxruntime nor tensorrt.
"""
from .interface import Backend, BackendError
from .registry import (BACKEND_NAMES, PRECISIONS, auto_order, available_backends, backend_status, create_backend,
                       cuda_available)

__all__ = ["BACKEND_NAMES", "PRECISIONS", "Backend", "BackendError", "auto_order", "available_backends",
           "backend_status", "create_backend", "cuda_available"]
