"""``mono-depth export``: a checkpoint (.pt) -> a self-describing ONNX model."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a model file to ONNX",
                       description="Export a mono_depth_ros checkpoint to ONNX (input 'image' (B,3,H,W) float32 "
                                   "normalised, output 'log_depth' (B,1,h,w)), with the profile, output kind, metric "
                                   "flag and stage in its metadata, checked with onnx.checker and ONNX Runtime.")
    p.add_argument("--model", required=True, help="a mono_depth_ros model file (.pt)")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension dynamic")
    p.add_argument("--stage", choices=["coarse", "fine"], default=None, help="stage to export (default: the file's)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    from ..cli import CLIError
    from ..export import export_onnx

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; refusing to overwrite it (pass --overwrite)")
    if args.opset < 17:
        raise CLIError(f"--opset must be >= 17, got {args.opset}")
    path = export_onnx(args.model, out, opset=args.opset, dynamic_batch=args.dynamic_batch,
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
    return 0


def verify(model_path, onnx_path, stage=None, seed: int = 0) -> float:
    """Max |ONNX Runtime - PyTorch| log depth on a random normalised input (fp32, CPU)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from ..checkpoint import load_model

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
