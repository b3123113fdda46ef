"""``mono-depth info``: the network's layer table, parameter count, and a forward pass on an image.

The parser lives here (``mono-depth --help`` imports it); the work, with its dependencies, in
:mod:`mono_depth_ros.commands.info_run`, loaded when the command runs.
"""
from __future__ import annotations

import argparse


def add_parser(sub: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="print the network's layers and run one forward pass",
                       description="Print the layer table of a profile (or a model file) and, with --image, "
                                   "run one CPU forward pass on it through the standard preprocessing.")
    p.add_argument("--profile", default="nyu", help="profile name (nyu, kitti, ...) when no --model is given")
    p.add_argument("--model", help="a mono_depth_ros model file (.pt); default: the --profile network, untrained")
    p.add_argument("--image", help="an image file to run through the network")
    p.add_argument("--stage", choices=["coarse", "fine"], default=None)
    return p


def run(args: argparse.Namespace) -> int:
    from .info_run import run_info

    return run_info(args)
