"""``mono-depth export`` at work: the options checked, the checkpoint exported to ONNX (checked against
PyTorch) and the TensorRT engine built; the parser is :mod:`mono_depth_ros.commands.export`."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .. import export as model_export  # by module: tests replace export.tensorrt_unavailable
from ..checkpoint import load_model
from ..cli import CLIError
from . import model_folder_problem
from ..model_spec import ENGINE_SUFFIXES
from ..trt_engine import EngineCacheError, read_sidecar, sidecar_path


def _plan(args: argparse.Namespace) -> Tuple[Optional[Path], Optional[Path]]:
    """(ONNX file to export or None, engine file to build or None), after checking the options."""
    out, model = Path(args.out), Path(args.model)
    if _same_file(out, model):
        raise CLIError(f"--out {out} is the input model {model}: exporting would replace it (even with "
                       "--overwrite); choose another --out")
    out_is_engine = out.suffix.lower() in ENGINE_SUFFIXES
    model_is_onnx = model.suffix.lower() == ".onnx"
    if not (args.engine or out_is_engine):
        _check_onnx_only(args, out, model, model_is_onnx)
        return out, None
    _check_engine_options(args, model_is_onnx)
    if out_is_engine:
        eng, onnx = out, out.with_suffix(".onnx")
    elif out.suffix.lower() == ".onnx":
        eng, onnx = out.with_suffix(".engine"), out
    else:
        raise CLIError(f"--engine: --out must be X.onnx or X.engine, got {out}")
    if model_is_onnx:
        if not out_is_engine:
            raise CLIError(f"{model} is already ONNX: give --out X.engine to build its engine")
        if args.stage is not None or args.dynamic_batch:
            raise CLIError("--stage/--dynamic-batch apply to exporting a .pt checkpoint, not to an .onnx model")
        return None, eng
    return onnx, eng


def _check_onnx_only(args: argparse.Namespace, out: Path, model: Path, model_is_onnx: bool) -> None:
    """An export without an engine: no engine options, a .pt model, an X.onnx output."""
    for opt, given in (("--precision", args.precision), ("--calib", args.calib), ("--max-batch", args.max_batch)):
        if given is not None:
            raise CLIError(f"{opt} applies to TensorRT engines: add --engine or write --out X.engine")
    if model_is_onnx:
        raise CLIError(f"{model} is already ONNX; to build its TensorRT engine give --out X.engine")
    if out.suffix.lower() != ".onnx":
        raise CLIError(f"--out {out}: export writes an ONNX model, name it X.onnx (or X.engine for a TensorRT "
                       "engine)")


def _check_engine_options(args: argparse.Namespace, model_is_onnx: bool) -> None:
    """--calib, --max-batch and the calibration paths of an engine build."""
    if args.calib is not None and args.precision != "int8":
        raise CLIError("--calib is for --precision int8 (the calibration images)")
    if args.max_batch is not None:
        if args.max_batch < 1:
            raise CLIError(f"--max-batch must be >= 1, got {args.max_batch}")
        if args.max_batch > 1 and not args.dynamic_batch and not model_is_onnx:
            raise CLIError("--max-batch > 1 needs --dynamic-batch (an ONNX with a dynamic batch dimension)")
    for c in args.calib or []:
        if not Path(c).exists():
            raise CLIError(f"calibration path {c} does not exist")


def run_export(args: argparse.Namespace) -> int:
    if args.opset < 17:
        raise CLIError(f"--opset must be >= 17, got {args.opset}")
    onnx_out, engine_out = _plan(args)
    problem = model_folder_problem(args.model)
    if problem:
        raise CLIError(problem)
    if not Path(args.model).is_file():
        raise CLIError(f"model {args.model} does not exist")
    _check_targets(args, onnx_out, engine_out)
    if engine_out is not None:
        # before exporting anything: no half-done ONNX-without-engine when the engine cannot be built
        _require_tensorrt(args, onnx_out)
    if onnx_out is not None:
        _write_onnx(args, onnx_out)
    if engine_out is not None:
        _build_engine(args, onnx_out if onnx_out is not None else Path(args.model), engine_out)
    return 0


def _check_targets(args: argparse.Namespace, onnx_out: Optional[Path], engine_out: Optional[Path]) -> None:
    """The files to write: never the model itself (not even with --overwrite), no folder, none existing."""
    targets = ([onnx_out] if onnx_out is not None else []) + (
        [engine_out, sidecar_path(engine_out)] if engine_out is not None else [])
    for t in targets:
        if _same_file(t, Path(args.model)):
            raise CLIError(f"--out {t} is the input model {args.model}: exporting would replace it (even with "
                           "--overwrite); choose another --out")
        if t.is_dir():
            raise CLIError(f"--out {t} is a folder; give a file name X.onnx or X.engine")
    if not args.overwrite:
        for t in targets:
            if t.exists():
                raise CLIError(f"{t} exists; refusing to overwrite it (pass --overwrite)")


def _require_tensorrt(args: argparse.Namespace, onnx_out: Optional[Path]) -> None:
    reason = model_export.tensorrt_unavailable()
    if reason is not None:
        first = f"copy {args.model}" if onnx_out is None else (
            f"export ONNX here (mono-depth export --model {args.model} --out {onnx_out})")
        raise CLIError(f"cannot build a TensorRT engine here: {reason}. Engines are specific to the GPU and "
                       f"TensorRT version: {first} and build the engine on the machine that runs it "
                       f"(mono-depth export --model X.onnx --out X.engine)")


def _write_onnx(args: argparse.Namespace, onnx_out: Path) -> None:
    path = model_export.export_onnx(args.model, onnx_out, opset=args.opset, dynamic_batch=args.dynamic_batch,
                       overwrite=args.overwrite, stage=args.stage)
    msg = f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}"
    msg += ", dynamic batch)" if args.dynamic_batch else ", batch 1)"
    if not args.no_verify:
        diff = verify(args.model, path, stage=args.stage)
        msg += f"; ONNX Runtime vs PyTorch max |diff| of log depth {diff:.2e}"
        if diff >= 1e-3:
            print(msg, file=sys.stderr)
            raise CLIError(f"ONNX Runtime disagrees with PyTorch (max |diff| {diff:.2e} >= 1e-3)", code=1)
    print(msg)


def _build_engine(args: argparse.Namespace, src: Path, engine_out: Path) -> None:
    precision = args.precision or "fp16"
    t0 = time.perf_counter()
    try:
        eng = model_export.export_engine(src, engine_out, precision=precision, calib=args.calib,
                            max_batch=args.max_batch or 1, overwrite=args.overwrite)
    except (model_export.TensorRTUnavailable, EngineCacheError) as exc:
        raise CLIError(str(exc)) from None
    fields = (read_sidecar(eng) or {}).get("key_fields") or {}
    print(f"wrote {eng} + {sidecar_path(eng).name} ({eng.stat().st_size / 1e6:.1f} MB, TensorRT "
          f"{fields.get('trt_version', '?')}, {precision}, {fields.get('gpu_name', '?')} "
          f"(sm {fields.get('compute_capability', '?')}), built in {time.perf_counter() - t0:.0f} s from {src}; "
          f"it runs only on this TensorRT version and GPU model)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def verify(model_path, onnx_path, stage=None, seed: int = 0) -> float:
    """Max |ONNX Runtime - PyTorch| log depth on a random normalised input (fp32, CPU)."""
    import onnxruntime as ort
    import torch

    model, _ = load_model(model_path, stage=stage)
    p = model.profile
    x = np.random.default_rng(seed).standard_normal((1, 3, p.input_h, p.input_w)).astype(np.float32)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    return float(np.max(np.abs(y - ref)))
