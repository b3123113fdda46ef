"""Checkpoint (.pt) -> ONNX, self-describing (the metadata alone configures the pipeline).

The exported graph has one input ``image`` (B, 3, H, W) float32, normalised as the profile says,
and one output ``log_depth`` (B, 1, h, w) float32; the input size is the profile's (fixed; the FC
layers need it), the batch is 1 or dynamic (``dynamic_batch``).  ``metadata_props`` carries
``mono_depth_ros.profile`` (JSON of Profile.to_dict()), ``mono_depth_ros.output`` = ``log_depth``,
``mono_depth_ros.metric`` and ``mono_depth_ros.stage`` (see docs/internals.md).

``cached_onnx(checkpoint)`` exports once into the cache directory (``$MONO_DEPTH_CACHE`` or
``~/.cache/mono_depth_ros``), keyed by the checkpoint's SHA-256, and reuses the file afterwards.
"""
from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from .checkpoint import ModelFileError, atomic_write_bytes
from .model_spec import ModelSpec, file_sha256, load_spec

log = logging.getLogger("mono_depth_ros")

DEFAULT_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "log_depth"
EXPORT_VERSION = 1  # bump when the exported graph changes for the same checkpoint (invalidates caches)


def default_cache_dir() -> Path:
    """``$MONO_DEPTH_CACHE`` or ``~/.cache/mono_depth_ros`` (``$XDG_CACHE_HOME`` respected)."""
    env = os.environ.get("MONO_DEPTH_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mono_depth_ros"


def onnx_metadata(spec: ModelSpec) -> Dict[str, str]:
    """The ``metadata_props`` of an exported model (strings)."""
    return spec.metadata()


def export_onnx_bytes(model_path: "str | Path", opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
                      stage: Optional[str] = None, check: bool = True) -> bytes:
    """Export a checkpoint to a serialised ONNX model (with metadata), checked by onnx.checker."""
    import onnx
    import torch

    from .checkpoint import load_model

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    spec = load_spec(model_path)
    if spec.kind != "checkpoint":
        raise ModelFileError(f"{model_path} is a {spec.kind} model; export takes a mono_depth_ros checkpoint (.pt)")
    model, _ = load_model(model_path, stage=stage)
    model.eval()
    p = model.profile
    if stage:
        spec.stage = stage
    x = torch.zeros(1, 3, p.input_h, p.input_w, dtype=torch.float32)
    buf = io.BytesIO()
    dyn = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with torch.no_grad(), warnings.catch_warnings():
        # the model's input-shape check is traced as a constant (the input shape is fixed anyway)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          opset_version=int(opset), dynamic_axes=dyn, do_constant_folding=True,
                          export_params=True)
    m = onnx.load_from_string(buf.getvalue())
    m.producer_name = "mono_depth_ros"
    from . import __version__

    m.producer_version = __version__
    m.doc_string = f"Eigen, Puhrsch & Fergus (2014) depth network, {spec.describe()}"
    del m.metadata_props[:]
    md = onnx_metadata(spec)
    md["mono_depth_ros.export_version"] = str(EXPORT_VERSION)
    md["mono_depth_ros.source_sha256"] = file_sha256(model_path)
    for k, v in md.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def export_onnx(model_path: "str | Path", out_path: "str | Path", opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False, overwrite: bool = False, stage: Optional[str] = None,
                check: bool = True) -> Path:
    """Export ``model_path`` (a .pt checkpoint) to ``out_path`` atomically; never replaces an
    existing file unless ``overwrite``."""
    out_path = Path(out_path)
    if out_path.resolve() == Path(model_path).resolve() or (
            out_path.exists() and Path(model_path).exists() and os.path.samefile(out_path, model_path)):
        raise ValueError(f"the output {out_path} is the input model {model_path}: exporting would replace it "
                         "(even with overwrite); choose another output")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; refusing to overwrite it (pass overwrite=True / --overwrite)")
    data = export_onnx_bytes(model_path, opset=opset, dynamic_batch=dynamic_batch, stage=stage, check=check)
    return atomic_write_bytes(out_path, data, overwrite=overwrite)


