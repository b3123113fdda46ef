#!/usr/bin/env python3
"""One-shot GPU check for a lent GPU machine (torch CUDA + onnxruntime CPU; no TensorRT): < 4 minutes.

    python benchmarks/gpu_check.py [--json out.json] [--budget 200]

Run from the repository root.  Sections (each guarded: a failure is printed, the rest still runs):

1. parity: the project's PyTorch backend on CUDA (fp32 and fp16; channels_last + CUDA graph) against
   CPU fp32 eager, on the NYU network (random weights with the output layers rescaled so log depth
   varies like a trained model's, std ~0.4), inputs = real frames (../shared/data) or noise;
2. model latency (CUDA events, after warm-up): eager fp16 batch 1, CUDA graph fp16 batch 1,
   CUDA graph fp16 batch 8 (per frame), and the backend's ``run`` (host -> GPU -> host) batch 1;
3. end to end: ``mono-depth bench`` code path -- 640x480 rgb8 decode -> depth (camera resolution)
   + organised xyz+rgb cloud buffers on the host, through ``DepthPipeline`` on the CUDA backend;
4. TensorRT (only if ``tensorrt`` imports): fp16 engine build + cache hit + run.

Prints a table side by side with the reference figures of issue 4 (H100) and writes --json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

REFERENCE_H100 = {"eager_fp16_b1_ms": 0.475, "graph_fp16_b1_ms": 0.29, "graph_fp16_b8_per_frame_ms": 0.074,
                  "pipeline_640x480_p50_ms": 0.85}
TARGETS = {"graph_fp16_b1_ms": 0.10, "pipeline_640x480_p50_ms": 2.0}
T0 = time.time()


def elapsed() -> float:
    return time.time() - T0


def cuda_time(fn, iters: int, warmup: int = 10):
    """Per-call GPU time (ms, CUDA events around ``iters`` back-to-back calls) and host wall p50 (ms)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    per_call = start.elapsed_time(end) / iters
    walls = []
    for _ in range(min(iters, 200)):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        walls.append((time.perf_counter() - t) * 1e3)
    return per_call, float(np.percentile(walls, 50)), float(np.percentile(walls, 90))


def make_model(profile: str, inputs):
    import torch

    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(0)
    m = EigenDepthNet(profile).eval()
    x = torch.from_numpy(np.concatenate(inputs))
    with torch.no_grad():  # rescale the linear output layers: log depth std ~0.4 around 2.5 m
        for layer, run in ((m.coarse.c7, lambda: m(x, stage="coarse")), (m.fine.f4, lambda: m(x))):
            s = float(run().flatten(1).std(dim=1).mean())
            layer.weight.mul_(0.4 / max(s, 1e-8))
            layer.bias.add_(float(np.log(2.5)) - float(run().mean()))
    return m


