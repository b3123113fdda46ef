"""``mono-depth bench`` at work: the model and the whole pipeline timed, as a table and JSON (also the library
API of benchmarks/run_cpu.py and benchmarks/gpu_check.py); the parser is :mod:`mono_depth_ros.commands.bench`."""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from ..backends.base import BackendError, create_backend
from ..camera import CameraIntrinsics
from ..checkpoint import atomic_write_bytes, save_model
from ..cli import CLIError, plural
from ..model_spec import load_spec
from ..pipeline import DepthPipeline
from ..pointcloud import CloudBuilder
from ..preprocess import Preprocessor
from ..profiles import get_profile
from ..quantize import synthetic_frames
from . import MIN_FRAME_SIZE, model_folder_problem, threads_problem


def check_args(iters: int, warmup: int, width: int, height: int, stride: int) -> None:
    """ValueError with a one-line message for numbers the benchmark cannot use."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"--iters must be >= 1 and --warmup >= 0, got {iters} and {warmup}")
    for name, v in (("--width", width), ("--height", height)):
        if v < MIN_FRAME_SIZE:
            raise ValueError(f"{name} must be >= {MIN_FRAME_SIZE} pixels, got {v}")
    if stride < 1:
        raise ValueError(f"--stride must be >= 1, got {stride}")


def summarize(times_s: List[float]) -> Dict[str, float]:
    """p50/p90/mean/min in milliseconds and FPS (1 / p50)."""
    a = np.asarray(times_s, dtype=np.float64) * 1e3
    p50 = float(np.percentile(a, 50))
    return {"p50_ms": round(p50, 3), "p90_ms": round(float(np.percentile(a, 90)), 3),
            "mean_ms": round(float(a.mean()), 3), "min_ms": round(float(a.min()), 3),
            "fps": round(1e3 / p50, 1) if p50 > 0 else float("inf"), "n": int(a.size)}


def time_it(fn: Callable[[], Any], iters: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_frame(width: int, height: int):
    """A deterministic, textured ``rgb8`` frame (bytes) and plausible pinhole intrinsics."""
    rgb = synthetic_frames(1, width, height, seed=0)[0]
    f = 525.0 * width / 640.0
    return rgb.tobytes(), CameraIntrinsics(width, height, f, f, (width - 1) / 2.0, (height - 1) / 2.0)


def random_model(profile_name: str, folder: Path) -> Path:
    import torch

    from ..model import EigenDepthNet

    torch.manual_seed(0)
    model = EigenDepthNet(get_profile(profile_name)).eval()
    return save_model(model, folder / f"random_{profile_name}.pt", meta={"note": "random weights (benchmark)"},
                      overwrite=True)


def host_info() -> Dict[str, Any]:
    info: Dict[str, Any] = {"python": platform.python_version(), "machine": platform.machine(),
                            "cpus": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return info


def run_bench(model: Optional[str], profile: str = "nyu", backend: str = "auto", device: Optional[str] = None,
              precision: str = "auto", threads: Optional[int] = None, iters: int = 50, warmup: int = 5,
              width: int = 640, height: int = 480, stride: int = 1, pipeline: bool = True,
              cache_dir: "str | Path | None" = None) -> Dict[str, Any]:
    """Run the benchmark; returns the JSON-able results dict."""
    check_args(iters, warmup, width, height, stride)
    tmp: Optional[tempfile.TemporaryDirectory] = None
    random_weights = model is None
    try:
        if model is None:
            tmp = tempfile.TemporaryDirectory(prefix="mono_depth_bench.")
            model = str(random_model(profile, Path(tmp.name)))
            cache_dir = cache_dir or tmp.name  # the random model's ONNX export goes with it
        spec = load_spec(model)
        be = create_backend(spec, backend, device=device, precision=precision, threads=threads,
                            cache_dir=cache_dir)
        try:
            x, _ = Preprocessor(spec.profile)(synthetic_frames(1, width, height, seed=0)[0])
            x = x.copy()
            res: Dict[str, Any] = {
                "model": "random weights (timing only; not a trained model)" if random_weights else str(model),
                "random_weights": random_weights, "profile": spec.profile.name, "model_kind": spec.kind,
                "input": [spec.profile.input_w, spec.profile.input_h], "backend": be.name,
                "backend_detail": be.describe(), "device": be.device, "precision": be.precision,
                "threads": getattr(be, "threads", threads), "iters": iters, "warmup": warmup,
                "frame": {"width": width, "height": height, "encoding": "rgb8", "cloud_stride": stride},
                "host": host_info(), "results": {},
            }
            res["results"]["model"] = summarize(time_it(lambda: be.run(x), iters, warmup))
            if pipeline:
                pipe = DepthPipeline(backend=be, output="camera")
                data, intr = bench_frame(width, height)
                builder = CloudBuilder()
                stages: Dict[str, List[float]] = {k: [] for k in ("decode", "preprocess", "infer", "postprocess",
                                                                  "cloud")}
                valid: List[int] = []

                def frame() -> None:
                    r = pipe.infer(data, width, height, "rgb8", intrinsics=intr)
                    t0 = time.perf_counter()
                    assert r.intrinsics is not None
                    cloud = builder.build(r.depth, r.intrinsics, rgb=r.rgb, organized=True, stride=stride)
                    t1 = time.perf_counter()
                    for k in ("decode", "preprocess", "infer", "postprocess"):
                        stages[k].append(r.timings[k])
                    stages["cloud"].append(t1 - t0)
                    valid.append(int(np.count_nonzero(~np.isnan(cloud.data["z"]))))

                total = time_it(frame, iters, warmup)
                n = len(total)
                res["results"]["pipeline"] = summarize(total)
                res["results"]["pipeline"]["stages_p50_ms"] = {
                    k: round(float(np.percentile(np.asarray(v[-n:]) * 1e3, 50)), 3) for k, v in stages.items()}
                res["results"]["pipeline"]["cloud_points"] = int(valid[-1]) if valid else 0
        finally:
            be.close()
    finally:
        if tmp is not None:
            tmp.cleanup()
    return res


def format_table(res: Dict[str, Any]) -> str:
    fr = res["frame"]
    lines = [f"backend {res['backend_detail']}, profile {res['profile']} (input {res['input'][0]}x{res['input'][1]}), "
             f"model: {res['model']}",
             f"{plural(res['iters'], 'iteration')} after {res['warmup']} warm-up; threads {res.get('threads')}",
             "",
             "| measurement | p50 ms | p90 ms | mean ms | FPS (1/p50) |",
             "|---|---:|---:|---:|---:|"]
    names = {"model": "model only (backend.run)",
             "pipeline": f"pipeline {fr['width']}x{fr['height']} {fr['encoding']} -> depth + cloud"}
    for key, r in res["results"].items():
        lines.append(f"| {names.get(key, key)} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | {r['mean_ms']:.2f} | "
                     f"{r['fps']:.1f} |")
    pipe = res["results"].get("pipeline")
    if pipe:
        st = pipe["stages_p50_ms"]
        lines += ["", "pipeline stages (p50 ms): " + ", ".join(f"{k} {v:.2f}" for k, v in st.items()),
                  f"cloud: {plural(pipe['cloud_points'], 'valid point')} (organised {fr['width'] // fr['cloud_stride']}x"
                  f"{fr['height'] // fr['cloud_stride']}, xyz + rgb, 32 bytes/point)"]
    if res["random_weights"]:
        lines.append("NOTE: random weights -- timings only (they do not depend on the weights).")
    return "\n".join(lines)


def run_bench_command(args: argparse.Namespace) -> int:
    try:
        check_args(args.iters, args.warmup, args.width, args.height, args.stride)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    for problem in (threads_problem(args.threads), model_folder_problem(args.model)):
        if problem:
            raise CLIError(problem)
    if args.model and not Path(args.model).is_file():
        raise CLIError(f"model {args.model} does not exist")
    if args.json_out and Path(args.json_out).exists() and not args.overwrite:
        raise CLIError(f"--json {args.json_out} exists; refusing to overwrite it (pass --overwrite)")
    if args.json_out and args.model and Path(args.json_out).resolve() == Path(args.model).resolve():
        raise CLIError(f"--json {args.json_out} is the model file; choose another name")
    try:
        res = run_bench(args.model, args.profile, args.backend, args.device, args.precision, args.threads or None,
                        args.iters, args.warmup, args.width, args.height, args.stride, not args.no_pipeline)
    except (BackendError, KeyError) as exc:
        raise CLIError(str(exc)) from None
    print(format_table(res))
    if args.json_out:
        atomic_write_bytes(args.json_out, (json.dumps(res, indent=2) + "\n").encode(), overwrite=True)
        print(f"wrote {args.json_out}")
    return 0
