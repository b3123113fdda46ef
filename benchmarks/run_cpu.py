#!/usr/bin/env python3
"""Reproduce the CPU figures of docs/performance.md (NYU profile, 2 threads).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/run_cpu.py [--model trained.pt] [--rounds 3] [--out out/bench_cpu]

1. Model: ``--model`` (a trained checkpoint) or the NYU network with random weights whose linear
   output layers (C7, F4) are rescaled so the log depth varies across the image (std ~0.4, around
   2.5 m) like a trained model's -- a freshly initialised net outputs a near-constant map, which
   would make any quantisation error look negligible.
2. Export to ONNX (``mono_depth_ros.export``), quantise: static QDQ per-channel int8 (calibrated on
   real images from ../shared/data -- KITTI + Kinect v2 frames) and dynamic (FC weights only).
3. Accuracy of int8 vs fp32 on *held-out* real frames (NYU, TUM, and their mirror images): max/mean
   |d log depth|, relative depth error, delta1 (max(d/d32, d32/d) < 1.25).
4. Model-only latency (p50/p90/min over ``--iters`` runs, repeated ``--rounds`` times, variants
   interleaved so they share the machine's load): PyTorch eager fp32, ORT fp32, ORT int8 static,
   ORT int8 dynamic; then the full pipeline (640x480 rgb8 -> depth + cloud) for ORT fp32 and int8.

The machine is shared: figures vary run to run; the spread across rounds is printed and saved.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

SHARED = Path(os.environ.get("MONO_DEPTH_SHARED_DATA", ROOT.parent / "shared" / "data"))
CALIB = [SHARED / "kitti_object_lidar" / "image_2", SHARED / "rgbd_misc_samples" / "emsanet_kinect2"]
EVAL = [SHARED / "nyu_depth_v2_samples", SHARED / "rgbd_misc_samples" / "other_formats"]


def realistic_random_model(profile: str, eval_inputs, target_std: float = 0.4, centre_m: float = 2.5):
    import torch

    from mono_depth_ros.model import EigenDepthNet

    torch.manual_seed(0)
    m = EigenDepthNet(profile).eval()
    x = torch.from_numpy(np.concatenate(eval_inputs))
    with torch.no_grad():
        for layer, run in ((m.coarse.c7, lambda: m(x, stage="coarse")), (m.fine.f4, lambda: m(x))):
            y = run()
            s = float(y.flatten(1).std(dim=1).mean())
            layer.weight.mul_(target_std / max(s, 1e-8))
            y = run()
            layer.bias.add_(float(np.log(centre_m)) - float(y.mean()))
    return m


def ort_session(path, threads=2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="trained checkpoint (.pt); default: NYU net, random weights (rescaled output)")
    ap.add_argument("--profile", default="nyu")
    ap.add_argument("--out", default=str(ROOT / "out" / "bench_cpu"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-torch", action="store_true", help="skip the slow PyTorch eager measurement")
    args = ap.parse_args()

    import torch

    from mono_depth_ros.checkpoint import load_model, save_model
    from mono_depth_ros.commands.bench_run import format_table, host_info, run_bench, summarize, time_it
    from mono_depth_ros.export import export_onnx
    from mono_depth_ros.preprocess import Preprocessor
    from mono_depth_ros.profiles import get_profile
    from mono_depth_ros.quantize import compare_log_depth, find_images, quantize_onnx, read_rgb, synthetic_frames

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"host": host_info(), "threads": args.threads, "rounds": args.rounds, "iters": args.iters}
    t_start = time.time()

    # ---- data ------------------------------------------------------------------------------
    real = all(d.is_dir() for d in CALIB + EVAL)
    if real:
        calib = [str(d) for d in CALIB]
        eval_rgb = [read_rgb(p) for p in find_images(EVAL)]
        eval_rgb += [np.ascontiguousarray(e[:, ::-1]) for e in eval_rgb]
        report["data"] = {"calibration": [str(p.relative_to(SHARED)) for p in find_images(CALIB)],
                          "evaluation": [str(p.relative_to(SHARED)) for p in find_images(EVAL)] + ["(+ mirrored)"]}
    else:
        print("WARNING: ../shared/data not found: synthetic frames for calibration and evaluation")
        calib, eval_rgb = synthetic_frames(8, seed=1), synthetic_frames(6, seed=2)
        report["data"] = "synthetic"

    # ---- model, export, quantisation --------------------------------------------------------
    if args.model:
        model, _ = load_model(args.model)
        pt = Path(args.model)
        report["model"] = str(pt)
    else:
        pre = Preprocessor(get_profile(args.profile))
        model = realistic_random_model(args.profile, [pre(r)[0].copy() for r in eval_rgb])
        pt = save_model(model, out / f"random_{args.profile}.pt", overwrite=True,
                        meta={"note": "random weights, output layers rescaled (benchmark only)"})
        report["model"] = f"{args.profile} random weights, C7/F4 rescaled to log-depth std 0.4 (not trained)"
    prof = model.profile
    pre = Preprocessor(prof)
    xs = [pre(r)[0].copy() for r in eval_rgb]
    fp32 = export_onnx(pt, out / "model.onnx", overwrite=True)
    t0 = time.time()
    q_static = quantize_onnx(fp32, out / "model.int8.onnx", calib=calib, overwrite=True).path
    t_static = time.time() - t0
    t0 = time.time()
    q_dyn = quantize_onnx(fp32, out / "model.int8dyn.onnx", mode="dynamic", overwrite=True).path
    report["quantize_seconds"] = {"static": round(t_static, 1), "dynamic": round(time.time() - t0, 1)}
    report["sizes_mb"] = {p.name: round(p.stat().st_size / 1e6, 1) for p in (fp32, q_static, q_dyn)}

    # ---- accuracy ---------------------------------------------------------------------------
    sessions = {"ort_fp32": ort_session(fp32, args.threads), "ort_int8_static": ort_session(q_static, args.threads),
                "ort_int8_dynamic": ort_session(q_dyn, args.threads)}
    name = sessions["ort_fp32"].get_inputs()[0].name
    outs = {k: np.concatenate([s.run(None, {name: x})[0] for x in xs]) for k, s in sessions.items()}
    with torch.no_grad():
        ref_torch = np.concatenate([model(torch.from_numpy(x)).numpy() for x in xs])
    report["parity_ort_fp32_vs_torch_max_abs"] = float(np.abs(outs["ort_fp32"] - ref_torch).max())
    report["accuracy_vs_fp32"] = {k: compare_log_depth(outs["ort_fp32"], outs[k])
                                  for k in ("ort_int8_static", "ort_int8_dynamic")}
    report["eval_frames"] = len(xs)

    # ---- model-only latency, interleaved rounds ----------------------------------------------
    runners = {k: (lambda s=s: s.run(None, {name: xs[0]})) for k, s in sessions.items()}
    if not args.skip_torch:
        x_t = torch.from_numpy(xs[0])

        def torch_run():
            with torch.inference_mode():
                model(x_t)
        runners = {"torch_eager_fp32": torch_run, **runners}
    lat = {k: [] for k in runners}
    for r in range(args.rounds):
        for k, fn in runners.items():
            iters = max(5, args.iters // 3) if k.startswith("torch") else args.iters
            lat[k].append(summarize(time_it(fn, iters, 3)))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]['p50_ms']:.1f} ms" for k, v in lat.items()),
              flush=True)
    report["model_latency"] = {
        k: {"p50_ms_median": float(np.median([s["p50_ms"] for s in v])),
            "p50_ms_rounds": [s["p50_ms"] for s in v], "p90_ms_rounds": [s["p90_ms"] for s in v],
            "min_ms": float(min(s["min_ms"] for s in v))} for k, v in lat.items()}

    # ---- full pipeline ----------------------------------------------------------------------
    report["pipeline"] = {}
    for label, path in (("ort_fp32", fp32), ("ort_int8_static", q_static)):
        res = run_bench(str(path), backend="onnxruntime", device="cpu", precision="fp32", threads=args.threads,
                        iters=args.iters * 2, warmup=5)
        report["pipeline"][label] = res["results"]
        print(format_table(res), flush=True)
    report["elapsed_s"] = round(time.time() - t_start, 1)

    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    (out / "results.md").write_text(markdown(report) + "\n")
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0


def markdown(rep) -> str:
    L = [f"model: {rep['model']}; threads {rep['threads']}; {rep['rounds']} rounds x {rep['iters']} iterations",
         f"host: {rep['host'].get('cpu')}, onnxruntime {rep['host'].get('onnxruntime')}, torch {rep['host'].get('torch')}",
         "", "| model only | p50 ms (median of rounds) | p50 per round | min ms |", "|---|---:|---|---:|"]
    for k, v in rep["model_latency"].items():
        L.append(f"| {k} | {v['p50_ms_median']:.1f} | {', '.join(f'{x:.1f}' for x in v['p50_ms_rounds'])} | "
                 f"{v['min_ms']:.1f} |")
    L += ["", "| pipeline 640x480 rgb8 -> depth + cloud | p50 ms | p90 ms | FPS | model p50 ms |", "|---|---:|---:|---:|---:|"]
    for k, v in rep["pipeline"].items():
        p = v["pipeline"]
        L.append(f"| {k} | {p['p50_ms']:.1f} | {p['p90_ms']:.1f} | {p['fps']:.1f} | {v['model']['p50_ms']:.1f} |")
    L += ["", f"int8 vs fp32 on {rep['eval_frames']} held-out real frames (ORT fp32 vs PyTorch max |d| "
          f"{rep['parity_ort_fp32_vs_torch_max_abs']:.2e}):",
          "| variant | max abs d log | mean abs d log | AbsRel | max rel | delta1 | fp32 log spread |",
          "|---|---:|---:|---:|---:|---:|---:|"]
    for k, m in rep["accuracy_vs_fp32"].items():
        L.append(f"| {k} | {m['max_abs_log']:.4f} | {m['mean_abs_log']:.4f} | {m['abs_rel']:.4f} | "
                 f"{m['max_rel']:.4f} | {m['delta1']:.4f} | {m['spread_log']:.3f} |")
    L.append(f"sizes MB: {rep['sizes_mb']}; quantisation seconds: {rep['quantize_seconds']}")
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
