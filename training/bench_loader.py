"""Loader throughput: samples/s of the training loader with the paper's augmentation.

    python -m training.bench_loader                 # NYU profile 304x228 from 640x480 frames, 2 workers
    python -m training.bench_loader --workers 8 --batches 100

The frames are written to a temporary folder in the NYU "sync" layout (JPEG RGB + uint16 PNG depth, the
files a real run decodes), rendered by mono_depth_ros.synthetic when available (else a real NYU RGB frame
from ../shared/data with a synthetic depth ramp, else noise), so the figure includes decoding.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np


def make_sync_dataset(root: Path, n: int = 32, width: int = 640, height: int = 480, seed: int = 0) -> Path:
    """n frames in the NYU sync layout under root/scene_000x/ (RGB JPEG quality 95, depth uint16 mm)."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    frames = None
    try:
        from mono_depth_ros.synthetic import SyntheticDataset

        frames = SyntheticDataset("indoor", n, seed, width, height)
    except ImportError:
        pass
    fallback = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyu_depth_v2_samples" / "open3d_nyu_raw" / "NYU_color.ppm"
    rng = np.random.default_rng(seed)
    for i in range(n):
        if frames is not None:
            rgb, depth, valid = frames[i]
            depth = np.where(valid, depth, 0)
        else:
            img = cv2.imread(str(fallback)) if fallback.is_file() else None
            rgb = img[:, :, ::-1] if img is not None else rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            rgb = cv2.resize(np.roll(rgb, 13 * i, axis=1), (width, height))
            v = np.mgrid[0:height, 0:width][0]
            depth = 1.0 + 4.0 * v / height
        scene = root / f"scene_{i % 4:04d}"
        scene.mkdir(exist_ok=True)
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), np.clip(depth * 1000, 0, 65535).astype(np.uint16))
    return root


def measure_loader(root: Path, profile: str = "nyu", workers: int = 2, batch_size: int = 32, batches: int = 40,
                   warmup: int = 3, augment: str = "nyu") -> Dict[str, float]:
    import torch
    from torch.utils.data import DataLoader

    from mono_depth_ros.profiles import get_profile

    from .augment import AugmentConfig
    from .datasets import DepthDataset, NyuSync, StreamBatchSampler, worker_init

    prof = get_profile(profile)
    ds = DepthDataset(NyuSync(root), prof, AugmentConfig.from_dict({"preset": augment}))
    sampler = StreamBatchSampler(len(ds), batch_size, seed=0, num_batches=batches + warmup)
    kw = {"worker_init_fn": worker_init, "prefetch_factor": 4} if workers else {}
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, generator=torch.Generator().manual_seed(0), **kw)
    it = iter(loader)
    for _ in range(warmup):
        next(it)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        n += b["image"].shape[0]
    dt = time.perf_counter() - t0
    return {"samples_per_s": n / dt, "samples": n, "seconds": dt, "workers": workers, "batch_size": batch_size}


def measure_per_sample(root: Path, profile: str = "nyu", n: int = 64) -> Dict[str, float]:
    """Single-process cost split: decode (JPEG + PNG) vs augmentation + GT resampling + normalisation."""
    import cv2

    from mono_depth_ros.profiles import get_profile

    from .augment import AugmentConfig, JointTransform
    from .datasets import NyuSync

    cv2.setNumThreads(1)
    src = NyuSync(root)
    prof = get_profile(profile)
    jt = JointTransform(prof, AugmentConfig.from_dict({"preset": "nyu"}))
    t_dec = t_aug = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        fr = src.frame(i % len(src), prof)
        t1 = time.perf_counter()
        jt(fr.rgb, fr.depth, fr.valid, np.random.default_rng(i))
        t2 = time.perf_counter()
        t_dec += t1 - t0
        t_aug += t2 - t1
    return {"decode_ms": 1e3 * t_dec / n, "augment_ms": 1e3 * t_aug / n,
            "single_process_samples_per_s": n / (t_dec + t_aug)}


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.bench_loader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--profile", default="nyu")
    ap.add_argument("--data", default=None, help="an existing sync-layout folder (default: a temporary one)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        root = Path(args.data) if args.data else make_sync_dataset(Path(tmp) / "sync", args.frames)
        per = measure_per_sample(root, args.profile)
        res: Dict[str, Any] = dict(measure_loader(root, args.profile, args.workers, args.batch_size, args.batches))
    res.update(per)
    res["cpus"] = os.cpu_count()
    print(f"profile {args.profile}, 640x480 JPEG+PNG frames, paper augmentation: "
          f"decode {per['decode_ms']:.1f} ms + augment {per['augment_ms']:.1f} ms per sample "
          f"({per['single_process_samples_per_s']:.0f} samples/s in one process); "
          f"loader with {args.workers} workers, batch {args.batch_size}: {res['samples_per_s']:.0f} samples/s "
          f"({os.cpu_count()} CPUs)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