def real_inputs(profile):
    """Preprocessed real frames (needs cv2 and ../shared/data), else unit-normal noise."""
    try:
        from mono_depth_ros.preprocess import Preprocessor
        from mono_depth_ros.quantize import find_images, read_rgb

        shared = Path(os.environ.get("MONO_DEPTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
        paths = find_images([shared / "nyu_depth_v2_samples", shared / "rgbd_misc_samples"])
        pre = Preprocessor(profile)
        xs = [pre(read_rgb(p))[0].copy() for p in paths[:6]]
        if xs:
            return xs, f"{len(xs)} real frames"
    except Exception as exc:  # noqa: BLE001 - cv2 or data missing
        print(f"(real frames unavailable: {type(exc).__name__}: {exc}; using noise)")
    rng = np.random.default_rng(0)
    return [rng.standard_normal((1, 3, profile.input_h, profile.input_w)).astype(np.float32) for _ in range(4)], \
        "4 noise inputs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", default=None, help="write results here (default $OUT/gpu_check.json if $OUT is set)")
    ap.add_argument("--budget", type=float, default=200.0, help="seconds; later sections are skipped past it")
    ap.add_argument("--profile", default="nyu")
    args = ap.parse_args()
    json_out = args.json or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)

    import torch

    from mono_depth_ros.checkpoint import save_model
    from mono_depth_ros.profiles import get_profile

    res = {"host": {"python": platform.python_version(), "torch": torch.__version__,
                    "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()},
           "reference_h100": REFERENCE_H100, "targets": TARGETS, "errors": {}}
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    dev = torch.device("cuda")
    res["host"]["gpu"] = torch.cuda.get_device_name(0)
    res["host"]["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
    print(f"GPU {res['host']['gpu']} (sm {res['host']['capability']}), torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")
    profile = get_profile(args.profile)
    xs, what = real_inputs(profile)
    model = make_model(profile, xs)
    tmp = tempfile.TemporaryDirectory(prefix="gpu_check.")
    pt = save_model(model, Path(tmp.name) / "nyu_random.pt", overwrite=True)
    with torch.inference_mode():
        ref = np.concatenate([model(torch.from_numpy(x)).numpy() for x in xs])  # CPU fp32 eager

    def section(name, fn):
        if elapsed() > args.budget:
            print(f"[{name}] skipped: time budget ({args.budget:.0f} s) used")
            res["errors"][name] = "skipped (budget)"
            return
        t = time.time()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            res["errors"][name] = f"{type(exc).__name__}: {exc}"
        print(f"[{name}] done in {time.time() - t:.1f} s (total {elapsed():.0f} s)", flush=True)

    # ---- 1. parity ------------------------------------------------------------------------------
    def parity():
        from mono_depth_ros.backends.torch_backend import TorchBackend
        from mono_depth_ros.model_spec import load_spec

        spec = load_spec(pt)
        out = {}
        for prec in ("fp32", "fp16"):
            be = TorchBackend(spec, device="cuda", precision=prec)
            y = np.concatenate([be.run(x).copy() for x in xs])
            d = np.abs(y - ref)
            out[prec] = {"max_abs_log": float(d.max()), "mean_abs_log": float(d.mean()),
                         "max_rel_depth": float(np.expm1(d).max()), "cuda_graph": be._use_graph}
            be.close()
        # fp32 on CUDA uses TF32 convolutions by default (10-bit mantissa): ~1e-3 relative.
        out["pass"] = out["fp32"]["max_abs_log"] < 1e-2 and out["fp16"]["max_abs_log"] < 5e-2
        out["inputs"] = what
        res["parity"] = out
        print(f"parity vs CPU fp32 on {what}: fp32 max |d log| {out['fp32']['max_abs_log']:.2e}, "
              f"fp16 max |d log| {out['fp16']['max_abs_log']:.2e} -> {'PASS' if out['pass'] else 'FAIL'}")

    # ---- 2. model latency -----------------------------------------------------------------------
    def latency():
        lat = {}
        torch.backends.cudnn.benchmark = True
        m16 = make_model(profile, xs).to(dev).half().to(memory_format=torch.channels_last).eval()
        for b in (1, 8):
            x = torch.from_numpy(np.concatenate([xs[i % len(xs)] for i in range(b)])).to(dev).half()
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                if b == 1:
                    gpu, p50, p90 = cuda_time(lambda: m16(x), 200)
                    lat["eager_fp16_b1_ms"] = gpu
                    lat["eager_fp16_b1_wall_p50_ms"] = p50
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        m16(x)
                torch.cuda.current_stream().wait_stream(s)
                g = torch.cuda.CUDAGraph()
                with torch.cuda.graph(g):
                    m16(x)
                gpu, p50, p90 = cuda_time(g.replay, 500)
            if b == 1:
                lat["graph_fp16_b1_ms"] = gpu
                lat["graph_fp16_b1_wall_p50_ms"] = p50
            else:
                lat["graph_fp16_b8_per_frame_ms"] = gpu / b
                lat["graph_fp16_b8_batch_ms"] = gpu
        # the backend's run(): numpy in -> pinned -> GPU graph -> pinned -> numpy out
        from mono_depth_ros.backends.torch_backend import TorchBackend
        from mono_depth_ros.commands.bench_run import summarize, time_it
        from mono_depth_ros.model_spec import load_spec

        be = TorchBackend(load_spec(pt), device="cuda", precision="fp16")
        s = summarize(time_it(lambda: be.run(xs[0]), 300, 20))
        lat["backend_run_fp16_b1_p50_ms"] = s["p50_ms"]
        lat["backend_run_fp16_b1_p90_ms"] = s["p90_ms"]
        be.close()
        # physical limit: reading the fp16 weights once from HBM
        n_params = sum(p.numel() for p in m16.parameters())
        lat["weights_fp16_mb"] = n_params * 2 / 1e6
        res["latency"] = lat
        del m16

    # ---- 3. end to end ---------------------------------------------------------------------------
    def pipeline():
        from mono_depth_ros.commands.bench_run import format_table, run_bench

        r = run_bench(str(pt), backend="torch", device="cuda", precision="fp16", iters=300, warmup=20,
                      cache_dir=tmp.name)
        print(format_table(r))
        res["pipeline"] = r["results"]

    # ---- 4. TensorRT (optional) ------------------------------------------------------------------
    def tensorrt():
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            res["tensorrt"] = "not installed"
            print("TensorRT not installed: skipped")
            return
        from mono_depth_ros.backends.tensorrt_backend import TensorRTBackend
        from mono_depth_ros.commands.bench_run import summarize, time_it
        from mono_depth_ros.export import export_onnx

        onnx_path = export_onnx(pt, Path(tmp.name) / "m.onnx", overwrite=True)
        t = time.time()
        be = TensorRTBackend(onnx_path, precision="fp16", cache_dir=tmp.name)
        build_s = time.time() - t
        y = np.concatenate([be.run(x).copy() for x in xs])
        s = summarize(time_it(lambda: be.run(xs[0]), 300, 20))
        be.close()
        t = time.time()
        be = TensorRTBackend(onnx_path, precision="fp16", cache_dir=tmp.name)
        res["tensorrt"] = {"build_s": build_s, "cache_hit_s": time.time() - t, "run_p50_ms": s["p50_ms"],
                           "max_abs_log_vs_cpu": float(np.abs(y - ref).max())}
        be.close()

    section("parity", parity)
    section("latency", latency)
    section("pipeline", pipeline)
    section("tensorrt", tensorrt)
    tmp.cleanup()

    # ---- table ---------------------------------------------------------------------------------
    lat = res.get("latency", {})
    pipe = (res.get("pipeline") or {}).get("pipeline", {})
    rows = [("eager fp16, batch 1 (GPU time)", lat.get("eager_fp16_b1_ms"), "eager_fp16_b1_ms"),
            ("CUDA graph fp16, batch 1 (GPU time)", lat.get("graph_fp16_b1_ms"), "graph_fp16_b1_ms"),
            ("CUDA graph fp16, batch 8, per frame", lat.get("graph_fp16_b8_per_frame_ms"), "graph_fp16_b8_per_frame_ms"),
            ("backend.run fp16 b1 (host<->GPU), p50", lat.get("backend_run_fp16_b1_p50_ms"), None),
            ("pipeline 640x480 rgb8 -> depth + cloud, p50", pipe.get("p50_ms"), "pipeline_640x480_p50_ms"),
            ("pipeline p90", pipe.get("p90_ms"), None)]
    print(f"\n{res['host']['gpu']}: figures vs issue 4's H100 reference (ms)")
    print("| measurement | this run | H100 reference | target |")
    print("|---|---:|---:|---:|")
    for label, v, key in rows:
        refv = REFERENCE_H100.get(key) if key else None
        tgt = TARGETS.get(key) if key else None
        fmt = (lambda z: f"{z:.3f}" if isinstance(z, float) else "-")
        print(f"| {label} | {fmt(v)} | {fmt(refv)} | {('<= ' + fmt(tgt)) if tgt else '-'} |")
    if "parity" in res:
        p = res["parity"]
        print(f"parity: fp32 {p['fp32']['max_abs_log']:.2e}, fp16 {p['fp16']['max_abs_log']:.2e} max |d log| "
              f"-> {'PASS' if p['pass'] else 'FAIL'}")
    if pipe:
        print("pipeline stages p50 ms:", pipe.get("stages_p50_ms"))
    if res["errors"]:
        print("errors:", res["errors"])
    res["elapsed_s"] = round(elapsed(), 1)
    print(f"total {res['elapsed_s']} s")
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=2, default=str) + "\n")
        print(f"wrote {json_out}")
    return 0 if not res["errors"] and res.get("parity", {}).get("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
