"""``mono-depth bag`` at work: the node configuration from --params-file and the options, then the bag
run; the parser is :mod:`mono_depth_ros.commands.bag`."""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..bag.evaluate import NO_PLOTS, plots_available
from ..bag.run import BagRunOptions, run_bag
from ..cli import CLIError, plural
from ..params import NodeConfig, validate_config, validate_value
from ..yaml_files import read_yaml_mapping
from . import at_least_problem, model_folder_problem, threads_problem

_CFG_ARGS = ("backend", "device", "precision", "threads", "output_resolution", "min_depth", "max_depth",
             "depth_scale", "depth_encoding", "frame_id", "points_stride", "colormap", "color_min_depth",
             "color_max_depth")


def load_params_file(path: str) -> dict:
    """The ros__parameters of a ROS 2 params YAML (``/**:``, ``depth_node:`` or any single node key)."""
    try:
        doc = read_yaml_mapping(path, "--params-file")
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for key in ("/**", "depth_node", "/depth_node", "mono_depth", *doc.keys()):
        node = doc.get(key)
        if isinstance(node, dict) and isinstance(node.get("ros__parameters"), dict):
            return dict(node["ros__parameters"])
    if "ros__parameters" in doc and isinstance(doc["ros__parameters"], dict):
        return dict(doc["ros__parameters"])
    raise CLIError(f"--params-file {path}: no ros__parameters section found")


def node_config_from_args(args: argparse.Namespace):
    values = load_params_file(args.params_file) if args.params_file else {}
    given = {name: getattr(args, name) for name in _CFG_ARGS if getattr(args, name, None) is not None}
    for k, v in values.items():
        reason = None if k in given else validate_value(k, v)
        if reason:
            raise CLIError(f"--params-file {args.params_file}: {reason}")
    for name, v in given.items():   # named by the option the user typed
        reason = threads_problem(v) if name == "threads" else validate_value(name, v)
        if reason:
            raise CLIError(reason if name == "threads" else f"--{name.replace('_', '-')}: {reason}")
        values[name] = v
    if args.no_points:
        values["points_enabled"] = False
    if args.points_unorganized:
        values["points_organized"] = False
    if args.points_color:
        values["points_color"] = True
    cfg = NodeConfig.from_mapping(values)
    reason = validate_config(cfg)
    if reason:
        raise CLIError(reason)
    return cfg


def _check_numbers(args: argparse.Namespace) -> None:
    """The bag command's own numeric options, before anything is read or loaded."""
    for problem in (at_least_problem(args.max_frames, "--max-frames", 1),
                    at_least_problem(args.gt_max_dt, "--gt-max-dt", 0)):
        if problem:
            raise CLIError(problem)
    v = args.gt_depth_scale
    if v is not None and not (math.isfinite(v) and v > 0):
        raise CLIError(f"--gt-depth-scale must be > 0 (metres per unit of the ground-truth image), got {v}")


def run_bag_command(args: argparse.Namespace) -> int:
    _check_numbers(args)
    cfg = node_config_from_args(args)
    problem = model_folder_problem(args.model or cfg.model or None)
    if problem:
        raise CLIError(problem)
    opts = BagRunOptions(
        input=Path(args.input), output=Path(args.out), model=args.model or cfg.model or None, image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic, lidar_topic=args.lidar_topic, gt_topic=args.gt_topic,
        config=cfg, namespace=args.namespace, copy=args.copy, overwrite=args.overwrite, storage=args.storage,
        max_frames=args.max_frames, progress=not args.no_progress, keep_partial=args.keep_partial,
        evaluate=args.eval or bool(args.gt_topic), eval_dir=Path(args.eval_dir) if args.eval_dir else None,
        protocols=[s.strip() for s in args.protocols.split(",") if s.strip()], median_scaling=args.median_scaling,
        eval_mode=args.eval_mode, calib=Path(args.calib) if args.calib else None, gt_max_dt=args.gt_max_dt,
        gt_depth_scale=args.gt_depth_scale, plots=not args.no_plots)
    res = run_bag(opts)
    print(f"wrote {res.output}: {plural(res.frames, 'frame')}; " + ", ".join(f"{t} {n}" for t, n in res.topics.items()))
    if res.eval_paths:
        if res.frames_without_gt:
            print(f"{plural(res.frames_without_gt, 'frame')} had no ground truth within --gt-max-dt")
        print(res.markdown)
        print("metrics: " + ", ".join(str(p) for p in res.eval_paths.values()))
        if opts.plots and not plots_available():
            print(NO_PLOTS)
    return 0
