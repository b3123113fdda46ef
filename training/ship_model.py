"""Turn a finished training run into a shipped model file with its training metadata inside.

    python -m training.ship_model --run runs/road --out mono_depth_ros/models/road.pt \
        --train-mean-frames 2000 --note "2 shared CPU cores, torch 2.13.0+cpu"

Adds to the run's ``model.pt`` metadata (``meta``): ``training`` (per stage: steps, samples, wall time from
the first to the last logged step, mean samples/s, first and last logged loss; total wall time; date;
the git commit of the working tree; torch version; the note), ``training_data`` (what the frames are) and
``train_mean_depth`` (the mean-depth baseline's constant: mean valid depth <= 80 m of the first N training
frames inside the KITTI Garg crop).  The weights are unchanged (fp16 if the run exported fp16).
The output is written atomically and never overwrites an existing file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from mono_depth_ros.metrics import kitti_garg_crop_mask

from .datasets import REPO, build_source


def run_stats(run: Path) -> Dict[str, Any]:
    recs = [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]
    recs = [r for r in recs if "loss" in r]
    out: Dict[str, Any] = {"stages": {}}
    t_first = t_last = None
    for stage in ("coarse", "fine"):
        rs = [r for r in recs if r["stage"] == stage]
        if not rs:
            continue
        wall = rs[-1]["time"] - rs[0]["time"]
        samples = rs[-1]["samples"] - rs[0]["samples"]
        out["stages"][stage] = {"steps": rs[-1]["step"], "samples": rs[-1]["samples"], "wall_s": round(wall, 1),
                                "samples_per_s": round(samples / wall, 1) if wall > 0 else None,
                                "loss_first": round(rs[0]["loss"], 4), "loss_last": round(rs[-1]["loss"], 4)}
        t_first = rs[0]["time"] if t_first is None else t_first
        t_last = rs[-1]["time"]
    if t_first is not None and t_last is not None:
        out["wall_s_first_to_last_step"] = round(t_last - t_first, 1)
        out["finished_utc"] = _dt.datetime.fromtimestamp(float(t_last), _dt.timezone.utc).isoformat(timespec="seconds")
    return out


def parse_time_log(text: str) -> Dict[str, float]:
    """CPU seconds (user, system, total), wall seconds and peak RSS (MB) from GNU ``time -v`` output."""
    fields = {"User time (seconds)": "user_s", "System time (seconds)": "system_s",
              "Maximum resident set size (kbytes)": "max_rss_kb"}
    out: Dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key in fields:
            out[fields[key]] = float(value)
        elif key.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in value.split(":")]
            out["wall_s"] = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
    if "user_s" not in out or "system_s" not in out or "wall_s" not in out:
        raise ValueError("not GNU time -v output (no user/system/elapsed times)")
    out["cpu_s"] = round(out["user_s"] + out["system_s"], 2)
    out["max_rss_mb"] = round(out.pop("max_rss_kb", 0.0) / 1024.0, 1)
    return out


def train_mean_depth(data_cfg: Dict[str, Any], n: int) -> float:
    """Mean valid depth (<= 80 m) inside the Garg crop over the first ``n`` frames of the training set."""
    cfg = dict(data_cfg)
    cfg.pop("cache", None)
    src = build_source(cfg)
    total, count = 0.0, 0
    for i in range(min(n, len(src))):
        fr = src.frame(i, None, mask_min_max=False)
        m = fr.valid & kitti_garg_crop_mask(fr.depth.shape) & (fr.depth <= 80.0)
        total += float(fr.depth[m].sum(dtype=np.float64))
        count += int(m.sum())
    return total / max(count, 1)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.ship_model", description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="training run folder (model.pt, log.jsonl, config.yaml)")
    ap.add_argument("--out", required=True, help="model file to write (never overwritten)")
    ap.add_argument("--train-mean-frames", type=int, default=2000)
    ap.add_argument("--note", default="", help="free text stored with the metadata (machine, load)")
    ap.add_argument("--data-description", default="", help="what the training frames are")
    ap.add_argument("--time-log", default=None,
                    help="GNU `/usr/bin/time -v` output of the training command: its CPU seconds (user + system, "
                         "loader worker included), wall time and peak memory go into meta.training.process")
    args = ap.parse_args(argv)
    import torch

    from mono_depth_ros.checkpoint import load_model, save_model

    run, out = Path(args.run), Path(args.out)
    if out.exists():
        print(f"ship_model: error: {out} exists (not overwritten)", file=sys.stderr)
        return 2
    try:
        model, info = load_model(run / "model.pt")
    except (OSError, ValueError) as exc:
        print(f"ship_model: error: {exc}", file=sys.stderr)
        return 2
    meta = dict(info.get("meta") or {})
    stats = run_stats(run)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    stats.update({"torch": str(torch.__version__), "git_commit": commit, "note": args.note})
    if args.time_log:
        try:
            stats["process"] = parse_time_log(Path(args.time_log).read_text())
        except (OSError, ValueError) as exc:
            print(f"ship_model: error: --time-log: {exc}", file=sys.stderr)
            return 2
    meta["training"] = stats
    train_cfg = (meta.get("config") or {}).get("data", {}).get("train") or {}
    meta["training_data"] = {"source": train_cfg, "description": args.data_description}
    meta["train_mean_depth"] = round(train_mean_depth(train_cfg, args.train_mean_frames), 4)
    meta["train_mean_depth_frames"] = int(args.train_mean_frames)
    save_model(model, out, stage=info["stage"], meta=meta, half=bool(meta.get("config", {}).get("export", {}).get("half")))
    print(json.dumps({k: meta[k] for k in ("training", "train_mean_depth")}, indent=1))
    print(f"wrote {out} ({out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