def cached_onnx(model_path: "str | Path", cache_dir: "str | Path | None" = None, dynamic_batch: bool = False,
                opset: int = DEFAULT_OPSET, stage: Optional[str] = None) -> Path:
    """The ONNX export of a checkpoint, from the cache (keyed by the checkpoint's SHA-256, export
    options and EXPORT_VERSION), exporting it once (atomically, so concurrent processes are safe)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    digest = file_sha256(model_path)[:32]
    tag = f"{'dyn' if dynamic_batch else 'b1'}_op{opset}_v{EXPORT_VERSION}{'_' + stage if stage else ''}"
    out = cache / "onnx" / f"{Path(model_path).stem}-{digest}-{tag}.onnx"
    if out.is_file() and out.stat().st_size > 0:
        return out
    log.info("exporting %s to ONNX cache %s", model_path, out)
    data = export_onnx_bytes(model_path, opset=opset, dynamic_batch=dynamic_batch, stage=stage)
    try:
        atomic_write_bytes(out, data, overwrite=True)
    except OSError as exc:
        raise ModelFileError(f"cannot write the ONNX cache {out}: {exc} (set MONO_DEPTH_CACHE to a writable folder)") \
            from exc
    return out


# ---- TensorRT engines ------------------------------------------------------------------------------
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
ENGINE_PRECISIONS = ("fp32", "fp16", "int8")


def tensorrt_unavailable() -> Optional[str]:
    """None when a TensorRT engine can be built here, else the reason (one line)."""
    try:
        import tensorrt
    except ImportError:
        return "the `tensorrt` Python package (TensorRT 10) is not installed"
    if not hasattr(tensorrt, "Builder"):  # tensorrt-stubs alone: a namespace package without code
        return "`tensorrt` imports but has no Builder (only the type stubs are installed, not TensorRT)"
    try:
        import torch
    except ImportError:
        return "torch is not installed (it is needed to query the CUDA GPU)"
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


class TensorRTUnavailable(RuntimeError):
    """An engine cannot be built on this machine (no TensorRT or no CUDA GPU)."""


def export_engine(onnx_path: "str | Path", engine_path: "str | Path", precision: str = "fp16",
                  calib: Optional[Sequence[Any]] = None, max_batch: int = 1, workspace_gb: Optional[float] = None,
                  device: int = 0, overwrite: bool = False) -> Path:
    """Build the TensorRT engine of ``onnx_path`` (an fp32 export of this project) into ``engine_path``
    and its sidecar ``<engine>.engine.json`` (cache key + the ONNX metadata, so the engine file alone
    configures the pipeline; see :mod:`mono_depth_ros.trt_engine`).

    Always builds (into a temporary folder beside the target, then moved into place): an existing
    engine is replaced only with ``overwrite``, and survives a failed build.  ``precision`` int8 is
    calibrated on ``calib`` (image files / folders / RGB arrays) through the Preprocessor, synthetic
    frames when none are given.  Raises :class:`TensorRTUnavailable` where TensorRT or a CUDA GPU is
    missing, before writing anything.
    """
    import tempfile

    from .trt_engine import sidecar_path

    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    if precision not in ENGINE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(ENGINE_PRECISIONS)}, got {precision!r}")
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    if not overwrite:
        for p in (engine_path, sidecar_path(engine_path)):
            if p.exists():
                raise FileExistsError(f"{p} exists; refusing to overwrite it (pass overwrite=True / --overwrite)")
    reason = tensorrt_unavailable()
    if reason is not None:
        raise TensorRTUnavailable(f"cannot build a TensorRT engine here: {reason}")
    from .backends import tensorrt_backend as trtb

    kw: Dict[str, Any] = {} if workspace_gb is None else {"workspace_gb": workspace_gb}
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mono_depth_engine.", dir=str(engine_path.parent)) as tmp:
        tmp_engine = Path(tmp) / engine_path.name
        built = trtb.build_engine(onnx_path, tmp_engine, precision=precision, max_batch=max_batch, calib=calib,
                                  device=device, **kw)
        # sidecar first: an engine is never visible without the sidecar that describes it
        os.replace(sidecar_path(built), sidecar_path(engine_path))
        os.replace(built, engine_path)
    return engine_path
