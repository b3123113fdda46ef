"""``mono-depth export``: a checkpoint (.pt) -> a self-describing ONNX model, and optionally its TensorRT engine.

    mono-depth export --model m.pt --out m.onnx
    mono-depth export --model m.pt --out m.engine [--precision fp16|fp32|int8 [--calib DIR]]   # m.onnx + m.engine
    mono-depth export --model m.pt --out m.onnx --engine                                      # the same
    mono-depth export --model m.onnx --out m.engine                                           # engine only

An engine is written with its sidecar ``m.engine.json`` (cache key + the ONNX metadata); it only runs
on the TensorRT version and GPU it was built with, so build it on the machine that runs it.

The parser lives here (``mono-depth --help`` imports it); the work, and the export stack (numpy, OpenCV,
ONNX, TensorRT) with it, in :mod:`mono_depth_ros.commands.export_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="export a model file to ONNX (and a TensorRT engine)",
                       description="Export a mono_depth_ros checkpoint to ONNX (input 'image' (B,3,H,W) float32 "
                                   "normalised, output 'log_depth' (B,1,h,w)), with the profile, output kind, metric "
                                   "flag and stage in its metadata, checked with onnx.checker and ONNX Runtime. "
                                   "With --engine (or --out X.engine) also build the TensorRT engine X.engine and its "
                                   "sidecar X.engine.json from X.onnx (needs TensorRT 10 and a CUDA GPU; the engine "
                                   "only runs on that TensorRT version and GPU model).")
    p.add_argument("--model", required=True,
                   help="a mono_depth_ros model file (.pt); or an exported .onnx when building an engine")
    p.add_argument("--out", required=True,
                   help="the .onnx file to write, or X.engine (writes X.onnx and the engine X.engine)")
    p.add_argument("--engine", action="store_true",
                   help="also build the TensorRT engine (beside the .onnx: X.onnx -> X.engine + X.engine.json)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default=None,
                   help="engine precision (default fp16; int8 is calibrated on --calib images)")
    p.add_argument("--calib", nargs="+", default=None, metavar="PATH",
                   help="int8: calibration images or folders (default: synthetic frames, with a warning)")
    p.add_argument("--max-batch", type=int, default=None,
                   help="engine: largest batch (needs --dynamic-batch; default 1)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17; default 17)")
    p.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension dynamic")
    p.add_argument("--stage", choices=["coarse", "fine"], default=None, help="stage to export (default: the file's)")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime vs PyTorch check")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    from .export_run import run_export   # the export stack: only when exporting

    return run_export(args)
