"""Compatibility shim: ``backends.base`` was the interface and the registry in one module.

The interface is :mod:`.interface` (Backend, BackendError), the choice of a backend :mod:`.registry`
(create_backend, auto order, the capability check).  Nothing inside ``backends/`` imports this module.
"""
from .interface import Backend, BackendError
from .registry import (BACKEND_NAMES, PRECISIONS, BackendLike, auto_order, available_backends, backend_status,
                       create_backend, cuda_available)

__all__ = ["BACKEND_NAMES", "PRECISIONS", "Backend", "BackendError", "BackendLike", "auto_order",
           "available_backends", "backend_status", "create_backend", "cuda_available"]
