"""Checkpoint (.pt) -> ONNX, self-describing (the metadata alone configures the pipeline).

The exported graph has one input ``image`` (B, 3, H, W) float32, normalised as the profile says,
and one output ``log_depth`` (B, 1, h, w) float32; the input size is the profile's (fixed; the FC
layers need it), the batch is 1 or dynamic (``dynamic_batch``).  ``metadata_props`` carries
``mono_depth_ros.profile`` (JSON of Profile.to_dict()), ``mono_depth_ros.output`` = ``log_depth``,
``mono_depth_ros.metric`` and ``mono_depth_ros.stage`` (see docs/internals.md).

``cached_onnx(checkpoint)`` exports once into the cache directory (``$MONO_DEPTH_CACHE`` or
``~/.cache/mono_depth_ros``), keyed by the checkpoint's SHA-256, and reuses the file afterwards.
Every function takes a path or a loaded :class:`ModelSpec`; a spec carries the checkpoint's contents
and digest, so the ``.pt`` is not read again.

TensorRT engine export lives in :mod:`mono_depth_ros.trt_build` (re-exported here for callers of
``mono_depth_ros.export``).
"""
from __future__ import annotations

import dataclasses
import io
import logging
import os
import warnings
from pathlib import Path
from typing import Dict, Optional, Union

from .checkpoint import ModelFileError, atomic_write_bytes, model_from_payload
from .model_cache import default_cache_dir, file_sha256
from .model_spec import ENGINE_SUFFIXES, ModelSpec, load_spec
from .trt_build import TensorRTUnavailable, export_engine, tensorrt_unavailable
from .trt_engine import ENGINE_PRECISIONS

__all__ = ["DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME", "EXPORT_VERSION", "ENGINE_SUFFIXES", "ENGINE_PRECISIONS",
           "ModelPath", "TensorRTUnavailable", "cached_onnx", "default_cache_dir", "export_engine", "export_onnx",
           "export_onnx_bytes", "file_sha256", "onnx_metadata", "tensorrt_unavailable"]

log = logging.getLogger("mono_depth_ros")

DEFAULT_OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "log_depth"
EXPORT_VERSION = 1  # bump when the exported graph changes for the same checkpoint (invalidates caches)


ModelPath = Union[str, "os.PathLike[str]", ModelSpec]


def _checkpoint_spec(model: ModelPath) -> ModelSpec:
    spec = model if isinstance(model, ModelSpec) else load_spec(Path(model))
    if spec.kind != "checkpoint":
        raise ModelFileError(f"{spec.path} is a {spec.kind} model; export takes a mono_depth_ros checkpoint (.pt)")
    return spec


def onnx_metadata(spec: ModelSpec) -> Dict[str, str]:
    """The ``metadata_props`` of an exported model (strings)."""
    return spec.metadata()


def export_onnx_bytes(model_path: ModelPath, opset: int = DEFAULT_OPSET, dynamic_batch: bool = False,
                      stage: Optional[str] = None, check: bool = True) -> bytes:
    """Export a checkpoint to a serialised ONNX model (with metadata), checked by onnx.checker."""
    import onnx
    import torch

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    spec = _checkpoint_spec(model_path)
    model, _ = model_from_payload(spec.checkpoint_payload(), spec.path, stage=stage)
    model.eval()
    p = model.profile
    if stage:
        spec = dataclasses.replace(spec, stage=stage)
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
    md["mono_depth_ros.source_sha256"] = spec.sha256()
    for k, v in md.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m.SerializeToString()


def export_onnx(model_path: ModelPath, out_path: "str | Path", opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False, overwrite: bool = False, stage: Optional[str] = None,
                check: bool = True) -> Path:
    """Export ``model_path`` (a .pt checkpoint, or its spec) to ``out_path`` atomically; never replaces an
    existing file unless ``overwrite``."""
    out_path = Path(out_path)
    src = model_path.path if isinstance(model_path, ModelSpec) else Path(model_path)
    if out_path.resolve() == src.resolve() or (
            out_path.exists() and src.exists() and os.path.samefile(out_path, src)):
        raise ValueError(f"the output {out_path} is the input model {src}: exporting would replace it "
                         "(even with overwrite); choose another output")
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; refusing to overwrite it (pass overwrite=True / --overwrite)")
    data = export_onnx_bytes(model_path, opset=opset, dynamic_batch=dynamic_batch, stage=stage, check=check)
    return atomic_write_bytes(out_path, data, overwrite=overwrite)


def cached_onnx(model_path: ModelPath, cache_dir: "str | Path | None" = None, dynamic_batch: bool = False,
                opset: int = DEFAULT_OPSET, stage: Optional[str] = None) -> Path:
    """The ONNX export of a checkpoint, from the cache (keyed by the checkpoint's SHA-256, export
    options and EXPORT_VERSION), exporting it once (atomically, so concurrent processes are safe)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    src = model_path.path if isinstance(model_path, ModelSpec) else Path(model_path)
    digest = (model_path.sha256() if isinstance(model_path, ModelSpec) else file_sha256(src))[:32]
    tag = f"{'dyn' if dynamic_batch else 'b1'}_op{opset}_v{EXPORT_VERSION}{'_' + stage if stage else ''}"
    out = cache / "onnx" / f"{src.stem}-{digest}-{tag}.onnx"
    if out.is_file() and out.stat().st_size > 0:
        return out
    spec = _checkpoint_spec(model_path)
    log.info("exporting %s to ONNX cache %s", spec.path, out)
    data = export_onnx_bytes(spec, opset=opset, dynamic_batch=dynamic_batch, stage=stage)
    try:
        atomic_write_bytes(out, data, overwrite=True)
    except OSError as exc:
        raise ModelFileError(f"cannot write the ONNX cache {out}: {exc} (set MONO_DEPTH_CACHE to a writable folder)") \
            from exc
    return out
