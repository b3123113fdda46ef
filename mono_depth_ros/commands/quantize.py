"""``mono-depth quantize``: fp32 ONNX -> int8 ONNX for the CPU (ONNX Runtime) path."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..cli import CLIError


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
    from ..quantize import compare_log_depth, load_calibration_frames, quantize_onnx, read_metadata

    src = Path(args.model)
    if not src.is_file():
        raise CLIError(f"model {src} does not exist")
    if src.suffix.lower() != ".onnx":
        raise CLIError(f"{src} is not an .onnx file: export it first (mono-depth export --model X.pt --out X.onnx)")
    from ..model_spec import load_spec

    spec = load_spec(src)   # a corrupt / truncated / foreign file: one line (ModelFileError) before any work
    if spec.foreign or "mono_depth_ros.profile" not in read_metadata(src):
        raise CLIError(f"{src} has no mono_depth_ros metadata (not exported by `mono-depth export`): quantize only "
                       "takes such models, whose metadata gives the preprocessing for calibration")
    if "mono_depth_ros.quantization" in read_metadata(src):
        raise CLIError(f"{src} is already quantised")
    if args.frames < 1:
        raise CLIError(f"--frames must be >= 1, got {args.frames}")
    if args.out and Path(args.out).suffix.lower() != ".onnx":   # as export: the file's kind is read from its name
        raise CLIError(f"--out {args.out}: quantize writes an ONNX model, name it X.onnx (e.g. X.int8.onnx)")
    t0 = time.perf_counter()
    res = quantize_onnx(src, args.out, calib=args.calib or None, mode=args.mode, n_frames=args.frames,
                        overwrite=args.overwrite, keep_output_layer_fp32=not args.quantize_output_layer,
                        nodes_to_exclude=args.fp32_nodes)
    print(f"wrote {res.path} ({res.mode}; calibration: {res.calibration}) in {time.perf_counter() - t0:.1f} s; "
          f"size {src.stat().st_size / 1e6:.1f} MB -> {res.path.stat().st_size / 1e6:.1f} MB")
    if args.check:
        import onnxruntime as ort

        from ..profiles import get_profile

        prof = get_profile(json.loads(read_metadata(src)["mono_depth_ros.profile"]))
        frames = load_calibration_frames(prof, args.calib or None, limit=args.frames, augment=False)
        so = ort.SessionOptions()
        so.log_severity_level = 3
        s32 = ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
        s8 = ort.InferenceSession(str(res.path), so, providers=["CPUExecutionProvider"])
        name = s32.get_inputs()[0].name
        a = np.concatenate([s32.run(None, {name: x})[0] for x in frames])
        b = np.concatenate([s8.run(None, {name: x})[0] for x in frames])
        m = compare_log_depth(a, b)
        print(f"int8 vs fp32 on {len(frames)} calibration frames (in-sample): max |d log| {m['max_abs_log']:.4f}, "
              f"mean |d log| {m['mean_abs_log']:.4f}, AbsRel {m['abs_rel']:.4f}, delta1 {m['delta1']:.4f} "
              f"(fp32 log-depth spread {m['spread_log']:.3f})")
    return 0
