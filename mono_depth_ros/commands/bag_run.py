"""``mono-depth bag`` at work: the node configuration from --params-file and the options, then the bag
run; the parser is :mod:`mono_depth_ros.commands.bag`."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..bag.run import BagRunOptions, run_bag
from ..cli import CLIError
from ..params import NodeConfig, validate_config, validate_value
from ..yaml_files import read_yaml_mapping

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
    for name in _CFG_ARGS:
        v = getattr(args, name, None)
        if v is not None:
            values[name] = v
    if args.no_points:
        values["points_enabled"] = False
    if args.points_unorganized:
        values["points_organized"] = False
    if args.points_color:
        values["points_color"] = True
    for k, v in values.items():
        reason = validate_value(k, v)
        if reason:
            raise CLIError(reason)
    cfg = NodeConfig.from_mapping(values)
    reason = validate_config(cfg)
    if reason:
        raise CLIError(reason)
    return cfg


def run_bag_command(args: argparse.Namespace) -> int:
    cfg = node_config_from_args(args)
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
    print(f"wrote {res.output}: {res.frames} frames; " + ", ".join(f"{t} {n}" for t, n in res.topics.items()))
    if res.eval_paths:
        if res.frames_without_gt:
            print(f"{res.frames_without_gt} frame(s) had no ground truth within --gt-max-dt")
        print(res.markdown)
        print("metrics: " + ", ".join(str(p) for p in res.eval_paths.values()))
    return 0
