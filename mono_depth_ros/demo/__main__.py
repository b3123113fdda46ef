"""``python -m mono_depth_ros.demo``: held-out evaluation of the demo model (the table in
``mono_depth_ros/models/README.md``); the demo itself is ``mono-depth demo``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from .common import DEMO_MODEL, TRAIN_MEAN_DEPTH
from .evaluation import evaluate_frames, evaluate_heldout, metrics_markdown, train_mean_depth


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mono_depth_ros.demo",
                                 description="held-out evaluation of the demo model (see models/README.md)")
    ap.add_argument("--heldout", action="store_true", help="evaluate on held-out synthetic sequences")
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", default="100-109", help="sequence seeds, e.g. 100-109")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--frames-seed", type=int, default=None,
                    help="also evaluate 200 independent frames of this seed (SyntheticDataset)")
    ap.add_argument("--train-mean", action="store_true", help="recompute the training set's mean depth")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    tm = TRAIN_MEAN_DEPTH
    if a.train_mean:
        tm = train_mean_depth()
        print(f"training set mean depth: {tm:.4f} m")
    if a.heldout:
        lo, _, hi = a.seeds.partition("-")
        seeds = range(int(lo), int(hi or lo) + 1)
        rows = evaluate_heldout(a.model, seeds, a.frames, train_mean=tm)
        print(metrics_markdown(rows, Path(a.model or DEMO_MODEL).name, tm))
        out = {"sequences": rows}
        if a.frames_seed is not None:
            rows2 = evaluate_frames(a.model, a.frames_seed, 200, train_mean=tm)
            print(metrics_markdown(rows2, Path(a.model or DEMO_MODEL).name, tm))
            out["frames"] = rows2
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
