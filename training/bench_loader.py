"""Loader throughput, decode path vs cache path, from the real frames in ../shared/data.

    python -m training.bench_loader                       # NYU and KITTI, every path, 1 loader worker
    python -m training.bench_loader --datasets nyu --workers 2 --batches 60 --json out.json

Datasets (written to a temporary folder, never into the repository):

* ``nyu``: the real 640x480 NYU raw frame of ../shared/data/nyu_depth_v2_samples/open3d_nyu_raw in the
  "sync" layout a real run reads (RGB JPEG quality 95 + uint16 mm PNG depth), ``--frames`` copies
  shifted by a few pixels each; profile ``nyu`` (320x240 base, 304x228 input, dense GT);
* ``kitti``: the real raw drive of ../shared/data/kitti_raw_layout_repackaged (2 frames, 1242x375 PNG +
  Velodyne scans, projected once into a velodyne_cache as kitti.yaml does), listed ``--frames / 2`` times;
  profile ``kitti`` (sparse GT, masked mean).

Paths, each a DataLoader with ``--workers`` processes and batch ``--batch-size`` as train.py builds it,
the main process doing what the training process does with a batch:

* ``decode-sample``: decode + per-sample augmentation in the workers (training.augment.JointTransform),
  float32 batches (``train.augment_on: loader``, the reference path);
* ``decode-batch``: decode in the workers, uint8 batches, batch augmentation in the main process on the
  CPU (training.batch, ``augment_on: device`` without a cache);
* ``cache``: frames from the memory-mapped cache (python -m training.cache), uint8 batches, batch
  augmentation on the CPU (``--cache-workers``, default 0: the main process reads the memory map);
* ``cache-gpu`` (only where CUDA is present): the same with the augmentation on the GPU, pinned batches,
  ``--gpu-workers`` loader processes.

samples/s is wall clock after a warm-up; "per core" is samples per CPU-second of all the processes
(main + workers: getrusage and /proc/PID/stat over the same batches), so it depends less on other load
on a shared machine than the wall-clock figure does (it still grows with cache and SMT contention).  Every process runs single-threaded (OpenCV, torch, BLAS).
The last lines are ``loader <dataset> <path>: N samples/s (M per core)``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cv2
import numpy as np

from mono_depth_ros.profiles import get_profile

from .augment import AugmentConfig, JointTransform
from .batch import BatchAugment, batch_loader, frames_from_config
from .cache import build_cache
from .datasets import (DepthDataset, NyuSync, StreamBatchSampler, build_source, fork_safe_threads, limit_threads,
                       worker_init)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _cpu_seconds(pids: List[int] = ()) -> float:
    """CPU seconds (user + system) of this process and of the live processes ``pids`` (from /proc)."""
    s = resource.getrusage(resource.RUSAGE_SELF)
    total = s.ru_utime + s.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


# ---- data --------------------------------------------------------------------------------------------
def make_real_nyu_sync(root: Path, n: int = 32) -> Path:
    """n frames in the NYU sync layout from the real 640x480 NYU frame of ../shared/data (shifted copies)."""
    d = SHARED / "nyu_depth_v2_samples" / "open3d_nyu_raw"
    bgr = cv2.imread(str(d / "NYU_color.ppm"), cv2.IMREAD_COLOR)
    depth = np.load(d / "NYU_depth_metres_unregistered.npy")
    if bgr is None:
        raise FileNotFoundError(f"{d / 'NYU_color.ppm'} not found (../shared/data)")
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        scene = root / f"scene_{i % 4:04d}"
        scene.mkdir(exist_ok=True)
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), np.roll(bgr, 3 * i, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 95])
        mm = np.clip(np.roll(depth, 3 * i, axis=1) * 1000.0, 0, 65535).astype(np.uint16)
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), mm)
    return root


def make_sync_dataset(root: Path, n: int = 32, width: int = 640, height: int = 480, seed: int = 0) -> Path:
    """n synthetic frames in the NYU sync layout (training.gpu_throughput's data)."""
    root.mkdir(parents=True, exist_ok=True)
    frames = None
    try:
        from mono_depth_ros.synthetic import SyntheticDataset

        frames = SyntheticDataset("indoor", n, seed, width, height)
    except ImportError:
        pass
    rng = np.random.default_rng(seed)
    for i in range(n):
        if frames is not None:
            rgb, depth, valid = frames[i]
            depth = np.where(valid, depth, 0)
        else:
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            depth = 1.0 + 4.0 * np.mgrid[0:height, 0:width][0] / height
        scene = root / f"scene_{i % 4:04d}"
        scene.mkdir(exist_ok=True)
        cv2.imwrite(str(scene / f"rgb_{i:05d}.jpg"), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(scene / f"sync_depth_{i:05d}.png"), np.clip(depth * 1000, 0, 65535).astype(np.uint16))
    return root


def dataset_spec(name: str, tmp: Path, frames: int) -> Dict[str, Any]:
    if name == "nyu":
        return {"type": "nyu_sync", "root": str(make_real_nyu_sync(tmp / "nyu_sync", frames))}
    if name == "kitti":
        root = SHARED / "kitti_raw_layout_repackaged"
        if not root.is_dir():
            raise FileNotFoundError(f"{root} not found (../shared/data)")
        return {"type": "kitti_raw", "root": str(root), "gt": "velodyne", "velodyne_cache": str(tmp / "velo_cache"),
                "repeat": max(1, frames // 2)}
    raise ValueError(f"unknown dataset {name!r}; nyu or kitti")


# ---- one measurement -------------------------------------------------------------------------------------
def run_loader(loader: Any, consume: Callable[[Any], Any], batches: int, warmup: int, batch_size: int,
               sync: Callable[[], None] = lambda: None) -> Dict[str, float]:
    """Wall-clock samples/s and samples per CPU-second of all processes (main + workers), both over the
    ``batches`` after ``warmup`` batches (worker start-up excluded)."""
    with fork_safe_threads():
        it = iter(loader)
    pids = [w.pid for w in getattr(it, "_workers", [])]
    for _ in range(warmup):
        consume(next(it))
    sync()
    c0 = _cpu_seconds(pids)
    t0 = time.perf_counter()
    for _ in range(batches):
        consume(next(it))
    sync()
    dt = time.perf_counter() - t0
    cpu = _cpu_seconds(pids) - c0        # read before the workers exit
    del it
    n = batches * batch_size
    return {"samples_per_s": n / dt, "per_core": n / max(cpu, 1e-9), "samples": n, "seconds": dt,
            "cpu_seconds": cpu}


def measure(dataset: str, spec: Dict[str, Any], path: str, workers: int, batch_size: int, batches: int,
            warmup: int, cache_dir: Optional[Path] = None) -> Dict[str, float]:
    import torch
    from torch.utils.data import DataLoader

    prof = get_profile(dataset)
    aug = AugmentConfig.from_dict({"preset": dataset})
    gpu = path == "cache-gpu"
    dev = torch.device("cuda" if gpu else "cpu")
    if path == "decode-sample":
        ds: Any = DepthDataset(build_source(spec), prof, aug)
        n = len(ds)
    else:
        frames, repeat = frames_from_config(spec, prof, None, str(cache_dir) if path.startswith("cache") else None)
        n = len(frames) * repeat
    sampler = StreamBatchSampler(n, batch_size, seed=0, num_batches=batches + warmup)
    if path == "decode-sample":
        kw = {"worker_init_fn": worker_init, "prefetch_factor": 4} if workers else {}
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, generator=torch.Generator().manual_seed(0),
                            **kw)
        consume: Callable[[Any], Any] = lambda b: b["image"].shape
    else:
        loader = batch_loader(frames, prof, aug, sampler, workers=workers, prefetch_factor=4, pin_memory=gpu,
                              repeat=repeat)
        consume = BatchAugment(prof, dev)
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    r = run_loader(loader, consume, batches, warmup, batch_size, sync)
    r.update({"workers": workers, "batch_size": batch_size, "device": str(dev)})
    return r


def _parse(argv: Optional[list]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m training.bench_loader", description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="nyu,kitti")
    ap.add_argument("--paths", default="decode-sample,decode-batch,cache,cache-gpu")
    ap.add_argument("--workers", type=int, default=1, help="loader processes of the decode paths")
    ap.add_argument("--cache-workers", type=int, default=0,
                    help="loader processes of the CPU cache path (0: reading the memory map in the main process "
                         "costs less CPU than handing batches over from a worker)")
    ap.add_argument("--gpu-workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=30)
    ap.add_argument("--gpu-batches", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--json", default=None)
    return ap.parse_args(argv)


def _build_cache(name: str, spec: Dict[str, Any], cache_dir: Path) -> Dict[str, Any]:
    t0 = time.perf_counter()
    m = build_cache({k: v for k, v in spec.items() if k != "repeat"}, get_profile(name), cache_dir)
    dt = time.perf_counter() - t0
    built = {"frames": m["frames"], "seconds": dt, "bytes": sum(a["bytes"] for a in m["arrays"].values())}
    print(f"{name}: cache of {m['frames']} frames built in {dt:.2f} s "
          f"({built['bytes'] / m['frames'] / 1e3:.0f} kB/frame)", flush=True)
    return built


def _bench_dataset(name: str, tmp: Path, paths: List[str], args: argparse.Namespace,
                   lines: List[str]) -> Dict[str, Any]:
    """Every path of one dataset (the cache built first when a cache path is asked for); appends the
    summary lines."""
    spec = dataset_spec(name, tmp, args.frames)
    cache_dir = tmp / f"cache_{name}"
    res: Dict[str, Any] = {}
    if any(p.startswith("cache") for p in paths):
        res["cache_build"] = _build_cache(name, spec, cache_dir)
    for path in paths:
        gpu = path == "cache-gpu"
        w = args.gpu_workers if gpu else args.cache_workers if path == "cache" else args.workers
        r = measure(name, spec, path, w, args.batch_size,
                    args.gpu_batches if gpu else args.batches, args.warmup, cache_dir)
        res[path] = r
        print(f"{name} {path}: {r['samples_per_s']:.0f} samples/s wall ({r['workers']} workers + main), "
              f"{r['per_core']:.0f} samples per CPU-second", flush=True)
        lines.append(f"loader {name} {path}: {r['samples_per_s']:.0f} samples/s ({r['per_core']:.0f} per core)")
    return res


def main(argv: Optional[list] = None) -> int:
    args = _parse(argv)
    import torch

    limit_threads(1)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if "cache-gpu" in paths and not torch.cuda.is_available():
        paths.remove("cache-gpu")
    host = {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "torch": torch.__version__,
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"bench_loader: {host['cpus']} CPUs, load average {host['load_avg'][0]:.1f}, torch {host['torch']}, "
          f"CUDA {host['cuda'] or 'none'}, {host['date']}", flush=True)
    results: Dict[str, Dict[str, Any]] = {}
    lines: List[str] = []
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmpd:
        for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
            results[name] = _bench_dataset(name, Path(tmpd), paths, args, lines)
    out = {"host": host, "args": vars(args), "results": results}
    for p in [args.json] + ([str(Path(os.environ["OUT"]) / "bench_loader.json")] if os.environ.get("OUT") else []):
        if p:
            Path(p).write_text(json.dumps(out, indent=2))
    print("\n".join(lines))
    return 0


# ---- kept for training.gpu_throughput (the decode path of the per-sample reference) ----------------------
def measure_loader(root: Path, profile: str = "nyu", workers: int = 2, batch_size: int = 32, batches: int = 40,
                   warmup: int = 3, augment: str = "nyu") -> Dict[str, float]:
    import torch
    from torch.utils.data import DataLoader

    prof = get_profile(profile)
    ds = DepthDataset(NyuSync(root), prof, AugmentConfig.from_dict({"preset": augment}))
    sampler = StreamBatchSampler(len(ds), batch_size, seed=0, num_batches=batches + warmup)
    kw = {"worker_init_fn": worker_init, "prefetch_factor": 4} if workers else {}
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, generator=torch.Generator().manual_seed(0), **kw)
    r = run_loader(loader, lambda b: b["image"].shape, batches, warmup, batch_size)
    r.update({"workers": workers, "batch_size": batch_size})
    return r


def measure_per_sample(root: Path, profile: str = "nyu", n: int = 64) -> Dict[str, float]:
    """Single-process cost split: decode (JPEG + PNG) vs augmentation + GT resampling + normalisation."""
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


if __name__ == "__main__":
    sys.exit(main())
