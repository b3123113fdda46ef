"""The backend interface: :class:`Backend` (what every runner implements) and :class:`BackendError`.

A backend runs the network only: normalised float32 (B, 3, H, W) in, the model's raw output
(B, 1, h, w) float32 out (log depth for our models; see ``spec.output``).  Everything else
(decode, preprocessing, metres, range, resampling, clouds) is the pipeline's.  Choosing and
creating a backend is :mod:`.registry`'s.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ..model_spec import ModelSpec


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
