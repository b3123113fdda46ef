"""The demo's metrics: the model against the two mean-depth baselines on the same pixels, and the held-out
evaluation of a model on synthetic sequences (``python -m mono_depth_ros.demo --heldout``, the table in
``mono_depth_ros/models/README.md``)."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from ..metrics import MetricAccumulator, format_table
from ..pipeline import DepthPipeline
from ..synthetic import SyntheticDataset, render_sequence
from ..text import plural
from .common import DEMO_KIND, DEMO_SIZE, TRAIN_MEAN_DEPTH, _progress


def baseline_rows(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray], train_mean: float
                  ) -> Dict[str, Dict[str, float]]:
    """The model's metrics and the two mean-depth baselines', on the same pixels (where the model gives
    depth and the ground truth is valid): the training set's mean depth everywhere (the paper's baseline),
    and each image's own mean ground-truth depth (an oracle constant per image)."""
    acc = {k: MetricAccumulator() for k in ("model", "mean", "image_mean")}
    for p, g in zip(preds, gts):
        m = np.isfinite(p) & np.isfinite(g) & (g > 1e-3)
        if not m.any():
            continue
        acc["model"].add(p, g)
        acc["mean"].add(np.where(m, np.float32(train_mean), np.nan), g)
        acc["image_mean"].add(np.where(m, np.float32(g[m].mean()), np.nan), g)
    return {k: a.result() for k, a in acc.items()}


def metrics_markdown(rows: Dict[str, Dict[str, float]], model_name: str, train_mean: float) -> str:
    named = {model_name: rows["model"], f"mean-depth baseline ({train_mean:.2f} m, training set)": rows["mean"],
             "per-image mean depth (oracle)": rows["image_mean"]}
    imp = 1.0 - rows["model"]["abs_rel"] / rows["mean"]["abs_rel"]
    return (f"{format_table(named)}\n\n{plural(rows['model']['images'], 'frame')}, {rows['model']['pixels']} pixels "
            "(every pixel with ground truth where the model gives depth; mean of per-frame metrics). "
            f"AbsRel {100 * imp:.0f} % below the mean-depth baseline.\n")


def train_mean_depth(n: int = 2000, seed: int = 0, width: int = 168, height: int = 126, kind: str = "indoor") -> float:
    """Mean valid depth of the demo model's training frames (the mean-depth baseline's constant)."""
    ds = SyntheticDataset(kind, n, seed, width, height)
    total, count = 0.0, 0
    for i in range(n):
        _, d, v = ds[i]
        total += float(d[v].astype(np.float64).sum())
        count += int(v.sum())
    return total / count


def evaluate_heldout(model: Optional[str] = None, seeds: Sequence[int] = tuple(range(100, 110)), n_frames: int = 24,
                     width: int = DEMO_SIZE[0], height: int = DEMO_SIZE[1], kind: str = DEMO_KIND,
                     train_mean: float = TRAIN_MEAN_DEPTH, backend: str = "auto", threads: int = 0,
                     progress: bool = True) -> Dict[str, Dict[str, float]]:
    """The model (through DepthPipeline, camera output) on held-out synthetic sequences vs the baselines."""
    pipe = DepthPipeline(model, backend=backend, threads=threads or None)
    preds, gts = [], []
    for seed in _progress(list(seeds), len(seeds), "held-out sequences", progress):
        for f in render_sequence(kind, seed=seed, n_frames=n_frames, width=width, height=height):
            preds.append(pipe.infer_rgb(f.rgb, f.camera_intrinsics()).depth.copy())
            gts.append(f.depth)
    pipe.close()
    return baseline_rows(preds, gts, train_mean)


def evaluate_frames(model: Optional[str] = None, seed: int = 1, n: int = 200, width: int = DEMO_SIZE[0],
                    height: int = DEMO_SIZE[1], kind: str = DEMO_KIND, train_mean: float = TRAIN_MEAN_DEPTH,
                    backend: str = "auto", progress: bool = True) -> Dict[str, Dict[str, float]]:
    """The model on ``n`` independent held-out frames (``SyntheticDataset(kind, n, seed)``, one scene each)."""
    pipe = DepthPipeline(model, backend=backend)
    ds = SyntheticDataset(kind, n, seed, width, height)
    preds, gts = [], []
    for i in _progress(range(n), n, "held-out frames", progress):
        f = ds.frame(i)
        preds.append(pipe.infer_rgb(f.rgb, f.camera_intrinsics()).depth.copy())
        gts.append(f.depth)
    pipe.close()
    return baseline_rows(preds, gts, train_mean)
