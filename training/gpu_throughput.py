"""GPU training throughput (one self-contained run, a few minutes): samples/s of both stages at the NYU
profile (304x228), batch 32, with and without the loader, fp32 and bf16.

    python -m training.gpu_throughput [--workers N] [--steps 120] [--json out.json]

Parts: (1) the loader alone (NYU sync-layout JPEG + PNG frames at 640x480, the paper's augmentation, N
workers); (2) the GPU step alone (batches already on the GPU); (3) end to end through
``training.train.train`` (loader + step, as a real run), read from its log.jsonl: the decode path
(per-sample augmentation in the workers) and the cache path (``data.train_cache``: training.cache, the
augmentation in batch on the GPU).  The loader figures of both paths: ``python -m training.bench_loader``.  Prints the projected
wall time of the paper's budgets (coarse 2 M samples, fine 1.5 M).  With $OUT set, the JSON goes there.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

from mono_depth_ros.profiles import get_profile

from .bench_loader import make_sync_dataset, measure_loader, measure_per_sample
from .cache import build_cache
from .train import train


def gpu_step_rate(stage: str, amp: Optional[str], batch: int = 32, warmup: int = 15, steps: int = 60,
                  device: str = "cuda") -> float:
    import torch

    from mono_depth_ros.model import EigenDepthNet

    from .losses import scale_invariant_loss

    torch.backends.cudnn.benchmark = True
    p = get_profile("nyu")
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = EigenDepthNet(p).to(dev)
    if stage == "fine":
        model.freeze_coarse(True)
    else:
        for q in model.fine.parameters():
            q.requires_grad_(False)
    model.train()
    opt = torch.optim.SGD(model.param_groups(stage), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, p.input_h, p.input_w, device=dev)
    target = torch.rand(batch, 1, p.output_h, p.output_w, device=dev) * 2
    mask = torch.rand(batch, 1, p.output_h, p.output_w, device=dev) > 0.1
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    for i in range(warmup + steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            pred = model(x, stage)
        loss = scale_invariant_loss(pred.float(), target, mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync()
    return steps * batch / (time.perf_counter() - t0)


def end_to_end(data: Path, workers: int, steps: int, amp: Optional[str], out: Path,
               device: Optional[str] = None, cache: Optional[Path] = None) -> Dict[str, float]:
    cfg = {"profile": "nyu",
           "data": {"train": {"type": "nyu_sync", "root": str(data)}},
           "augment": {"preset": "nyu"},
           "optim": {"lr": {"conv": 1e-3, "fc": 1e-2, "f1": 1e-3, "f3": 1e-2, "f4": 1e-3}, "clip_grad_norm": 10.0},
           "train": {"batch_size": 32, "samples": {"coarse": 32 * steps, "fine": 32 * steps}, "workers": workers,
                     "prefetch_factor": 4, "amp": amp, "log_every": 10, "image_every": 0, "checkpoint_every": 0,
                     "tensorboard": False, "progress": False}}
    if cache is not None:     # decode once, augmentation in batch on the device (training.cache / training.batch)
        cfg["data"]["train_cache"] = str(cache)
    train(cfg, out, overwrite=True, device=device)
    rates: Dict[str, list] = {"coarse": [], "fine": []}
    for ln in (out / "log.jsonl").read_text().splitlines():
        r = json.loads(ln)
        if "samples_per_s" in r and r["step"] > max(1, min(30, steps // 3)):
            rates[r["stage"]].append(r["samples_per_s"])
    return {k: statistics.median(v) if v else float("nan") for k, v in rates.items()}


def _parse(argv: Optional[list]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m training.gpu_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    ap.add_argument("--steps", type=int, default=120, help="end-to-end steps per stage")
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--json", default=None)
    ap.add_argument("--cpu-check", action="store_true", help="run every part tiny on the CPU (checks the script)")
    args = ap.parse_args(argv)
    if args.cpu_check:
        args.steps, args.frames, args.workers = 3, 4, 1
    return args


def _loader_parts(res: Dict[str, Any], data: Path, args: argparse.Namespace) -> None:
    """(1) the loader alone: per sample in one process, then with the workers."""
    res["per_sample"] = measure_per_sample(data)
    print(f"per sample (1 process): {res['per_sample']}", flush=True)
    res["loader"] = measure_loader(data, "nyu", args.workers, 32 if not args.cpu_check else 4,
                                   batches=40 if not args.cpu_check else 2)["samples_per_s"]
    print(f"loader alone, {args.workers} workers: {res['loader']:.0f} samples/s", flush=True)


def _gpu_parts(res: Dict[str, Any], dev: str, cpu_check: bool) -> None:
    """(2) the GPU step alone, both stages, fp32 and bf16."""
    res["gpu_only"] = {}
    for amp in (None, "bf16"):
        for stage in ("coarse", "fine"):
            r = gpu_step_rate(stage, amp, device=dev, **({"batch": 2, "warmup": 1, "steps": 2} if cpu_check else {}))
            res["gpu_only"][f"{stage}_{amp or 'fp32'}"] = r
            print(f"GPU step alone, {stage} {amp or 'fp32'}: {r:.0f} samples/s", flush=True)


def _end_to_end_parts(res: Dict[str, Any], data: Path, tmp: Path, args: argparse.Namespace, dev: str,
                      t_start: float) -> None:
    """(3) end to end through training.train, the decode path and the cache path."""
    res["end_to_end"] = {}
    cache = tmp / "cache"
    build_cache({"type": "nyu_sync", "root": str(data)}, get_profile("nyu"), cache)
    for amp, path in ((None, "decode"), ("bf16", "decode"), ("bf16", "cache"), (None, "cache")):
        if time.perf_counter() - t_start > 170 and path == "decode":
            print(f"skipping the end-to-end {path} run {amp or 'fp32'} (time budget)", flush=True)
            continue
        key = f"{amp or 'fp32'}" + ("_cache" if path == "cache" else "")
        e2e = end_to_end(data, args.workers, args.steps, amp, tmp / f"run_{key}", device=dev,
                         cache=cache if path == "cache" else None)
        res["end_to_end"][key] = e2e
        print(f"end to end (loader + step), {key}: coarse {e2e['coarse']:.0f}, fine {e2e['fine']:.0f} samples/s",
              flush=True)


def main(argv: Optional[list] = None) -> int:
    args = _parse(argv)
    import torch

    dev = "cpu" if args.cpu_check else "cuda"
    if not args.cpu_check and not torch.cuda.is_available():
        print("gpu_throughput: no CUDA device", file=sys.stderr)
        return 2
    res: Dict[str, Any] = {"device": "cpu" if args.cpu_check else torch.cuda.get_device_name(0), "cpus": os.cpu_count(), "workers": args.workers,
                           "torch": torch.__version__}
    print(f"device {res['device']}, {res['cpus']} CPUs, torch {res['torch']}", flush=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_tp_") as tmp:
        data = make_sync_dataset(Path(tmp) / "sync", args.frames)
        _loader_parts(res, data, args)
        _gpu_parts(res, dev, args.cpu_check)
        _end_to_end_parts(res, data, Path(tmp), args, dev, t_start)
    for amp, rates in res["end_to_end"].items():
        c, f = 2_000_000 / rates["coarse"] / 60, 1_500_000 / rates["fine"] / 60
        print(f"projected ({amp}): coarse 2 M samples {c:.0f} min, fine 1.5 M samples {f:.0f} min")
    res["seconds"] = time.perf_counter() - t_start
    text = json.dumps(res, indent=2)
    for path in [args.json] + ([str(Path(os.environ["OUT"]) / "gpu_throughput.json")] if os.environ.get("OUT") else []):
        if path:
            Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
