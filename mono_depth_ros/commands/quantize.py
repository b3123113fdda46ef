"""``mono-depth quantize``: fp32 ONNX -> int8 ONNX for the CPU (ONNX Runtime) path.

The parser lives here (``mono-depth --help`` imports it); the work, with its dependencies, in
:mod:`mono_depth_ros.commands.quantize_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "quantize", help="quantise an exported ONNX model to int8 (ONNX Runtime, CPU)",
        description="Static int8 quantisation (QDQ, per-channel weights) calibrated on real images through the "
                    "model's own preprocessing; the output keeps the model's metadata. --mode dynamic quantises "
                    "only the fully connected layers' weights (no calibration). --check prints the accuracy "
                    "of the int8 model against the fp32 one on the calibration images.")
    p.add_argument("--model", required=True, help="fp32 .onnx exported by `mono-depth export`")
    p.add_argument("--calib", nargs="*", default=[], metavar="PATH",
                   help="calibration images or folders (camera images of the deployment scene; 8-64 are enough). "
                        "Without any, synthetic frames are used (worse accuracy; a warning is printed)")
    p.add_argument("--out", help="output file (default <model>.int8.onnx)")
    p.add_argument("--mode", choices=["static", "dynamic"], default="static")
    p.add_argument("--frames", type=int, default=32, help="calibration samples (images + flips/brightness)")
    p.add_argument("--quantize-output-layer", action="store_true",
                   help="also quantise the last layer (by default it stays fp32: half the error for ~0.5 ms)")
    p.add_argument("--fp32-nodes", nargs="*", default=[], metavar="NODE", help="further ONNX node names to keep fp32")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--check", action="store_true", help="compare int8 vs fp32 outputs on the calibration images")
    return p


def run(args: argparse.Namespace) -> int:
    from .quantize_run import run_quantize

    return run_quantize(args)
