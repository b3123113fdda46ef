"""``mono-depth quantize`` at work: int8 quantisation and the int8 vs fp32 check; the parser is
:mod:`mono_depth_ros.commands.quantize`."""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ..cli import CLIError, plural
from . import model_folder_problem
from ..model_spec import load_spec
from ..profiles import get_profile
from ..quantize import compare_log_depth, load_calibration_frames, quantize_onnx, read_metadata


def run_quantize(args: argparse.Namespace) -> int:
    src = Path(args.model)
    problem = model_folder_problem(args.model)
    if problem:
        raise CLIError(problem)
    if not src.is_file():
        raise CLIError(f"model {src} does not exist")
    if src.suffix.lower() != ".onnx":
        raise CLIError(f"{src} is not an .onnx file: export it first (mono-depth export --model X.pt --out X.onnx)")

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
        print(f"int8 vs fp32 on {plural(len(frames), 'calibration frame')} (in-sample): max |d log| {m['max_abs_log']:.4f}, "
              f"mean |d log| {m['mean_abs_log']:.4f}, AbsRel {m['abs_rel']:.4f}, delta1 {m['delta1']:.4f} "
              f"(fp32 log-depth spread {m['spread_log']:.3f})")
    return 0
