"""``mono-depth info`` at work: the layer table and a forward pass; the parser is
:mod:`mono_depth_ros.commands.info`."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..checkpoint import load_model
from ..cli import CLIError
from . import model_folder_problem
from ..image_files import read_camera_image
from ..preprocess import preprocess
from ..profiles import get_profile


def run_info(args: argparse.Namespace) -> int:
    import torch

    from ..model import EigenDepthNet, gflops, summary

    rgb = None
    if args.image:   # checked (and read) before anything is printed
        try:
            rgb = read_camera_image(Path(args.image))
        except ValueError as exc:
            raise CLIError(f"cannot read image: {exc}") from None
    problem = model_folder_problem(args.model)
    if problem:
        raise CLIError(problem)
    if args.model:
        model, info = load_model(args.model, stage=args.stage)
        print(f"model file {args.model}: trained stage {info['stage']}, meta keys {sorted(info.get('meta', {}))}")
        untrained = False
    else:
        try:
            profile = get_profile(args.profile)
        except KeyError as exc:
            raise CLIError(str(exc.args[0])) from None
        torch.manual_seed(0)
        model = EigenDepthNet(profile, stage=args.stage or "fine").eval()
        untrained = True
    print(summary(model))
    print(f"compute: {gflops(model.profile):.2f} GFLOP per frame")
    if rgb is None:
        return 0
    path = Path(args.image)
    x, t = preprocess(rgb, model.profile)
    with torch.no_grad():
        t0 = time.perf_counter()
        log_depth = model(torch.from_numpy(x))
        dt = time.perf_counter() - t0
    depth = np.exp(log_depth[0, 0].numpy())
    print(f"image {path}: {t.src_w}x{t.src_h} -> resized {t.resized_w}x{t.resized_h} (s={t.scale:.4f}) -> "
          f"crop at ({t.crop_x0}, {t.crop_y0}) {t.input_w}x{t.input_h}")
    print(f"forward pass ({'untrained weights, ' if untrained else ''}CPU): {dt * 1e3:.1f} ms, "
          f"depth map {depth.shape[1]}x{depth.shape[0]}, min {depth.min():.3f} m, median "
          f"{np.median(depth):.3f} m, max {depth.max():.3f} m")
    return 0
