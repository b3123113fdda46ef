"""PyTorch backend: CPU (fp32) and CUDA (fp32 or fp16, channels_last, CUDA graph replay).

CUDA path: the input is copied host -> pinned buffer -> GPU (non-blocking), and the whole
"fp32 -> fp16 channels_last -> network -> fp32" step is captured once per batch size as a CUDA
graph and replayed (falls back to eager execution, with a warning, when capture fails).  The
output comes back through a pinned host buffer.  CPU path: eager fp32 under
``torch.inference_mode`` (``compile=True`` tries torch.compile; off by default: its first call
takes tens of seconds).
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Optional

import numpy as np

from ..checkpoint import model_from_payload
from ..model_spec import ModelSpec
from .interface import Backend, BackendError

log = logging.getLogger("mono_depth_ros")


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, spec: ModelSpec, device: Optional[str] = None, precision: str = "fp32",
                 threads: Optional[int] = None, batch: int = 1, cuda_graph: bool = True, compile: bool = False):
        import torch

        if spec.kind != "checkpoint":
            raise BackendError(f"the PyTorch backend runs mono_depth_ros checkpoints (.pt), not {spec.kind} "
                               f"files ({spec.path.name}); use onnxruntime or tensorrt")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise BackendError("device 'cuda' requested but torch.cuda.is_available() is False")
        if dev.type not in ("cpu", "cuda"):
            raise BackendError(f"unsupported device {device!r} (cpu or cuda[:N])")
        if precision == "auto":
            precision = "fp16" if dev.type == "cuda" else "fp32"
        if precision == "int8":
            raise BackendError("the PyTorch backend has no int8 mode; use onnxruntime with a quantised ONNX model")
        if precision == "fp16" and dev.type == "cpu":
            raise BackendError("fp16 on CPU is not supported by the PyTorch backend; use fp32 (or a GPU)")
        if threads is not None and dev.type == "cpu":
            torch.set_num_threads(int(threads))
        self.spec = spec
        self.device = str(dev)
        self.precision = precision
        self._torch = torch
        self._dev = dev
        model, _ = model_from_payload(spec.checkpoint_payload(), spec.path, stage=spec.stage, map_location="cpu")
        p = model.profile
        self._dtype = torch.float16 if precision == "fp16" else torch.float32
        self._cuda = dev.type == "cuda"
        self._channels_last = self._cuda
        model = model.to(device=dev, dtype=self._dtype)
        if self._channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.eval()
        if compile:
            try:
                model = torch.compile(model)
            except Exception as exc:  # noqa: BLE001
                log.warning("torch.compile failed (%s); running eager", exc)
        self.model = model
        self.input_shape = (int(batch), 3, p.input_h, p.input_w)
        self.output_shape = (int(batch), 1, p.output_h, p.output_w)
        self._use_graph = bool(cuda_graph) and self._cuda
        self._graphs: Dict[int, Any] = {}   # batch -> (graph, static_in, static_out)
        self._pinned: Dict[int, Any] = {}   # batch -> (pinned_in, pinned_out)
        if self._cuda:
            torch.backends.cudnn.benchmark = True
            self._stream = torch.cuda.Stream(device=dev)

    # ---- internals --------------------------------------------------------------------
    def _forward(self, x32: Any) -> Any:
        torch = self._torch
        x = x32.to(dtype=self._dtype)
        if self._channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x).float()

    def _buffers(self, b: int) -> Any:
        torch = self._torch
        bufs = self._pinned.get(b)
        if bufs is None:
            _, c, h, w = self.input_shape
            _, _, oh, ow = self.output_shape
            bufs = (torch.empty((b, c, h, w), dtype=torch.float32, pin_memory=True),
                    torch.empty((b, 1, oh, ow), dtype=torch.float32, pin_memory=True))
            self._pinned[b] = bufs
        return bufs

    def _capture(self, b: int) -> Any:
        torch = self._torch
        _, c, h, w = self.input_shape
        static_in = torch.zeros((b, c, h, w), dtype=torch.float32, device=self._dev)
        try:
            with torch.cuda.stream(self._stream):
                with torch.inference_mode():
                    for _ in range(3):  # warm-up on the side stream (cuDNN autotune, allocator)
                        self._forward(static_in)
                self._stream.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.inference_mode():
                    with torch.cuda.graph(graph, stream=self._stream):
                        static_out = self._forward(static_in)
            self._stream.synchronize()
        except Exception as exc:  # noqa: BLE001 - any capture failure: run eager
            log.warning("CUDA graph capture failed (%s: %s); running the PyTorch backend eagerly",
                        type(exc).__name__, exc)
            self._use_graph = False
            return None
        entry = (graph, static_in, static_out)
        self._graphs[b] = entry
        return entry

    # ---- API --------------------------------------------------------------------------
    def run(self, x: np.ndarray) -> np.ndarray:
        x = self._check_input(x)
        torch = self._torch
        if not self._cuda:
            with torch.inference_mode():
                y = self.model(torch.from_numpy(x))
            return y.numpy()
        b = x.shape[0]
        pin_in, pin_out = self._buffers(b)
        pin_in.numpy()[...] = x
        entry = self._graphs.get(b) if self._use_graph else None
        if entry is None and self._use_graph:
            entry = self._capture(b)
        with torch.cuda.stream(self._stream):
            if entry is not None:
                graph, static_in, static_out = entry
                static_in.copy_(pin_in, non_blocking=True)
                graph.replay()
                pin_out.copy_(static_out, non_blocking=True)
            else:
                with torch.inference_mode():
                    y = self._forward(pin_in.to(self._dev, non_blocking=True))
                pin_out.copy_(y, non_blocking=True)
        self._stream.synchronize()
        return pin_out.numpy()

    def close(self) -> None:
        self._graphs.clear()
        self._pinned.clear()
