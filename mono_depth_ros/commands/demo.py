"""``mono-depth demo``: synthetic camera sequence -> ROS 2 bag -> the node's pipeline -> depth, clouds, metrics."""
from __future__ import annotations

import argparse
import time

from ..cli import CLIError, plural
from . import DEFAULT_MODEL_HELP, THREADS_HELP, model_folder_problem, threads_problem


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo", help="the end-to-end demo: synthetic sequence -> ROS 2 bag -> depth pipeline -> outputs + metrics",
        description="Render a short synthetic indoor camera sequence with exact ground-truth depth, write it as a "
                    "ROS 2 bag (MCAP), run it through depth_node's pipeline (mono-depth bag) with the shipped demo "
                    "model (or --model), and write depth PNG/NPY, colourised depth, side-by-side images, PLY point "
                    "clouds, the depth bag and the metrics vs ground truth and vs the mean-depth baseline. With "
                    "--input, run a bag, an image folder, an image or a video instead (no ground truth: no metrics).")
    p.add_argument("--model", help="model file (.pt / .onnx / .engine); default: the indoor demo model "
                                    "models/demo.pt for the rendered scene, the road model models/road.pt with "
                                    f"--scene street, and with --input {DEFAULT_MODEL_HELP}")
    p.add_argument("--input", metavar="BAG|DIR|VIDEO|IMAGE",
                   help="a rosbag2 (directory, .mcap or .db3), an image folder, an image or a video "
                        "(default: a rendered synthetic sequence)")
    p.add_argument("--out", default="out/demo", help="output directory (default out/demo); a directory the demo did "
                   "not make is refused unless --overwrite")
    p.add_argument("--frames", type=int, default=None,
                   help="frames to render (default 24), or the most frames read from --input")
    p.add_argument("--size", default="320x240",
                   help="WxH of the rendered sequence (default 320x240; with --scene street KITTI's 1242x375)")
    p.add_argument("--scene", default="indoor", choices=["indoor", "street"],
                   help="indoor (default: the demo model) or street: a synthetic street seen by KITTI's camera, "
                        "run with the shipped road model (models/road.pt)")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnxruntime", "tensorrt"])
    p.add_argument("--threads", type=int, default=0, help=THREADS_HELP)
    p.add_argument("--overwrite", action="store_true",
                   help="write into an --out directory the demo did not make (only the demo's own entries "
                        "are replaced)")
    p.add_argument("--heldout", type=int, default=None, metavar="N",
                   help="after the demo sequence, evaluate the model on N more held-out synthetic sequences "
                        "(default 10, a few seconds; 0: off; only for the rendered input)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    from ..demo import DemoError, describe, run_demo

    try:
        w, _, h = args.size.lower().partition("x")
        width, height = int(w), int(h)
    except ValueError:
        raise CLIError(f"--size must be WxH, e.g. 320x240, got {args.size!r}") from None
    for problem in (model_folder_problem(args.model), threads_problem(args.threads)):
        if problem:
            raise CLIError(problem)
    t0 = time.perf_counter()
    try:
        res = run_demo(out=args.out, model=args.model, input=args.input, frames=args.frames, width=width,
                       height=height, overwrite=args.overwrite, backend=args.backend, threads=args.threads,
                       progress=not args.no_progress, scene=args.scene,
                       **({} if args.heldout is None else {"heldout": args.heldout}))
    except DemoError as exc:
        raise CLIError(str(exc)) from None
    print()
    print(describe(res, res.metrics is not None).rstrip())
    print(f"\ndone in {time.perf_counter() - t0:.1f} s: {plural(res.frames, 'frame')} -> {res.out}/")
    return 0
